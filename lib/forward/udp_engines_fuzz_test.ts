/**
 * Fuzz and soak tests of both UDP engines through an echo target: random sizes up to 65,507 bytes,
 * many sources, bursts; every reply compared by checksum, in order, with nothing lost. The bytes in
 * flight stay below the socket receive buffers (about 208 KiB by default, counting the kernel's
 * per-datagram overhead), where UDP on loopback loses nothing.
 * @module
 */

import assert from "node:assert/strict";
import { startUdpEcho } from "../../tests/_support/net_udp.ts";
import { UDP_ENGINES, udpForwarderTo } from "../../tests/_support/udp_engines.ts";
import {
  checksum,
  generatedDatagram,
  mixChecksum,
  SeededRandom,
  sendBurst,
} from "../../tests/_support/udp_traffic.ts";

/** Bytes (plus per-datagram overhead) in flight at once, below every socket's receive buffer. */
const BURST_BUDGET_BYTES = 150_000;
const OVERHEAD_BYTES = 2048;

/** Mostly small datagrams, some jumbo, a few up to the IPv4 maximum (65,507 B). */
function randomSize(random: SeededRandom): number {
  const roll = random.next();
  if (roll < 0.7) return random.int(0, 1500);
  if (roll < 0.9) return random.int(1501, 9000);
  return random.int(9001, 65_507);
}

const variants = [
  ...UDP_ENGINES.map((engine) => ({ engine, threads: 1 })),
  { engine: "batched" as const, threads: 2 },
  { engine: "io_uring" as const, threads: 2 },
];

for (const { engine, threads } of variants) {
  Deno.test(`fuzz: ${engine} UDP engine (${threads} thread(s)): random sizes, 24 sources, bursts`, async () => {
    const seed = Date.now() >>> 0;
    const random = new SeededRandom(seed);
    await using echo = startUdpEcho();
    await using fx = await udpForwarderTo(engine, echo.port, { threads });
    const clients = Array.from(
      { length: 24 },
      () => Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 }),
    );
    const sequence = clients.map(() => 0);
    let datagrams = 0;
    let bytes = 0;
    try {
      for (let round = 0; round < 40; round++) {
        // Each round: several clients send a burst at once, within the budget.
        let budget = BURST_BUDGET_BYTES;
        const bursts: Promise<void>[] = [];
        for (let c = random.int(0, clients.length - 1), n = 0; n < 6 && budget > 0; n++) {
          const client = (c + n * 5) % clients.length;
          const burst: Uint8Array[] = [];
          for (let k = random.int(1, 16); k > 0; k--) {
            const size = Math.min(randomSize(random), budget - OVERHEAD_BYTES);
            if (size < 0) break;
            budget -= size + OVERHEAD_BYTES;
            burst.push(generatedDatagram(client, sequence[client]!++, size));
          }
          datagrams += burst.length;
          bytes += burst.reduce((sum, datagram) => sum + datagram.length, 0);
          bursts.push(
            sendBurst(clients[client]!, burst, fx.forwarder.port).then((replies) => {
              assert.deepEqual(
                replies,
                burst.map((datagram) => checksum(datagram)),
                `seed ${seed}`,
              );
            }),
          );
        }
        await Promise.all(bursts);
      }
    } finally {
      for (const client of clients) {
        try {
          client.close();
        } catch {
          // Closed by a timed-out burst.
        }
      }
    }
    assert.equal(fx.counters.datagramsClientToTarget, datagrams, `seed ${seed}`);
    assert.equal(fx.counters.datagramsTargetToClient, datagrams);
    assert.equal(fx.counters.bytesClientToTarget, bytes);
    assert.equal(fx.counters.bytesTargetToClient, bytes);
    assert.equal(fx.counters.truncatedDatagrams, 0);
    assert.equal(fx.counters.droppedDatagrams, 0);
  });

  Deno.test(`soak: ${engine} UDP engine (${threads} thread(s)): 8 clients × 800 datagrams, checksums end to end`, async () => {
    const seed = Date.now() >>> 0;
    const random = new SeededRandom(seed);
    await using echo = startUdpEcho();
    await using fx = await udpForwarderTo(engine, echo.port, { threads });
    const results = await Promise.all(Array.from({ length: 8 }, async (_, client) => {
      const socket = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
      let sent = 0x811c9dc5;
      let received = 0x811c9dc5;
      let count = 0;
      for (let window = 0; window < 100; window++) {
        const burst = Array.from(
          { length: 8 },
          () => generatedDatagram(client, count++, random.int(0, 1472)),
        );
        for (const datagram of burst) sent = mixChecksum(sent, checksum(datagram));
        for (const reply of await sendBurst(socket, burst, fx.forwarder.port)) {
          received = mixChecksum(received, reply);
        }
      }
      socket.close();
      return { sent, received, count };
    }));
    for (const [client, { sent, received }] of results.entries()) {
      assert.equal(received, sent, `client ${client}, seed ${seed}`);
    }
    assert.equal(fx.counters.datagramsTargetToClient, 8 * 800);
    assert.equal(fx.counters.sessionsTotal, 8);
  });
}
