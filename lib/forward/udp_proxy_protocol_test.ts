import assert from "node:assert/strict";
import {
  captureAccessRecords,
  sha256,
  startProxyV2UdpTarget,
} from "../../tests/_support/net_proxy_protocol.ts";
import { patternBytes } from "../../tests/_support/net_tcp.ts";
import { startUdpEcho, udpClient } from "../../tests/_support/net_udp.ts";
import { waitUntil } from "../../tests/_support/wait.ts";
import type { UdpSpec } from "../spec.ts";
import { newUdpCounters } from "./state.ts";
import { UdpForwarder, type UdpForwarderOptions } from "./udp_forwarder.ts";
import { Supervisor } from "./supervisor.ts";
import { UDP_ENGINES, udpForwarderTo } from "../../tests/_support/udp_engines.ts";
import { freePort } from "../../tests/_support/net_ports.ts";

const decoder = new TextDecoder();

/** A forwarder on `hostname` (default 127.0.0.1) with `spec` fields, drained on dispose. */
function forwarder(
  spec: Partial<UdpSpec> & { targetPort: number },
  options: Partial<UdpForwarderOptions> & { hostname?: string } = {},
) {
  const counters = newUdpCounters();
  const hostname = options.hostname ?? "127.0.0.1";
  const socket = Deno.listenDatagram({ transport: "udp", hostname, port: 0 });
  const forwarder = new UdpForwarder(socket, {
    name: "games/voice",
    counters,
    maxSessions: 100,
    bufferBytes: 65_535,
    ...options,
    spec: {
      listenPort: 0,
      targetHost: hostname,
      readTimeoutSeconds: 30,
      writeTimeoutSeconds: 5,
      ...spec,
    },
  });
  return { forwarder, counters, [Symbol.asyncDispose]: () => forwarder.drain(0) };
}

for (
  const [engine, hostname, shown, headerBytes, maxPayload] of UDP_ENGINES.flatMap((engine) =>
    [
      [engine, "127.0.0.1", "127.0.0.1", 28, 65_507],
      [engine, "::1", "0:0:0:0:0:0:0:1", 52, 65_527],
    ] as const
  )
) {
  Deno.test(`${engine} UDP engine, v2 over ${hostname}: a header before every datagram, up to ${maxPayload} bytes with it`, async () => {
    await using target = startProxyV2UdpTarget(hostname);
    await using fx = await udpForwarderTo(engine, target.port, {
      targetHost: hostname,
      listen: hostname,
      spec: { proxyProtocol: "v2" },
    });
    using client = udpClient(hostname);
    const clientPort = (client.socket.addr as Deno.NetAddr).port;
    for (const size of [0, 1, 1400, maxPayload - headerBytes]) {
      const payload = patternBytes(size, size + 3);
      const reply = await client.request(payload, fx.forwarder.port);
      assert.equal(
        decoder.decode(reply),
        `${shown} ${clientPort} ${size} ${await sha256(payload)}`,
        `${size} bytes: the target read our address and the exact payload; its reply came back unchanged`,
      );
    }
    assert.equal(fx.counters.bytesClientToTarget, 1 + 1400 + maxPayload - headerBytes);
    // One byte more no longer fits with the header: dropped and counted, never cut.
    const received = target.received;
    await client.send(patternBytes(maxPayload - headerBytes + 1), fx.forwarder.port);
    await waitUntil("counted", () => fx.counters.errors.ProxyHeaderTooLarge === 1);
    assert.equal(fx.counters.droppedDatagrams, 1);
    // The next datagram still goes through, and the oversized one never arrived.
    const after = await client.request(Uint8Array.of(7), fx.forwarder.port);
    assert.match(decoder.decode(after), new RegExp(`^${shown} ${clientPort} 1 `));
    assert.equal(target.received, received + 1);
    assert.equal(fx.counters.datagramsClientToTarget, 5);
  });
}

Deno.test("UDP without proxyProtocol sends no header (the same target calls it bad)", async () => {
  await using target = startProxyV2UdpTarget();
  await using fx = forwarder({ targetPort: target.port });
  using client = udpClient();
  const reply = await client.request(new TextEncoder().encode("plain"), fx.forwarder.port);
  assert.equal(decoder.decode(reply), "bad: no v2 signature");
});

for (const engine of UDP_ENGINES) {
  Deno.test(`${engine} UDP engine: access records of datagrams and bytes each way, idle timeout, drained`, async () => {
    await using capture = await captureAccessRecords();
    await using echo = startUdpEcho();
    // The portable engine on the real clock (the fixture's is moved by hand).
    await using fx = engine === "portable"
      ? forwarder({ targetPort: echo.port, readTimeoutSeconds: 1, accessLog: true })
      : await udpForwarderTo(engine, echo.port, {
        name: "games/voice",
        readTimeoutSeconds: 1,
        spec: { accessLog: true },
      });
    using client = udpClient();
    await client.request(patternBytes(10), fx.forwarder.port);
    await client.request(patternBytes(20), fx.forwarder.port);
    await waitUntil("idle session ended", () => capture.records.length === 1, { timeoutMs: 5000 });
    const record = capture.records[0]!;
    const { startTime, durationMs, ...fixed } = record;
    assert.ok(!Number.isNaN(Date.parse(String(startTime))));
    assert.ok((durationMs as number) >= 1000, `lasted ${durationMs} ms, past the read timeout`);
    assert.deepEqual(fixed, {
      forwarder: "games/voice",
      namespace: "games",
      name: "voice",
      protocol: "udp",
      clientAddress: "127.0.0.1",
      clientPort: (client.socket.addr as Deno.NetAddr).port,
      listenPort: fx.forwarder.port,
      targetHost: "127.0.0.1",
      targetAddress: "127.0.0.1",
      targetPort: echo.port,
      bytesClientToTarget: 30,
      bytesTargetToClient: 30,
      datagramsClientToTarget: 2,
      datagramsTargetToClient: 2,
      endReason: "idle_timeout",
    });
    await client.request(patternBytes(5), fx.forwarder.port);
    await fx.forwarder.drain(0);
    await waitUntil("drained session", () => capture.records.length === 2);
    assert.equal(capture.records[1]!.endReason, "drained");
    assert.equal(capture.records[1]!.datagramsTargetToClient, 1);
  });
}

Deno.test("with the batched UDP engine, turning PROXY headers on and off applies to new sessions", async () => {
  await using target = startProxyV2UdpTarget();
  await using sup = new Supervisor({
    listenAddress: "127.0.0.1",
    udpEngine: "batched",
    drainGraceMs: 0,
  });
  assert.equal(await sup.udpEngine(), "batched");
  const port = freePort("udp");
  const udp = {
    listenPort: port,
    targetHost: "127.0.0.1",
    readTimeoutSeconds: 30,
    writeTimeoutSeconds: 5,
  };
  /** Applies `spec` and sends one datagram from a fresh client once the part listens. */
  const exchange = async (spec: Partial<UdpSpec> & { targetPort: number }) => {
    sup.apply([{ name: "ns/switch", udp: { ...udp, ...spec } }]);
    await waitUntil("listening", () => sup.statuses()[0]?.udp?.phase === "listening");
    using client = udpClient();
    const reply = await client.request(Uint8Array.of(1, 2, 3), port);
    return { text: decoder.decode(reply), clientPort: (client.socket.addr as Deno.NetAddr).port };
  };
  assert.equal((await exchange({ targetPort: target.port })).text, "bad: no v2 signature");
  const proxied = await exchange({ targetPort: target.port, proxyProtocol: "v2" });
  assert.match(proxied.text, new RegExp(`^127\\.0\\.0\\.1 ${proxied.clientPort} 3 `));
  assert.equal((await exchange({ targetPort: target.port })).text, "bad: no v2 signature");
});
