import assert from "node:assert/strict";
import { Gauge, Registry } from "prom-client";
import { parseExposition } from "../tests/_support/program.ts";
import { registerProcessMetrics } from "./process_metrics.ts";

Deno.test("registerProcessMetrics() exports process_* with real values, none read as a false 0", async () => {
  const registry = new Registry();
  registerProcessMetrics(registry);
  const { series, types } = parseExposition(await registry.metrics());
  assert.ok((series.get("process_resident_memory_bytes") ?? 0) > 1_000_000, "RSS from Deno");
  assert.ok((series.get("process_start_time_seconds") ?? 0) > 1_600_000_000);
  assert.equal(types.get("process_cpu_seconds_total"), "counter");
  assert.ok(series.has("nodejs_eventloop_lag_seconds"));
  for (const unreadable of ["process_open_fds", "process_virtual_memory_bytes"]) {
    assert.equal(series.has(unreadable), false, `${unreadable} would read 0 under Deno`);
  }
});

Deno.test("registerProcessMetrics() keeps a metric of the same name registered before it", async () => {
  const registry = new Registry();
  new Gauge({ name: "process_resident_memory_bytes", help: "mine", registers: [registry] }).set(7);
  registerProcessMetrics(registry);
  const { series } = parseExposition(await registry.metrics());
  assert.equal(series.get("process_resident_memory_bytes"), 7);
});
