import assert from "node:assert/strict";
import { startUdpEcho } from "../../tests/_support/net_udp.ts";
import { udpFrom } from "../../tests/_support/net_sources.ts";
import { waitUntil } from "../../tests/_support/wait.ts";
import type { UdpSpec } from "../spec.ts";
import { operatorTargetDefaults } from "./policy/target_policy.ts";
import { recordingPolicy, type TestPolicy } from "../../tests/_support/policy_options.ts";
import { UDP_ENGINES, udpForwarderTo } from "../../tests/_support/udp_engines.ts";
import type { UdpEngineKind } from "./udp_engine_choice.ts";

/** A forwarder on `engine` with `spec` and the policy options; drained on dispose. */
async function policyForwarder(
  engine: UdpEngineKind,
  spec: Pick<UdpSpec, "targetHost" | "targetPort"> & Partial<UdpSpec>,
  test: TestPolicy = {},
) {
  const { options, reports } = recordingPolicy(test);
  const fx = await udpForwarderTo(engine, spec.targetPort, {
    targetHost: spec.targetHost,
    bufferBytes: 2048,
    spec,
    policy: options,
    ...(test.listen !== undefined && { listen: test.listen }),
  });
  return { ...fx, reports, port: fx.forwarder.port };
}

for (const engine of UDP_ENGINES) {
  Deno.test(`${engine} UDP engine: datagrams from outside sourceRanges are dropped before a session exists`, async () => {
    await using echo = startUdpEcho();
    await using fx = await policyForwarder(engine, {
      targetHost: "127.0.0.1",
      targetPort: echo.port,
      sourceRanges: ["127.0.0.2"],
    });
    using allowed = udpFrom("127.0.0.2");
    assert.equal(await allowed.request("hi", fx.port), "hi");
    using refused = udpFrom("127.0.0.3");
    for (let i = 0; i < 3; i++) assert.equal(await refused.request("no", fx.port, 200), undefined);
    assert.equal(fx.counters.rejected.SourceNotAllowed, 3, "every datagram is counted");
    assert.equal(fx.counters.sessionsTotal, 1, "no session for the refused source");
    assert.equal(echo.received, 1, "the target saw only the allowed client");
  });

  Deno.test(`${engine} UDP engine: maxSessions and maxSessionsPerSource drop new clients only`, async () => {
    await using echo = startUdpEcho();
    await using fx = await policyForwarder(engine, {
      targetHost: "127.0.0.1",
      targetPort: echo.port,
      maxSessions: 2,
      maxSessionsPerSource: 1,
    });
    using a = udpFrom("127.0.0.2");
    using a2 = udpFrom("127.0.0.2");
    using b = udpFrom("127.0.0.3");
    using c = udpFrom("127.0.0.4");
    assert.equal(await a.request("a", fx.port), "a");
    assert.equal(await a2.request("a2", fx.port, 200), undefined, "second port of 127.0.0.2");
    assert.equal(await b.request("b", fx.port), "b");
    assert.equal(await c.request("c", fx.port, 200), undefined, "third session in total");
    assert.equal(await a.request("again", fx.port), "again", "live sessions keep forwarding");
    assert.equal(fx.counters.rejected.MaxSessionsPerSource, 1);
    assert.equal(fx.counters.rejected.MaxSessions, 1);
    assert.equal(fx.counters.sessionsTotal, 2);
  });

  Deno.test(`${engine} UDP engine: a forbidden target (cloud metadata) gets no session and no datagram`, async () => {
    await using fx = await policyForwarder(engine, {
      targetHost: "169.254.169.254",
      targetPort: 53,
    }, {
      policy: operatorTargetDefaults(["10.96.0.1"]),
    });
    assert.equal(fx.reports[0]?.address, "169.254.169.254");
    using client = udpFrom("127.0.0.2");
    assert.equal(await client.request("q", fx.port, 200), undefined);
    assert.equal(fx.counters.rejected.TargetForbidden, 1);
    assert.equal(fx.counters.sessionsTotal, 0);
    assert.equal(fx.counters.datagramsClientToTarget, 0);
    assert.equal(fx.counters.errors.WriteToTarget + fx.counters.errors.DialUDPTarget, 0);
  });

  Deno.test(`${engine} UDP engine: a name resolving to a denied address (localhost) is forbidden; IPv6 too`, async () => {
    await using echo = startUdpEcho();
    await using fx = await policyForwarder(engine, {
      targetHost: "localhost",
      targetPort: echo.port,
    }, {
      policy: { deniedCidrs: ["127.0.0.1", "::1"] },
    });
    await waitUntil("the verdict of the first lookup", () => fx.reports.length > 0);
    assert.ok(fx.reports[0] !== undefined, "forbidden");
    using client = udpFrom("127.0.0.2");
    assert.equal(await client.request("q", fx.port, 200), undefined);
    assert.equal(echo.received, 0);
    assert.equal(fx.counters.rejected.TargetForbidden, 1);

    await using echo6 = startUdpEcho({ hostname: "::1" });
    await using fx6 = await policyForwarder(engine, {
      targetHost: "::1",
      targetPort: echo6.port,
      sourceRanges: ["::1"],
    }, { policy: { deniedCidrs: ["::1"] }, listen: "::1" });
    assert.deepEqual(fx6.reports, [{ address: "::1", rule: "::1 in --denied-target-cidrs" }]);
    using client6 = udpFrom("::1");
    assert.equal(await client6.request("q", fx6.port, 200), undefined);
    assert.equal(fx6.counters.rejected.TargetForbidden, 1);
    assert.equal(echo6.received, 0);
  });
}
