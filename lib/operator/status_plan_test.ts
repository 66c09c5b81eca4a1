import assert from "node:assert/strict";
import type { ForwarderSpec } from "../spec.ts";
import { proxy } from "../../tests/_support/proxy_fixture.ts";
import {
  othersListening,
  planStatus,
  planWithdrawal,
  type StatusPlanInput,
} from "./status_plan.ts";

const NOW = new Date("2026-05-01T12:00:00Z");
const SPEC: ForwarderSpec = {
  name: "proxy/game",
  tcp: { listenPort: 7000, targetPort: 80, targetHost: "web" },
};
const LISTENING = { name: "proxy/game", tcp: { phase: "listening", port: 7000 } } as const;

function at(secondsAgo: number): string {
  return new Date(NOW.getTime() - secondsAgo * 1000).toISOString();
}

function entry(name: string, secondsAgo: number, state = "Listening") {
  return {
    name,
    observedGeneration: 1,
    lastUpdateTime: at(secondsAgo),
    tcp: { state, port: 7000 },
  };
}

function plan(
  status: Record<string, unknown> | undefined,
  overrides: Partial<StatusPlanInput> = {},
) {
  const fixture = proxy("game");
  if (status) fixture.status(status);
  return planStatus({
    object: fixture.typed(),
    replica: { name: "r2" },
    spec: SPEC,
    forwarder: LISTENING,
    heartbeatMs: 60_000,
    staleAfterMs: 180_000,
    now: NOW,
    ...overrides,
  });
}

Deno.test("planStatus() writes a new entry, and the summary when this replica is the aggregator", () => {
  const first = plan(undefined);
  assert.equal(first.write, true);
  assert.equal(first.entry.tcp?.state, "Listening");
  assert.equal(first.summary?.ready, true);
  const second = plan({ replicas: [entry("r1", 1)] });
  assert.equal(second.write, true);
  assert.equal(second.summary, undefined, "r1 < r2 aggregates");
});

Deno.test("planStatus() skips an unchanged fresh entry and writes again when the heartbeat is due", () => {
  const summary = plan(undefined).summary;
  const stored = { replicas: [entry("r2", 10)], ...summary };
  assert.equal(plan(stored).write, false);
  assert.equal(plan({ ...stored, replicas: [entry("r2", 61)] }).write, true);
  const changed = plan(stored, {
    forwarder: { name: "proxy/game", tcp: { phase: "pending" } },
  });
  assert.equal(changed.write, true);
});

Deno.test("planStatus() does not repeat a write the watch has not shown yet", () => {
  const first = plan(undefined);
  const last = { key: first.key, at: NOW.getTime() - 1000 };
  assert.equal(plan(undefined, { last }).write, false);
  assert.equal(plan(undefined, { last: { ...last, at: NOW.getTime() - 61_000 } }).write, true);
  assert.equal(plan(undefined, { last: { key: "other", at: last.at } }).write, true);
});

Deno.test("planStatus() lists stale entries and takes over aggregation from a dead replica", () => {
  const result = plan({ replicas: [entry("r1", 200), entry("r3", 5)] });
  assert.deepEqual(result.stale, ["r1"]);
  assert.equal(result.summary?.listening, "2/2", "the dead r1 neither aggregates nor counts");
});

Deno.test("planStatus() reports an invalid spec with no listener parts", () => {
  const result = plan(undefined, {
    spec: { problems: [{ field: "spec.tcp.targetHost", value: "", reason: "empty" }] },
    forwarder: undefined,
  });
  assert.equal(result.entry.tcp, undefined);
  assert.equal(result.summary?.conditions[0]?.reason, "InvalidSpec");
});

Deno.test("othersListening({  }) names fresh other replicas that still listen", () => {
  const object = proxy("game").status({
    replicas: [entry("r1", 1), entry("r2", 1), entry("r3", 500), entry("r4", 1, "Pending")],
  }).typed();
  assert.deepEqual(othersListening({ object, replica: "r2", now: NOW, staleAfterMs: 180_000 }), [
    "r1",
  ]);
  assert.deepEqual(othersListening({ object, replica: "r1", now: NOW, staleAfterMs: 180_000 }), [
    "r2",
  ]);
});

Deno.test("planWithdrawal() drops the stopping replica's entry: the last one leaves Ready False, 0/0", () => {
  const withdraw = (replicas: ReturnType<typeof entry>[]) =>
    planWithdrawal({
      object: proxy("game").status({ replicas, ...plan(undefined).summary }).typed(),
      replica: "r2",
      spec: SPEC,
      staleAfterMs: 180_000,
      now: NOW,
    });
  const last = withdraw([entry("r2", 5)]);
  assert.deepEqual(last.replicas, []);
  assert.equal(last.summary.ready, false);
  assert.equal(last.summary.listening, "0/0");
  const [ready] = last.summary.conditions;
  assert.deepEqual([ready?.status, ready?.reason], ["False", "NoReplicaListening"]);
  assert.match(ready?.message ?? "", /no operator replica is listening: the last one, r2, stopped/);
  assert.equal(last.summary.target, "web:80");
  // Another replica still listening: its entry stays, and the summary counts it alone. A stale
  // entry of a replica gone long ago counts for nothing and goes too.
  const others = withdraw([entry("r1", 5), entry("r2", 5), entry("r0", 500)]);
  assert.deepEqual(others.replicas.map((e) => e.name), ["r1"]);
  assert.deepEqual([others.summary.ready, others.summary.listening], [true, "1/1"]);
  // The other one does not listen: not Ready, for its own reason.
  const failed = withdraw([entry("r1", 5, "Failed"), entry("r2", 5)]);
  assert.deepEqual(
    [failed.summary.ready, failed.summary.listening, failed.summary.conditions[0]?.reason],
    [false, "0/1", "BindFailed"],
  );
});
