/**
 * The standard `process_*` metrics (Go's client exports them; dashboards and alerts use them) and
 * prom-client's `nodejs_*` runtime metrics, under prom-client's standard names. prom-client reads
 * memory and file descriptors from `/proc/self`, which Deno refuses without `--allow-all` (the values
 * would read 0): resident memory comes from `Deno.memoryUsage()` instead, and the metrics that can
 * only come from `/proc/self` (virtual memory, open and maximum fds) are left out rather than
 * exported as a wrong 0.
 * @module
 */
import { collectDefaultMetrics, Gauge, type Metric, Registry } from "prom-client";

/** How often prom-client samples event-loop delay (`nodejs_eventloop_lag_*`), in ms. */
const EVENT_LOOP_SAMPLE_MS = 250;

/** Names prom-client fills from `/proc/self`: not exported (see the module doc). */
const UNREADABLE = new Set([
  "process_resident_memory_bytes",
  "process_virtual_memory_bytes",
  "process_heap_bytes",
  "process_open_fds",
  "process_max_fds",
]);

/**
 * Adds the process and runtime metrics to `registry`. A metric of the same name registered earlier
 * by another part of the program is kept (no double registration).
 */
export function registerProcessMetrics(registry: Registry): void {
  const defaults = new Registry();
  // prom-client samples event-loop delay every 10 ms by default: a timer that would wake an idle
  // program 100 times a second. Sampled as often as the program's own lag gauge instead.
  collectDefaultMetrics({
    register: defaults,
    eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS,
  });
  const add = (name: string, metric: Metric | undefined) => {
    if (metric !== undefined && registry.getSingleMetric(name) === undefined) {
      registry.registerMetric(metric);
    }
  };
  for (const { name } of defaults.getMetricsAsArray()) {
    if (!UNREADABLE.has(name)) add(name, defaults.getSingleMetric(name));
  }
  add(
    "process_resident_memory_bytes",
    new Gauge({
      name: "process_resident_memory_bytes",
      help: "Resident memory size in bytes.",
      registers: [],
      collect() {
        this.set(Deno.memoryUsage().rss);
      },
    }),
  );
}
