import assert from "node:assert/strict";

Deno.test("an FFI worker keeps FFI after the main thread revokes it, and may do nothing else", async () => {
  const probe = new URL("../../tests/_support/ffi_permission_probe.ts", import.meta.url);
  const output = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--unstable-worker-options",
      "--allow-ffi",
      "--allow-read",
      "--allow-net",
      probe.pathname,
    ],
    env: { DENO_NO_UPDATE_CHECK: "1", NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.ok(output.success, new TextDecoder().decode(output.stderr));
  const report = JSON.parse(new TextDecoder().decode(output.stdout));
  assert.equal(report.main, "prompt", "revoked on the main thread");
  assert.equal(typeof report.worker.pid, "number", JSON.stringify(report.worker));
  assert.equal(report.worker.ffi, "granted");
  for (const name of ["net", "env", "write"]) {
    assert.notEqual(report.worker[name], "granted", `${name} in the FFI worker`);
  }
});
