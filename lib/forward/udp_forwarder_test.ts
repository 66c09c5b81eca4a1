import assert from "node:assert/strict";
import { patternBytes } from "../../tests/_support/net_tcp.ts";
import { SendStalls, startUdpEcho, udpClient } from "../../tests/_support/net_udp.ts";
import { waitUntil } from "../../tests/_support/wait.ts";
import { freePort } from "../../tests/_support/net_ports.ts";
import {
  UDP_ENGINES,
  type UdpFixtureOptions,
  udpForwarderTo,
} from "../../tests/_support/udp_engines.ts";
import { Budget } from "./budget.ts";
import { sharedBufferPool } from "./buffer_pool.ts";
import { BATCHED_SESSION_BYTES } from "./udp_batched/messages.ts";
import { sessionBufferCharge } from "./udp_forwarder.ts";
import type { SharedUdpCounters } from "./udp_batched/shared_udp_counters.ts";

// Behaviour both engines share: every test runs on the portable and on the batched engine.
for (const engine of UDP_ENGINES) {
  const forwarderTo = (targetPort: number, options?: UdpFixtureOptions) =>
    udpForwarderTo(engine, targetPort, options);

  Deno.test(`${engine} UDP engine: forwards 0, 64, 1400, 9000 and 65507 bytes byte-exact both ways`, async () => {
    await using echo = startUdpEcho();
    await using fx = await forwarderTo(echo.port);
    using client = udpClient();
    let total = 0;
    for (const size of [0, 64, 1400, 9000, 65_507]) {
      const data = patternBytes(size, size + 1);
      const reply = await client.exchange(data, fx.forwarder.port);
      assert.deepEqual(reply.data, data, `${size} bytes`);
      assert.equal(reply.from.port, fx.forwarder.port, "replies leave from the listening socket");
      total += size;
    }
    assert.equal(fx.counters.bytesClientToTarget, total);
    assert.equal(fx.counters.bytesTargetToClient, total);
    assert.equal(fx.counters.datagramsClientToTarget, 5);
    assert.equal(fx.counters.datagramsTargetToClient, 5);
    assert.equal(fx.counters.truncatedDatagrams, 0);
    assert.equal(fx.counters.sessionsTotal, 1);
    assert.deepEqual(echo.sourcePorts.length, 1);
  });

  Deno.test(`${engine} UDP engine: gives each client its own upstream source port`, async () => {
    await using echo = startUdpEcho();
    await using fx = await forwarderTo(echo.port);
    const clients = Array.from({ length: 20 }, () => udpClient());
    try {
      const replies = await Promise.all(
        clients.map((client, i) => client.request(new Uint8Array([i]), fx.forwarder.port)),
      );
      assert.deepEqual(replies.map((reply) => reply[0]), clients.map((_, i) => i));
      // A second round reuses the sessions.
      await Promise.all(
        clients.map((client) => client.request(new Uint8Array(1), fx.forwarder.port)),
      );
    } finally {
      for (const client of clients) client[Symbol.dispose]();
    }
    assert.equal(new Set(echo.sourcePorts).size, 20);
    assert.equal(fx.counters.activeSessions, 20);
    assert.equal(fx.counters.sessionsTotal, 20);
  });

  Deno.test(`${engine} UDP engine: keeps a session with client-only traffic alive, then expires it`, async () => {
    await using sink = startUdpEcho({ echo: false });
    await using fx = await forwarderTo(sink.port, { readTimeoutSeconds: 2 });
    using client = udpClient();
    // 30 datagrams 100 ms apart: 3 s of one-way traffic, longer than the 2 s timeout.
    for (let i = 0; i < 30; i++) {
      await client.send(new Uint8Array([i]), fx.forwarder.port);
      await waitUntil(`datagram ${i} at the target`, () => sink.received === i + 1);
      await fx.advance(100);
    }
    assert.equal(sink.sourcePorts.length, 1, "one session, one upstream port");
    assert.equal(fx.counters.sessionsTotal, 1);
    assert.equal(fx.counters.activeSessions, 1);
    await fx.advance(2000);
    await waitUntil("the idle session to expire", () => fx.counters.activeSessions === 0);
    await client.send(new Uint8Array([99]), fx.forwarder.port);
    await waitUntil("the datagram after expiry", () => sink.received === 31);
    assert.equal(fx.counters.sessionsTotal, 2);
  });

  Deno.test(`${engine} UDP engine: refreshes a session on replies alone (traffic in either direction)`, async () => {
    // The target answers one request with 30 replies, 100 ms apart (timeout: 2 s).
    const target = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
    try {
      await using fx = await forwarderTo((target.addr as Deno.NetAddr).port, {
        readTimeoutSeconds: 2,
      });
      using client = udpClient();
      await client.send(new Uint8Array(1), fx.forwarder.port);
      const [, from] = await target.receive(new Uint8Array(16));
      for (let i = 0; i < 30; i++) {
        await target.send(new Uint8Array([i]), from);
        // Replies reach the client only while its session lives.
        await waitUntil(`reply ${i}`, () => fx.counters.datagramsTargetToClient === i + 1);
        await fx.advance(100);
      }
      assert.equal(fx.counters.sessionsTotal, 1);
      assert.equal(fx.counters.activeSessions, 1);
      await fx.advance(2000);
      await waitUntil("the quiet session to expire", () => fx.counters.activeSessions === 0);
    } finally {
      target.close();
    }
  });

  Deno.test(`${engine} UDP engine: drops and counts datagrams of new clients beyond the session cap`, async () => {
    await using sink = startUdpEcho({ echo: false });
    await using fx = await forwarderTo(sink.port, { maxSessions: 3 });
    const clients = Array.from({ length: 5 }, () => udpClient());
    try {
      for (const client of clients) await client.send(new Uint8Array(8), fx.forwarder.port);
      await waitUntil(
        "3 forwarded, 2 dropped",
        () => fx.counters.droppedDatagrams === 2 && sink.received === 3,
      );
      await clients[0]!.send(new Uint8Array(8), fx.forwarder.port);
      await waitUntil("an existing session still forwards", () => sink.received === 4);
    } finally {
      for (const client of clients) client[Symbol.dispose]();
    }
    assert.equal(fx.counters.errors.SessionLimit, 2);
    assert.equal(fx.counters.activeSessions, 3);
    assert.equal(sink.sourcePorts.length, 3);
  });

  Deno.test(`${engine} UDP engine: counts sessions still open when the drain grace ends`, async () => {
    await using echo = startUdpEcho();
    await using fx = await forwarderTo(echo.port);
    using client = udpClient();
    assert.equal((await client.request(new Uint8Array([3]), fx.forwarder.port))[0], 3);
    await fx.forwarder.drain(50);
    assert.equal(fx.counters.errors.DrainTimeout, 1);
  });

  for (const refused of ["SocketLimit", "BufferBudget"] as const) {
    Deno.test(`${engine} UDP engine: refuses new clients beyond the ${refused} budget, gives it back at expiry`, async () => {
      await using echo = startUdpEcho();
      // Room for 2 sessions in the budget under test; the other one is unlimited.
      const sockets = new Budget(refused === "SocketLimit" ? 2 : Infinity);
      const charge = engine === "portable" ? sessionBufferCharge(1500) : BATCHED_SESSION_BYTES;
      const bufferBudget = new Budget(refused === "BufferBudget" ? 2 * charge + 1 : Infinity);
      await using fx = await forwarderTo(echo.port, {
        sockets,
        bufferBudget,
        bufferBytes: 1500,
        readTimeoutSeconds: 1,
      });
      const clients = Array.from({ length: 4 }, () => udpClient());
      try {
        for (const client of clients.slice(0, 2)) {
          assert.equal((await client.request(new Uint8Array([7]), fx.forwarder.port))[0], 7);
        }
        for (const client of clients.slice(2)) {
          await client.send(new Uint8Array(8), fx.forwarder.port);
        }
        await waitUntil("2 clients refused", () => fx.counters.errors[refused] === 2);
        assert.equal(fx.counters.droppedDatagrams, 2);
        assert.equal(fx.counters.activeSessions, 2);
        assert.equal(sockets.inUse, 2, "one socket per session");
        assert.equal(bufferBudget.inUse, 2 * charge, "each session's reservation");
        await fx.advance(1100);
        await waitUntil("the sessions to expire", () => fx.counters.activeSessions === 0);
        assert.equal(sockets.inUse, 0);
        assert.equal(bufferBudget.inUse, 0);
        assert.equal((await clients[3]!.request(new Uint8Array([9]), fx.forwarder.port))[0], 9);
      } finally {
        for (const client of clients) client[Symbol.dispose]();
      }
    });
  }

  Deno.test(`${engine} UDP engine: forwards to an IPv6 target`, async () => {
    await using echo = startUdpEcho({ hostname: "::1" });
    await using fx = await forwarderTo(echo.port, { targetHost: "0:0::1" });
    using client = udpClient();
    const data = patternBytes(1200);
    assert.deepEqual(await client.request(data, fx.forwarder.port), data);
  });

  Deno.test(`${engine} UDP engine: resolves a target name for new sessions`, async () => {
    await using echo = startUdpEcho();
    await using fx = await forwarderTo(echo.port, { targetHost: "localhost" });
    using client = udpClient();
    const data = patternBytes(1000);
    assert.deepEqual(await client.request(data, fx.forwarder.port), data);
    assert.deepEqual(await client.request(data, fx.forwarder.port), data);
    assert.equal(fx.counters.sessionsTotal, 1);
  });

  Deno.test(`${engine} UDP engine: drops and counts datagrams whose target name does not resolve`, async () => {
    // glibc refuses "-" as a host name without sending a query: no DNS traffic leaves the machine.
    await using fx = await forwarderTo(1, { targetHost: "-" });
    using client = udpClient();
    await client.send(new Uint8Array(8), fx.forwarder.port);
    await waitUntil("the lookup error", () => fx.counters.errors.ResolveTargetAddress === 1);
    assert.equal(fx.counters.droppedDatagrams, 1);
    assert.equal(fx.counters.activeSessions, 0);
  });

  Deno.test("UdpForwarder.update() sends new sessions to the new target, old ones stay", async () => {
    await using first = startUdpEcho();
    await using second = startUdpEcho();
    await using fx = await forwarderTo(first.port);
    using old = udpClient();
    await old.request(new Uint8Array(1), fx.forwarder.port);
    fx.forwarder.update({ ...fx.spec, targetPort: second.port });
    using fresh = udpClient();
    await fresh.request(new Uint8Array(1), fx.forwarder.port);
    await old.request(new Uint8Array(1), fx.forwarder.port);
    assert.equal(first.received, 2);
    assert.equal(second.received, 1);
  });

  Deno.test("UdpForwarder.update() applies new timeouts to live sessions", async () => {
    await using echo = startUdpEcho();
    await using fx = await forwarderTo(echo.port, { readTimeoutSeconds: 3600 });
    using client = udpClient();
    await client.request(new Uint8Array(1), fx.forwarder.port);
    assert.equal(fx.counters.activeSessions, 1);
    fx.forwarder.update({ ...fx.spec, readTimeoutSeconds: 1 });
    await fx.advance(1000);
    await waitUntil("the session to expire", () => fx.counters.activeSessions === 0);
  });

  Deno.test("UdpForwarder.drain() serves live sessions, refuses new clients, closes at the end", async () => {
    await using echo = startUdpEcho();
    await using fx = await forwarderTo(echo.port);
    using old = udpClient();
    await old.request(new Uint8Array(1), fx.forwarder.port);
    const draining = fx.forwarder.drain(60_000);
    assert.equal((await old.request(new Uint8Array([7]), fx.forwarder.port))[0], 7);
    using fresh = udpClient();
    await fresh.send(new Uint8Array(1), fx.forwarder.port);
    await waitUntil("the new client dropped", () => fx.counters.droppedDatagrams === 1);
    // Ending the grace period early: a second drain with no grace closes everything.
    await fx.forwarder.drain(0);
    await draining;
    assert.equal(fx.counters.activeSessions, 0);
    assert.equal(echo.sourcePorts.length, 1);
  });
}

Deno.test("UdpForwarder (portable engine) sessions keep their pooled buffers apart and return them", async () => {
  const pool = sharedBufferPool(65_535);
  const before = pool.inUse;
  await using echo = startUdpEcho();
  const fx = await udpForwarderTo("portable", echo.port);
  const clients = Array.from({ length: 20 }, () => udpClient());
  try {
    for (let round = 0; round < 3; round++) {
      const sent = clients.map((_, i) => patternBytes(1000 + i * 10, round * 100 + i));
      const replies = await Promise.all(
        clients.map((client, i) => client.request(sent[i]!, fx.forwarder.port)),
      );
      replies.forEach((reply, i) => assert.deepEqual(reply, sent[i], `client ${i}`));
    }
    assert.equal(pool.inUse, before + 20, "one pooled buffer per session");
  } finally {
    for (const client of clients) client[Symbol.dispose]();
    await fx[Symbol.asyncDispose]();
  }
  assert.equal(pool.inUse, before, "ended sessions give their buffers back");
});

Deno.test("UdpForwarder (portable engine) forwards bufferBytes whole and cuts longer datagrams (counted)", async () => {
  await using echo = startUdpEcho();
  await using fx = await udpForwarderTo("portable", echo.port, { bufferBytes: 100 });
  using client = udpClient();
  const exact = patternBytes(100, 1);
  assert.deepEqual(await client.request(exact, fx.forwarder.port), exact);
  assert.equal(fx.counters.truncatedDatagrams, 0, "a datagram that fits exactly is whole");
  for (const size of [101, 300]) {
    const data = patternBytes(size, size);
    assert.deepEqual(await client.request(data, fx.forwarder.port), data.subarray(0, 100));
  }
  assert.equal(fx.counters.truncatedDatagrams, 2, "the echoes of cut datagrams fit");
  assert.equal(fx.counters.errors.Truncated, 2);
  assert.equal(fx.counters.bytesClientToTarget, 300);
});

Deno.test("UdpForwarder (portable engine) cuts replies longer than bufferBytes (counted)", async () => {
  const long = patternBytes(300, 3);
  await using target = startUdpEcho({ reply: () => long });
  await using fx = await udpForwarderTo("portable", target.port, { bufferBytes: 100 });
  using client = udpClient();
  assert.deepEqual(
    await client.request(new Uint8Array(1), fx.forwarder.port),
    long.subarray(0, 100),
  );
  assert.equal(fx.counters.truncatedDatagrams, 1);
  assert.equal(fx.counters.bytesTargetToClient, 100);
});

Deno.test("UdpForwarder (portable engine) abandons a send to the target stuck past writeTimeoutSeconds", async () => {
  await using echo = startUdpEcho();
  const stalls = new SendStalls(1);
  const fx = await udpForwarderTo("portable", echo.port, {
    writeTimeoutSeconds: 1,
    openUpstream: (hostname) =>
      stalls.wrap(Deno.listenDatagram({ transport: "udp", hostname, port: 0 })),
  });
  try {
    using stuck = udpClient();
    using other = udpClient();
    await stuck.send(new Uint8Array([1]), fx.forwarder.port);
    await waitUntil("the first send to stall", () => stalls.stalled === 1);
    await fx.advance(1000);
    // The receive loop waits on that send; after the timeout a fresh one serves the other client.
    const data = patternBytes(100);
    assert.deepEqual(await other.request(data, fx.forwarder.port, 10_000), data);
    assert.equal(fx.counters.errors.WriteToTarget, 1);
    assert.equal(echo.received, 1, "the stalled datagram never reached the target");
    // The stuck client's session ended: its next datagram opens a new one.
    assert.deepEqual(await stuck.request(data, fx.forwarder.port), data);
    assert.equal(fx.counters.sessionsTotal, 3);
  } finally {
    stalls.release();
    await fx[Symbol.asyncDispose]();
  }
});

Deno.test("UdpForwarder (portable engine) ends a session whose reply is stuck past writeTimeoutSeconds", async () => {
  await using echo = startUdpEcho();
  const stalls = new SendStalls(1);
  const socket = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const fx = await udpForwarderTo("portable", echo.port, {
    writeTimeoutSeconds: 1,
    socket: stalls.wrap(socket),
  });
  try {
    using client = udpClient();
    await client.send(new Uint8Array([1]), fx.forwarder.port);
    await waitUntil("the reply's send to stall", () => stalls.stalled === 1);
    await fx.advance(1000);
    await waitUntil("the write timeout", () => fx.counters.errors.WriteToClient === 1);
    assert.equal(fx.counters.activeSessions, 0, "the session ended");
    const data = patternBytes(100);
    assert.deepEqual(await client.request(data, fx.forwarder.port), data, "a new session answers");
    assert.equal(fx.counters.sessionsTotal, 2);
  } finally {
    stalls.release();
    await fx[Symbol.asyncDispose]();
  }
});

Deno.test("UdpForwarder (portable engine) drops and counts a datagram when no upstream socket can be opened", async () => {
  await using echo = startUdpEcho();
  let fail = true;
  await using fx = await udpForwarderTo("portable", echo.port, {
    // Injected: running out of descriptors or ports is what a real bind failure would take.
    openUpstream: (hostname) => {
      if (fail) throw new Deno.errors.AddrInUse("injected bind failure");
      return Deno.listenDatagram({ transport: "udp", hostname, port: 0 });
    },
  });
  using client = udpClient();
  await client.send(new Uint8Array(8), fx.forwarder.port);
  await waitUntil("the bind error", () => fx.counters.errors.DialUDPTarget === 1);
  assert.equal(fx.counters.droppedDatagrams, 1);
  assert.equal(fx.counters.activeSessions, 0);
  fail = false;
  assert.deepEqual(
    await client.request(new Uint8Array([5]), fx.forwarder.port),
    new Uint8Array([5]),
  );
});

// Where the engines differ: the portable engine cuts a datagram longer than bufferBytes (Deno gives
// no signal but the length), the native ones (epoll or io_uring) see it is longer and drop it (never
// forwarded cut).
for (const engine of ["batched", "io_uring"] as const) {
  Deno.test(`${engine} UDP engine drops datagrams longer than bufferBytes (counted)`, async () => {
    await using echo = startUdpEcho();
    await using fx = await udpForwarderTo(engine, echo.port, { bufferBytes: 100 });
    using client = udpClient();
    const exact = patternBytes(100, 1);
    assert.deepEqual(await client.request(exact, fx.forwarder.port), exact);
    for (const size of [101, 300, 65_507]) await client.send(patternBytes(size), fx.forwarder.port);
    await waitUntil("3 truncated reads", () => fx.counters.truncatedDatagrams === 3);
    assert.deepEqual(await client.request(exact, fx.forwarder.port), exact, "the session goes on");
    assert.equal(fx.counters.errors.Truncated, 3);
    assert.equal(echo.received, 2, "nothing cut reached the target");
    assert.equal(fx.counters.bytesClientToTarget, 200);
  });

  Deno.test(`${engine} UDP engine drops replies longer than bufferBytes (counted)`, async () => {
    const long = patternBytes(300, 3);
    await using target = startUdpEcho({
      reply: (request) => request.length === 1 ? long : request,
    });
    await using fx = await udpForwarderTo(engine, target.port, { bufferBytes: 100 });
    using client = udpClient();
    await client.send(new Uint8Array(1), fx.forwarder.port);
    await waitUntil("the truncated reply", () => fx.counters.truncatedDatagrams === 1);
    const fits = patternBytes(50);
    assert.deepEqual(await client.request(fits, fx.forwarder.port), fits);
    assert.equal(fx.counters.bytesTargetToClient, 50);
  });
}

Deno.test("batched UDP engine counts DialUDPTarget when connect() fails, then recovers", async () => {
  await using echo = startUdpEcho();
  // connect() of a UDP socket to the broadcast address fails (EACCES without SO_BROADCAST): a
  // real failure that sends nothing.
  await using fx = await udpForwarderTo("batched", 9, { targetHost: "255.255.255.255" });
  using client = udpClient();
  await client.send(new Uint8Array(8), fx.forwarder.port);
  await waitUntil("the connect error", () => fx.counters.errors.DialUDPTarget === 1);
  assert.equal(fx.counters.droppedDatagrams, 1);
  assert.equal(fx.counters.activeSessions, 0);
  fx.forwarder.update({ ...fx.spec, targetHost: "127.0.0.1", targetPort: echo.port });
  const reply = await client.request(new Uint8Array([5]), fx.forwarder.port);
  assert.deepEqual(reply, new Uint8Array([5]), "the next session goes to the new target");
});

Deno.test("batched UDP engine with 2 threads shares one port, spreads sessions, caps them together", async () => {
  await using echo = startUdpEcho();
  await using fx = await udpForwarderTo("batched", echo.port, { threads: 2, maxSessions: 40 });
  const clients = Array.from({ length: 50 }, () => udpClient());
  try {
    for (const client of clients.slice(0, 40)) {
      assert.equal((await client.request(new Uint8Array([1]), fx.forwarder.port))[0], 1);
    }
    for (const client of clients.slice(40)) await client.send(new Uint8Array(1), fx.forwarder.port);
    await waitUntil("10 over the cap", () => fx.counters.errors.SessionLimit === 10);
  } finally {
    for (const client of clients) client[Symbol.dispose]();
  }
  assert.equal(fx.counters.activeSessions, 40);
  const block = (fx.counters as SharedUdpCounters).block;
  const perThread = [1, 2].map((row) => block.row(row)[5]!); // sessionsTotal
  assert.ok(perThread.every((sessions) => sessions > 0), `sessions per thread: ${perThread}`);
});

Deno.test("batched UDP engine counts an ICMP port unreachable from the target as TargetUnreachable", async () => {
  // Nothing listens on the target port: the kernel answers each datagram with ICMP "port
  // unreachable", reported on the session's connected socket as ECONNREFUSED.
  await using fx = await udpForwarderTo("batched", freePort("udp"));
  using client = udpClient();
  await client.send(new Uint8Array(8), fx.forwarder.port);
  await waitUntil("the unreachable target", () => fx.counters.errors.TargetUnreachable === 1);
  await client.send(new Uint8Array(8), fx.forwarder.port);
  await waitUntil("again", () => fx.counters.errors.TargetUnreachable === 2);
  assert.equal(fx.counters.errors.ReadFromTarget, 0);
  assert.equal(fx.counters.activeSessions, 1, "the session stays: the target may come back");
});
