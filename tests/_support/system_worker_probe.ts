/**
 * Run as a program (`deno run --allow-ffi --allow-read --allow-net`) by
 * `lib/ffi/system_worker_test.ts`: starts the system worker, revokes FFI on the main thread as
 * `main.ts` does, then prints as JSON whether this thread can still open a library and what the
 * system worker still does (fd limit and count, a /proc file, a TCP reset seen by the peer).
 * @module
 */

import { revokeFfi } from "../../lib/ffi/ffi_worker.ts";
import { SystemWorker } from "../../lib/ffi/system_worker_client.ts";

using system = await SystemWorker.start();
const revoked = revokeFfi();
let dlopen: string;
try {
  Deno.dlopen("libc.so.6", { getpid: { parameters: [], result: "i32" } }).close();
  dlopen = "opened";
} catch (error) {
  dlopen = error instanceof Error ? error.name : String(error);
}
using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
using client = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
const accepted = await listener.accept();
const reset = await system.resetTcp(accepted);
accepted.close();
let peer = "end";
try {
  if (await client.read(new Uint8Array(8)) !== null) peer = "data";
} catch (error) {
  peer = error instanceof Error ? error.name : String(error);
}
const report = {
  revoked,
  dlopen,
  fdLimit: await system.fdLimit(),
  openFds: await system.openFdCount(),
  limitsFile: (await system.readProcFile("/proc/self/limits"))?.includes("Max open files"),
  reset,
  peer,
};
await Deno.stdout.write(new TextEncoder().encode(JSON.stringify(report)));
