import assert from "node:assert/strict";
import { iperfBitsPerSecond, SCENARIOS } from "./scenarios.ts";

Deno.test("iperfBitsPerSecond() reads the received sum of iperf3 -J output", () => {
  const json = JSON.stringify({ end: { sum_received: { bits_per_second: 1.5e10 } } });
  assert.equal(iperfBitsPerSecond(json), 1.5e10);
});

Deno.test("iperfBitsPerSecond() explains a failed or unreadable run", () => {
  assert.equal(
    iperfBitsPerSecond(JSON.stringify({ error: "the server is busy" })),
    "the server is busy",
  );
  assert.equal(iperfBitsPerSecond("{}"), "no sum_received");
  assert.match(String(iperfBitsPerSecond("iperf3: error")), /^unreadable output/);
});

Deno.test("SCENARIOS have unique ids and every figure a unique key", () => {
  const ids = SCENARIOS.map((s) => s.id);
  assert.equal(new Set(ids).size, ids.length);
  for (const scenario of SCENARIOS) {
    const keys = scenario.metrics.map((m) => m.key);
    assert.equal(new Set(keys).size, keys.length, scenario.id);
  }
});
