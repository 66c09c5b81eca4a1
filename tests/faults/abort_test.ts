/**
 * Fault suite, point 5 of issue 12: an abort is passed on as an abort (RST), never as a clean end,
 * and connections cut at the end of the drain grace period are counted, logged and make the exit
 * code 3.
 */
import assert from "node:assert/strict";
import { SystemWorker } from "../../lib/ffi/system_worker_client.ts";
import { newTcpCounters } from "../../lib/forward/state.ts";
import { TcpForwarder } from "../../lib/forward/tcp_forwarder.ts";
import { patternBytes, readExactly, startTcpServer, writeAll } from "../_support/net_tcp.ts";
import { waitUntil } from "../_support/wait.ts";
import { freePort, startProgram } from "../_support/program.ts";
import { tcpDocument, tempConfigFile } from "./_config.ts";

const SENT = 64 * 1024;

/** A forwarder on 127.0.0.1 to `targetPort`, drained on dispose. */
function forwarderTo(targetPort: number) {
  const counters = newTcpCounters();
  const forwarder = new TcpForwarder(Deno.listen({ hostname: "127.0.0.1", port: 0 }), {
    name: "faults/abort",
    counters,
    spec: { listenPort: 0, targetHost: "127.0.0.1", targetPort },
    dialTimeoutMs: 5000,
    idleTimeoutMs: 0,
  });
  return {
    counters,
    connect: () => Deno.connect({ hostname: "127.0.0.1", port: forwarder.port }),
    [Symbol.asyncDispose]: () => forwarder.drain(0),
  };
}

/** Reads until the stream ends; "reset" when it ends with a reset, "end" for a clean FIN. */
async function howItEnds(conn: Deno.Conn): Promise<"reset" | "end"> {
  const buffer = new Uint8Array(64 * 1024);
  try {
    while (await conn.read(buffer) !== null) {
      // Keep reading until the end.
    }
    return "end";
  } catch (error) {
    if (error instanceof Deno.errors.ConnectionReset) return "reset";
    throw error;
  }
}

Deno.test("a target reset mid-stream reaches the client as a reset, not as a clean end", async () => {
  using system = await SystemWorker.start(); // resets, for the forwarder and the test's target
  await using target = startTcpServer(async (conn) => {
    await writeAll(conn, patternBytes(SENT));
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.ok(await system.resetTcp(conn), "the test target can reset");
  });
  await using fx = forwarderTo(target.port);
  using client = await fx.connect();
  assert.deepEqual(await readExactly(client, SENT), patternBytes(SENT));
  assert.equal(await howItEnds(client), "reset");
  assert.equal(fx.counters.errors.CopyTargetToClient, 1);
});

Deno.test("a client reset mid-stream reaches the target as a reset", async () => {
  using system = await SystemWorker.start(); // resets, for the forwarder and the test's client
  const ended = Promise.withResolvers<"reset" | "end">();
  await using target = startTcpServer(async (conn) => {
    ended.resolve(await howItEnds(conn));
  });
  await using fx = forwarderTo(target.port);
  const client = await fx.connect();
  await writeAll(client, patternBytes(1000));
  await waitUntil("the bytes to pass", () => fx.counters.bytesClientToTarget === 1000);
  assert.ok(await system.resetTcp(client));
  client.close();
  assert.equal(await ended.promise, "reset");
});

/**
 * The program forwarding "held" to a target that sends 1000 bytes and then keeps the connection
 * open (still in flight at shutdown), with a 300 ms drain grace and `flags`; stopped on dispose.
 */
async function forwardingHeldTransfers(flags: readonly string[] = []) {
  await using stack = new AsyncDisposableStack();
  const target = stack.use(startTcpServer(async (conn) => {
    await writeAll(conn, patternBytes(1000));
    await conn.read(new Uint8Array(1));
  }));
  const port = freePort();
  const config = stack.use(await tempConfigFile([tcpDocument("held", port, target.port)]));
  const program = stack.use(
    await startProgram(["--config", config.path, "--drain-grace-period=300ms", ...flags]),
  );
  await program.waitForLog("listening", (line) => line["forwarder"] === "default/held");
  const resources = stack.move();
  return { program, port, [Symbol.asyncDispose]: () => resources.disposeAsync() };
}

Deno.test("a transfer cut at the end of the drain grace is a reset, counted, logged, exit code 3", async () => {
  await using fx = await forwardingHeldTransfers();
  const program = fx.program;
  using client = await Deno.connect({ hostname: "127.0.0.1", port: fx.port });
  await readExactly(client, 1000);
  program.signal("SIGTERM");
  assert.equal(await howItEnds(client), "reset");
  assert.equal(await program.exited, 3, program.output().slice(-3000));
  const cut = program.logs().find((line) => /^Aborted 1 TCP connection/.test(line.message));
  assert.ok(cut, "the cut is logged");
  assert.ok(program.logs().some((line) => /cut 1 TCP connection/.test(line.message)));
});

for (const tcpEngine of ["portable", "splice"]) {
  // Portable: the forwarding workers reset through the system worker; splice: in its threads.
  Deno.test(`with --workers=2 on the ${tcpEngine} TCP engine, transfers cut at the drain grace end as resets on every thread`, async () => {
    await using fx = await forwardingHeldTransfers(["--workers=2", `--tcp-engine=${tcpEngine}`]);
    // The kernel spreads connections over both threads (by address hash): 12 reach both but for
    // a chance of 1 in 2048.
    const clients = await Promise.all(
      Array.from({ length: 12 }, () => Deno.connect({ hostname: "127.0.0.1", port: fx.port })),
    );
    try {
      for (const client of clients) await readExactly(client, 1000);
      fx.program.signal("SIGTERM");
      const endings = await Promise.all(clients.map(howItEnds));
      assert.deepEqual(endings, clients.map(() => "reset"));
    } finally {
      for (const client of clients) client.close();
    }
    assert.equal(await fx.program.exited, 3, fx.program.output().slice(-3000));
  });
}
