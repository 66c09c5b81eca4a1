import assert from "node:assert/strict";
import { waitUntil, within } from "../../tests/_support/wait.ts";
import { readAll, writeAll } from "../../tests/_support/net_tcp.ts";
import { TCP_ENGINES, tcpForwarderTo } from "../../tests/_support/tcp_engines.ts";
import {
  generatedLength,
  header,
  readToEnd,
  SeededRandom,
  startScriptedTarget,
  TargetMode,
  writeGenerated,
} from "../../tests/_support/tcp_traffic.ts";

/** Connections per fuzz run, and how many run at once. */
const CONNECTIONS = 48;
const CONCURRENCY = 8;
/** A fixed seed unless FUZZ_SEED is set (printed in the test name to replay a run). */
const SEED = Number(Deno.env.get("FUZZ_SEED") ?? 20261206);

type Outcome = "exact" | "aborted";

/** One client connection of a random kind; resolves with how it ended. */
async function fuzzConnection(
  port: number,
  seed: number,
  received: Map<number, string>,
): Promise<Outcome> {
  const random = new SeededRandom(seed);
  const kind = random.int(0, 5);
  using conn = await Deno.connect({ hostname: "127.0.0.1", port });
  switch (kind) {
    case 0: // echo of random sizes (up to 3 MiB), fast or slow reader, client half-closes
    case 1: {
      const pace = kind === 0
        ? { bufferBytes: 64 * 1024, pauseMs: 0 }
        : { bufferBytes: random.int(1, 8192), pauseMs: 1 };
      const total = random.int(0, kind === 0 ? 3 << 20 : 256 * 1024);
      await writeAll(conn, header(seed, TargetMode.Echo));
      const reading = readToEnd(conn, pace);
      const sent = await writeGenerated(conn, random, total, random.int(1, 200_000));
      await conn.closeWrite();
      const echoed = await reading;
      assert.equal(echoed.summary, sent.summary, `seed ${seed}: the echo`);
      return "exact";
    }
    case 2: { // the target speaks first and half-closes; the client answers afterwards
      await writeAll(conn, header(seed, TargetMode.SpeakFirst));
      const heard = await readToEnd(conn);
      const expected = await writeGenerated(
        undefined,
        new SeededRandom(seed),
        generatedLength(seed),
        70_000,
      );
      assert.equal(heard.summary, expected.summary, `seed ${seed}: what the target sent`);
      const sent = await writeGenerated(conn, random, random.int(0, 500_000), 30_000);
      await conn.closeWrite();
      await readAll(conn);
      await waitUntil(`seed ${seed}: the target's EOF`, () => received.has(seed));
      assert.equal(received.get(seed), sent.summary, `seed ${seed}: what the target read`);
      return "exact";
    }
    case 3: { // a slow target reader: the forwarder must hold back, not lose bytes
      await writeAll(conn, header(seed, TargetMode.SlowReader));
      const sent = await writeGenerated(conn, random, random.int(1, 1 << 20), 100_000);
      await conn.closeWrite();
      await readAll(conn);
      await waitUntil(`seed ${seed}: the slow reader's EOF`, () => received.has(seed));
      assert.equal(received.get(seed), sent.summary, `seed ${seed}: what the slow reader read`);
      return "exact";
    }
    case 4: { // the target resets: the client sees an error or an end, never a hang
      await writeAll(conn, header(seed, TargetMode.Reset));
      await writeGenerated(conn, random, 200_000, 50_000).catch(() => {});
      await readAll(conn).catch(() => {});
      return "aborted";
    }
    default: { // the client resets: closes with the echo unread
      await writeAll(conn, header(seed, TargetMode.Echo));
      await writeGenerated(conn, random, random.int(70_000, 400_000), 60_000).catch(() => {});
      await new Promise((resolve) => setTimeout(resolve, random.int(0, 20)));
      return "aborted";
    }
  }
}

for (const engine of TCP_ENGINES) {
  Deno.test(`${engine} TCP engine fuzz (seed ${SEED}): random sizes, half-closes both ways, resets, slow readers`, async () => {
    await using target = startScriptedTarget();
    await using fx = await tcpForwarderTo(engine, target.port);
    const outcomes: Outcome[] = [];
    let next = 0;
    const worker = async () => {
      while (next < CONNECTIONS) {
        const seed = SEED + next++;
        outcomes.push(
          await within(
            fuzzConnection(fx.forwarder.port, seed, target.received),
            60_000,
            `seed ${seed}`,
          ),
        );
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    await waitUntil("every connection ended", () => fx.counters.activeConnections === 0);
    assert.equal(fx.counters.connectionsTotal, CONNECTIONS);
    const { DialServerTarget, DialTimeout, ResolveTargetAddress, Accept } = fx.counters.errors;
    assert.deepEqual({ DialServerTarget, DialTimeout, ResolveTargetAddress, Accept }, {
      DialServerTarget: 0,
      DialTimeout: 0,
      ResolveTargetAddress: 0,
      Accept: 0,
    });
    assert.ok(outcomes.filter((outcome) => outcome === "exact").length >= CONNECTIONS / 2);
  });
}
