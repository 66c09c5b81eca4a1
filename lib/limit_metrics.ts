/**
 * Metrics of the process's limits: file descriptors in use and their limit (the standard
 * `process_open_fds` and `process_max_fds`, which prom-client would read from `/proc/self`, refused
 * by Deno without `--allow-all`: read here by the system worker), the sockets and UDP session budgets,
 * the worst event-loop stall between scrapes, and datagrams the kernel dropped.
 * @module
 */
import { Counter, Gauge, type Registry } from "prom-client";
import type { Budget } from "./forward/budget.ts";
import type { ForwarderStatus } from "./forward/state.ts";
import { systemWorker } from "./ffi/system_worker_client.ts";
import { forwarderLabels } from "./metrics.ts";
import { udpDropsByPort, udpReceiveBufferErrors } from "./udp_kernel_drops.ts";

/** What the limit metrics read on scrape. */
export interface LimitView {
  /** Soft RLIMIT_NOFILE, if known. */
  readonly fdLimit: number | undefined;
  /** The sockets budget of all threads together. */
  readonly maxOpenSockets: number;
  /** This thread's budgets (shared with the batched UDP engine's threads). */
  readonly budgets: { readonly sockets: Budget; readonly udpBuffers: Budget };
  statuses(): Iterable<ForwarderStatus>;
}

/** How often the event loop is sampled for lag. */
const LAG_SAMPLE_MS = 250;

/** Registers the limit metrics; disposing stops the event-loop sampler. */
export function registerLimitMetrics(registry: Registry, view: LimitView): Disposable {
  const registers = [registry];
  const gauge = (
    name: string,
    help: string,
    value: () => number | undefined | Promise<number | undefined>,
  ) =>
    new Gauge({
      name,
      help,
      registers,
      async collect() {
        const current = await value();
        if (current !== undefined) this.set(current);
      },
    });
  gauge(
    "process_open_fds",
    "Number of open file descriptors.",
    async () => await systemWorker()?.openFdCount(),
  );
  gauge(
    "process_max_fds",
    "Maximum number of open file descriptors (soft RLIMIT_NOFILE, read at start).",
    () => view.fdLimit,
  );
  gauge(
    "undying_proxy_open_sockets",
    "Sockets held by TCP connections (2 each) and UDP sessions (1 each) of the main thread and " +
      "the batched UDP engine's threads.",
    () => view.budgets.sockets.inUse,
  );
  gauge(
    "undying_proxy_max_open_sockets",
    "--max-open-sockets in force (derived from the file descriptor limit unless set).",
    () => view.maxOpenSockets,
  );
  gauge(
    "undying_proxy_udp_buffer_bytes_reserved",
    "Bytes reserved by open UDP sessions: a portable session's worst case (its buffer), a " +
      "batched session's state (4 KiB).",
    () => view.budgets.udpBuffers.inUse,
  );
  gauge(
    "undying_proxy_udp_buffer_budget_bytes",
    "--udp-buffer-budget-bytes: new UDP clients are refused beyond it.",
    () => view.budgets.udpBuffers.max,
  );

  let worstLagMs = 0;
  let expected = performance.now() + LAG_SAMPLE_MS;
  const sampler = setInterval(() => {
    const now = performance.now();
    worstLagMs = Math.max(worstLagMs, now - expected);
    expected = now + LAG_SAMPLE_MS;
  }, LAG_SAMPLE_MS);
  Deno.unrefTimer(sampler);
  gauge(
    "undying_proxy_event_loop_lag_seconds",
    `Longest delay of a ${LAG_SAMPLE_MS} ms timer since the previous scrape: how long forwarding ` +
      "on the main thread stalled at most.",
    () => {
      const lag = Math.max(0, worstLagMs) / 1000;
      worstLagMs = 0;
      return lag;
    },
  );

  new Counter({
    name: "undying_proxy_udp_kernel_dropped_datagrams_total",
    help: "Datagrams to a UDP listener the kernel dropped (receive buffer full), per forwarder.",
    labelNames: ["forwarder", "namespace"],
    registers,
    async collect() {
      const drops = await udpDropsByPort();
      this.reset();
      for (const status of view.statuses()) {
        const state = status.udp;
        if (state?.phase !== "listening") continue;
        this.inc(forwarderLabels(status.name), drops.get(state.port) ?? 0);
      }
    },
  });
  new Counter({
    name: "undying_proxy_udp_receive_buffer_errors_total",
    help: "UDP datagrams dropped by the kernel for a full receive buffer in this network " +
      "namespace (RcvbufErrors of /proc/net/snmp: the pod's, or the host's with host networking).",
    registers,
    async collect() {
      const errors = await udpReceiveBufferErrors();
      if (errors === undefined) return;
      this.reset();
      this.inc(errors);
    },
  });
  return { [Symbol.dispose]: () => clearInterval(sampler) };
}
