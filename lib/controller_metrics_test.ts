import assert from "node:assert/strict";
import { Registry } from "prom-client";
import { parseExposition } from "../tests/_support/program.ts";
import { ControllerMetrics } from "./controller_metrics.ts";

async function scrape(registry: Registry) {
  return parseExposition(await registry.metrics());
}

Deno.test("ControllerMetrics: controller-runtime's names, types and labels, present from the start", async () => {
  const registry = new Registry();
  new ControllerMetrics(registry);
  const { series, types } = await scrape(registry);
  const expected: [string, string, number][] = [
    [
      'controller_runtime_reconcile_total{controller="undyingproxy",result="success"}',
      "counter",
      0,
    ],
    ['controller_runtime_reconcile_total{controller="undyingproxy",result="error"}', "counter", 0],
    ['controller_runtime_reconcile_errors_total{controller="undyingproxy"}', "counter", 0],
    ['controller_runtime_reconcile_time_seconds_count{controller="undyingproxy"}', "histogram", 0],
    ['controller_runtime_max_concurrent_reconciles{controller="undyingproxy"}', "gauge", 1],
    ['controller_runtime_active_workers{controller="undyingproxy"}', "gauge", 0],
    ['workqueue_depth{name="undyingproxy"}', "gauge", 0],
    ['workqueue_adds_total{name="undyingproxy"}', "counter", 0],
    ['workqueue_queue_duration_seconds_count{name="undyingproxy"}', "histogram", 0],
    ['workqueue_work_duration_seconds_count{name="undyingproxy"}', "histogram", 0],
    ['workqueue_retries_total{name="undyingproxy"}', "counter", 0],
    ['workqueue_unfinished_work_seconds{name="undyingproxy"}', "gauge", 0],
    ['workqueue_longest_running_processor_seconds{name="undyingproxy"}', "gauge", 0],
  ];
  for (const [key, type, value] of expected) {
    assert.equal(series.get(key), value, key);
    const name = key.replace(/\{.*/, "").replace(/_count$/, "");
    assert.equal(types.get(name), type, `type of ${name}`);
  }
  assert.equal(types.get("rest_client_requests_total"), "counter");
});

Deno.test("ControllerMetrics follows the loop: queued, started, finished with success or error", async () => {
  const registry = new Registry();
  let now = 1_000;
  const metrics = new ControllerMetrics(registry, () => now);
  const get = async (key: string) => (await scrape(registry)).series.get(key);
  metrics.queued();
  metrics.queued(); // merged into the same pass
  now += 250;
  assert.equal(await get('workqueue_depth{name="undyingproxy"}'), 1);
  metrics.started();
  assert.equal(await get('workqueue_depth{name="undyingproxy"}'), 0);
  assert.equal(await get('controller_runtime_active_workers{controller="undyingproxy"}'), 1);
  now += 2_000;
  assert.equal(await get('workqueue_unfinished_work_seconds{name="undyingproxy"}'), 2);
  metrics.finished("error");
  metrics.started(); // the resync timer: nothing was queued
  now += 500;
  metrics.finished("success");
  const { series } = await scrape(registry);
  const expected: [string, number][] = [
    ['workqueue_adds_total{name="undyingproxy"}', 2],
    ['workqueue_queue_duration_seconds_sum{name="undyingproxy"}', 0.25],
    ['workqueue_queue_duration_seconds_count{name="undyingproxy"}', 2],
    ['workqueue_work_duration_seconds_sum{name="undyingproxy"}', 2.5],
    ['workqueue_retries_total{name="undyingproxy"}', 1],
    ['workqueue_unfinished_work_seconds{name="undyingproxy"}', 0],
    ['controller_runtime_reconcile_total{controller="undyingproxy",result="success"}', 1],
    ['controller_runtime_reconcile_total{controller="undyingproxy",result="error"}', 1],
    ['controller_runtime_reconcile_errors_total{controller="undyingproxy"}', 1],
    ['controller_runtime_reconcile_time_seconds_sum{controller="undyingproxy"}', 2.5],
    ['controller_runtime_reconcile_time_seconds_bucket{le="1",controller="undyingproxy"}', 1],
    ['controller_runtime_active_workers{controller="undyingproxy"}', 0],
  ];
  for (const [key, value] of expected) assert.equal(series.get(key), value, key);
});

Deno.test("ControllerMetrics counts API requests by code, method and host", async () => {
  const registry = new Registry();
  const metrics = new ControllerMetrics(registry);
  metrics.request({ method: "GET", code: "200", host: "10.0.0.1:443" });
  metrics.request({ method: "GET", code: "200", host: "10.0.0.1:443" });
  metrics.request({ method: "PATCH", code: "409", host: "10.0.0.1:443" });
  const { series } = await scrape(registry);
  assert.equal(
    series.get('rest_client_requests_total{code="200",method="GET",host="10.0.0.1:443"}'),
    2,
  );
  assert.equal(
    series.get('rest_client_requests_total{code="409",method="PATCH",host="10.0.0.1:443"}'),
    1,
  );
});
