import assert from "node:assert/strict";
import { openFdCount } from "../../../tests/_support/net_fd.ts";
import { SystemWorker } from "../../ffi/system_worker_client.ts";
import {
  concat,
  echoThrough,
  patternBytes,
  readAll,
  readExactly,
  startTcpEcho,
  startTcpServer,
  writeAll,
} from "../../../tests/_support/net_tcp.ts";
import { waitUntil, within } from "../../../tests/_support/wait.ts";
import { tcpForwarderTo } from "../../../tests/_support/tcp_engines.ts";
import type { TcpSpec } from "../../spec.ts";
import { TcpEngine, unsupportedBySplice } from "../tcp_engine.ts";
import { TcpForwarder } from "../tcp_forwarder.ts";
import { connectionBudget } from "./engine_loop.ts";
import { SpliceTcpForwarder } from "./splice_forwarder.ts";

// Splice-only behaviour; what both TCP engines share is in tcp_forwarder_test.ts.

Deno.test("splice TCP engine: idle connections hold no pipes (pooled pipes close when unused)", async () => {
  await using echo = startTcpEcho();
  await using fx = await tcpForwarderTo("splice", echo.port);
  const baseline = await openFdCount();
  const conns: Deno.TcpConn[] = [];
  try {
    for (let i = 0; i < 16; i++) {
      const conn = await fx.connect();
      conns.push(conn);
      const data = patternBytes(300_000, i + 1);
      const reading = readExactly(conn, data.length);
      await writeAll(conn, data);
      assert.deepEqual(await reading, data);
    }
    // Per connection: the client, the echo's socket, and the forwarder's two sockets; no pipes.
    await waitUntil(
      "4 descriptors per idle connection",
      async () => (await openFdCount()) - baseline === 4 * conns.length,
    );
  } finally {
    for (const conn of conns) conn.close();
  }
});

Deno.test("splice TCP engine: a client's reset reaches the target as a reset, counted once", async () => {
  const seen = Promise.withResolvers<string>();
  // The target sends 100 KiB, then waits for the client's next move.
  await using server = startTcpServer(async (conn) => {
    await writeAll(conn, patternBytes(100 * 1024));
    try {
      seen.resolve((await conn.read(new Uint8Array(1))) === null ? "end" : "data");
    } catch (error) {
      seen.resolve(error instanceof Deno.errors.ConnectionReset ? "reset" : String(error));
    }
  });
  await using fx = await tcpForwarderTo("splice", server.port);
  using system = await SystemWorker.start();
  {
    using conn = await fx.connect();
    await readExactly(conn, 1);
    // A reset alone: closing with data unread would send a FIN first (Deno shuts the socket down
    // on close), and a forwarder that passes that FIN on before the reset arrives is right too.
    assert.ok(await system.resetTcp(conn), "the client can reset");
  }
  assert.equal(await within(seen.promise, 10_000, "the target's read"), "reset");
  await waitUntil("connection gone", () => fx.counters.activeConnections === 0);
  const { CopyClientToTarget, CopyTargetToClient } = fx.counters.errors;
  assert.equal(CopyClientToTarget + CopyTargetToClient, 1, "counted once");
});

Deno.test("splice TCP engine: connections still open after the drain grace are reset, not ended", async () => {
  await using echo = startTcpEcho();
  await using fx = await tcpForwarderTo("splice", echo.port);
  using conn = await fx.connect();
  await writeAll(conn, new Uint8Array([1]));
  await readExactly(conn, 1);
  await fx.forwarder.drain(100);
  await assert.rejects(readAll(conn), Deno.errors.ConnectionReset);
  assert.equal(fx.counters.activeConnections, 0);
  assert.equal(fx.counters.errors.DrainTimeout, 1, "counted as cut by the drain");
});

Deno.test("splice TCP engine: ends polled together with new clients and data pass on both ways", async () => {
  // The target answers after the client's FIN, then sends a trailer and ends: each connection
  // needs the client's FIN passed on, then the answer and the target's FIN. Waves of clients that
  // start while earlier ones end put ends, new clients and data into the same polls (the engine
  // handles the ends last, after polling again for what the new work brought).
  const trailer = new TextEncoder().encode("end");
  await using server = startTcpServer(async (conn) => {
    const request = await readAll(conn);
    await writeAll(conn, request);
    await writeAll(conn, trailer);
  });
  await using fx = await tcpForwarderTo("splice", server.port);
  const waves = 8;
  const perWave = 25;
  for (let wave = 0; wave < waves; wave++) {
    const connections = Promise.all(Array.from({ length: perWave }, async (_, i) => {
      using conn = await fx.connect();
      const data = patternBytes(64 + i, wave * perWave + i + 1);
      const answer = await echoThrough(conn, data);
      assert.deepEqual(answer, concat([data, trailer]));
    }));
    await within(connections, 10_000, `wave ${wave}: every connection ended both ways`);
  }
  await waitUntil("connections closed", () => fx.counters.activeConnections === 0);
  assert.equal(fx.counters.connectionsTotal, waves * perWave);
  const errors = Object.values(fx.counters.errors).reduce((sum, n) => sum + n, 0);
  assert.equal(errors, 0, "every connection ended cleanly");
});

Deno.test("splice TCP engine: two threads share a port, both forward, retarget reaches both", async () => {
  await using echo = startTcpEcho();
  await using greeter = startTcpServer((conn) => writeAll(conn, new TextEncoder().encode("new")));
  await using fx = await tcpForwarderTo("splice", echo.port, { threads: 2 });
  const before = echo.accepted;
  await Promise.all(Array.from({ length: 40 }, async (_, i) => {
    using conn = await fx.connect();
    const data = patternBytes(10_000, i + 1);
    const reading = readAll(conn);
    await writeAll(conn, data);
    await conn.closeWrite();
    assert.deepEqual(await reading, data);
  }));
  assert.equal(echo.accepted - before, 40);
  await waitUntil("connections closed", () => fx.counters.activeConnections === 0);
  assert.equal(fx.counters.connectionsTotal, 40);
  assert.equal(fx.counters.bytesClientToTarget, 400_000);
  fx.forwarder.update({ listenPort: 0, targetHost: "127.0.0.1", targetPort: greeter.port });
  const greetings = await Promise.all(Array.from({ length: 20 }, async () => {
    using conn = await fx.connect();
    return new TextDecoder().decode(await readAll(conn));
  }));
  assert.deepEqual(new Set(greetings), new Set(["new"]));
});

Deno.test("TcpEngine runs a forwarder with a TCP field the splice engine lacks on the portable engine", async () => {
  await using echo = startTcpEcho();
  const engine = new TcpEngine({
    choice: "splice",
    threads: 1,
    listenAddress: "127.0.0.1",
    dialTimeoutMs: 1000,
    idleTimeoutMs: 0,
    reusePort: false,
  });
  try {
    assert.equal(await engine.ready, "splice");
    const plain: TcpSpec = { listenPort: 0, targetHost: "127.0.0.1", targetPort: echo.port };
    // A field added for a feature of the portable engine only (e.g. PROXY protocol).
    const extended = { ...plain, sendProxyProtocol: "v2" } as TcpSpec;
    assert.deepEqual(unsupportedBySplice(plain), []);
    assert.deepEqual(unsupportedBySplice(extended), ["sendProxyProtocol"]);
    const onSplice = await engine.open("a", plain, engine.newCounters());
    const onPortable = await engine.open("b", extended, engine.newCounters());
    assert.ok(onSplice instanceof SpliceTcpForwarder);
    assert.ok(onPortable instanceof TcpForwarder);
    await Promise.all([onSplice.drain(0), onPortable.drain(0)]);
  } finally {
    await engine.close();
  }
});

Deno.test("TcpEngine keeps per-source TCP limits on the portable engine only with several threads", async () => {
  await using echo = startTcpEcho();
  const spec: TcpSpec = {
    listenPort: 0,
    targetHost: "127.0.0.1",
    targetPort: echo.port,
    sourceRanges: ["127.0.0.0/8"],
    maxConnectionsPerSource: 2,
  };
  for (const [threads, engineOf] of [[1, SpliceTcpForwarder], [2, TcpForwarder]] as const) {
    const engine = new TcpEngine({
      choice: "splice",
      threads,
      listenAddress: "127.0.0.1",
      dialTimeoutMs: 1000,
      idleTimeoutMs: 0,
      reusePort: false,
    });
    try {
      const forwarder = await engine.open("a", spec, engine.newCounters());
      assert.ok(forwarder instanceof engineOf, `${threads} thread(s)`);
      await forwarder.drain(0);
    } finally {
      await engine.close();
    }
  }
});

Deno.test("splice TCP engine out of descriptors: extra clients are refused visibly, the engine lives on", async () => {
  await using echo = startTcpEcho();
  const child = new Deno.Command("sh", {
    args: [
      "-c",
      'ulimit -n 160 && exec "$0" run --allow-net --allow-read --allow-ffi "$1" "$2"',
      Deno.execPath(),
      new URL("../../../tests/_support/splice_fd_limit_child.ts", import.meta.url).pathname,
      String(echo.port),
    ],
    env: { DENO_NO_UPDATE_CHECK: "1" },
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  const stdin = child.stdin.getWriter();
  let buffered = "";
  const nextLine = async (): Promise<Record<string, unknown>> => {
    while (!buffered.includes("\n")) {
      const { value, done } = await within(lines.read(), 20_000, "a line from the child");
      if (done) throw new Error("the child ended");
      buffered += value;
    }
    const at = buffered.indexOf("\n");
    const line = buffered.slice(0, at);
    buffered = buffered.slice(at + 1);
    return JSON.parse(line);
  };
  const conns: Deno.TcpConn[] = [];
  try {
    const { port } = await nextLine() as { port: number };
    const outcomes = await Promise.all(Array.from({ length: 40 }, async () => {
      try {
        const conn = await Deno.connect({ hostname: "127.0.0.1", port });
        conns.push(conn);
        await writeAll(conn, new Uint8Array([7]));
        const reply = await within(readExactly(conn, 1), 10_000, "an echo or a refusal");
        return reply[0] === 7 ? "forwarded" : "wrong";
      } catch (error) {
        if (error instanceof Error && /Timed out/.test(error.message)) return "hung";
        return "refused";
      }
    }));
    assert.ok(outcomes.includes("forwarded"), outcomes.join());
    assert.ok(outcomes.includes("refused"), outcomes.join());
    assert.ok(!outcomes.includes("hung") && !outcomes.includes("wrong"), outcomes.join());
    for (const conn of conns.splice(0)) conn.close();
    await stdin.write(new TextEncoder().encode("\n"));
    const counters = await nextLine() as { errors: Record<string, number> };
    // Refused within the thread's share of the descriptor limit, before any call failed.
    assert.ok(counters.errors["SocketLimit"]! > 0, JSON.stringify(counters.errors));
    // Descriptors are back: a new client is forwarded.
    await waitUntil("a client forwarded again", async () => {
      try {
        using conn = await Deno.connect({ hostname: "127.0.0.1", port });
        await writeAll(conn, new Uint8Array([9]));
        return (await within(readExactly(conn, 1), 2000, "echo"))[0] === 9;
      } catch {
        return false;
      }
    });
  } finally {
    for (const conn of conns) conn.close();
    await stdin.close().catch(() => {});
    lines.releaseLock();
    await child.stdout.cancel().catch(() => {});
    await child.status;
  }
});

Deno.test("connectionBudget(): each thread's share of the descriptor limit, less a reserve", () => {
  assert.equal(connectionBudget(1024, 1), Math.floor((1024 - 64 - 64) / 6));
  assert.equal(connectionBudget(1024, 2), Math.floor((1024 - 64 - 64) / 12));
  assert.equal(connectionBudget(160, 1), 14);
  assert.equal(connectionBudget(10, 1), 1, "never below one");
  assert.equal(connectionBudget(Infinity, 4), Infinity);
});
