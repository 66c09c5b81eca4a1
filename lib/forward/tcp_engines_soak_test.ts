import assert from "node:assert/strict";
import { openFdCount } from "../../tests/_support/net_fd.ts";
import { writeAll } from "../../tests/_support/net_tcp.ts";
import { waitUntil, within } from "../../tests/_support/wait.ts";
import { TCP_ENGINES, tcpForwarderTo } from "../../tests/_support/tcp_engines.ts";
import {
  header,
  readToEnd,
  SeededRandom,
  startScriptedTarget,
  TargetMode,
  writeGenerated,
} from "../../tests/_support/tcp_traffic.ts";
import { TCP_ERROR_TYPES } from "./state.ts";

/** Small in the suite; SOAK_TCP_CONNECTIONS=20000 (say) for a long run. */
const CONNECTIONS = Number(Deno.env.get("SOAK_TCP_CONNECTIONS") ?? 300);
const CONCURRENCY = 25;
const MAX_BYTES = 256 * 1024;

for (const engine of TCP_ENGINES) {
  Deno.test(`${engine} TCP engine soak: ${CONNECTIONS} echoed connections, checksums, exact counters, no descriptor left`, async () => {
    await using target = startScriptedTarget();
    await using fx = await tcpForwarderTo(engine, target.port);
    const baseline = await openFdCount();
    let next = 0;
    let total = 0;
    const client = async () => {
      while (next < CONNECTIONS) {
        const seed = 1000 + next++;
        const random = new SeededRandom(seed);
        using conn = await fx.connect();
        await writeAll(conn, header(seed, TargetMode.Echo));
        const reading = readToEnd(conn);
        const sent = await writeGenerated(conn, random, random.int(0, MAX_BYTES), 40_000);
        await conn.closeWrite();
        const echoed = await within(reading, 30_000, `seed ${seed}: the echo`);
        assert.equal(echoed.summary, sent.summary, `seed ${seed}`);
        total += sent.length;
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, client));
    await waitUntil("every connection ended", () => fx.counters.activeConnections === 0);
    assert.equal(fx.counters.connectionsTotal, CONNECTIONS);
    assert.equal(fx.counters.bytesClientToTarget, total + 5 * CONNECTIONS); // with the headers
    assert.equal(fx.counters.bytesTargetToClient, total);
    for (const type of TCP_ERROR_TYPES) assert.equal(fx.counters.errors[type], 0, type);
    await waitUntil(
      "descriptors back to the baseline",
      async () => (await openFdCount()) <= baseline,
    );
  });
}
