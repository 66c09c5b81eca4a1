/**
 * A process holding one splice TCP forwarder to 127.0.0.1:`Deno.args[0]`, for tests that run it
 * under a small descriptor limit: prints `{"port": N}` once listening, then the forwarder's counters
 * as one JSON line for every line read from stdin; exits at stdin's end.
 * @module
 */

import { SharedTcpCounters } from "../../lib/forward/tcp_splice/shared_tcp_counters.ts";
import { startSpliceTcpEngine } from "../../lib/forward/tcp_splice/splice_engine.ts";
import { SpliceTcpForwarder } from "../../lib/forward/tcp_splice/splice_forwarder.ts";

const engine = await startSpliceTcpEngine(1);
const counters = new SharedTcpCounters(1);
const forwarder = await SpliceTcpForwarder.open(engine, {
  name: "fd-limit",
  counters,
  spec: { listenPort: 0, targetHost: "127.0.0.1", targetPort: Number(Deno.args[0]) },
  listenAddress: "127.0.0.1",
  dialTimeoutMs: 2000,
  idleTimeoutMs: 0,
});
const encoder = new TextEncoder();
const print = (value: unknown) =>
  Deno.stdout.writeSync(encoder.encode(JSON.stringify(value) + "\n"));
print({ port: forwarder.port });
for await (const _ of Deno.stdin.readable.pipeThrough(new TextDecoderStream())) {
  print({ ...counters, errors: { ...counters.errors } });
}
await forwarder.drain(0);
await engine.close();
