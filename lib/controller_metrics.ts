/**
 * The controller-runtime and client-go metrics the Go operator exported and people alert on, fed by
 * the reconcile loop ({@linkcode LoopObserver}) and the Kubernetes client (`RequestResult`), under
 * the same names, types and labels (controller-runtime v0.18, the Go operator's):
 * - `controller_runtime_reconcile_total{controller,result}`, `..._reconcile_errors_total{controller}`,
 *   `..._reconcile_time_seconds{controller}`, `..._max_concurrent_reconciles{controller}`,
 *   `..._active_workers{controller}`;
 * - `workqueue_depth{name}`, `workqueue_adds_total{name}`, `workqueue_queue_duration_seconds{name}`,
 *   `workqueue_work_duration_seconds{name}`, `workqueue_retries_total{name}`,
 *   `workqueue_unfinished_work_seconds{name}`, `workqueue_longest_running_processor_seconds{name}`;
 * - `rest_client_requests_total{code,method,host}`.
 * One reconcile here is one full pass over every object (the loop's only queue item), so the
 * counts are per pass, not per object; `controller` and `name` are `undyingproxy` as in Go.
 * @module
 */
import { Counter, Gauge, Histogram, type Registry } from "prom-client";
import type { RequestResult } from "./kube/client.ts";
import type { LoopObserver, PassResult } from "./operator/loop_observer.ts";

/** The Go operator's controller (and work queue) name: its kind, lower case. */
export const CONTROLLER_NAME = "undyingproxy";

/** controller-runtime's buckets of `controller_runtime_reconcile_time_seconds`. */
const RECONCILE_BUCKETS = [
  0.005,
  0.01,
  0.025,
  0.05,
  0.1,
  0.15,
  0.2,
  0.25,
  0.3,
  0.35,
  0.4,
  0.45,
  0.5,
  0.6,
  0.7,
  0.8,
  0.9,
  1.0,
  1.25,
  1.5,
  1.75,
  2.0,
  2.5,
  3.0,
  3.5,
  4.0,
  4.5,
  5,
  6,
  7,
  8,
  9,
  10,
  15,
  20,
  25,
  30,
  40,
  50,
  60,
];
/** client-go's work queue buckets: 10 ns to 1000 s, ×10 each. */
const QUEUE_BUCKETS = Array.from({ length: 12 }, (_, i) => Number((1e-8 * 10 ** i).toPrecision(1)));

/** The metrics, registered in `registry`; the loop and the client report to it. */
export class ControllerMetrics implements LoopObserver {
  readonly #reconciles: Counter<"controller" | "result">;
  readonly #reconcileErrors: Counter<"controller">;
  readonly #reconcileTime: Histogram<"controller">;
  readonly #activeWorkers: Gauge<"controller">;
  readonly #adds: Counter<"name">;
  readonly #queueDuration: Histogram<"name">;
  readonly #workDuration: Histogram<"name">;
  readonly #retries: Counter<"name">;
  readonly #requests: Counter<"code" | "method" | "host">;
  readonly #now: () => number;
  /** When the oldest request still waiting for a pass was queued (ms), if one waits. */
  #queuedAt: number | undefined;
  /** When the running pass started (ms), if one runs. */
  #startedAt: number | undefined;

  /** @param now clock in milliseconds (tests move it). */
  constructor(registry: Registry, now: () => number = performance.now.bind(performance)) {
    this.#now = now;
    const registers = [registry];
    const controller = { controller: CONTROLLER_NAME };
    const queue = { name: CONTROLLER_NAME };
    this.#reconciles = new Counter({
      name: "controller_runtime_reconcile_total",
      help: "Total number of reconciliations per controller (one per pass over every object).",
      labelNames: ["controller", "result"],
      registers,
    });
    for (const result of ["success", "error", "requeue", "requeue_after"]) {
      this.#reconciles.inc({ ...controller, result }, 0);
    }
    this.#reconcileErrors = new Counter({
      name: "controller_runtime_reconcile_errors_total",
      help: "Total number of reconciliation errors per controller.",
      labelNames: ["controller"],
      registers,
    });
    this.#reconcileErrors.inc(controller, 0);
    this.#reconcileTime = new Histogram({
      name: "controller_runtime_reconcile_time_seconds",
      help: "Length of time per reconciliation per controller.",
      labelNames: ["controller"],
      buckets: RECONCILE_BUCKETS,
      registers,
    });
    this.#reconcileTime.zero(controller);
    new Gauge({
      name: "controller_runtime_max_concurrent_reconciles",
      help: "Maximum number of concurrent reconciles per controller.",
      labelNames: ["controller"],
      registers,
    }).set(controller, 1);
    this.#activeWorkers = new Gauge({
      name: "controller_runtime_active_workers",
      help: "Number of currently used workers per controller.",
      labelNames: ["controller"],
      registers,
    });
    this.#activeWorkers.set(controller, 0);
    const depth = () => this.#queuedAt === undefined ? 0 : 1;
    new Gauge({
      name: "workqueue_depth",
      help: "Current depth of workqueue (1 while a pass is asked for and not started).",
      labelNames: ["name"],
      registers,
      collect() {
        this.set(queue, depth());
      },
    });
    this.#adds = new Counter({
      name: "workqueue_adds_total",
      help: "Total number of adds handled by workqueue (changes that asked for a pass).",
      labelNames: ["name"],
      registers,
    });
    this.#adds.inc(queue, 0);
    this.#queueDuration = new Histogram({
      name: "workqueue_queue_duration_seconds",
      help: "How long in seconds an item stays in workqueue before being requested",
      labelNames: ["name"],
      buckets: QUEUE_BUCKETS,
      registers,
    });
    this.#queueDuration.zero(queue);
    this.#workDuration = new Histogram({
      name: "workqueue_work_duration_seconds",
      help: "How long in seconds processing an item from workqueue takes.",
      labelNames: ["name"],
      buckets: QUEUE_BUCKETS,
      registers,
    });
    this.#workDuration.zero(queue);
    this.#retries = new Counter({
      name: "workqueue_retries_total",
      help: "Total number of retries handled by workqueue (passes retried after a failed step).",
      labelNames: ["name"],
      registers,
    });
    this.#retries.inc(queue, 0);
    const running = () =>
      this.#startedAt === undefined ? 0 : (this.#now() - this.#startedAt) / 1000;
    for (
      const [name, help] of [
        [
          "workqueue_unfinished_work_seconds",
          "How many seconds of work has been done that is in progress and hasn't been observed " +
          "by work_duration.",
        ],
        [
          "workqueue_longest_running_processor_seconds",
          "How many seconds has the longest running processor for workqueue been running.",
        ],
      ] as const
    ) {
      new Gauge({
        name,
        help,
        labelNames: ["name"],
        registers,
        collect() {
          this.set(queue, running());
        },
      });
    }
    this.#requests = new Counter({
      name: "rest_client_requests_total",
      help: "Number of HTTP requests to the Kubernetes API server, partitioned by status code, " +
        "method, and host.",
      labelNames: ["code", "method", "host"],
      registers,
    });
  }

  /** {@inheritDoc LoopObserver.queued} */
  queued(): void {
    this.#adds.inc({ name: CONTROLLER_NAME });
    this.#queuedAt ??= this.#now();
  }

  /** {@inheritDoc LoopObserver.started} */
  started(): void {
    const now = this.#now();
    // A pass started by the resync timer had no request waiting: it waited 0.
    this.#queueDuration.observe(
      { name: CONTROLLER_NAME },
      this.#queuedAt === undefined ? 0 : (now - this.#queuedAt) / 1000,
    );
    this.#queuedAt = undefined;
    this.#startedAt = now;
    this.#activeWorkers.set({ controller: CONTROLLER_NAME }, 1);
  }

  /** {@inheritDoc LoopObserver.finished} */
  finished(result: PassResult): void {
    const seconds = this.#startedAt === undefined ? 0 : (this.#now() - this.#startedAt) / 1000;
    this.#startedAt = undefined;
    this.#activeWorkers.set({ controller: CONTROLLER_NAME }, 0);
    const controller = { controller: CONTROLLER_NAME };
    this.#reconciles.inc({ ...controller, result });
    this.#reconcileTime.observe(controller, seconds);
    this.#workDuration.observe({ name: CONTROLLER_NAME }, seconds);
    if (result === "error") {
      this.#reconcileErrors.inc(controller);
      this.#retries.inc({ name: CONTROLLER_NAME });
    }
  }

  /** Counts one API request (pass as the client's `onResult`). */
  request(result: RequestResult): void {
    this.#requests.inc({ code: result.code, method: result.method, host: result.host });
  }
}
