import assert from "node:assert/strict";
import { loadClusterConfig } from "./cluster_config.ts";
import { loadInClusterConfig } from "./in_cluster.ts";
import { KubeconfigError } from "./kubeconfig_error.ts";

const dir = await Deno.makeTempDir({ prefix: "cluster-config-test-" });
globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));
const CA = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

const saDir = `${dir}/sa`;
await Deno.mkdir(saDir);
await Deno.writeTextFile(`${saDir}/token`, "sa-token\n");
await Deno.writeTextFile(`${saDir}/ca.crt`, CA);

const kubeconfig = `${dir}/kubeconfig`;
await Deno.writeTextFile(
  kubeconfig,
  `apiVersion: v1
kind: Config
current-context: c
clusters:
  - name: k
    cluster:
      server: https://10.1.1.1:6443
users:
  - name: u
    user:
      token: from-kubeconfig
contexts:
  - name: c
    context: {cluster: k, user: u}
`,
);

function envOf(values: Record<string, string>): (name: string) => string | undefined {
  return (name) => values[name];
}

const POD = { KUBERNETES_SERVICE_HOST: "10.0.0.1", KUBERNETES_SERVICE_PORT: "443" };

Deno.test("loadClusterConfig() prefers --kubeconfig, then KUBECONFIG, then in-cluster, then ~/.kube/config", async () => {
  const flag = await loadClusterConfig({ kubeconfig, env: envOf(POD), serviceAccountDir: saDir });
  assert.equal(flag.server, "https://10.1.1.1:6443");
  const fromEnv = await loadClusterConfig({
    env: envOf({ ...POD, KUBECONFIG: kubeconfig }),
    serviceAccountDir: saDir,
  });
  assert.equal(fromEnv.server, "https://10.1.1.1:6443");
  const inPod = await loadClusterConfig({ env: envOf(POD), serviceAccountDir: saDir });
  assert.equal(inPod.server, "https://10.0.0.1:443");
  await Deno.mkdir(`${dir}/home/.kube`, { recursive: true });
  await Deno.copyFile(kubeconfig, `${dir}/home/.kube/config`);
  const home = await loadClusterConfig({ env: envOf({ HOME: `${dir}/home` }) });
  assert.equal(home.source, `context "c" in ${dir}/home/.kube/config`);
});

Deno.test("loadInClusterConfig() reads the service account, re-reading the token per request", async () => {
  const config = await loadInClusterConfig({
    env: envOf({ KUBERNETES_SERVICE_HOST: "fd00::1", KUBERNETES_SERVICE_PORT: "6443" }),
    serviceAccountDir: saDir,
  });
  assert.equal(config.server, "https://[fd00::1]:6443");
  assert.deepEqual(config.caCerts, [CA]);
  assert.equal(config.namespace, "default", "no namespace file");
  assert.deepEqual(await config.credentials.get(), { authorization: "Bearer sa-token" });
  await Deno.writeTextFile(`${saDir}/token`, "rotated");
  assert.deepEqual(await config.credentials.get(), { authorization: "Bearer rotated" });
  await Deno.writeTextFile(`${saDir}/token`, "sa-token\n");
});

Deno.test("loadInClusterConfig() names the missing variable or file", async () => {
  await assert.rejects(
    loadInClusterConfig({
      env: envOf({ KUBERNETES_SERVICE_HOST: "10.0.0.1" }),
      serviceAccountDir: saDir,
    }),
    (error: unknown) =>
      error instanceof KubeconfigError && error.field === "KUBERNETES_SERVICE_PORT" &&
      /is not set, so this process is not running in a pod/.test(error.message),
  );
  await assert.rejects(
    loadInClusterConfig({ env: envOf(POD), serviceAccountDir: `${dir}/nowhere` }),
    (error: unknown) =>
      error instanceof KubeconfigError && error.file === `${dir}/nowhere/token` &&
      /cannot read token file/.test(error.message),
  );
});
