/**
 * Run as a program (`deno run --allow-ffi --allow-read`) by `lib/ffi/ffi_worker_test.ts`: starts
 * an FFI worker with scoped permissions, revokes FFI on the main thread, and prints what each
 * thread may still do, as JSON.
 * @module
 */

import { revokeFfi, startFfiWorker } from "../../lib/ffi/ffi_worker.ts";

const worker = startFfiWorker(new URL("./ffi_permission_worker.ts", import.meta.url), "probe");
const answer = Promise.withResolvers<unknown>();
worker.onmessage = (event) => answer.resolve(event.data);
worker.onerror = (event) => {
  event.preventDefault();
  answer.resolve({ error: event.message });
};
const main = revokeFfi();
worker.postMessage("probe");
const report = { main, worker: await answer.promise };
worker.terminate();
await Deno.stdout.write(new TextEncoder().encode(JSON.stringify(report)));
