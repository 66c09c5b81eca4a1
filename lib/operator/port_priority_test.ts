import assert from "node:assert/strict";
import type { ForwarderStatus } from "../forward/state.ts";
import type { ForwarderSpec } from "../spec.ts";
import { yieldToOlder } from "./port_priority.ts";

const tcp = (name: string, listenPort: number): ForwarderSpec => ({
  name,
  tcp: { listenPort, targetPort: 80, targetHost: "127.0.0.1" },
});
const both = (name: string, listenPort: number): ForwarderSpec => ({
  ...tcp(name, listenPort),
  udp: {
    listenPort,
    targetPort: 53,
    targetHost: "127.0.0.1",
    readTimeoutSeconds: 30,
    writeTimeoutSeconds: 5,
  },
});
const byName = <T extends { name: string }>(...items: T[]) =>
  new Map(items.map((i) => [i.name, i]));

Deno.test("yieldToOlder() takes a held port from a younger holder when an older object wants it", () => {
  const older = tcp("ns/older", 7000);
  const younger = both("ns/younger", 7000);
  const statuses = byName<ForwarderStatus>(
    { name: "ns/older", tcp: { phase: "conflict", holder: "ns/younger", port: 7000 } },
    { name: "ns/younger", tcp: { phase: "listening", port: 7000 }, udp: { phase: "pending" } },
  );
  const result = yieldToOlder([older, younger], byName(tcp("ns/older", 7001), younger), statuses);
  assert.deepEqual(result, [older, { name: "ns/younger", udp: younger.udp }]);
});

Deno.test("yieldToOlder() leaves a younger part that is a newcomer or already waiting", () => {
  const older = tcp("ns/older", 7000);
  const younger = tcp("ns/younger", 7000);
  const waiting = byName<ForwarderStatus>(
    { name: "ns/older", tcp: { phase: "listening", port: 7000 } },
    { name: "ns/younger", tcp: { phase: "conflict", holder: "ns/older", port: 7000 } },
  );
  assert.deepEqual(yieldToOlder([older, younger], byName(older, younger), waiting), [
    older,
    younger,
  ]);
  // The younger one's port moved onto the older one's this pass: a newcomer, ordered by age.
  const moved = byName<ForwarderStatus>({
    name: "ns/younger",
    tcp: { phase: "listening", port: 7001 },
  });
  assert.deepEqual(
    yieldToOlder([older, younger], byName(tcp("ns/younger", 7001)), moved),
    [older, younger],
  );
});

Deno.test("yieldToOlder() keeps a failing holder's claim from blocking an older object", () => {
  const older = tcp("ns/older", 7000);
  const younger = tcp("ns/younger", 7000);
  const statuses = byName<ForwarderStatus>({
    name: "ns/younger",
    tcp: { phase: "failed", reason: "Address in use", retryInMs: 500 },
  });
  assert.deepEqual(yieldToOlder([older, younger], byName(younger), statuses), [
    older,
    { name: "ns/younger" },
  ]);
});

Deno.test("yieldToOlder() changes nothing without a contested port", () => {
  const desired = [tcp("ns/a", 7000), both("ns/b", 7001), tcp("ns/c", 7002)];
  const statuses = byName<ForwarderStatus>({
    name: "ns/b",
    tcp: { phase: "listening", port: 7001 },
  });
  assert.deepEqual(yieldToOlder(desired, byName(...desired), statuses), desired);
});
