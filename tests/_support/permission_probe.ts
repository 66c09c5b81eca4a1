/**
 * Runs a probe script of `tests/_support/` in a fresh `deno run` with the permissions the program's
 * FFI parts get (FFI, read, net; worker options), and returns the JSON report it prints.
 * @module
 */
import assert from "node:assert/strict";

/** The report `tests/_support/<name>` printed on stdout. */
export async function runPermissionProbe(name: string): Promise<Record<string, unknown>> {
  const probe = new URL(name, import.meta.url);
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
  return JSON.parse(new TextDecoder().decode(output.stdout));
}
