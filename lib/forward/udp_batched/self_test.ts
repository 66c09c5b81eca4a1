/**
 * Start-up self-test of the batched UDP engine: on each engine thread, a listener on 127.0.0.1
 * forwards datagrams of 1, 1472 and 65,507 bytes to an echo socket of the main thread and back; the
 * replies must be byte-exact and counted. Anything off (layouts, libc, permissions) fails it.
 * @module
 */

import type { BatchedUdpEngine } from "./batched_engine.ts";
import { currentLayout } from "../../ffi/layout.ts";
import { encodeSockaddr } from "../../ffi/sockaddr.ts";
import { ListenerSettings } from "./listener_settings.ts";
import { BATCHED_SESSION_BYTES, OPEN_POLICY } from "./messages.ts";
import { SharedUdpCounters } from "./shared_udp_counters.ts";
import { errorMessage } from "../../util/error_message.ts";

const SIZES = [1, 1472, 65_507];
const TIMEOUT_MS = 3000;

/** Throws what went wrong unless every thread forwards a round trip correctly. */
export async function selfTest(engine: BatchedUdpEngine): Promise<void> {
  const layout = currentLayout();
  if (layout === undefined) throw new Error("no struct layout for this machine");
  const echo = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const client = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const echoing = (async () => {
    const buffer = new Uint8Array(65_536);
    for (;;) {
      const [data, from] = await echo.receive(buffer);
      await echo.send(data, from);
    }
  })().catch(() => {});
  const timer = setTimeout(() => client.close(), TIMEOUT_MS * engine.count);
  try {
    for (let index = 0; index < engine.count; index++) {
      await roundTrip(engine, index, (echo.addr as Deno.NetAddr).port, client, layout);
    }
  } catch (error) {
    const reason = errorMessage(error);
    throw new Error(`self-test failed: ${reason}`);
  } finally {
    clearTimeout(timer);
    echo.close();
    try {
      client.close();
    } catch {
      // Closed by the timer.
    }
    await echoing;
  }
}

async function roundTrip(
  engine: BatchedUdpEngine,
  index: number,
  echoPort: number,
  client: Deno.DatagramConn,
  layout: NonNullable<ReturnType<typeof currentLayout>>,
): Promise<void> {
  const counters = new SharedUdpCounters(engine.count);
  const id = -1 - index;
  const settings = new ListenerSettings();
  settings.write(
    { sockaddr: encodeSockaddr(layout, "127.0.0.1", echoPort), family: 4 },
    { readTimeoutMs: 10_000, writeTimeoutMs: 1000 },
  );
  const answer = await engine.request(index, {
    kind: "listen",
    id,
    hostname: "127.0.0.1",
    port: 0,
    reusePort: false,
    maxSessions: 1,
    bufferBytes: 65_535,
    counters: counters.block.buffer,
    sessionsInUse: new SharedArrayBuffer(4),
    settings: settings.buffer,
    sockets: { max: 1, share: new SharedArrayBuffer(8) },
    sessionBytes: { max: BATCHED_SESSION_BYTES, share: new SharedArrayBuffer(8) },
    policy: OPEN_POLICY,
  });
  if (answer.kind !== "listening") {
    throw new Error(answer.kind === "listenFailed" ? answer.message : answer.kind);
  }
  try {
    const buffer = new Uint8Array(65_536);
    for (const size of SIZES) {
      const sent = pattern(size, index);
      await client.send(sent, { transport: "udp", hostname: "127.0.0.1", port: answer.port });
      const [reply, from] = await client.receive(buffer);
      if ((from as Deno.NetAddr).port !== answer.port) throw new Error("reply from another port");
      if (!equal(reply, sent)) throw new Error(`${size}-byte datagram came back altered`);
    }
    const total = SIZES.reduce((sum, size) => sum + size, 0);
    if (counters.bytesClientToTarget !== total || counters.bytesTargetToClient !== total) {
      throw new Error("counters do not match the datagrams forwarded");
    }
  } finally {
    await engine.request(index, { kind: "close", id });
  }
}

function pattern(size: number, seed: number): Uint8Array {
  const bytes = new Uint8Array(size);
  for (let i = 0; i < size; i++) bytes[i] = (i * 31 + seed) & 0xff;
  return bytes;
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((byte, i) => byte === b[i]);
}
