import assert from "node:assert/strict";
import {
  captureAccessRecords,
  parseV2Independently,
  startRecordingTcpServer,
} from "../../tests/_support/net_proxy_protocol.ts";
import { freePort } from "../../tests/_support/net_ports.ts";
import { echoThrough, patternBytes, startTcpEcho, writeAll } from "../../tests/_support/net_tcp.ts";
import { waitUntil, within } from "../../tests/_support/wait.ts";
import type { TcpSpec } from "../spec.ts";
import { parseProxyHeader } from "./proxy_protocol/decode.ts";
import { encodeProxyHeader, proxyEndpoints } from "./proxy_protocol/encode.ts";
import {
  TCP_ENGINES,
  type TcpFixtureOptions,
  tcpForwarderTo,
} from "../../tests/_support/tcp_engines.ts";
import type { TcpEngineKind } from "./tcp_engine_choice.ts";
import { Supervisor } from "./supervisor.ts";

const encoder = new TextEncoder();

/** A forwarder on `engine` on 127.0.0.1 with `spec` fields, named games/lobby; drained on dispose. */
function forwarder(
  engine: TcpEngineKind,
  spec: Partial<TcpSpec> & { targetPort: number },
  options: Omit<TcpFixtureOptions, "spec"> = {},
) {
  return tcpForwarderTo(engine, spec.targetPort, { name: "games/lobby", ...options, spec });
}

/** Reads until EOF or reset; true when the peer closed. */
async function closedByPeer(conn: Deno.Conn): Promise<boolean> {
  const buffer = new Uint8Array(1024);
  for (;;) {
    const n = await within(conn.read(buffer).catch(() => null), 5000, "close");
    if (n === null) return true;
  }
}

for (
  const [engine, version, hostname] of TCP_ENGINES.flatMap((engine) =>
    (["v1", "v2"] as const).flatMap((version) =>
      ["127.0.0.1", "::1"].map((hostname) => [engine, version, hostname] as const)
    )
  )
) {
  Deno.test(`${engine} TCP engine, ${version} over ${hostname}: the header, then the client's bytes unchanged`, async () => {
    await using target = startRecordingTcpServer({ hostname });
    await using fx = await tcpForwarderTo(engine, target.port, {
      targetHost: hostname,
      listenAddress: hostname,
      spec: { proxyProtocol: version },
    });
    const payload = patternBytes(300_000, 7);
    const conn = await fx.connect();
    await echoThrough(conn, payload);
    conn.close();
    await waitUntil("target saw EOF", () => target.received.length === 1);
    const bytes = target.received[0]!;
    const header = parseProxyHeader(bytes);
    assert.equal(header.kind, "accepted");
    if (header.kind !== "accepted") return;
    assert.equal(header.version, version === "v1" ? 1 : 2);
    assert.deepEqual(header.source, { hostname, port: conn.localAddr.port });
    assert.deepEqual(header.destination, { hostname, port: fx.forwarder.port });
    assert.deepEqual(bytes.subarray(header.length), payload, "byte-exact after the header");
    if (version === "v2") {
      const independent = parseV2Independently(bytes);
      assert.equal(independent.familyTransport, hostname === "::1" ? 0x21 : 0x11, "STREAM");
      assert.equal(independent.sourcePort, conn.localAddr.port);
    } else {
      const family = hostname === "::1" ? "TCP6" : "TCP4";
      const line =
        `PROXY ${family} ${hostname} ${hostname} ${conn.localAddr.port} ${fx.forwarder.port}\r\n`;
      assert.equal(new TextDecoder().decode(bytes.subarray(0, header.length)), line);
    }
    assert.equal(fx.counters.bytesClientToTarget, payload.length, "header bytes not counted");
  });
}

for (const engine of TCP_ENGINES) {
  Deno.test(`${engine} TCP engine, accepted PROXY header: the carried address is the client's for the header we send and the access record`, async () => {
    await using capture = await captureAccessRecords();
    await using target = startRecordingTcpServer();
    await using fx = await forwarder(engine, {
      targetPort: target.port,
      proxyProtocol: "v2",
      acceptProxyProtocol: true,
    }, { accessLog: true });
    const payload = patternBytes(70_000, 3);
    // v1 header and the first client bytes in one segment: the bytes after the header go on first.
    const v1 = encoder.encode("PROXY TCP4 203.0.113.7 198.51.100.1 40000 443\r\n");
    const first = new Uint8Array([...v1, ...payload.subarray(0, 1000)]);
    const conn = await fx.connect();
    await writeAll(conn, first);
    await writeAll(conn, payload.subarray(1000));
    await conn.closeWrite();
    assert.ok(await closedByPeer(conn));
    conn.close();
    // v2 header (IPv6 client) trickled byte by byte.
    const v2 = encodeProxyHeader(
      "v2",
      "stream",
      proxyEndpoints({ hostname: "2001:db8::42", port: 5 }, { hostname: "2001:db8::1", port: 443 }),
    );
    const slow = await fx.connect();
    for (const byte of v2) await writeAll(slow, Uint8Array.of(byte));
    await writeAll(slow, encoder.encode("hello"));
    await slow.closeWrite();
    assert.ok(await closedByPeer(slow));
    slow.close();
    await waitUntil(
      "both connections ended",
      () => target.received.length === 2 && capture.records.length === 2,
    );
    const [a, b] = target.received.map((bytes) => parseProxyHeader(bytes));
    assert.deepEqual(a?.kind === "accepted" && a.source, { hostname: "203.0.113.7", port: 40000 });
    assert.deepEqual(target.received[0]!.subarray(28), payload, "byte-exact after our header");
    assert.deepEqual(b?.kind === "accepted" && b.source, { hostname: "2001:db8::42", port: 5 });
    assert.equal(new TextDecoder().decode(target.received[1]!.subarray(52)), "hello");

    const record = capture.records[0]!;
    assert.equal(typeof record.startTime, "string");
    assert.equal(typeof record.durationMs, "number");
    assert.equal(typeof record.targetAddress, "string");
    const { startTime: _s, durationMs: _d, ...fixed } = record;
    assert.deepEqual(fixed, {
      forwarder: "games/lobby",
      namespace: "games",
      name: "lobby",
      protocol: "tcp",
      clientAddress: "203.0.113.7",
      clientPort: 40000,
      peerAddress: "127.0.0.1",
      peerPort: (record as { peerPort: number }).peerPort,
      listenPort: fx.forwarder.port,
      targetHost: "127.0.0.1",
      targetAddress: "127.0.0.1",
      targetPort: target.port,
      bytesClientToTarget: payload.length,
      bytesTargetToClient: 0,
      endReason: "client_closed",
    });
    assert.equal(capture.records[1]!.clientAddress, "2001:db8::42");
    assert.equal(capture.records[1]!.bytesClientToTarget, 5);
  });
}

for (const engine of TCP_ENGINES) {
  Deno.test(`${engine} TCP engine, refused PROXY headers close the client, never reach the target, and are counted by reason`, async () => {
    await using capture = await captureAccessRecords();
    await using target = startRecordingTcpServer();
    await using fx = await forwarder(engine, {
      targetPort: target.port,
      acceptProxyProtocol: true,
      accessLog: true,
    }, { proxyHeaderTimeoutMs: 300 });
    const cases: Array<[string, Uint8Array | undefined, "missing" | "malformed" | "timeout"]> = [
      ["plain HTTP", encoder.encode("GET / HTTP/1.0\r\n\r\n"), "missing"],
      ["closed without a byte", new Uint8Array(0), "missing"],
      ["v1 bad address", encoder.encode("PROXY TCP4 1.2.3.999 1.2.3.4 1 2\r\nx"), "malformed"],
      ["v1 without CRLF", encoder.encode(`PROXY TCP4 ${"9".repeat(120)}`), "malformed"],
      [
        "v2 version 3",
        Uint8Array.of(13, 10, 13, 10, 0, 13, 10, 81, 85, 73, 84, 10, 0x31, 0x11, 0, 12),
        "malformed",
      ],
      ["incomplete, then closed", encoder.encode("PROXY TCP4 1.2.3.4"), "malformed"],
      ["slow", undefined, "timeout"],
    ];
    for (const [name, bytes, fault] of cases) {
      const before = { ...fx.counters.errors };
      const conn = await fx.connect();
      if (bytes === undefined) {
        await writeAll(conn, encoder.encode("PROXY TCP4 1.2.3.4 "));
      } else {
        await writeAll(conn, bytes);
        if (name !== "v1 bad address" && name !== "v1 without CRLF" && !name.startsWith("v2")) {
          await conn.closeWrite();
        }
      }
      assert.ok(await closedByPeer(conn), name);
      conn.close();
      const type = fault === "missing"
        ? "ProxyHeaderMissing"
        : fault === "malformed"
        ? "ProxyHeaderMalformed"
        : "ProxyHeaderTimeout";
      await waitUntil(name, () => fx.counters.errors[type] === before[type] + 1);
      const record = capture.records.at(-1)!;
      assert.equal(record.endReason, "refused", name);
      assert.match(String(record.endDetail), new RegExp(`^PROXY header ${fault}: `), name);
    }
    assert.equal(target.accepted, 0, "the target was never dialled");
    assert.equal(capture.records.length, cases.length);
    assert.equal(fx.counters.activeConnections, 0);
  });
}

for (const engine of TCP_ENGINES) {
  Deno.test(`${engine} TCP engine: access records say why: target closed, dial failed, idle timeout, drained, replaced`, async () => {
    await using capture = await captureAccessRecords();
    const lastRecord = async (what: string, count: number) => {
      await waitUntil(what, () => capture.records.length === count);
      return capture.records[count - 1]!;
    };
    {
      // The target answers and closes first.
      await using target = startRecordingTcpServer();
      await using fx = await forwarder(engine, { targetPort: target.port, accessLog: true });
      const conn = await fx.connect();
      await writeAll(conn, encoder.encode("x"));
      await conn.closeWrite();
      assert.ok(await closedByPeer(conn));
      conn.close();
    }
    const first = await lastRecord("first", 1);
    assert.equal(first.endReason, "client_closed");
    assert.equal(first.clientAddress, "127.0.0.1");
    assert.ok(
      !("peerAddress" in first) && !("peerPort" in first),
      "no PROXY header, no peer fields",
    );
    {
      const closedPort = freePort("tcp");
      await using fx = await forwarder(engine, { targetPort: closedPort, accessLog: true });
      const conn = await fx.connect();
      assert.ok(await closedByPeer(conn));
      conn.close();
      const record = await lastRecord("dial failed", 2);
      assert.equal(record.endReason, "dial_failed");
      assert.match(String(record.endDetail), /^DialServerTarget: /);
      assert.equal(record.targetAddress, undefined);
    }
    {
      await using echo = startTcpEcho();
      await using fx = await forwarder(engine, { targetPort: echo.port }, {
        accessLog: true,
        idleTimeoutMs: 100,
      });
      const conn = await fx.connect();
      assert.ok(await closedByPeer(conn));
      conn.close();
      assert.equal((await lastRecord("idle", 3)).endReason, "idle_timeout");
      const open = await fx.connect();
      const open2 = await fx.connect();
      await writeAll(open, encoder.encode("a"));
      await writeAll(open2, encoder.encode("b"));
      await waitUntil("echoed", () => fx.counters.bytesTargetToClient === 2);
      await fx.forwarder.drain(0, "replaced");
      open.close();
      open2.close();
      const records = [await lastRecord("replaced", 5), capture.records[3]!];
      assert.deepEqual(records.map((r) => r.endReason), ["replaced", "replaced"]);
    }
    {
      await using echo = startTcpEcho();
      await using fx = await forwarder(engine, { targetPort: echo.port, accessLog: false }, {
        accessLog: true,
      });
      const conn = await fx.connect();
      await writeAll(conn, encoder.encode("a"));
      await waitUntil("echoed", () => fx.counters.bytesTargetToClient === 1);
      await fx.forwarder.drain(0);
      conn.close();
    }
    assert.equal(capture.records.length, 5, "spec.accessLog false wins over the default");
    {
      await using target = startRecordingTcpServer();
      await using fx = await forwarder(engine, { targetPort: target.port }, {
        accessLog: true,
      });
      const conn = await fx.connect();
      await writeAll(conn, encoder.encode("abc"));
      await waitUntil("forwarded", () => fx.counters.bytesClientToTarget === 3);
      await fx.forwarder.drain(0);
      conn.close();
      const record = await lastRecord("drained", 6);
      assert.equal(record.endReason, "drained");
      assert.equal(record.bytesClientToTarget, 3);
    }
  });

  Deno.test(`${engine} TCP engine: target closing first is target_closed; sampling keeps about the given share`, async () => {
    await using capture = await captureAccessRecords();
    {
      // A target that closes at once.
      const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      const accepting = (async () => {
        for await (const conn of listener) conn.close();
      })();
      await using fx = await forwarder(engine, {
        targetPort: listener.addr.port,
        accessLog: true,
      });
      const conn = await fx.connect();
      assert.ok(await closedByPeer(conn));
      conn.close();
      await waitUntil("record", () => capture.records.length === 1);
      assert.equal(capture.records[0]!.endReason, "target_closed");
      listener.close();
      await accepting.catch(() => {});
    }
    await using echo = startTcpEcho();
    await using fx = await forwarder(engine, { targetPort: echo.port }, {
      accessLog: true,
      accessLogSampleRate: 0.25,
    });
    for (let i = 0; i < 200; i++) {
      const conn = await fx.connect();
      await echoThrough(conn, Uint8Array.of(i));
      conn.close();
    }
    await waitUntil("all closed", () => fx.counters.activeConnections === 0);
    const sampled = capture.records.length - 1;
    assert.ok(sampled > 20 && sampled < 90, `${sampled} of 200 sampled at 0.25`);
  });
}

Deno.test("with the splice TCP engine, PROXY headers and --access-log apply on its threads", async () => {
  await using capture = await captureAccessRecords();
  await using target = startRecordingTcpServer();
  await using sup = new Supervisor({
    listenAddress: "127.0.0.1",
    tcpEngine: "splice",
    drainGraceMs: 0,
    accessLog: true,
  });
  assert.equal(await sup.tcpEngine(), "splice");
  const port = freePort("tcp");
  const tcp = { listenPort: port, targetHost: "127.0.0.1", targetPort: target.port };
  /** Applies `spec`, then sends "hi" through once the part listens. */
  const through = async (spec: Partial<TcpSpec>) => {
    sup.apply([{ name: "ns/switch", tcp: { ...tcp, ...spec } }]);
    await sup.settled();
    await waitUntil("listening", () => sup.statuses()[0]?.tcp?.phase === "listening");
    const count = target.received.length;
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    await echoThrough(conn, encoder.encode("hi"));
    conn.close();
    await waitUntil("the target's EOF", () => target.received.length === count + 1 || undefined);
    return target.received.at(-1)!;
  };
  assert.equal(new TextDecoder().decode(await through({})), "hi");
  await waitUntil("the access record (--access-log)", () => capture.records.length === 1);
  const headed = await through({ proxyProtocol: "v1" });
  assert.match(
    new TextDecoder().decode(headed),
    /^PROXY TCP4 127\.0\.0\.1 127\.0\.0\.1 \d+ \d+\r\nhi$/,
  );
});

for (const engine of TCP_ENGINES) {
  Deno.test(`${engine} TCP engine, accepted PROXY header: source ranges and per-source limits check the carried address; refused clients are never dialled`, async () => {
    await using capture = await captureAccessRecords();
    await using target = startRecordingTcpServer();
    await using fx = await forwarder(engine, {
      targetPort: target.port,
      acceptProxyProtocol: true,
      accessLog: true,
      sourceRanges: ["203.0.113.0/24"],
      maxConnectionsPerSource: 1,
    });
    const send = async (client: string) => {
      const conn = await fx.connect();
      await writeAll(conn, encoder.encode(`PROXY TCP4 ${client} 198.51.100.1 40000 443\r\nhi`));
      return conn;
    };
    // The socket peer (127.0.0.1) is outside the range: only the carried address admits it.
    const held = await send("203.0.113.7");
    await waitUntil("the allowed client reached the target", () => target.accepted === 1);
    const outside = await send("198.51.100.9");
    assert.ok(await closedByPeer(outside));
    outside.close();
    const second = await send("203.0.113.7");
    assert.ok(await closedByPeer(second));
    second.close();
    assert.equal(fx.counters.rejected.SourceNotAllowed, 1);
    assert.equal(fx.counters.rejected.MaxConnectionsPerSource, 1);
    await waitUntil("two refusals recorded", () => capture.records.length === 2);
    assert.deepEqual(
      capture.records.map((record) => [record.clientAddress, record.endReason, record.endDetail]),
      [
        ["198.51.100.9", "refused", "SourceNotAllowed"],
        ["203.0.113.7", "refused", "MaxConnectionsPerSource"],
      ],
    );
    await held.closeWrite();
    assert.ok(await closedByPeer(held));
    held.close();
    // The closed connection gave its place back: the same client is admitted again.
    const again = await send("203.0.113.7");
    await waitUntil("admitted again", () => target.accepted === 2);
    await again.closeWrite();
    assert.ok(await closedByPeer(again));
    again.close();
    await waitUntil("all closed", () => fx.counters.activeConnections === 0);
    assert.equal(target.accepted, 2, "refused clients were never dialled");
  });
}

for (const engine of TCP_ENGINES) {
  Deno.test(`${engine} TCP engine: a client still sending its PROXY header when the listener closes is aborted and recorded with the cause`, async () => {
    await using capture = await captureAccessRecords();
    await using target = startRecordingTcpServer();
    await using fx = await forwarder(engine, {
      targetPort: target.port,
      acceptProxyProtocol: true,
      accessLog: true,
    });
    const conn = await fx.connect();
    await writeAll(conn, encoder.encode("PROXY TCP4 203.0.113.7 "));
    await waitUntil("the client is counted", () => fx.counters.activeConnections === 1);
    await fx.forwarder.drain(0, "removed");
    assert.ok(await closedByPeer(conn));
    conn.close();
    await waitUntil("its record", () => capture.records.length === 1);
    assert.equal(capture.records[0]!.endReason, "removed");
    assert.equal(fx.counters.errors.DrainTimeout, 1);
    assert.equal(fx.counters.activeConnections, 0);
    assert.equal(target.accepted, 0, "never dialled");
  });
}

for (const engine of TCP_ENGINES) {
  Deno.test(`${engine} TCP engine: on a dual-stack listener an IPv4 client's header is TCP4, and sourceRanges see it as IPv4`, async () => {
    await using target = startRecordingTcpServer();
    await using fx = await forwarder(engine, {
      targetPort: target.port,
      targetHost: "127.0.0.1",
      proxyProtocol: "v1",
      sourceRanges: ["127.0.0.0/8"],
    }, { listenAddress: "::" });
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: fx.forwarder.port });
    await echoThrough(conn, encoder.encode("v4"));
    conn.close();
    await waitUntil("target saw EOF", () => target.received.length === 1);
    assert.equal(
      new TextDecoder().decode(target.received[0]!),
      `PROXY TCP4 127.0.0.1 127.0.0.1 ${conn.localAddr.port} ${fx.forwarder.port}\r\nv4`,
    );
    assert.equal(fx.counters.rejected.SourceNotAllowed, 0);
  });
}
