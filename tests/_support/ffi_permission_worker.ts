/**
 * The worker of `ffi_permission_probe.ts`: after the main thread revoked FFI, calls libc's
 * `getpid` and reports its own permission states.
 * @module
 */

/// <reference lib="deno.worker" />

self.onmessage = () => {
  let pid: number | string;
  try {
    pid = Deno.dlopen("libc.so.6", { getpid: { parameters: [], result: "i32" } }).symbols.getpid();
  } catch (error) {
    pid = String(error);
  }
  const state = (name: "ffi" | "net" | "env" | "write") =>
    Deno.permissions.querySync({ name }).state;
  self.postMessage({
    pid,
    ffi: state("ffi"),
    net: state("net"),
    env: state("env"),
    write: state("write"),
  });
};
