import assert from "node:assert/strict";
import {
  echoThrough,
  patternBytes,
  readAll,
  readExactly,
  startTcpBlackHole,
  startTcpEcho,
  startTcpServer,
  writeAll,
} from "../../tests/_support/net_tcp.ts";
import { freePort } from "../../tests/_support/net_ports.ts";
import { waitUntil, within } from "../../tests/_support/wait.ts";
import {
  TCP_ENGINES,
  type TcpFixture,
  type TcpFixtureOptions,
  tcpForwarderTo,
} from "../../tests/_support/tcp_engines.ts";
import { sharedBufferPool } from "./buffer_pool.ts";
import { BUFFER_TIERS } from "./tcp_connection.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Connects through `fx` and expects the client closed and exactly one dial error, of `type`. */
async function expectDialFailure(
  fx: TcpFixture,
  type: "DialServerTarget" | "DialTimeout" | "ResolveTargetAddress",
): Promise<void> {
  using conn = await fx.connect();
  const result = await within(conn.read(new Uint8Array(1)).catch(() => null), 10_000, "close");
  assert.equal(result, null, "the client is closed");
  await waitUntil("connection gone", () => fx.counters.activeConnections === 0);
  const { DialServerTarget, DialTimeout, ResolveTargetAddress } = fx.counters.errors;
  assert.deepEqual({ DialServerTarget, DialTimeout, ResolveTargetAddress }, {
    DialServerTarget: 0,
    DialTimeout: 0,
    ResolveTargetAddress: 0,
    [type]: 1,
  });
}

// Behaviour both engines share: every test runs on the portable and on the splice engine.
for (const engine of TCP_ENGINES) {
  const forwarderTo = (targetPort: number, options?: TcpFixtureOptions) =>
    tcpForwarderTo(engine, targetPort, options);

  Deno.test(`${engine} TCP engine: forwards byte-exact both ways, small and 10 MiB`, async () => {
    await using echo = startTcpEcho();
    await using fx = await forwarderTo(echo.port);
    for (const size of [1, 1000, 10 * 1024 * 1024]) {
      const data = patternBytes(size, size);
      using conn = await fx.connect();
      assert.deepEqual(await echoThrough(conn, data), data, `${size} bytes`);
    }
    const total = 1 + 1000 + 10 * 1024 * 1024;
    await waitUntil("connections closed", () => fx.counters.activeConnections === 0);
    assert.equal(fx.counters.bytesClientToTarget, total);
    assert.equal(fx.counters.bytesTargetToClient, total);
    assert.equal(fx.counters.connectionsTotal, 3);
  });

  Deno.test(`${engine} TCP engine: forwards over IPv6 (listens on ::1, target ::1)`, async () => {
    await using echo = startTcpEcho({ hostname: "::1" });
    await using fx = await forwarderTo(echo.port, { targetHost: "::1", listenAddress: "::1" });
    using conn = await fx.connect();
    assert.equal(conn.remoteAddr.hostname, "::1");
    const data = patternBytes(200_000, 6);
    assert.deepEqual(await echoThrough(conn, data), data);
  });

  Deno.test(`${engine} TCP engine: propagates the target's half-close and keeps the other direction`, async () => {
    let fromClient = "";
    await using server = startTcpServer(async (conn) => {
      await writeAll(conn, encoder.encode("hello"));
      await conn.closeWrite();
      fromClient = decoder.decode(await readAll(conn));
    });
    await using fx = await forwarderTo(server.port);
    using conn = await fx.connect();
    assert.equal(decoder.decode(await readAll(conn)), "hello");
    await writeAll(conn, encoder.encode("still open"));
    await conn.closeWrite();
    await waitUntil("the target to see the client's EOF", () => fromClient !== "");
    assert.equal(fromClient, "still open");
  });

  Deno.test(`${engine} TCP engine: propagates the client's half-close and delivers the reply`, async () => {
    await using server = startTcpServer(async (conn) => {
      const request = await readAll(conn);
      await writeAll(conn, encoder.encode(`got ${request.length}`));
      await conn.closeWrite();
    });
    await using fx = await forwarderTo(server.port);
    using conn = await fx.connect();
    const reply = await echoThrough(conn, patternBytes(70_000));
    assert.equal(decoder.decode(reply), "got 70000");
  });

  Deno.test(`${engine} TCP engine: advances byte counters while a connection is open`, async () => {
    await using echo = startTcpEcho();
    await using fx = await forwarderTo(echo.port);
    using conn = await fx.connect();
    const data = patternBytes(1024 * 1024);
    await writeAll(conn, data);
    assert.deepEqual(await readExactly(conn, data.length), data);
    await waitUntil("counters", () => fx.counters.bytesTargetToClient === data.length);
    assert.equal(fx.counters.bytesClientToTarget, data.length);
    assert.equal(fx.counters.activeConnections, 1);
  });

  Deno.test(`${engine} TCP engine: closes the client at once and counts when the target refuses`, async () => {
    await using fx = await forwarderTo(freePort("tcp")); // nothing listens there: refused
    await expectDialFailure(fx, "DialServerTarget");
  });
  Deno.test(`${engine} TCP engine: closes both sides and counts once when a copy fails`, async () => {
    // The target reads one byte and closes: a FIN, then a reset for the data it left unread.
    await using server = startTcpServer(async (conn) => {
      await conn.read(new Uint8Array(1));
    });
    await using fx = await forwarderTo(server.port);
    using conn = await fx.connect();
    await writeAll(conn, patternBytes(64 * 1024));
    // The FIN reaches the client, unless the reset came before the forwarder read the end: then
    // the splice engine passes the reset on (an abort stays an abort).
    const end = await conn.read(new Uint8Array(1)).then(
      (n) => n === null ? "fin" : "data",
      (error) => error instanceof Deno.errors.ConnectionReset ? "reset" : String(error),
    );
    assert.ok(end === "fin" || (engine === "splice" && end === "reset"), end);
    if (end === "fin") {
      assert.equal(fx.counters.activeConnections, 1, "the client's direction stays open");
      // Writing to the reset target fails: the forwarder closes the client too.
      await writeAll(conn, patternBytes(64 * 1024)).catch(() => {});
    }
    await waitUntil("both sockets closed", () => fx.counters.activeConnections === 0);
    const { CopyClientToTarget, CopyTargetToClient } = fx.counters.errors;
    if (end === "fin") {
      assert.equal(CopyClientToTarget, 1);
      assert.equal(CopyTargetToClient, 0, "the close it caused is not counted");
    } else {
      // Reading the target's end or still writing the client's bytes to it: either direction may
      // meet the reset first.
      assert.equal(CopyClientToTarget + CopyTargetToClient, 1, "counted once");
    }
    await waitUntil(
      "writes to the closed client socket to fail",
      () => conn.write(new Uint8Array(1)).then(() => false, () => true),
    );
  });

  Deno.test(`${engine} TCP engine: dials a target given by name`, async () => {
    await using echo = startTcpEcho({ hostname: "::" }); // "localhost" may be 127.0.0.1 or ::1
    await using fx = await forwarderTo(echo.port, { targetHost: "localhost" });
    for (const text of ["first", "second"]) {
      using conn = await fx.connect();
      assert.equal(decoder.decode(await echoThrough(conn, encoder.encode(text))), text);
    }
    assert.equal(echo.accepted, 2);
  });

  Deno.test(`${engine} TCP engine: closes the client and counts when the target name does not resolve`, async () => {
    // glibc refuses "-" as a host name without sending a query: no DNS traffic leaves the machine.
    await using fx = await forwarderTo(1, { targetHost: "-" });
    await expectDialFailure(fx, "ResolveTargetAddress");
  });
  Deno.test(`${engine} TCP engine: gives up dialing a black-holed target after dialTimeoutMs`, async () => {
    await using hole = await startTcpBlackHole();
    await using fx = await forwarderTo(hole.port, { dialTimeoutMs: 200 });
    await expectDialFailure(fx, "DialTimeout");
  });
  Deno.test(`${engine} TCP engine: bytes the client sends while the dial is in progress arrive once it connects`, async () => {
    await using hole = await startTcpBlackHole();
    await using fx = await forwarderTo(hole.port, { dialTimeoutMs: 30_000 });
    using conn = await fx.connect();
    const data = patternBytes(1000);
    await writeAll(conn, data);
    await conn.closeWrite();
    using target = await within(hole.acceptOther(), 20_000, "the forwarder's dial");
    assert.deepEqual(await within(readAll(target), 10_000, "the client's bytes"), data);
    await target.closeWrite();
    assert.equal(await conn.read(new Uint8Array(1)), null, "the target's end reaches the client");
    assert.equal(fx.counters.bytesClientToTarget, data.length);
  });
  Deno.test(`${engine} TCP engine: drain() ends dials in progress at once`, async () => {
    await using hole = await startTcpBlackHole();
    await using fx = await forwarderTo(hole.port, { dialTimeoutMs: 60_000 });
    using conn = await fx.connect();
    await waitUntil("the dial to start", () => fx.counters.activeConnections === 1);
    await within(fx.forwarder.drain(0), 10_000, "drain with a dial in progress");
    assert.equal(await conn.read(new Uint8Array(1)).catch(() => null), null);
    assert.equal(fx.counters.activeConnections, 0);
    assert.equal(fx.counters.errors.DialTimeout + fx.counters.errors.DialServerTarget, 0);
  });

  Deno.test(`${engine} TCP engine: closes a connection idle longer than idleTimeoutMs`, async () => {
    await using echo = startTcpEcho();
    await using fx = await forwarderTo(echo.port, { idleTimeoutMs: 200 });
    using conn = await fx.connect();
    await writeAll(conn, encoder.encode("ping"));
    assert.equal(decoder.decode(await readExactly(conn, 4)), "ping");
    const result = await within(
      conn.read(new Uint8Array(1)).catch(() => null),
      10_000,
      "idle close",
    );
    assert.equal(result, null);
    assert.equal(fx.counters.errors.IdleTimeout, 1);
  });

  Deno.test(`${engine} TCP engine: drain() refuses new clients, lets live ones finish, then returns`, async () => {
    await using echo = startTcpEcho();
    await using fx = await forwarderTo(echo.port);
    using conn = await fx.connect();
    await writeAll(conn, encoder.encode("a"));
    await readExactly(conn, 1);
    const draining = fx.forwarder.drain(60_000);
    await fx.forwarder.released;
    await assert.rejects(fx.connect(), Deno.errors.ConnectionRefused);
    const data = patternBytes(100_000);
    assert.deepEqual(await echoThrough(conn, data), data);
    conn.close();
    await within(draining, 10_000, "drain after the last connection ended");
    assert.equal(fx.counters.activeConnections, 0);
  });

  Deno.test(`${engine} TCP engine: drain() closes connections still open after the grace period`, async () => {
    await using echo = startTcpEcho();
    await using fx = await forwarderTo(echo.port);
    using conn = await fx.connect();
    await writeAll(conn, encoder.encode("a"));
    await readExactly(conn, 1);
    await fx.forwarder.drain(100);
    assert.equal(await conn.read(new Uint8Array(1)).catch(() => null), null);
    assert.equal(fx.counters.activeConnections, 0);
    assert.equal(fx.counters.errors.CopyClientToTarget + fx.counters.errors.CopyTargetToClient, 0);
  });

  Deno.test(`${engine} TCP engine: update() sends new connections to the new target only`, async () => {
    await using first = startTcpServer((conn) => writeAll(conn, encoder.encode("first")));
    await using second = startTcpServer((conn) => writeAll(conn, encoder.encode("second")));
    await using echo = startTcpEcho();
    await using fx = await forwarderTo(echo.port);
    using live = await fx.connect();
    await writeAll(live, encoder.encode("x"));
    await readExactly(live, 1);
    fx.forwarder.update({ listenPort: 0, targetHost: "127.0.0.1", targetPort: second.port });
    using fresh = await fx.connect();
    assert.equal(decoder.decode(await readAll(fresh)), "second");
    await writeAll(live, encoder.encode("still echo"));
    assert.equal(decoder.decode(await readExactly(live, 10)), "still echo");
    assert.equal(first.accepted, 0);
  });
}

Deno.test("portable TCP engine: stays byte-exact while buffers grow for bulk and shrink back", async () => {
  const pools = [sharedBufferPool(BUFFER_TIERS[0]), sharedBufferPool(BUFFER_TIERS[1])];
  const inUse = () => pools[0]!.inUse + pools[1]!.inUse;
  const before = inUse();
  await using echo = startTcpEcho();
  await using fx = await tcpForwarderTo("portable", echo.port);
  {
    using conn = await fx.connect();
    let seed = 0;
    const sizes = [3 * 1024 * 1024, 10, 5000, 100, 1, 2 * 1024 * 1024, 7, 12_000, 300_000, 5];
    for (const size of sizes) {
      const data = patternBytes(size, ++seed);
      await writeAll(conn, data);
      assert.deepEqual(await readExactly(conn, size), data, `${size} bytes`);
    }
    assert.ok(inUse() <= before + 2, "a live connection holds at most one pooled buffer each way");
  }
  await waitUntil("connection closed", () => fx.counters.activeConnections === 0);
  assert.equal(inUse(), before, "pooled buffers go back to the pools");
});
