import assert from "node:assert/strict";
import { runPermissionProbe } from "../../tests/_support/permission_probe.ts";

Deno.test("an FFI worker keeps FFI after the main thread revokes it, and may do nothing else", async () => {
  const report = await runPermissionProbe("ffi_permission_probe.ts") as {
    main: string;
    worker: Record<string, unknown>;
  };
  assert.equal(report.main, "prompt", "revoked on the main thread");
  assert.equal(typeof report.worker.pid, "number", JSON.stringify(report.worker));
  assert.equal(report.worker.ffi, "granted");
  for (const name of ["net", "env", "write"]) {
    assert.notEqual(report.worker[name], "granted", `${name} in the FFI worker`);
  }
});
