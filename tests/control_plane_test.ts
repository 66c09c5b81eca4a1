/** The test control plane itself: real etcd + kube-apiserver, RBAC, restarts, compaction, teardown. */
import assert from "node:assert/strict";
import {
  type ControlPlane,
  controlPlaneTest,
  integrationTest,
  startControlPlane,
} from "./_support/control_plane.ts";
import { waitUntil } from "./_support/wait.ts";
import { runDeno } from "./controlplane/run_deno.ts";
import { controlPlaneVersions } from "./controlplane/binaries.ts";

const repoRoot = new URL("../", import.meta.url).pathname;

function assertIncludes(text: string, expected: string): void {
  assert.ok(
    text.includes(expected),
    `expected ${JSON.stringify(expected)} in ${JSON.stringify(text)}`,
  );
}

/** Command lines of live processes mentioning `dir` (etcd and kube-apiserver carry it in flags). */
async function processesMentioning(dir: string): Promise<string[]> {
  const output = await new Deno.Command("pgrep", { args: ["-af", dir], stdout: "piped" }).output();
  return new TextDecoder().decode(output.stdout).split("\n").filter((line) => line.trim() !== "");
}

function exists(path: string): Promise<boolean> {
  return Deno.stat(path).then(() => true, () => false);
}

/** GET `path` on the API server with the static admin token; returns status and parsed JSON. */
async function getJson(cp: ControlPlane, path: string): Promise<{ status: number; body: unknown }> {
  using client = Deno.createHttpClient({ caCerts: [await Deno.readTextFile(cp.caCertPath)] });
  const response = await fetch(`${cp.serverUrl}${path}`, {
    client,
    headers: { authorization: `Bearer ${cp.adminToken}` },
  });
  return { status: response.status, body: await response.json() };
}

/** Reads the first line a child prints on stdout and releases the stream. */
async function firstLine(child: Deno.ChildProcess): Promise<string> {
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!text.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) break;
    text += value;
  }
  await reader.cancel();
  return text.split("\n")[0] ?? "";
}

/** Starts `_control_plane_child.ts`, sends `signal` once it is up, and checks nothing is left. */
async function assertNothingSurvives(signal: Deno.Signal): Promise<void> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "tests/_support/_control_plane_child.ts"],
    cwd: repoRoot,
    env: { DENO_NO_UPDATE_CHECK: "1" },
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const dir = await firstLine(child);
  assert.match(dir, /undying-proxy-cp-/);
  assert.ok(
    (await processesMentioning(dir)).length >= 2,
    "etcd and kube-apiserver should be running",
  );
  child.kill(signal);
  await child.status;
  await waitUntil(
    `no process using ${dir} and the directory removed`,
    async () => (await processesMentioning(dir)).length === 0 && !(await exists(dir)),
    { timeoutMs: 60_000, intervalMs: 500 },
  );
}

controlPlaneTest("close() stops etcd and kube-apiserver and removes the directory", async () => {
  const cp = await startControlPlane({ installCrds: false });
  const dir = cp.dir;
  try {
    const running = await processesMentioning(dir);
    assert.ok(
      running.some((line) => line.includes("kube-apiserver")),
      `no kube-apiserver in ${running}`,
    );
    assert.ok(running.some((line) => line.includes("etcd")), `no etcd in ${running}`);
  } finally {
    await cp.close();
  }
  assert.deepEqual(await processesMentioning(dir), []);
  assert.deepEqual(await exists(dir), false);
  await cp.close(); // idempotent
});

controlPlaneTest("SIGINT to the test process tears the control plane down", async () => {
  await assertNothingSurvives("SIGINT");
});

controlPlaneTest("SIGKILL of the test process: the watchdog kills the servers", async () => {
  await assertNothingSurvives("SIGKILL");
});

controlPlaneTest(
  "integrationTest() is ignored loudly without binaries, and fails under CI=true or bad variables",
  async () => {
    const emptyCache = await Deno.makeTempDir({ prefix: "undying-proxy-empty-cache-" });
    try {
      const run = async (extra: Record<string, string>) => {
        const args = ["test", "-A", "tests/_support/_integration_fixture.ts"];
        const output = await runDeno(args, { UNDYING_PROXY_CACHE: emptyCache, ...extra });
        return { code: output.code, text: output.stdout + output.stderr };
      };
      const local = await run({});
      assert.deepEqual(local.code, 0, local.text);
      assertIncludes(local.text, "SKIPPING Kubernetes integration tests");
      assert.match(local.text, /1 ignored/);
      const ci = await run({ CI: "true" });
      assert.notEqual(ci.code, 0, ci.text);
      assertIncludes(ci.text, "control plane unavailable");
      assert.match(ci.text, /1 failed/);
      // What .ci/run exports, pointing at binaries that are gone: a failure too, even without CI.
      const gone = await run({
        KUBE_APISERVER_BIN: `${emptyCache}/kube-apiserver`,
        ETCD_BIN: `${emptyCache}/etcd`,
      });
      assert.notEqual(gone.code, 0, gone.text);
      assertIncludes(gone.text, `${emptyCache}/kube-apiserver does not exist`);
      assert.match(gone.text, /1 failed/);
    } finally {
      await Deno.remove(emptyCache, { recursive: true });
    }
  },
);

integrationTest("the API server reports the pinned Kubernetes version", async (cp) => {
  const { status, body } = await getJson(cp, "/version");
  assert.deepEqual(status, 200);
  assert.deepEqual((body as { gitVersion?: string }).gitVersion, controlPlaneVersions().kubernetes);
  assert.match(cp.serverUrl, /^https:\/\/127\.0\.0\.1:\d+$/);
});

integrationTest("kubectl with the admin kubeconfig lists the built-in namespaces", async (cp) => {
  const names = (await cp.kubectlOk(["get", "namespaces", "-o", "name"])).trim().split("\n");
  for (const expected of ["namespace/default", "namespace/kube-system"]) {
    assert.ok(names.includes(expected), `${expected} missing from ${names}`);
  }
});

integrationTest("createNamespace() creates distinct namespaces with the prefix", async (cp) => {
  const first = await cp.createNamespace("Cp Test");
  const second = await cp.createNamespace("Cp Test");
  assert.notEqual(first, second);
  assert.match(first, /^cp-test-[0-9a-f]{8}$/);
  for (const name of [first, second]) {
    assert.deepEqual(
      (await cp.kubectlOk(["get", "namespace", name, "-o", "name"])).trim(),
      `namespace/${name}`,
    );
  }
});

integrationTest(
  "a ServiceAccount is Forbidden until a Role and RoleBinding allow it",
  async (cp) => {
    const ns = await cp.createNamespace("rbac");
    await cp.kubectlOk(["create", "configmap", "visible", "-n", ns, "--from-literal=k=v"]);
    const kubeconfig = await cp.kubeconfigForServiceAccount(ns, "reader");

    const denied = await cp.kubectl(["get", "configmaps", "-n", ns], { kubeconfig });
    assert.notEqual(denied.code, 0);
    assertIncludes(denied.stderr, "Forbidden");
    assertIncludes(denied.stderr, `system:serviceaccount:${ns}:reader`);

    await cp.kubectlOk(["apply", "-f", "-"], {
      stdin: JSON.stringify({
        apiVersion: "v1",
        kind: "List",
        items: [
          {
            apiVersion: "rbac.authorization.k8s.io/v1",
            kind: "Role",
            metadata: { name: "configmap-reader", namespace: ns },
            rules: [{ apiGroups: [""], resources: ["configmaps"], verbs: ["get", "list"] }],
          },
          {
            apiVersion: "rbac.authorization.k8s.io/v1",
            kind: "RoleBinding",
            metadata: { name: "configmap-reader", namespace: ns },
            roleRef: {
              apiGroup: "rbac.authorization.k8s.io",
              kind: "Role",
              name: "configmap-reader",
            },
            subjects: [{ kind: "ServiceAccount", name: "reader", namespace: ns }],
          },
        ],
      }),
    });
    let allowed = "";
    await waitUntil("the RoleBinding to take effect", async () => {
      const result = await cp.kubectl(["get", "configmaps", "-n", ns, "-o", "name"], {
        kubeconfig,
      });
      allowed = result.stdout;
      return result.code === 0;
    }, { timeoutMs: 30_000, intervalMs: 200 });
    assert.deepEqual(allowed.trim(), "configmap/visible");
    // Still only what the Role grants: no writes, nothing in other namespaces.
    const write = await cp.kubectl(["create", "configmap", "nope", "-n", ns], { kubeconfig });
    assert.match(write.stderr, /forbidden/i);
    const elsewhere = await cp.kubectl(["get", "configmaps", "-n", "default"], { kubeconfig });
    assert.match(elsewhere.stderr, /forbidden/i);
  },
);

integrationTest(
  "kubeconfigForUser() authenticates with a client certificate and its groups",
  async (cp) => {
    const kubeconfig = await cp.kubeconfigForUser("alice", ["developers", "testers"]);
    const review = JSON.parse(await cp.kubectlOk(["auth", "whoami", "-o", "json"], { kubeconfig }));
    assert.deepEqual(review.status.userInfo.username, "alice");
    assert.deepEqual(
      review.status.userInfo.groups.filter((g: string) => g !== "system:authenticated"),
      [
        "developers",
        "testers",
      ],
    );
    const denied = await cp.kubectl(["get", "namespaces"], { kubeconfig });
    assertIncludes(denied.stderr, 'User "alice" cannot list resource "namespaces"');
  },
);

integrationTest(
  "restartApiServer() keeps the data and the URL; stopped means unreachable",
  async (cp) => {
    const ns = await cp.createNamespace("restart");
    await cp.kubectlOk(["create", "configmap", "kept", "-n", ns, "--from-literal=k=before"]);
    const url = cp.serverUrl;

    await cp.stopApiServer();
    const down = await cp.kubectl(["get", "configmaps", "-n", ns, "--request-timeout=5s"]);
    assert.notEqual(down.code, 0);
    await cp.startApiServer();

    await cp.restartApiServer();
    assert.deepEqual(cp.serverUrl, url);
    const value = await cp.kubectlOk([
      "get",
      "configmap",
      "kept",
      "-n",
      ns,
      "-o",
      "jsonpath={.data.k}",
    ]);
    assert.deepEqual(value, "before");
  },
  { restartsControlPlane: true },
);

integrationTest(
  "compactEtcd() makes a watch from an older resourceVersion end with 410",
  async (cp) => {
    const ns = await cp.createNamespace("compact");
    const created = JSON.parse(
      await cp.kubectlOk([
        "create",
        "configmap",
        "first",
        "-n",
        ns,
        "--from-literal=k=v",
        "-o",
        "json",
      ]),
    );
    const oldVersion: string = created.metadata.resourceVersion;
    await cp.kubectlOk(["create", "configmap", "second", "-n", ns, "--from-literal=k=v"]);
    const watchPath = (rv: string) =>
      `/api/v1/namespaces/${ns}/configmaps?watch=1&timeoutSeconds=1&resourceVersion=${rv}`;

    const before = await watchEvents(cp, watchPath(oldVersion));
    assert.deepEqual(before.map((e) => `${e.type} ${e.object.metadata?.name}`), ["ADDED second"]);

    await cp.compactEtcd();
    const after = await watchEvents(cp, watchPath(oldVersion));
    assert.deepEqual(after.length, 1, JSON.stringify(after));
    assert.deepEqual(after[0]?.type, "ERROR");
    assert.deepEqual(after[0]?.object.code, 410);

    const list = await getJson(cp, `/api/v1/namespaces/${ns}/configmaps`);
    const current =
      (list.body as { metadata: { resourceVersion: string } }).metadata.resourceVersion;
    const fresh = await watchEvents(cp, watchPath(current));
    assert.ok(fresh.every((e) => e.type !== "ERROR"), JSON.stringify(fresh));
  },
);

interface WatchEvent {
  type: string;
  object: { code?: number; metadata?: { name?: string } };
}

/** Runs a short watch (the path carries timeoutSeconds) and returns every event. */
async function watchEvents(cp: ControlPlane, path: string): Promise<WatchEvent[]> {
  using client = Deno.createHttpClient({ caCerts: [await Deno.readTextFile(cp.caCertPath)] });
  const response = await fetch(`${cp.serverUrl}${path}`, {
    client,
    headers: { authorization: `Bearer ${cp.adminToken}` },
  });
  assert.deepEqual(response.status, 200);
  const text = await response.text();
  return text.split("\n").filter((line) => line.trim() !== "").map((line) => JSON.parse(line));
}

// These two run in order: the wrapper must bring a stopped shared API server back for the next test.
integrationTest("a test may leave the shared API server stopped", async (cp) => {
  await cp.stopApiServer();
  const down = await cp.kubectl(["get", "namespaces", "--request-timeout=5s"]);
  assert.notEqual(down.code, 0);
}, { restartsControlPlane: true });

integrationTest("the next test finds the shared API server running again", async (cp) => {
  assert.match(
    await cp.kubectlOk(["get", "namespace", "default", "-o", "name"]),
    /namespace\/default/,
  );
});
