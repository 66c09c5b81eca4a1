import assert from "node:assert/strict";
import { apiServerAddresses } from "./api_server_addresses.ts";

/** A kubeconfig whose cluster is at `server`, in a temporary file removed with `await using`. */
async function kubeconfigAt(server: string) {
  const dir = await Deno.makeTempDir({ prefix: "api-server-addresses-test-" });
  const path = `${dir}/kubeconfig`;
  await Deno.writeTextFile(
    path,
    JSON.stringify({
      apiVersion: "v1",
      kind: "Config",
      "current-context": "c",
      clusters: [{ name: "k", cluster: { server } }],
      users: [{ name: "u", user: { token: "t" } }],
      contexts: [{ name: "c", context: { cluster: "k", user: "u" } }],
    }),
  );
  return { path, [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }) };
}

const noEnv = (_name: string) => undefined;

Deno.test("apiServerAddresses() reads the server of the kubeconfig, IPv4 and IPv6", async () => {
  await using v4 = await kubeconfigAt("https://192.0.2.10:6443");
  assert.deepEqual(await apiServerAddresses({ kubeconfig: v4.path, env: noEnv }), ["192.0.2.10"]);
  await using v6 = await kubeconfigAt("https://[2001:db8::10]:6443");
  assert.deepEqual(await apiServerAddresses({ kubeconfig: v6.path, env: noEnv }), ["2001:db8::10"]);
});

Deno.test("apiServerAddresses() looks names up and adds KUBERNETES_SERVICE_HOST", async () => {
  await using named = await kubeconfigAt("https://localhost:6443");
  const env = (name: string) => name === "KUBERNETES_SERVICE_HOST" ? "10.96.0.1" : undefined;
  const addresses = await apiServerAddresses({ kubeconfig: named.path, env });
  assert.ok(addresses.includes("10.96.0.1"), addresses.join(", "));
  assert.ok(addresses.some((a) => a === "127.0.0.1" || a === "::1"), addresses.join(", "));
});

Deno.test("apiServerAddresses() is empty when the configuration cannot be loaded", async () => {
  assert.deepEqual(
    await apiServerAddresses({ kubeconfig: "/nonexistent/kubeconfig", env: noEnv }),
    [],
  );
});
