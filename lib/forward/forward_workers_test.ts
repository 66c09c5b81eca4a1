import assert from "node:assert/strict";
import {
  echoThrough,
  patternBytes,
  readExactly,
  startTcpEcho,
  writeAll,
} from "../../tests/_support/net_tcp.ts";
import { freePort } from "../../tests/_support/net_ports.ts";
import { startUdpEcho, udpClient } from "../../tests/_support/net_udp.ts";
import { waitUntil, within } from "../../tests/_support/wait.ts";
import { captureAccessRecords } from "../../tests/_support/net_proxy_protocol.ts";
import { ForwardWorkers } from "./forward_workers.ts";
import { newTcpCounters } from "./state.ts";
import { Supervisor } from "./supervisor.ts";

/** Workers load their module from disk when run from source (a compiled binary embeds it). */
const ignore = Deno.permissions.querySync({
  name: "read",
  path: new URL("./forward_worker.ts", import.meta.url),
}).state !== "granted";

async function connectWhenListening(port: number): Promise<Deno.TcpConn> {
  let conn: Deno.TcpConn | undefined;
  await waitUntil(`a listener on ${port}`, async () => {
    conn = await Deno.connect({ hostname: "127.0.0.1", port }).catch(() => undefined);
    return conn !== undefined;
  });
  return conn!;
}

Deno.test({
  name:
    "ForwardWorkers: a worker alone forwards TCP, reports counters and drains (needs --allow-read)",
  ignore,
}, async () => {
  await using echo = startTcpEcho();
  const port = freePort("tcp");
  const workers = new ForwardWorkers(1, { listenAddress: "127.0.0.1" });
  try {
    workers.apply([{
      name: "w/tcp",
      tcp: { listenPort: port, targetPort: echo.port, targetHost: "127.0.0.1" },
    }]);
    const data = patternBytes(300_000, 7);
    {
      using conn = await connectWhenListening(port);
      assert.deepEqual(await echoThrough(conn, data), data);
    }
    const total = newTcpCounters();
    await waitUntil("the worker's counters", () => {
      total.connectionsTotal = 0;
      total.bytesTargetToClient = 0;
      workers.addTcpCounters("w/tcp", total);
      return total.connectionsTotal === 1 && total.bytesTargetToClient === data.length;
    });
  } finally {
    await workers.close(100);
  }
  await assert.rejects(
    Deno.connect({ hostname: "127.0.0.1", port }),
    Deno.errors.ConnectionRefused,
  );
});

Deno.test({
  name:
    "Supervisor with workers forwards on every thread, sums counters, drains (needs --allow-read)",
  ignore,
}, async () => {
  await using echo = startTcpEcho();
  await using udpEcho = startUdpEcho();
  const tcpPort = freePort("tcp");
  const udpPort = freePort("udp");
  const sup = new Supervisor({ listenAddress: "127.0.0.1", workers: 2, drainGraceMs: 100 });
  let closed = false;
  try {
    sup.apply([{
      name: "ns/both",
      tcp: { listenPort: tcpPort, targetPort: echo.port, targetHost: "127.0.0.1" },
      udp: {
        listenPort: udpPort,
        targetPort: udpEcho.port,
        targetHost: "127.0.0.1",
        readTimeoutSeconds: 1, // expires during the drain below
        writeTimeoutSeconds: 5,
      },
    }]);
    (await connectWhenListening(tcpPort)).close(); // counted too
    const count = 30;
    for (let i = 0; i < count; i++) {
      using conn = await Deno.connect({ hostname: "127.0.0.1", port: tcpPort });
      const data = patternBytes(1000 + i, i);
      assert.deepEqual(await echoThrough(conn, data), data, `connection ${i}`);
    }
    using client = udpClient();
    const datagram = patternBytes(1200, 3);
    assert.deepEqual(await client.request(datagram, udpPort), datagram);
    const tcpOf = () => [...sup.counters()].find((c) => c.name === "ns/both")?.tcp;
    await waitUntil(
      "connections of both threads summed",
      () => tcpOf()?.connectionsTotal === count + 1,
    );
    assert.equal(tcpOf()?.activeConnections, 0);
    // A live connection (on whichever thread) finishes during the drain.
    using live = await Deno.connect({ hostname: "127.0.0.1", port: tcpPort });
    await writeAll(live, new Uint8Array([1]));
    await readExactly(live, 1);
    const closing = sup.close({ graceMs: 60_000 });
    const data = patternBytes(100_000, 9);
    assert.deepEqual(await echoThrough(live, data), data);
    live.close();
    await within(closing, 20_000, "close after the last connection ended");
    closed = true;
  } finally {
    if (!closed) await sup.close({ graceMs: 0 });
  }
});

Deno.test({
  name: "ForwardWorkers: access records of a worker's connections reach the main thread's logging",
  ignore,
}, async () => {
  await using capture = await captureAccessRecords();
  await using echo = startTcpEcho();
  const port = freePort("tcp");
  const workers = new ForwardWorkers(1, { listenAddress: "127.0.0.1", accessLog: true });
  try {
    workers.apply([{
      name: "w/logged",
      tcp: { listenPort: port, targetPort: echo.port, targetHost: "127.0.0.1" },
    }]);
    const data = patternBytes(1000, 3);
    {
      using conn = await connectWhenListening(port);
      assert.deepEqual(await echoThrough(conn, data), data);
    }
    await waitUntil(
      "the worker's access record",
      () => capture.records.some((r) => r.bytesClientToTarget === 1000),
    );
    const record = capture.records.find((r) => r.bytesClientToTarget === 1000)!;
    assert.equal(record.forwarder, "w/logged");
    assert.equal(record.bytesTargetToClient, 1000);
    assert.equal(record.endReason, "client_closed");
  } finally {
    await workers.close(0);
  }
});
