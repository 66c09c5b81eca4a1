// Cluster configuration (kubeconfig, exec plugins, in-cluster) against a real kube-apiserver.
import assert from "node:assert/strict";
import { ApiError } from "../lib/kube/api_error.ts";
import { KubeClient } from "../lib/kube/client.ts";
import { loadClusterConfig } from "../lib/kube/cluster_config.ts";
import { KubeconfigError } from "../lib/kube/kubeconfig_error.ts";
import { NAMESPACES } from "../lib/kube/resources.ts";
import { integrationTest } from "./_support/control_plane.ts";
import { clientFor } from "./_support/kube_clients.ts";
import { startConnectProxy } from "./_support/kube_http_peers.ts";
import {
  createTestCa,
  issueTestClientCertificate,
  type KeyFormat,
} from "./_support/kube_test_certs.ts";

/** Writes a one-context kubeconfig into a new folder of `cp.dir` and returns its path. */
async function writeKubeconfig(
  parent: string,
  server: string,
  caPath: string,
  user: Record<string, unknown>,
  cluster: Record<string, unknown> = {},
): Promise<string> {
  const folder = await Deno.makeTempDir({ dir: parent, prefix: "kubeconfig-" });
  const path = `${folder}/config`;
  await Deno.writeTextFile(
    path,
    JSON.stringify({
      clusters: [{ name: "k", cluster: { server, "certificate-authority": caPath, ...cluster } }],
      users: [{ name: "me", user }],
      contexts: [{ name: "c", context: { cluster: "k", user: "me" } }],
      "current-context": "c",
    }),
  );
  return path;
}

integrationTest(
  "kubeconfig: RSA PKCS#1, RSA PKCS#8 and EC client keys authenticate (files relative to the kubeconfig)",
  async (cp) => {
    const ca = { cert: cp.caCertPath, key: `${cp.dir}/ca.key` };
    for (const format of ["rsa-pkcs1", "rsa-pkcs8", "ec-sec1", "ec-pkcs8"] as KeyFormat[]) {
      const path = await writeKubeconfig(cp.dir, cp.serverUrl, cp.caCertPath, {
        "client-certificate": `${format}.crt`,
        "client-key": `${format}.key`,
      });
      await issueTestClientCertificate(ca, path.replace(/\/config$/, ""), format, {
        user: `user-${format}`,
        groups: ["system:masters"],
        format,
      });
      using client = await clientFor(path);
      const list = await client.list(NAMESPACES);
      assert.ok(list.items.some((n) => n.metadata?.name === "default"), format);
    }
    // The harness's own user kubeconfig (certificate files relative to it).
    using client = await clientFor(await cp.kubeconfigForUser("admin-2", ["system:masters"]));
    assert.equal((await client.get(NAMESPACES, "default")).metadata?.name, "default");
  },
);

integrationTest("kubeconfig: an exec plugin's token is used, refreshed after a 401", async (cp) => {
  const folder = await Deno.makeTempDir({ dir: cp.dir, prefix: "exec-" });
  // First run prints a wrong token (the server says 401), later runs the right one.
  await Deno.writeTextFile(
    `${folder}/plugin.sh`,
    `#!/bin/sh
n=$(cat "${folder}/runs" 2>/dev/null || echo 0); n=$((n+1)); echo $n > "${folder}/runs"
token=wrong; [ "$n" -gt 1 ] && token="$GOOD_TOKEN"
printf '{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"%s"}}' "$token"
`,
    { mode: 0o755 },
  );
  const path = await writeKubeconfig(cp.dir, cp.serverUrl, cp.caCertPath, {
    exec: {
      apiVersion: "client.authentication.k8s.io/v1",
      command: `../${folder.split("/").pop()}/plugin.sh`, // relative to the kubeconfig's folder
      env: [{ name: "GOOD_TOKEN", value: cp.adminToken }],
      interactiveMode: "Never",
    },
  });
  using client = await clientFor(path);
  assert.equal((await client.get(NAMESPACES, "default")).metadata?.name, "default");
  assert.equal((await Deno.readTextFile(`${folder}/runs`)).trim(), "2");
  await client.get(NAMESPACES, "default");
  assert.equal((await Deno.readTextFile(`${folder}/runs`)).trim(), "2", "the token is cached");
});

integrationTest(
  "in-cluster config: service-account files and env; the token is read per request",
  async (cp) => {
    const ns = await cp.createNamespace("in-cluster");
    const tokenOf = async (name: string): Promise<string> =>
      JSON.parse(await Deno.readTextFile(await cp.kubeconfigForServiceAccount(ns, name)))
        .users[0].user.token;
    const saDir = await Deno.makeTempDir({ dir: cp.dir, prefix: "sa-" });
    await Deno.writeTextFile(`${saDir}/token`, await tokenOf("op"));
    await Deno.copyFile(cp.caCertPath, `${saDir}/ca.crt`);
    await Deno.writeTextFile(`${saDir}/namespace`, ns);
    const port = new URL(cp.serverUrl).port;
    const env = (name: string) =>
      ({ KUBERNETES_SERVICE_HOST: "127.0.0.1", KUBERNETES_SERVICE_PORT: port })[name];
    const config = await loadClusterConfig({ env, serviceAccountDir: saDir });
    assert.equal(config.server, cp.serverUrl);
    using client = new KubeClient(config);
    assert.equal(client.namespace, ns);
    const whoAmI = async () =>
      (await client.request<{ status?: { userInfo?: { username?: string } } }>({
        method: "POST",
        path: "/apis/authentication.k8s.io/v1/selfsubjectreviews",
        body: { apiVersion: "authentication.k8s.io/v1", kind: "SelfSubjectReview" },
      })).status?.userInfo?.username;
    assert.equal(await whoAmI(), `system:serviceaccount:${ns}:op`);
    // The kubelet rotates the projected token in place: the next request carries the new one.
    await Deno.writeTextFile(`${saDir}/token`, await tokenOf("op-rotated"));
    assert.equal(await whoAmI(), `system:serviceaccount:${ns}:op-rotated`);
    await Deno.writeTextFile(`${saDir}/token`, "rotated-but-invalid");
    const error = await client.request({ path: "/api" }).then(() => undefined, (e) => e);
    assert.ok(error instanceof ApiError && error.kind === "Unauthorized", String(error));
  },
);

integrationTest("kubeconfig: a broken kubeconfig gets a clear error", async (cp) => {
  const missingKey = await writeKubeconfig(cp.dir, cp.serverUrl, cp.caCertPath, {
    "client-certificate": `${cp.dir}/admin.crt`,
    "client-key": "gone.key",
  });
  const configError = await clientFor(missingKey).then(() => undefined, (e) => e);
  assert.ok(configError instanceof KubeconfigError, String(configError));
  assert.equal(configError.file, missingKey);
  assert.equal(configError.field, 'users[name="me"].user.client-key');
  assert.match(configError.message, /cannot read ".*gone\.key": No such file or directory/);

  // A CA that did not sign the server's certificate: the TLS failure is named.
  const otherCa = (await createTestCa(cp.dir, "other-ca")).cert;
  using client = await clientFor(
    await writeKubeconfig(cp.dir, cp.serverUrl, otherCa, { token: cp.adminToken }),
    { maxAttempts: 1 },
  );
  const tlsError = await client.get(NAMESPACES, "default").then(() => undefined, (e) => e);
  assert.ok(tlsError instanceof ApiError && tlsError.kind === "Network", String(tlsError));
  assert.match(
    tlsError.message,
    /cannot reach https:\/\/127\.0\.0\.1:\d+: .*(UnknownIssuer|certificate)/i,
  );

  using badToken = await clientFor(
    await writeKubeconfig(cp.dir, cp.serverUrl, cp.caCertPath, { token: "not-a-token" }),
  );
  const authError = await badToken.get(NAMESPACES, "default").then(() => undefined, (e) => e);
  assert.ok(authError instanceof ApiError && authError.kind === "Unauthorized", String(authError));
  assert.equal(authError.status, 401);
});

integrationTest(
  "kubeconfig: proxy-url tunnels to the API server through an HTTP proxy",
  async (cp) => {
    await using proxy = startConnectProxy(Number(new URL(cp.serverUrl).port));
    // The kubeconfig names a closed loopback port: only the proxy's tunnel reaches the API server.
    const closed = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    closed.close();
    const server = `https://127.0.0.1:${closed.addr.port}`;
    const user = { token: cp.adminToken };
    using direct = await clientFor(await writeKubeconfig(cp.dir, server, cp.caCertPath, user), {
      maxAttempts: 1,
    });
    const unreachable = await direct.get(NAMESPACES, "default").then(() => undefined, (e) => e);
    assert.ok(
      unreachable instanceof ApiError && unreachable.kind === "Network",
      String(unreachable),
    );

    using proxied = await clientFor(
      await writeKubeconfig(cp.dir, server, cp.caCertPath, user, { "proxy-url": proxy.url }),
      { maxAttempts: 1 },
    );
    assert.equal((await proxied.get(NAMESPACES, "default")).metadata?.name, "default");
    assert.deepEqual(proxy.targets, [new URL(server).host]);
  },
);
