/**
 * Start-up self-test of the splice TCP engine: on each engine thread, a listener on 127.0.0.1
 * forwards one connection to an echo server of the main thread: 1 byte, then 300,000 bytes, then
 * the client's half-close; the echo must come back byte-exact, followed by the end, and be counted.
 * Anything off (layouts, libc, permissions, pipes) fails it.
 * @module
 */

import { currentLayout } from "../../ffi/layout.ts";
import { errorMessage } from "../../util/error_message.ts";
import { engineTarget } from "../native_target.ts";
import { ListenerSettings } from "../udp_batched/listener_settings.ts";
import { OPEN_TCP_POLICY } from "./messages.ts";
import { SharedTcpCounters } from "./shared_tcp_counters.ts";
import type { SpliceTcpEngine } from "./splice_engine.ts";

const SIZES = [1, 300_000];
const TIMEOUT_MS = 3000;

/** Throws what went wrong unless every thread forwards a connection correctly. */
export async function spliceSelfTest(engine: SpliceTcpEngine): Promise<void> {
  if (currentLayout() === undefined) throw new Error("no struct layout for this machine");
  const echo = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const echoing = (async () => {
    for await (const conn of echo) {
      (async () => {
        const buffer = new Uint8Array(65_536);
        for (let n; (n = await conn.read(buffer)) !== null;) {
          await writeAll(conn, buffer.subarray(0, n));
        }
        await conn.closeWrite();
      })().catch(() => {}).finally(() => conn.close());
    }
  })().catch(() => {});
  try {
    for (let index = 0; index < engine.count; index++) {
      await roundTrip(engine, index, echo.addr.port);
    }
  } catch (error) {
    throw new Error(`self-test failed: ${errorMessage(error)}`);
  } finally {
    echo.close();
    await echoing;
  }
}

async function roundTrip(engine: SpliceTcpEngine, index: number, echoPort: number): Promise<void> {
  const counters = new SharedTcpCounters(engine.count);
  const id = -1 - index;
  const settings = new ListenerSettings();
  settings.write(engineTarget("127.0.0.1", echoPort), { readTimeoutMs: 0, writeTimeoutMs: 0 });
  const answer = await engine.request(index, {
    kind: "listen",
    id,
    name: "self-test",
    hostname: "127.0.0.1",
    port: 0,
    reusePort: false,
    threads: engine.count,
    dialTimeoutMs: TIMEOUT_MS,
    idleTimeoutMs: 0,
    maxConnections: 16,
    counters: counters.block.buffer,
    settings: settings.buffer,
    connectionsInUse: new SharedArrayBuffer(4),
    policy: OPEN_TCP_POLICY,
  });
  if (answer.kind !== "listening") {
    throw new Error(answer.kind === "listenFailed" ? answer.message : answer.kind);
  }
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: answer.port });
  const timer = setTimeout(() => conn.close(), TIMEOUT_MS);
  try {
    const sent = SIZES.map((size) => pattern(size, index));
    const reading = readAll(conn);
    for (const data of sent) await writeAll(conn, data);
    await conn.closeWrite();
    const received = await reading;
    const expected = new Uint8Array(SIZES.reduce((sum, size) => sum + size, 0));
    let at = 0;
    for (const data of sent) {
      expected.set(data, at);
      at += data.length;
    }
    if (!equal(received, expected)) throw new Error("the echo came back altered");
    const deadline = Date.now() + TIMEOUT_MS;
    while (counters.activeConnections !== 0 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    if (
      counters.bytesClientToTarget !== expected.length ||
      counters.bytesTargetToClient !== expected.length || counters.connectionsTotal !== 1 ||
      counters.activeConnections !== 0
    ) {
      throw new Error("counters do not match the connection forwarded");
    }
  } finally {
    clearTimeout(timer);
    try {
      conn.close();
    } catch {
      // Closed by the timer.
    }
    await engine.request(index, { kind: "close", id });
  }
}

async function writeAll(conn: Deno.Conn, data: Uint8Array): Promise<void> {
  for (let at = 0; at < data.length;) at += await conn.write(data.subarray(at));
}

async function readAll(conn: Deno.Conn): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  const buffer = new Uint8Array(65_536);
  for (let n; (n = await conn.read(buffer)) !== null;) chunks.push(buffer.slice(0, n));
  const all = new Uint8Array(chunks.reduce((sum, chunk) => sum + chunk.length, 0));
  let at = 0;
  for (const chunk of chunks) {
    all.set(chunk, at);
    at += chunk.length;
  }
  return all;
}

function pattern(size: number, seed: number): Uint8Array {
  const bytes = new Uint8Array(size);
  for (let i = 0; i < size; i++) bytes[i] = (i * 31 + seed) & 0xff;
  return bytes;
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((byte, i) => byte === b[i]);
}
