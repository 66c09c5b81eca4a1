/** `deno task helm`: lookup order, errors, and a real build, run as a subprocess. */
import assert from "node:assert/strict";
import { type DenoRun, runDeno } from "../../controlplane/run_deno.ts";
import { chartDir } from "../../_support/helm.ts";
import { helmVersion } from "./binary.ts";

const provisionScript = new URL("./provision.ts", import.meta.url).pathname;

function provision(env: Record<string, string>): Promise<DenoRun> {
  const permissions = ["--allow-env", "--allow-read", "--allow-write", "--allow-run"];
  return runDeno(["run", ...permissions, provisionScript], env);
}

function lastLine(text: string): string {
  return text.trimEnd().split("\n").at(-1) ?? "";
}

Deno.test("provision uses HELM_BIN, and names it when it does not exist", async () => {
  const dir = await Deno.makeTempDir({ prefix: "undying-proxy-helm-bin-" });
  try {
    await Deno.writeTextFile(`${dir}/helm`, "#!/bin/sh\n", { mode: 0o755 });
    const given = await provision({ HELM_BIN: `${dir}/helm`, UNDYING_PROXY_CACHE: dir });
    assert.equal(given.code, 0, given.stderr);
    assert.equal(lastLine(given.stdout), `${dir}/helm`);
    assert.match(given.stderr, /using HELM_BIN/);
    const missing = await provision({ HELM_BIN: `${dir}/nope`, UNDYING_PROXY_CACHE: dir });
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /FAILED: HELM_BIN: .*nope does not exist/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** True when Go has helm's module already (CI: `deno task helm` ran first), so a build is quick. */
function helmModuleCached(): boolean {
  try {
    const output = new Deno.Command("go", { args: ["env", "GOMODCACHE"], stdout: "piped" })
      .outputSync();
    const modCache = new TextDecoder().decode(output.stdout).trim();
    Deno.statSync(`${modCache}/cache/download/helm.sh/helm/v3/@v/${helmVersion()}.zip`);
    return true;
  } catch {
    return false;
  }
}

Deno.test({
  name: "provision builds helm into an empty cache, stamped with its version and Kubernetes minor",
  ignore: Deno.env.get("CI") !== "true" && !helmModuleCached(),
  fn: async () => {
    const cache = await Deno.makeTempDir({ prefix: "undying-proxy-helm-cache-" });
    try {
      const built = await provision({ UNDYING_PROXY_CACHE: cache });
      assert.equal(built.code, 0, built.stderr);
      const helm = lastLine(built.stdout);
      assert.equal(helm, `${cache}/helm/helm-${helmVersion()}/helm`);
      const run = (args: string[]) =>
        new Deno.Command(helm, { args, env: { HOME: cache }, stdout: "piped", stderr: "piped" })
          .output();
      const version = await run(["version", "--short"]);
      assert.match(new TextDecoder().decode(version.stdout), new RegExp(`^${helmVersion()}`));
      // Unstamped, helm assumes Kubernetes v1.20 and refuses the chart's kubeVersion.
      const template = await run(["template", "x", chartDir]);
      assert.equal(template.code, 0, new TextDecoder().decode(template.stderr));
      const again = await provision({ UNDYING_PROXY_CACHE: cache });
      assert.match(again.stderr, /using cache/, "the second run reuses the cache");
    } finally {
      await Deno.remove(cache, { recursive: true });
    }
  },
});
