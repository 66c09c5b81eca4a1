import assert from "node:assert/strict";
import type { UnDyingProxyReplicaStatus } from "../../k8s/undying_proxy_types.ts";
import type { ForwarderSpec, UdpSpec } from "../spec.ts";
import {
  aggregatorOf,
  canonical,
  partitionEntries,
  replicaEntry,
  sameEntry,
  statusSummary,
  type SummaryInput,
  targetSummary,
  withOwnEntry,
} from "./status.ts";

const NOW = new Date("2026-05-01T12:00:00Z");
function udpPart(targetHost: string, targetPort: number, listenPort = 7001): UdpSpec {
  return { listenPort, targetPort, targetHost, readTimeoutSeconds: 30, writeTimeoutSeconds: 5 };
}

const SPEC: ForwarderSpec = {
  name: "proxy/game",
  tcp: { listenPort: 7000, targetPort: 80, targetHost: "web" },
  udp: udpPart("dns", 53),
};

function listening(name: string, generation = 2): UnDyingProxyReplicaStatus {
  return replicaEntry({
    replica: { name },
    generation,
    spec: SPEC,
    forwarder: {
      name: SPEC.name,
      tcp: { phase: "listening", port: 7000 },
      udp: { phase: "listening", port: 7001 },
    },
    now: NOW,
  });
}

function summary(overrides: Partial<SummaryInput>): ReturnType<typeof statusSummary> {
  return statusSummary({
    generation: 2,
    spec: SPEC,
    deleting: false,
    entries: [],
    now: NOW,
    ...overrides,
  });
}

Deno.test("replicaEntry({  }) maps every supervisor phase to the CRD's listener states", () => {
  const entry = replicaEntry({
    replica: { name: "r1", node: "n1" },
    generation: 3,
    spec: SPEC,
    forwarder: {
      name: SPEC.name,
      tcp: { phase: "failed", reason: "address in use", retryInMs: 500 },
      udp: { phase: "conflict", holder: "proxy/older", port: 7001 },
    },
    now: NOW,
  });
  assert.deepEqual(entry, {
    name: "r1",
    node: "n1",
    observedGeneration: 3,
    lastUpdateTime: "2026-05-01T12:00:00.000Z",
    tcp: { state: "Failed", port: 7000, message: "address in use" },
    udp: { state: "Conflict", port: 7001, message: "port held by proxy/older" },
  });
  const pending = replicaEntry({
    replica: { name: "r1" },
    generation: 3,
    spec: SPEC,
    forwarder: undefined,
    now: NOW,
  });
  assert.deepEqual([pending.tcp, pending.udp], [
    { state: "Pending", port: 7000 },
    { state: "Pending", port: 7001 },
  ]);
  assert.deepEqual(
    Object.keys(
      replicaEntry({
        replica: { name: "r1" },
        generation: 3,
        spec: undefined,
        forwarder: undefined,
        now: NOW,
      }),
    ),
    [
      "name",
      "observedGeneration",
      "lastUpdateTime",
    ],
  );
});

Deno.test("sameEntry() ignores lastUpdateTime and key order", () => {
  const a = listening("r1");
  const b = { ...listening("r1"), lastUpdateTime: "2030-01-01T00:00:00Z" };
  assert.ok(sameEntry(a, b));
  assert.ok(sameEntry(a, JSON.parse(canonical(a)) as UnDyingProxyReplicaStatus));
  assert.ok(!sameEntry(a, { ...a, tcp: { state: "Pending", port: 7000 } }));
  assert.ok(!sameEntry(a, undefined));
});

Deno.test("partitionEntries() splits by age and aggregatorOf() picks the smallest fresh name", () => {
  const old = { ...listening("a-dead"), lastUpdateTime: "2026-05-01T11:00:00Z" };
  const { fresh, stale } = partitionEntries([old, listening("c"), listening("b")], NOW, 60_000);
  assert.deepEqual(stale.map((e) => e.name), ["a-dead"]);
  assert.deepEqual(fresh.map((e) => e.name), ["c", "b"]);
  assert.equal(aggregatorOf(fresh), "b");
  assert.equal(aggregatorOf([]), undefined);
  assert.deepEqual(
    partitionEntries([{ name: "no-time" }], NOW, 60_000).stale.map((e) => e.name),
    ["no-time"],
  );
});

Deno.test("withOwnEntry() replaces this replica's stored entry", () => {
  const mine = listening("r1", 3);
  const merged = withOwnEntry([listening("r1", 2), listening("r2")], mine);
  assert.deepEqual(merged.map((e) => [e.name, e.observedGeneration]), [["r2", 2], ["r1", 3]]);
});

Deno.test("statusSummary() is Ready when every replica listens on every part", () => {
  const s = summary({ entries: [listening("r1"), listening("r2")] });
  assert.equal(s.ready, true);
  assert.equal(s.listening, "2/2");
  assert.equal(s.observedGeneration, 2);
  assert.equal(s.target, "tcp web:80, udp dns:53");
  assert.deepEqual(s.conditions, [{
    type: "Ready",
    status: "True",
    observedGeneration: 2,
    lastTransitionTime: NOW.toISOString(),
    reason: "Listening",
    message: "TCP 7000 and UDP 7001 listening on 2 replicas",
  }]);
});

Deno.test("statusSummary() shows a bind failure on any replica and names it", () => {
  const failed = replicaEntry({
    replica: { name: "r2" },
    generation: 2,
    spec: SPEC,
    forwarder: {
      name: SPEC.name,
      tcp: { phase: "failed", reason: "Address in use (os error 98)", retryInMs: 1000 },
      udp: { phase: "listening", port: 7001 },
    },
    now: NOW,
  });
  const s = summary({ entries: [listening("r1"), failed] });
  assert.equal(s.ready, false);
  assert.equal(s.listening, "1/2");
  assert.equal(s.conditions[0]?.reason, "BindFailed");
  assert.equal(s.conditions[0]?.message, "r2: TCP port 7000: Address in use (os error 98)");
});

Deno.test("statusSummary() puts a port conflict before a bind failure", () => {
  const conflict = replicaEntry({
    replica: { name: "r1" },
    generation: 2,
    spec: SPEC,
    forwarder: {
      name: SPEC.name,
      tcp: { phase: "failed", reason: "denied", retryInMs: 1 },
      udp: { phase: "conflict", holder: "proxy/older", port: 7001 },
    },
    now: NOW,
  });
  const s = summary({ entries: [conflict] });
  assert.equal(s.conditions[0]?.reason, "PortConflict");
  assert.match(s.conditions[0]?.message ?? "", /UDP port 7001: port held by proxy\/older/);
});

Deno.test("statusSummary() is Pending until every replica reports the current generation", () => {
  assert.equal(summary({}).conditions[0]?.reason, "Pending");
  assert.equal(summary({}).listening, "0/0");
  const behind = summary({ entries: [listening("r1"), listening("r2", 1)] });
  assert.equal(behind.conditions[0]?.reason, "Pending");
  assert.equal(behind.conditions[0]?.message, "waiting for r2");
  assert.equal(behind.listening, "1/2");
  const oldFailure = replicaEntry({
    replica: { name: "r2" },
    generation: 1,
    spec: SPEC,
    forwarder: {
      name: SPEC.name,
      tcp: { phase: "failed", reason: "old", retryInMs: 1 },
    },
    now: NOW,
  });
  assert.equal(
    summary({ entries: [listening("r1"), oldFailure] }).conditions[0]?.reason,
    "Pending",
    "a failure reported for an older generation is not current",
  );
});

Deno.test("statusSummary() reports an invalid spec, a Service port problem and deletion", () => {
  const invalid = summary({
    spec: { problems: [{ field: "spec.tcp.listenPort", value: 0, reason: "must be 1-65535" }] },
    entries: [listening("r1")],
  });
  assert.equal(invalid.conditions[0]?.reason, "InvalidSpec");
  assert.equal(invalid.conditions[0]?.message, "spec.tcp.listenPort: 0: must be 1-65535");
  assert.equal(invalid.target, undefined);
  const service = summary({ entries: [listening("r1")], servicePortProblem: "Service gone" });
  assert.deepEqual([service.conditions[0]?.reason, service.conditions[0]?.message], [
    "ServicePortFailed",
    "Service gone",
  ]);
  assert.equal(summary({ deleting: true }).conditions[0]?.reason, "Terminating");
});

Deno.test("statusSummary() keeps lastTransitionTime while the status stays the same", () => {
  const previous = {
    type: "Ready",
    status: "False" as const,
    lastTransitionTime: "2026-01-01T00:00:00Z",
    reason: "Pending",
    message: "",
  };
  assert.equal(summary({ previous }).conditions[0]?.lastTransitionTime, "2026-01-01T00:00:00Z");
  const flipped = summary({ previous, entries: [listening("r1")] });
  assert.equal(flipped.conditions[0]?.lastTransitionTime, NOW.toISOString());
});

Deno.test("statusSummary() says an empty spec has nothing to forward and is Ready", () => {
  const empty: ForwarderSpec = { name: "proxy/empty" };
  const s = summary({
    spec: empty,
    entries: [
      replicaEntry({
        replica: { name: "r1" },
        generation: 2,
        spec: empty,
        forwarder: undefined,
        now: NOW,
      }),
    ],
  });
  assert.equal(s.ready, true);
  assert.equal(s.conditions[0]?.message, "nothing to forward");
  assert.equal(s.target, undefined);
});

Deno.test("targetSummary() brackets IPv6 and merges identical targets", () => {
  const same: ForwarderSpec = {
    name: "p/x",
    tcp: { listenPort: 1, targetPort: 9, targetHost: "::1" },
    udp: udpPart("::1", 9, 1),
  };
  assert.equal(targetSummary(same), "[::1]:9");
  assert.equal(targetSummary({ name: "p/y" }), undefined);
});

Deno.test("statusSummary() reports a forbidden target first, naming the address and the rule", () => {
  const forbidden = replicaEntry({
    replica: { name: "r1" },
    generation: 2,
    spec: SPEC,
    forwarder: {
      name: SPEC.name,
      tcp: {
        phase: "forbidden",
        port: 7000,
        address: "10.96.0.1",
        rule: "10.96.0.1 (the API server)",
      },
      udp: { phase: "conflict", holder: "proxy/older", port: 7001 },
    },
    now: NOW,
  });
  assert.deepEqual(forbidden.tcp, {
    state: "Forbidden",
    port: 7000,
    message: "target address 10.96.0.1 is forbidden: 10.96.0.1 (the API server)",
  });
  const s = summary({ entries: [forbidden, listening("r2")] });
  assert.equal(s.ready, false);
  assert.equal(s.conditions[0]?.reason, "TargetForbidden");
  assert.equal(
    s.conditions[0]?.message,
    "r1: TCP port 7000: target address 10.96.0.1 is forbidden: 10.96.0.1 (the API server)",
  );
});
