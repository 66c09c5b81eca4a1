import assert from "node:assert/strict";
import { openFdCount } from "../../tests/_support/net_fd.ts";
import { freePort } from "../../tests/_support/net_ports.ts";
import { tcpFrom, udpFrom } from "../../tests/_support/net_sources.ts";
import { startTcpEcho } from "../../tests/_support/net_tcp.ts";
import { startUdpEcho } from "../../tests/_support/net_udp.ts";
import { waitUntil, within } from "../../tests/_support/wait.ts";
import { ForwardWorkers } from "./forward_workers.ts";
import { newTcpCounters } from "./state.ts";
import { Supervisor } from "./supervisor.ts";

/** Workers load their module from disk when run from source (a compiled binary embeds it). */
const ignore = Deno.permissions.querySync({
  name: "read",
  path: new URL("./forward_worker.ts", import.meta.url),
}).state !== "granted";

/**
 * `supervisor`, whose disposal also waits until the process is back to `baseline` descriptors: the
 * engine threads close theirs after `close()` returns, and a later test counting descriptors must
 * not see them go.
 */
function settledOnClose(supervisor: Supervisor, baseline: number): Supervisor {
  const close = supervisor.close.bind(supervisor);
  supervisor[Symbol.asyncDispose] = async () => {
    await close();
    await waitUntil("fd count at baseline", async () => (await openFdCount()) <= baseline);
  };
  return supervisor;
}

const POLICY = {
  targetPolicy: { deniedCidrs: ["169.254.0.0/16"], notes: { "169.254.0.0/16": "metadata" } },
  defaultSourceRanges: ["127.0.0.2"],
};

Deno.test("Supervisor: a forbidden target shows in the statuses of both parts", async () => {
  const port = freePort("tcp");
  await using supervisor = new Supervisor({
    listenAddress: "127.0.0.1",
    drainGraceMs: 0,
    ...POLICY,
  });
  supervisor.apply([{
    name: "ns/meta",
    tcp: { listenPort: port, targetHost: "169.254.169.254", targetPort: 80 },
    udp: {
      listenPort: port,
      targetHost: "169.254.169.254",
      targetPort: 53,
      readTimeoutSeconds: 30,
      writeTimeoutSeconds: 5,
    },
  }]);
  await waitUntil(
    "the parts reported forbidden",
    () => supervisor.statuses()[0]?.udp?.phase === "forbidden",
  );
  const forbidden = {
    phase: "forbidden",
    port,
    address: "169.254.169.254",
    rule: "169.254.0.0/16 (metadata) in --denied-target-cidrs",
  };
  assert.deepEqual(supervisor.statuses()[0], { name: "ns/meta", tcp: forbidden, udp: forbidden });
});

Deno.test({
  name: "ForwardWorkers: the target policy and default source ranges hold in worker threads",
  ignore,
  async fn() {
    const port = freePort("tcp");
    const workers = new ForwardWorkers(1, {
      listenAddress: "127.0.0.1",
      drainGraceMs: 0,
      ...POLICY,
    });
    try {
      workers.apply([{
        name: "ns/meta",
        tcp: { listenPort: port, targetHost: "169.254.169.254", targetPort: 80 },
      }]);
      // Only the worker listens: wait until it accepts (127.0.0.1 is outside the default ranges).
      await waitUntil("the worker's listener", async () => {
        const conn = await Deno.connect({ hostname: "127.0.0.1", port }).catch(() => undefined);
        conn?.close();
        return conn !== undefined;
      });
      for (let i = 0; i < 4; i++) {
        await using client = await tcpFrom("127.0.0.2", port);
        await within(client.closed, 2000, `client ${i} closed at once`);
      }
      await waitUntil("the worker's refusals in its counter reports", () => {
        const total = newTcpCounters();
        workers.addTcpCounters("ns/meta", total);
        return total.rejected.TargetForbidden === 4 && total.rejected.SourceNotAllowed >= 1 &&
          total.connectionsTotal === 0;
      });
    } finally {
      await workers.close(0);
    }
  },
});

Deno.test("Supervisor: with the batched UDP engine, a part with sourceRanges is checked by the engine threads", async () => {
  await using echo = startUdpEcho({ hostname: "127.0.0.2" });
  const port = freePort("udp");
  const baseline = await openFdCount();
  await using supervisor = settledOnClose(
    new Supervisor({ listenAddress: "127.0.0.1", drainGraceMs: 0, udpEngine: "batched" }),
    baseline,
  );
  assert.equal(await supervisor.udpEngine(), "batched");
  const udp = {
    listenPort: port,
    targetHost: "127.0.0.2",
    targetPort: echo.port,
    readTimeoutSeconds: 30,
    writeTimeoutSeconds: 5,
  };
  supervisor.apply([{ name: "ns/guarded", udp: { ...udp, sourceRanges: ["127.0.0.2"] } }]);
  await waitUntil("listening", () => supervisor.statuses()[0]?.udp?.phase === "listening");
  using allowed = udpFrom("127.0.0.2");
  assert.equal(await allowed.request("in", port, 5000), "in");
  using refused = udpFrom("127.0.0.3");
  assert.equal(await refused.request("out", port, 300), undefined);
  const counters = () => [...supervisor.counters()][0]?.udp;
  assert.equal(counters()?.rejected.SourceNotAllowed, 1);
  assert.equal(echo.received, 1, "the refused datagram never reached the target");
});

Deno.test("Supervisor: with two batched UDP threads, maxSessionsPerSource stays exact (the part runs on one socket)", async () => {
  await using echo = startUdpEcho();
  const port = freePort("udp");
  const baseline = await openFdCount();
  await using supervisor = settledOnClose(
    new Supervisor({
      listenAddress: "127.0.0.1",
      drainGraceMs: 0,
      udpEngine: "batched",
      workers: 2,
    }),
    baseline,
  );
  assert.equal(await supervisor.udpEngine(), "batched");
  const udp = {
    listenPort: port,
    targetHost: "127.0.0.1",
    targetPort: echo.port,
    readTimeoutSeconds: 30,
    writeTimeoutSeconds: 5,
    maxSessionsPerSource: 1,
  };
  supervisor.apply([{ name: "ns/per-source", udp }]);
  await waitUntil("listening", () => supervisor.statuses()[0]?.udp?.phase === "listening");
  // Eight client ports of one address: SO_REUSEPORT threads would spread them and each admit one.
  const clients = Array.from({ length: 8 }, () => udpFrom("127.0.0.2"));
  try {
    const answered = await Promise.all(clients.map((client) => client.request("q", port, 500)));
    assert.equal(answered.filter((reply) => reply === "q").length, 1);
    const counters = [...supervisor.counters()][0]?.udp;
    assert.equal(counters?.rejected.MaxSessionsPerSource, 7);
    assert.equal(counters?.sessionsTotal, 1);
  } finally {
    for (const client of clients) client[Symbol.dispose]();
  }
});

Deno.test("Supervisor: the splice TCP engine threads apply the target policy and default source ranges", async () => {
  const port = freePort("tcp");
  const baseline = await openFdCount();
  await using supervisor = settledOnClose(
    new Supervisor({ listenAddress: "127.0.0.1", drainGraceMs: 0, tcpEngine: "splice", ...POLICY }),
    baseline,
  );
  assert.equal(await supervisor.tcpEngine(), "splice");
  supervisor.apply([{
    name: "ns/meta",
    tcp: { listenPort: port, targetHost: "169.254.169.254", targetPort: 80 },
  }]);
  await waitUntil("forbidden", () => supervisor.statuses()[0]?.tcp?.phase === "forbidden");
  await using client = await tcpFrom("127.0.0.2", port);
  await within(client.closed, 2000, "closed at once, nothing dialled");
  await using outsider = await tcpFrom("127.0.0.3", port);
  await within(outsider.closed, 2000, "127.0.0.3 is outside --default-source-ranges");
  const tcp = () => [...supervisor.counters()][0]?.tcp;
  await waitUntil(
    "both refusals counted",
    () => tcp()?.rejected.TargetForbidden === 1 && tcp()?.rejected.SourceNotAllowed === 1,
  );
});

Deno.test("Supervisor: with two splice TCP threads, maxConnectionsPerSource stays exact (the part runs portable)", async () => {
  await using echo = startTcpEcho();
  const port = freePort("tcp");
  const baseline = await openFdCount();
  await using supervisor = settledOnClose(
    new Supervisor({
      listenAddress: "127.0.0.1",
      drainGraceMs: 0,
      tcpEngine: "splice",
      workers: 2,
    }),
    baseline,
  );
  assert.equal(await supervisor.tcpEngine(), "splice");
  const tcp = {
    listenPort: port,
    targetHost: "127.0.0.1",
    targetPort: echo.port,
    maxConnectionsPerSource: 1,
  };
  supervisor.apply([{ name: "ns/per-source", tcp }]);
  await waitUntil("listening", () => supervisor.statuses()[0]?.tcp?.phase === "listening");
  // Eight connections of one address: SO_REUSEPORT threads would spread them and each admit one.
  const clients = await Promise.all(Array.from({ length: 8 }, () => tcpFrom("127.0.0.2", port)));
  try {
    const answers = await Promise.all(clients.map((client) => client.echo("q", 1000)));
    assert.equal(answers.filter((answer) => answer === "q").length, 1);
    const counters = [...supervisor.counters()][0]?.tcp;
    assert.equal(counters?.rejected.MaxConnectionsPerSource, 7);
  } finally {
    await Promise.all(clients.map((client) => client.close()));
  }
});
