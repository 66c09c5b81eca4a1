import assert from "node:assert/strict";
import type { ForwarderStatus } from "../forward/state.ts";
import type { ForwarderSpec } from "../spec.ts";
import { listenerTransitions } from "./listener_events.ts";

const SPECS = new Map<string, ForwarderSpec>([
  ["p/a", { name: "p/a", tcp: { listenPort: 7000, targetPort: 1, targetHost: "h" } }],
]);

function statuses(...list: ForwarderStatus[]): Map<string, ForwarderStatus> {
  return new Map(list.map((s) => [s.name, s]));
}

function diff(before: ForwarderStatus[], after: ForwarderStatus[]) {
  return listenerTransitions({
    previous: statuses(...before),
    current: statuses(...after),
    specs: SPECS,
    replica: "r1",
  }).map((t) => [
    t.name,
    t.note.type,
    t.note.reason,
    t.note.message,
    t.error,
  ]);
}

Deno.test("listenerTransitions({  }) reports a listener that started", () => {
  assert.deepEqual(
    diff([{ name: "p/a", tcp: { phase: "pending" } }], [{
      name: "p/a",
      tcp: { phase: "listening", port: 7000 },
    }]),
    [["p/a", "Normal", "Listening", "TCP port 7000 listening on r1", undefined]],
  );
});

Deno.test("listenerTransitions({  }) reports a bind failure once and counts it", () => {
  const failed: ForwarderStatus = {
    name: "p/a",
    tcp: { phase: "failed", reason: "Address in use", retryInMs: 500 },
  };
  assert.deepEqual(diff([], [failed]), [[
    "p/a",
    "Warning",
    "BindFailed",
    "TCP port 7000 cannot listen on r1: Address in use (retrying)",
    "FailedSetupTCPForwarder",
  ]]);
  const retried: ForwarderStatus = {
    name: "p/a",
    tcp: { phase: "failed", reason: "Address in use", retryInMs: 1000 },
  };
  assert.deepEqual(diff([failed], [retried]), []);
});

Deno.test("listenerTransitions({  }) reports a conflict and a stopped listener, not pending ones", () => {
  assert.deepEqual(
    diff([], [{ name: "p/b", udp: { phase: "conflict", holder: "p/a", port: 53 } }]),
    [[
      "p/b",
      "Warning",
      "PortConflict",
      "UDP port 53 on r1 is held by p/a; taken over once it is free",
      undefined,
    ]],
  );
  assert.deepEqual(diff([{ name: "p/a", tcp: { phase: "listening", port: 7000 } }], []), [
    ["p/a", "Normal", "Stopped", "TCP port 7000 stopped on r1", undefined],
  ]);
  assert.deepEqual(diff([{ name: "p/a", tcp: { phase: "pending" } }], []), []);
  assert.deepEqual(diff([], [{ name: "p/a", tcp: { phase: "pending" } }]), []);
});

Deno.test("listenerTransitions({  }) reports a rebind to a new port", () => {
  assert.deepEqual(
    diff([{ name: "p/a", tcp: { phase: "listening", port: 7000 } }], [{
      name: "p/a",
      tcp: { phase: "listening", port: 7001 },
    }]).map((t) => t[3]),
    ["TCP port 7001 listening on r1"],
  );
});

Deno.test("listenerTransitions() reports a forbidden target once, and when it is allowed again", () => {
  const forbidden: ForwarderStatus = {
    name: "p/a",
    tcp: {
      phase: "forbidden",
      port: 7000,
      address: "169.254.169.254",
      rule: "169.254.0.0/16 (link-local, cloud metadata) in --denied-target-cidrs",
    },
  };
  const listening: ForwarderStatus = { name: "p/a", tcp: { phase: "listening", port: 7000 } };
  assert.deepEqual(diff([listening], [forbidden]), [[
    "p/a",
    "Warning",
    "TargetForbidden",
    "TCP port 7000 on r1 does not forward: target address 169.254.169.254 is forbidden: " +
    "169.254.0.0/16 (link-local, cloud metadata) in --denied-target-cidrs",
    "TargetForbidden",
  ]]);
  assert.deepEqual(diff([forbidden], [forbidden]), []);
  assert.deepEqual(diff([forbidden], [listening]), [[
    "p/a",
    "Normal",
    "TargetAllowed",
    "TCP port 7000 on r1 forwards again: the target resolves to an allowed address",
    undefined,
  ]]);
});
