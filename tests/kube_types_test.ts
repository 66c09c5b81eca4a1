// `deno task gen:types --check` (run by `deno task check`): the committed UnDyingProxy types must
// match the CRD, and the check must fail once they no longer do.
import assert from "node:assert/strict";
import { dump, load } from "js-yaml";
import { type DenoRun, runDeno } from "./controlplane/run_deno.ts";

const repo = new URL("../", import.meta.url);
const crdPath = "k8s/crd/proxy.sfact.io_undyingproxies.yaml";
const typesPath = "k8s/undying_proxy_types.ts";

/** A copy of the generator's inputs (and deno.json, for `deno fmt`'s settings) in a temp dir. */
async function copyInputs(): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "undying-proxy-gen-types-" });
  await Deno.mkdir(`${dir}/k8s/crd`, { recursive: true });
  for (const path of ["deno.json", crdPath, typesPath]) {
    await Deno.copyFile(new URL(path, repo), `${dir}/${path}`);
  }
  return dir;
}

/** Runs the `gen:types` task's script with `--check` in `dir`. */
function check(dir: string): Promise<DenoRun> {
  const script = new URL("tests/tools/gen_types.ts", repo).pathname;
  return runDeno(["run", "-A", `--config=${dir}/deno.json`, script, "--check"], {}, dir);
}

Deno.test("gen:types --check passes on the committed types and fails once the CRD changed", async () => {
  const dir = await copyInputs();
  try {
    const fresh = await check(dir);
    assert.equal(fresh.code, 0, fresh.stderr);

    const crd = load(await Deno.readTextFile(`${dir}/${crdPath}`)) as {
      spec: { versions: Array<{ schema: { openAPIV3Schema: Schema } }> };
    };
    for (const version of crd.spec.versions) {
      const listenPort = version.schema.openAPIV3Schema.properties?.["spec"]?.properties?.["tcp"]
        ?.properties?.["listenPort"];
      assert.ok(listenPort, "the CRD has spec.tcp.listenPort");
      listenPort.description = `${listenPort.description ?? ""} Changed by a test.`;
    }
    await Deno.writeTextFile(`${dir}/${crdPath}`, dump(crd));
    const stale = await check(dir);
    assert.equal(stale.code, 1, stale.stderr);
    assert.match(stale.stderr, /k8s\/undying_proxy_types\.ts is stale: it does not match/);

    await Deno.remove(`${dir}/${typesPath}`);
    const missing = await check(dir);
    assert.equal(missing.code, 1, missing.stderr);
    assert.match(missing.stderr, /k8s\/undying_proxy_types\.ts is missing/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

interface Schema {
  description?: string;
  properties?: Record<string, Schema>;
}
