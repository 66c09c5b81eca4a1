import assert from "node:assert/strict";
import { startTcpEcho } from "../../tests/_support/net_tcp.ts";
import { tcpFrom } from "../../tests/_support/net_sources.ts";
import { waitUntil, within } from "../../tests/_support/wait.ts";
import type { TcpSpec } from "../spec.ts";
import { operatorTargetDefaults } from "./policy/target_policy.ts";
import { recordingPolicy, type TestPolicy } from "../../tests/_support/policy_options.ts";
import { newTcpCounters, type TcpCounters } from "./state.ts";
import { TCP_ENGINES, tcpForwarderTo } from "../../tests/_support/tcp_engines.ts";
import type { TcpEngineKind } from "./tcp_engine_choice.ts";
import { type TcpAddress, TcpConnection } from "./tcp_connection.ts";
import { DialDeadlines } from "./dial_deadlines.ts";

/** A forwarder on `engine` listening on `listen` with `spec` and the policy options; drained on dispose. */
async function policyForwarder(
  engine: TcpEngineKind,
  spec: Omit<TcpSpec, "listenPort">,
  test: TestPolicy = {},
) {
  const { options, reports } = recordingPolicy(test);
  const fx = await tcpForwarderTo(engine, spec.targetPort, {
    ...(test.listen !== undefined && { listenAddress: test.listen }),
    spec,
    policy: options,
    name: "test/policy",
  });
  return {
    forwarder: fx.forwarder,
    counters: fx.counters,
    reports,
    port: fx.forwarder.port,
    [Symbol.asyncDispose]: () => fx[Symbol.asyncDispose](),
  };
}

/** Dial errors of any kind (a refused client must cause none: nothing is dialled). */
function dialErrors(counters: TcpCounters): number {
  const { DialServerTarget, DialTimeout, ResolveTargetAddress } = counters.errors;
  return DialServerTarget + DialTimeout + ResolveTargetAddress;
}

for (const engine of TCP_ENGINES) {
  Deno.test(`${engine} TCP engine: a source outside sourceRanges is closed at accept, the target never sees it`, async () => {
    await using echo = startTcpEcho();
    await using fx = await policyForwarder(engine, {
      targetHost: "127.0.0.1",
      targetPort: echo.port,
      sourceRanges: ["127.0.0.2/32", "::1"],
    });
    await using allowed = await tcpFrom("127.0.0.2", fx.port);
    assert.equal(await allowed.echo("hello"), "hello");
    await using refused = await tcpFrom("127.0.0.3", fx.port);
    assert.equal(await refused.echo("hello", 2000), "");
    await within(refused.closed, 2000, "the refused client is closed");
    assert.equal(echo.accepted, 1, "only the allowed client reached the target");
    assert.equal(fx.counters.rejected.SourceNotAllowed, 1);
    assert.equal(fx.counters.connectionsTotal, 1, "a refused connection is not forwarded");
    assert.equal(dialErrors(fx.counters), 0);
  });

  Deno.test(`${engine} TCP engine: --default-source-ranges applies to specs without their own`, async () => {
    await using echo = startTcpEcho();
    await using fx = await policyForwarder(engine, {
      targetHost: "127.0.0.1",
      targetPort: echo.port,
    }, { defaultSourceRanges: ["127.0.0.3"] });
    await using refused = await tcpFrom("127.0.0.2", fx.port);
    await within(refused.closed, 2000, "closed");
    await using allowed = await tcpFrom("127.0.0.3", fx.port);
    assert.equal(await allowed.echo("x"), "x");
    // The spec's own list replaces the default.
    fx.forwarder.update({
      listenPort: 0,
      targetHost: "127.0.0.1",
      targetPort: echo.port,
      sourceRanges: ["127.0.0.2"],
    });
    await using now = await tcpFrom("127.0.0.2", fx.port);
    assert.equal(await now.echo("y"), "y");
    assert.equal(fx.counters.rejected.SourceNotAllowed, 1);
  });

  Deno.test(`${engine} TCP engine: an IPv6 client is checked against IPv6 ranges`, async () => {
    await using echo = startTcpEcho({ hostname: "::1" });
    await using fx = await policyForwarder(engine, {
      targetHost: "::1",
      targetPort: echo.port,
      sourceRanges: ["::1/128"],
    }, { listen: "::1" });
    await using allowed = await tcpFrom("::1", fx.port);
    assert.equal(await allowed.echo("v6"), "v6");
    fx.forwarder.update({
      listenPort: 0,
      targetHost: "::1",
      targetPort: echo.port,
      sourceRanges: ["127.0.0.0/8", "fd00::/8"],
    });
    await using refused = await tcpFrom("::1", fx.port);
    await within(refused.closed, 2000, "closed");
    assert.equal(fx.counters.rejected.SourceNotAllowed, 1);
  });

  Deno.test(`${engine} TCP engine: maxConnections and maxConnectionsPerSource close extra clients at once; live ones keep going`, async () => {
    await using echo = startTcpEcho();
    await using fx = await policyForwarder(engine, {
      targetHost: "127.0.0.1",
      targetPort: echo.port,
      maxConnections: 2,
      maxConnectionsPerSource: 1,
    });
    await using a = await tcpFrom("127.0.0.2", fx.port);
    assert.equal(await a.echo("a"), "a");
    await using a2 = await tcpFrom("127.0.0.2", fx.port);
    await within(a2.closed, 2000, "a second connection of 127.0.0.2 is closed");
    await using b = await tcpFrom("127.0.0.3", fx.port);
    assert.equal(await b.echo("b"), "b");
    await using c = await tcpFrom("127.0.0.4", fx.port);
    await within(c.closed, 2000, "a third connection in total is closed");
    assert.equal(await a.echo("still"), "still", "the live connections were not disturbed");
    assert.equal(fx.counters.rejected.MaxConnectionsPerSource, 1);
    assert.equal(fx.counters.rejected.MaxConnections, 1);
    await a.close();
    await waitUntil("a is gone", () => fx.counters.activeConnections === 1);
    await using c2 = await tcpFrom("127.0.0.4", fx.port);
    assert.equal(await c2.echo("c"), "c", "a freed slot is usable");
    assert.equal(dialErrors(fx.counters), 0);
  });

  Deno.test(`${engine} TCP engine: the per-source connection rate refuses a burst beyond its bucket, not other sources`, async () => {
    await using echo = startTcpEcho();
    await using fx = await policyForwarder(engine, {
      targetHost: "127.0.0.1",
      targetPort: echo.port,
      connectionsPerSecondPerSource: 1,
      connectionBurstPerSource: 2,
    });
    const results: string[] = [];
    for (let i = 0; i < 4; i++) {
      await using client = await tcpFrom("127.0.0.2", fx.port);
      results.push(await client.echo("r", 2000));
    }
    assert.deepEqual(results, ["r", "r", "", ""]);
    await using other = await tcpFrom("127.0.0.3", fx.port);
    assert.equal(await other.echo("o"), "o");
    assert.equal(fx.counters.rejected.ConnectionRate, 2);
  });

  Deno.test(`${engine} TCP engine: a forbidden literal target (cloud metadata) is reported and never dialled`, async () => {
    await using fx = await policyForwarder(engine, {
      targetHost: "169.254.169.254",
      targetPort: 80,
    }, { policy: operatorTargetDefaults([]) });
    assert.deepEqual(fx.reports, [{
      address: "169.254.169.254",
      rule: "169.254.0.0/16 (link-local, cloud metadata) in --denied-target-cidrs",
    }]);
    await using client = await tcpFrom("127.0.0.2", fx.port);
    await within(client.closed, 1000, "closed at once (a dial would wait for its timeout)");
    assert.equal(fx.counters.rejected.TargetForbidden, 1);
    assert.equal(fx.counters.connectionsTotal, 0);
    assert.equal(dialErrors(fx.counters), 0, "nothing was dialled");
  });

  Deno.test(`${engine} TCP engine: a name resolving to a denied address (localhost) is forbidden after the lookup`, async () => {
    await using echo = startTcpEcho();
    await using fx = await policyForwarder(engine, {
      targetHost: "localhost",
      targetPort: echo.port,
    }, { policy: { deniedCidrs: ["127.0.0.1", "::1"] } });
    await waitUntil("the verdict of the first lookup", () => fx.reports.length > 0);
    assert.match(fx.reports[0]?.rule ?? "", /^(127\.0\.0\.1|::1) in --denied-target-cidrs$/);
    await using client = await tcpFrom("127.0.0.2", fx.port);
    await within(client.closed, 2000, "closed");
    assert.equal(echo.accepted, 0, "the target behind the name got nothing");
    assert.equal(fx.counters.rejected.TargetForbidden, 1);
    // Retargeted to an allowed address: forwarding resumes, and the verdict says so.
    await using allowedEcho = startTcpEcho({ hostname: "127.0.0.2" });
    fx.forwarder.update({ listenPort: 0, targetHost: "127.0.0.2", targetPort: allowedEcho.port });
    await using after = await tcpFrom("127.0.0.3", fx.port);
    assert.equal(await after.echo("ok"), "ok");
    assert.equal(fx.reports.at(-1), undefined);
  });

  Deno.test(`${engine} TCP engine: the allow list admits only its ranges; IPv6 targets are checked too`, async () => {
    await using echo = startTcpEcho({ hostname: "::1" });
    await using fx = await policyForwarder(engine, { targetHost: "::1", targetPort: echo.port }, {
      policy: { allowedCidrs: ["10.0.0.0/8"] },
    });
    assert.deepEqual(fx.reports, [{ address: "::1", rule: "not in --allowed-target-cidrs" }]);
    await using client = await tcpFrom("127.0.0.2", fx.port);
    await within(client.closed, 2000, "closed");
    assert.equal(echo.accepted, 0);
  });
}

Deno.test("TcpConnection: the dial timeout bounds a lookup that never answers", async () => {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  using client = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
  const accepted = await listener.accept();
  const counters = newTcpCounters();
  const deadlines = new DialDeadlines(100);
  const closed = Promise.withResolvers<void>();
  const connection = new TcpConnection(accepted, {
    counters,
    deadlines,
    onDialError: () => {},
    onClosed: () => closed.resolve(),
    onBug: (error) => closed.reject(error),
  });
  connection.start(
    { hostname: "never.invalid", port: 1 },
    () => new Promise<TcpAddress>(() => {}),
  );
  await within(closed.promise, 5000, "the connection ends at the dial deadline");
  assert.equal(counters.errors.DialTimeout, 1);
  assert.equal(
    await client.read(new Uint8Array(1)).catch(() => null),
    null,
    "the client is closed",
  );
  deadlines.abortAll();
});

Deno.test("splice TCP engine: maxConnections counts the connections of every engine thread", async () => {
  await using echo = startTcpEcho();
  await using fx = await tcpForwarderTo("splice", echo.port, {
    threads: 2,
    spec: { maxConnections: 2 },
  });
  const clients = await Promise.all(
    ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5", "127.0.0.6"].map((source) =>
      tcpFrom(source, fx.forwarder.port)
    ),
  );
  try {
    const answers = await Promise.all(clients.map((client) => client.echo("n", 2000)));
    assert.equal(answers.filter((answer) => answer === "n").length, 2);
    assert.equal(fx.counters.rejected.MaxConnections, 3);
    assert.equal(echo.accepted, 2);
  } finally {
    await Promise.all(clients.map((client) => client.close()));
  }
});
