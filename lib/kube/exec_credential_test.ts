import assert from "node:assert/strict";
import { loadKubeconfig } from "./kubeconfig.ts";
import { KubeconfigError } from "./kubeconfig_error.ts";

const dir = await Deno.makeTempDir({ prefix: "exec-credential-test-" });
globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));

// Counts its runs, records KUBERNETES_EXEC_INFO, prints a token numbered by the run.
const PLUGIN = `#!/bin/sh
n=$(cat "$COUNT_FILE" 2>/dev/null || echo 0)
n=$((n+1))
echo "$n" > "$COUNT_FILE"
printf '%s' "$KUBERNETES_EXEC_INFO" > "$INFO_FILE"
if [ -n "$FAIL" ]; then echo "plugin broke: $FAIL" >&2; exit 3; fi
printf '{"apiVersion":"%s","kind":"ExecCredential","status":{"token":"tok-%s"%s}}' \\
  "$PRINT_VERSION" "$n" "$EXTRA"
`;

let caseCount = 0;

interface PluginCase {
  path: string;
  runs: () => Promise<number>;
  info: () => Promise<Record<string, unknown>>;
}

/** A kubeconfig in its own folder whose user runs `./bin/plugin.sh` (relative to that folder). */
async function pluginConfig(options: {
  apiVersion?: string;
  printVersion?: string;
  expiration?: string;
  fail?: string;
  provideClusterInfo?: boolean;
}): Promise<PluginCase> {
  const folder = `${dir}/case${caseCount++}`;
  await Deno.mkdir(`${folder}/bin`, { recursive: true });
  await Deno.writeTextFile(`${folder}/bin/plugin.sh`, PLUGIN, { mode: 0o755 });
  const apiVersion = options.apiVersion ?? "client.authentication.k8s.io/v1";
  const env = {
    COUNT_FILE: `${folder}/count`,
    INFO_FILE: `${folder}/info.json`,
    PRINT_VERSION: options.printVersion ?? apiVersion,
    EXTRA: options.expiration ? `,"expirationTimestamp":"${options.expiration}"` : "",
    FAIL: options.fail ?? "",
  };
  const path = `${folder}/config`;
  await Deno.writeTextFile(
    path,
    JSON.stringify({
      clusters: [{ name: "k", cluster: { server: "https://127.0.0.1:6443" } }],
      users: [{
        name: "robot",
        user: {
          exec: {
            apiVersion,
            command: "./bin/plugin.sh",
            args: [],
            env: Object.entries(env).map(([name, value]) => ({ name, value })),
            interactiveMode: "Never",
            provideClusterInfo: options.provideClusterInfo ?? false,
          },
        },
      }],
      contexts: [{ name: "c", context: { cluster: "k", user: "robot" } }],
      "current-context": "c",
    }),
  );
  return {
    path,
    runs: async () => Number((await Deno.readTextFile(env.COUNT_FILE)).trim()),
    info: async () => JSON.parse(await Deno.readTextFile(env.INFO_FILE)),
  };
}

const noEnv = () => undefined;

Deno.test("exec plugin: a relative command runs from the kubeconfig's folder; its token is cached", async () => {
  const plugin = await pluginConfig({ expiration: "2999-01-01T00:00:00Z" });
  const config = await loadKubeconfig({ path: plugin.path, env: noEnv });
  assert.deepEqual(await config.credentials.get(), { authorization: "Bearer tok-1" });
  assert.deepEqual(await config.credentials.get(), { authorization: "Bearer tok-1" });
  assert.equal(await plugin.runs(), 1);
  assert.equal((await plugin.info())["kind"], "ExecCredential");
  assert.equal(config.credentials.invalidate(), true);
  assert.deepEqual(await config.credentials.get(), { authorization: "Bearer tok-2" });
});

Deno.test("exec plugin: an expired credential makes the plugin run again (v1beta1)", async () => {
  const plugin = await pluginConfig({
    apiVersion: "client.authentication.k8s.io/v1beta1",
    expiration: "2000-01-01T00:00:00Z",
  });
  const config = await loadKubeconfig({ path: plugin.path, env: noEnv });
  assert.deepEqual(await config.credentials.get(), { authorization: "Bearer tok-1" });
  assert.deepEqual(await config.credentials.get(), { authorization: "Bearer tok-2" });
  assert.equal(await plugin.runs(), 2);
});

Deno.test("exec plugin: provideClusterInfo passes the server in KUBERNETES_EXEC_INFO", async () => {
  const plugin = await pluginConfig({ provideClusterInfo: true });
  const config = await loadKubeconfig({ path: plugin.path, env: noEnv });
  await config.credentials.get();
  const info = await plugin.info();
  assert.deepEqual(info["spec"], {
    interactive: false,
    cluster: { server: "https://127.0.0.1:6443" },
  });
});

Deno.test("exec plugin: a failing plugin or a wrong answer is a KubeconfigError naming the user", async () => {
  const failing = await pluginConfig({ fail: "no network" });
  const config = await loadKubeconfig({ path: failing.path, env: noEnv });
  await assert.rejects(config.credentials.get(), (error: unknown) => {
    assert.ok(error instanceof KubeconfigError);
    assert.equal(error.field, 'users[name="robot"].user.exec');
    assert.match(error.message, /user "robot".*exited with code 3: plugin broke: no network/);
    return true;
  });
  const wrong = await pluginConfig({ printVersion: "client.authentication.k8s.io/v1alpha1" });
  const wrongConfig = await loadKubeconfig({ path: wrong.path, env: noEnv });
  await assert.rejects(
    wrongConfig.credentials.get(),
    /expected ExecCredential client.authentication.k8s.io\/v1/,
  );
});

Deno.test("exec plugin: an unsupported apiVersion is refused when loading", async () => {
  const plugin = await pluginConfig({ apiVersion: "client.authentication.k8s.io/v1alpha1" });
  await assert.rejects(
    loadKubeconfig({ path: plugin.path, env: noEnv }),
    /users\[name="robot"\]\.user\.exec\.apiVersion: "client.authentication.k8s.io\/v1alpha1" is not supported/,
  );
});

Deno.test("exec plugin: without run permission the error names the user and the missing permission", async () => {
  const plugin = await pluginConfig({});
  const script = `${dir}/load.ts`;
  await Deno.writeTextFile(
    script,
    `import { loadKubeconfig } from ${
      JSON.stringify(new URL("./kubeconfig.ts", import.meta.url).href)
    };
try { await loadKubeconfig({ path: Deno.args[0], env: () => undefined }); console.log("loaded"); }
catch (error) { console.log(error.name + ": " + error.message); }`,
  );
  const output = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      `--config=${new URL("../../deno.json", import.meta.url).pathname}`,
      "--allow-read",
      script,
      plugin.path,
    ],
    env: { DENO_NO_UPDATE_CHECK: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stdout = new TextDecoder().decode(output.stdout);
  assert.match(
    stdout,
    /KubeconfigError: .*config: users\[name="robot"\]\.user\.exec\.command: user "robot" gets credentials by running ".*\/bin\/plugin\.sh", but this process may not run programs/,
    new TextDecoder().decode(output.stderr),
  );
  assert.equal(
    await Deno.stat(plugin.path.replace(/config$/, "count")).catch(() => "absent"),
    "absent",
  );
});
