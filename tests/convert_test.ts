/**
 * `undying-proxy convert`, run as the real program: ingress-nginx ConfigMap manifests (as kubectl
 * prints them) in, UnDyingProxy objects out that the real API server accepts.
 */
import assert from "node:assert/strict";
import { dump, loadAll } from "js-yaml";
import { integrationTest } from "./_support/control_plane.ts";
import { runProgram } from "./_support/program.ts";

/** A ConfigMap as `kubectl get cm NAME -n ingress-nginx -o yaml` prints it. */
function configMapYaml(name: string, data: Record<string, string>): string {
  return dump({
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: { name, namespace: "ingress-nginx", resourceVersion: "1234", uid: "x" },
    data,
  });
}

async function withFiles<T>(
  files: Record<string, string>,
  body: (path: (name: string) => string) => Promise<T>,
): Promise<T> {
  const dir = await Deno.makeTempDir({ prefix: "undying-proxy-convert-" });
  try {
    for (const [name, text] of Object.entries(files)) {
      await Deno.writeTextFile(`${dir}/${name}`, text);
    }
    return await body((name) => `${dir}/${name}`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("convert: the documented example becomes two objects, exit 0", async () => {
  await withFiles({
    "tcp.yaml": configMapYaml("tcp-services", { "9000": "default/example-go:8080" }),
    "udp.yaml": configMapYaml("udp-services", { "53": "kube-system/kube-dns:53" }),
  }, async (path) => {
    const run = await runProgram([
      "convert",
      "--tcp-services",
      path("tcp.yaml"),
      "--udp-services",
      path("udp.yaml"),
      "--namespace=proxies",
    ]);
    assert.equal(run.code, 0, run.stderr);
    const objects = loadAll(run.stdout) as { metadata: { name: string; namespace: string } }[];
    assert.deepEqual(objects.map((o) => [o.metadata.namespace, o.metadata.name]), [
      ["proxies", "udp-53-kube-dns"],
      ["proxies", "tcp-9000-example-go"],
    ]);
    assert.match(run.stderr, /converted 2 object\(s\); 0 entries not converted/);
  });
});

Deno.test("convert: a List in JSON with named ports resolved from --services; bad entries exit 1", async () => {
  const services = {
    apiVersion: "v1",
    kind: "List",
    items: [{
      apiVersion: "v1",
      kind: "Service",
      metadata: { name: "db", namespace: "data" },
      spec: { ports: [{ name: "pg", port: 5432, protocol: "TCP" }] },
    }],
  };
  await withFiles({
    "tcp.json": JSON.stringify({
      apiVersion: "v1",
      kind: "List",
      items: [{
        apiVersion: "v1",
        kind: "ConfigMap",
        metadata: { name: "tcp-services" },
        data: { "5432": "data/db:pg", "6000": "data/db:nope", "x": "data/db:1" },
      }],
    }),
    "services.json": JSON.stringify(services),
  }, async (path) => {
    const run = await runProgram([
      "convert",
      `--tcp-services=${path("tcp.json")}`,
      `--services=${path("services.json")}`,
    ]);
    assert.equal(run.code, 1, run.stderr);
    const [object] = loadAll(run.stdout) as { spec: { tcp: { targetPort: number } } }[];
    assert.equal(object?.spec.tcp.targetPort, 5432);
    assert.match(
      run.stderr,
      /not converted: TCP 6000: "data\/db:nope": .*no TCP port named "nope"/,
    );
    assert.match(
      run.stderr,
      /not converted: TCP x: "data\/db:1": the key must be the external port/,
    );
  });
});

Deno.test("convert: no ConfigMap, an unreadable file or a wrong kind exits 2 with the reason", async () => {
  const none = await runProgram(["convert"]);
  assert.equal(none.code, 2);
  assert.match(none.stderr, /give --tcp-services FILE, --udp-services FILE or both/);
  const missing = await runProgram(["convert", "--tcp-services=/nonexistent/tcp.yaml"]);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /--tcp-services \/nonexistent\/tcp.yaml: .*No such file/);
  await withFiles(
    { "svc.yaml": "apiVersion: v1\nkind: Service\nmetadata: {name: a}\n" },
    async (path) => {
      const wrong = await runProgram(["convert", `--udp-services=${path("svc.yaml")}`]);
      assert.equal(wrong.code, 2);
      assert.match(wrong.stderr, /expected one ConfigMap, found 0/);
    },
  );
  const unknown = await runProgram(["convert", "--tcp-services=a", "--bogus"]);
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /bogus/);
});

integrationTest(
  "convert: the objects it prints pass a server-side dry run against the CRD",
  async (cp) => {
    const ns = await cp.createNamespace("convert");
    const tcp: Record<string, string> = {};
    const udp: Record<string, string> = {};
    for (let i = 0; i < 50; i++) {
      (i % 2 === 0 ? tcp : udp)[String(20000 + i)] = `games/server-${i % 7}:${7000 + i}`;
    }
    udp["20000"] = "games/server-0:7000"; // same port and target as a TCP entry: merged
    await withFiles({
      "tcp.yaml": configMapYaml("tcp-services", tcp),
      "udp.yaml": configMapYaml("udp-services", udp),
    }, async (path) => {
      const run = await runProgram([
        "convert",
        `--tcp-services=${path("tcp.yaml")}`,
        `--udp-services=${path("udp.yaml")}`,
        `--namespace=${ns}`,
      ]);
      assert.equal(run.code, 0, run.stderr);
      assert.equal(loadAll(run.stdout).length, 50);
      const applied = await cp.kubectlOk(["apply", "--dry-run=server", "-f", "-"], {
        stdin: run.stdout,
      });
      assert.equal(applied.trim().split("\n").length, 50, applied);
      assert.match(
        applied,
        /undyingproxy.proxy.sfact.io\/tcp-udp-20000-server-0 created \(server dry run\)/,
      );
    });
  },
);
