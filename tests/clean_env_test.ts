import assert from "node:assert/strict";
import { cleanEnv, PASSED_THROUGH } from "./_support/clean_env.ts";
import { runDeno } from "./controlplane/run_deno.ts";

Deno.test("cleanEnv keeps the certificate and proxy variables that are set, extra wins", () => {
  const saved = Deno.env.get("no_proxy");
  Deno.env.set("no_proxy", "registry.invalid");
  try {
    const env = cleanEnv({ NO_COLOR: "1" });
    assert.equal(env.no_proxy, "registry.invalid");
    assert.equal(env.DENO_NO_UPDATE_CHECK, "1");
    assert.equal(env.NO_COLOR, "1");
    assert.equal(env.PATH, undefined, "nothing else of the parent's");
    assert.equal(cleanEnv({ no_proxy: "other" }).no_proxy, "other");
  } finally {
    if (saved === undefined) Deno.env.delete("no_proxy");
    else Deno.env.set("no_proxy", saved);
  }
});

Deno.test("a clean Deno child sees DENO_DIR and the TLS variables of its parent", async () => {
  const run = await runDeno(["eval", "console.log(JSON.stringify(Deno.env.toObject()))"]);
  assert.equal(run.code, 0, run.stderr);
  const childEnv: Record<string, string> = JSON.parse(run.stdout);
  for (const name of PASSED_THROUGH) {
    assert.equal(childEnv[name], Deno.env.get(name), name);
  }
});
