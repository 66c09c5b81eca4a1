/**
 * Every Prometheus metric of the program, registered once. Forwarding metrics are computed on scrape
 * from the supervisor's live counters and statuses (nothing is done per packet); the names, types and
 * label keys of the Go operator's metrics are kept (its error counters carry only `type`, one series
 * per type; per-object error counts have their own names), with `namespace` added next to
 * `forwarder`. Series of a removed forwarder disappear with it.
 * @module
 */
import { Counter, Gauge, Registry } from "prom-client";
import {
  type ForwarderCounters,
  type ForwarderStatus,
  type ListenerState,
  type Protocol,
  TCP_ERROR_TYPES,
  TCP_REJECT_REASONS,
  type TcpCounters,
  UDP_ERROR_TYPES,
  UDP_REJECT_REASONS,
  type UdpCounters,
} from "./forward/state.ts";
import { UDP_ENGINE_KINDS, type UdpEngineKind } from "./forward/udp_engine_choice.ts";

/** What the metrics read on scrape; the `Supervisor` provides both. */
export interface ForwardingView {
  statuses(): Iterable<ForwarderStatus>;
  counters(): Iterable<ForwarderCounters>;
}

/** Outcome label of `undying_proxy_config_reloads_total`. */
export type ReloadResult = "success" | "failure";

const PHASES: readonly ListenerState["phase"][] = [
  "pending",
  "listening",
  "failed",
  "conflict",
  "forbidden",
];
/**
 * The Go operator's UDP error types for deadlines this program never sets (its sessions use
 * timers): exported at 0 so that queries and alerts naming them keep working.
 */
export const GO_DEADLINE_ERROR_TYPES = [
  "SetWriteDeadlineClientToTarget",
  "SetReadDeadlineTargetToClient",
  "SetWriteDeadlineTargetToClient",
] as const;
const PER_FORWARDER = ["forwarder", "namespace"];

type Labels = Record<string, string>;
type Emit = (labels: Labels, value: number) => void;

/** A metric with one series per forwarder, read from one protocol part's counters. */
type PartMetric =
  & { readonly kind: "counter" | "gauge"; readonly name: string; readonly help: string }
  & (
    | { readonly protocol: "tcp"; readonly value: (counters: TcpCounters) => number }
    | { readonly protocol: "udp"; readonly value: (counters: UdpCounters) => number }
  );

/** Per-forwarder metrics: the Go operator's first, then the new ones. */
const PART_METRICS: readonly PartMetric[] = [
  {
    kind: "counter",
    protocol: "tcp",
    name: "undying_proxy_tcp_from_clients_to_target_bytes_total",
    help: "Bytes forwarded from TCP clients to the target.",
    value: (c) => c.bytesClientToTarget,
  },
  {
    kind: "counter",
    protocol: "tcp",
    name: "undying_proxy_tcp_from_target_to_clients_bytes_total",
    help: "Bytes forwarded from the TCP target to clients.",
    value: (c) => c.bytesTargetToClient,
  },
  {
    kind: "gauge",
    protocol: "udp",
    name: "undying_proxy_udp_clients_connected",
    help: "UDP sessions (client addresses) open now.",
    value: (c) => c.activeSessions,
  },
  {
    kind: "counter",
    protocol: "udp",
    name: "undying_proxy_udp_from_clients_to_target_bytes_total",
    help: "Bytes forwarded from UDP clients to the target.",
    value: (c) => c.bytesClientToTarget,
  },
  {
    kind: "counter",
    protocol: "udp",
    name: "undying_proxy_udp_from_target_to_clients_bytes_total",
    help: "Bytes forwarded from the UDP target to clients.",
    value: (c) => c.bytesTargetToClient,
  },
  {
    kind: "gauge",
    protocol: "tcp",
    name: "undying_proxy_tcp_active_connections",
    help: "TCP connections open now (including draining ones).",
    value: (c) => c.activeConnections,
  },
  {
    kind: "counter",
    protocol: "tcp",
    name: "undying_proxy_tcp_connections_total",
    help: "TCP connections accepted.",
    value: (c) => c.connectionsTotal,
  },
  {
    kind: "counter",
    protocol: "udp",
    name: "undying_proxy_udp_from_clients_to_target_datagrams_total",
    help: "Datagrams forwarded from UDP clients to the target.",
    value: (c) => c.datagramsClientToTarget,
  },
  {
    kind: "counter",
    protocol: "udp",
    name: "undying_proxy_udp_from_target_to_clients_datagrams_total",
    help: "Datagrams forwarded from the UDP target to clients.",
    value: (c) => c.datagramsTargetToClient,
  },
  {
    kind: "counter",
    protocol: "udp",
    name: "undying_proxy_udp_sessions_total",
    help: "UDP sessions opened.",
    value: (c) => c.sessionsTotal,
  },
  {
    kind: "counter",
    protocol: "udp",
    name: "undying_proxy_udp_dropped_datagrams_total",
    help: "Datagrams from new clients dropped because --udp-max-sessions was reached.",
    value: (c) => c.droppedDatagrams,
  },
  {
    kind: "counter",
    protocol: "udp",
    name: "undying_proxy_udp_truncated_datagrams_total",
    help:
      "Datagrams larger than --udp-buffer-bytes: forwarded cut (portable UDP engine) or dropped (batched).",
    value: (c) => c.truncatedDatagrams,
  },
  {
    kind: "counter",
    protocol: "udp",
    name: "undying_proxy_udp_segmented_datagrams_total",
    help:
      "Datagrams the batched UDP engine sent in segmented runs (UDP GSO: equal-size datagrams to one address, one trip through the kernel).",
    value: (c) => c.segmentedDatagrams,
  },
];

/** The program's metrics registry and the metrics other components advance themselves. */
export class ProgramMetrics {
  /** Holds every metric below. */
  readonly registry: Registry = new Registry();
  /** `undying_proxy_operator_errors_total{type}`: advanced by the operator (Go operator's types and more). */
  readonly operatorErrors: Counter<"type">;
  /** `undying_proxy_config_reloads_total{result}`: reloads of the `--config` file. */
  readonly configReloads: Counter<"result">;
  /**
   * `undying_proxy_config_last_reload_successful`: 1 when the last load of `--config` was valid.
   * Absent in operator mode, where there is no file.
   */
  readonly configLastReloadSuccessful: Gauge | undefined;
  /** `undying_proxy_config_watch_lost_total`: watches of the `--config` directory lost and set up again. */
  readonly configWatchLost: Counter | undefined;
  /** `undying_proxy_shutting_down`: 1 from the first SIGTERM/SIGINT on. */
  readonly shuttingDown: Gauge;
  /** `undying_proxy_udp_engine{engine}`: which UDP engine forwards (see `recordUdpEngine`). */
  readonly udpEngine: Gauge;
  /** `undying_proxy_tcp_engine{engine}`: which TCP engine forwards (see `recordTcpEngine`). */
  readonly tcpEngine: Gauge;

  /** Registers every metric, reading forwarding state from `view` on each scrape. */
  constructor(
    view: ForwardingView,
    options: {
      readonly version: string;
      readonly configFile?: boolean;
      /** Access records dropped because the log output lagged (see `lib/logging.ts`). */
      readonly droppedAccessRecords?: () => number;
    },
  ) {
    const registers = [this.registry];

    this.#collected(
      "gauge",
      "undying_proxy_build_info",
      "Always 1; the version label says which build runs.",
      ["version"],
      (emit) => emit({ version: options.version }, 1),
    );
    this.#collected(
      "counter",
      "undying_proxy_access_log_dropped_records_total",
      "Access records dropped because the log output (stderr) did not keep up.",
      [],
      (emit) => emit({}, options.droppedAccessRecords?.() ?? 0),
    );
    for (const protocol of ["tcp", "udp"] as const) {
      this.#collected(
        "gauge",
        `undying_proxy_${protocol}_forwarders`,
        `${protocol.toUpperCase()} forwarders listening now.`,
        [],
        (emit) => emit({}, countListening(view.statuses(), protocol)),
      );
    }
    for (const metric of PART_METRICS) {
      const fill = (emit: Emit) => {
        for (const forwarder of view.counters()) {
          const labels = forwarderLabels(forwarder.name);
          if (metric.protocol === "tcp" && forwarder.tcp) emit(labels, metric.value(forwarder.tcp));
          if (metric.protocol === "udp" && forwarder.udp) emit(labels, metric.value(forwarder.udp));
        }
      };
      this.#collected(metric.kind, metric.name, metric.help, PER_FORWARDER, fill);
    }
    const errorTypes = { tcp: TCP_ERROR_TYPES, udp: UDP_ERROR_TYPES } as const;
    const goTypes = { tcp: TCP_ERROR_TYPES, udp: [...UDP_ERROR_TYPES, ...GO_DEADLINE_ERROR_TYPES] };
    for (const protocol of ["tcp", "udp"] as const) {
      const errorsOf = function* () {
        for (const forwarder of view.counters()) {
          const errors: Record<string, number> | undefined = forwarder[protocol]?.errors;
          if (errors !== undefined) yield [forwarder.name, errors] as const;
        }
      };
      // The Go operator's counter: `type` only, every type present, never going down.
      const totals = new RetainedTotals();
      this.#collected(
        "counter",
        `undying_proxy_${protocol}_forwarding_errors_total`,
        `${protocol.toUpperCase()} forwarding errors by type, over every forwarder (also removed ` +
          "ones).",
        ["type"],
        (emit) => {
          const sums = totals.update(errorsOf());
          for (const type of goTypes[protocol]) emit({ type }, sums.get(type) ?? 0);
        },
      );
      this.#collected(
        "counter",
        `undying_proxy_${protocol}_forwarder_errors_total`,
        `${protocol.toUpperCase()} forwarding errors by type and forwarder (new).`,
        ["type", ...PER_FORWARDER],
        (emit) => {
          for (const [name, errors] of errorsOf()) {
            const labels = forwarderLabels(name);
            for (const type of errorTypes[protocol]) emit({ ...labels, type }, errors[type] ?? 0);
          }
        },
      );
    }

    // Clients turned away before anything was dialled or allocated (source policy, limits, target).
    const rejected = {
      tcp: { reasons: TCP_REJECT_REASONS, what: "TCP connections closed at accept" },
      udp: { reasons: UDP_REJECT_REASONS, what: "Datagrams dropped before a session existed" },
    } as const;
    for (const protocol of ["tcp", "udp"] as const) {
      const { reasons, what } = rejected[protocol];
      this.#collected(
        "counter",
        protocol === "tcp"
          ? "undying_proxy_tcp_rejected_connections_total"
          : "undying_proxy_udp_rejected_datagrams_total",
        `${what}, without reaching the target, by reason (sourceRanges, limits, target policy).`,
        ["reason", ...PER_FORWARDER],
        (emit) => {
          for (const forwarder of view.counters()) {
            const counts: Record<string, number> | undefined = forwarder[protocol]?.rejected;
            if (counts === undefined) continue;
            const labels = forwarderLabels(forwarder.name);
            for (const reason of reasons) emit({ ...labels, reason }, counts[reason] ?? 0);
          }
        },
      );
    }

    // State of every forwarder in the desired set.
    this.#collected(
      "gauge",
      "undying_proxy_forwarder_state",
      "1 for the current state (pending, listening, failed, conflict, forbidden) of each forwarder part.",
      ["protocol", "state", ...PER_FORWARDER],
      (emit) => {
        for (const status of view.statuses()) {
          const labels = forwarderLabels(status.name);
          for (const protocol of ["tcp", "udp"] as const) {
            const phase = status[protocol]?.phase;
            if (phase === undefined) continue;
            for (const state of PHASES) {
              emit({ ...labels, protocol, state }, state === phase ? 1 : 0);
            }
          }
        }
      },
    );

    // Program.
    this.operatorErrors = new Counter({
      name: "undying_proxy_operator_errors_total",
      help: "Operator errors by type.",
      labelNames: ["type"],
      registers,
    });
    this.configReloads = new Counter({
      name: "undying_proxy_config_reloads_total",
      help: "Loads of the --config file by result (an invalid file keeps the last good config).",
      labelNames: ["result"],
      registers,
    });
    for (const result of ["success", "failure"] as const) this.configReloads.inc({ result }, 0);
    this.configLastReloadSuccessful = options.configFile === false ? undefined : new Gauge({
      name: "undying_proxy_config_last_reload_successful",
      help: "1 when the last load of the --config file was valid, else 0.",
      registers,
    });
    this.configWatchLost = options.configFile === false ? undefined : new Counter({
      name: "undying_proxy_config_watch_lost_total",
      help:
        "Watches of the --config file's directory lost (removed or re-created) and set up again.",
      registers,
    });
    this.configWatchLost?.inc(0);
    this.shuttingDown = new Gauge({
      name: "undying_proxy_shutting_down",
      help: "1 once a shutdown signal was received (draining), else 0.",
      registers,
    });
    this.shuttingDown.set(0);
    this.udpEngine = new Gauge({
      name: "undying_proxy_udp_engine",
      help:
        "1 for the UDP engine in use (io_uring, batched or portable; see --udp-engine), 0 for the others.",
      labelNames: ["engine"],
      registers,
    });
    this.tcpEngine = new Gauge({
      name: "undying_proxy_tcp_engine",
      help: "1 for the TCP engine in use (splice or portable; see --tcp-engine), 0 for the other.",
      labelNames: ["engine"],
      registers,
    });
  }

  /** Records the TCP engine in use (known once the splice engine's self-test ran). */
  recordTcpEngine(engine: "splice" | "portable"): void {
    for (const kind of ["splice", "portable"] as const) {
      this.tcpEngine.set({ engine: kind }, kind === engine ? 1 : 0);
    }
  }

  /** Records the UDP engine in use (known once the batched engine's self-test ran). */
  recordUdpEngine(engine: UdpEngineKind): void {
    for (const kind of UDP_ENGINE_KINDS) {
      this.udpEngine.set({ engine: kind }, kind === engine ? 1 : 0);
    }
  }

  /** Records the outcome of one load of the `--config` file. */
  recordReload(result: ReloadResult): void {
    this.configReloads.inc({ result });
    this.configLastReloadSuccessful?.set(result === "success" ? 1 : 0);
  }

  /** Answers `GET /metrics` with the exposition text; any other path is 404. */
  async handle(request: Request): Promise<Response> {
    if (new URL(request.url).pathname !== "/metrics") {
      return new Response("not found\n", { status: 404 });
    }
    const body = await this.registry.metrics();
    return new Response(body, { headers: { "content-type": this.registry.contentType } });
  }

  /** Registers a metric whose series are recomputed by `fill` on every scrape. */
  #collected(
    kind: "counter" | "gauge",
    name: string,
    help: string,
    labelNames: string[],
    fill: (emit: Emit) => void,
  ) {
    const configuration = { name, help, labelNames, registers: [this.registry] };
    if (kind === "counter") {
      new Counter({
        ...configuration,
        collect() {
          this.reset();
          fill((labels, value) => this.inc(labels, value));
        },
      });
    } else {
      new Gauge({
        ...configuration,
        collect() {
          this.reset();
          fill((labels, value) => this.set(labels, value));
        },
      });
    }
  }
}

/**
 * Labels of a forwarder named `namespace/name` (operator) or `name`: the Go operator's `forwarder`
 * label was the bare object name, so it stays that; the namespace gets its own label.
 */
export function forwarderLabels(name: string): { forwarder: string; namespace: string } {
  const slash = name.indexOf("/");
  return slash < 0
    ? { forwarder: name, namespace: "" }
    : { forwarder: name.slice(slash + 1), namespace: name.slice(0, slash) };
}

/**
 * Per-type sums over forwarders that come and go, for a counter that must never go down: the counts
 * a forwarder had at the last scrape stay in the sum once it is gone (or restarted from 0 under the
 * same name). Errors of a forwarder between the last scrape and its removal are not seen.
 */
class RetainedTotals {
  #last = new Map<string, Readonly<Record<string, number>>>();
  #retired = new Map<string, number>();

  /** The sums by type, given every live forwarder's counts by name. */
  update(
    current: Iterable<readonly [string, Readonly<Record<string, number>>]>,
  ): Map<string, number> {
    const now = new Map<string, Readonly<Record<string, number>>>();
    for (const [name, counts] of current) now.set(name, { ...counts });
    for (const [name, before] of this.#last) {
      const after = now.get(name);
      const restarted = after !== undefined &&
        Object.entries(before).some(([type, count]) => (after[type] ?? 0) < count);
      if (after === undefined || restarted) this.#add(this.#retired, before);
    }
    this.#last = now;
    const sums = new Map(this.#retired);
    for (const counts of now.values()) this.#add(sums, counts);
    return sums;
  }

  #add(into: Map<string, number>, counts: Readonly<Record<string, number>>): void {
    for (const [type, count] of Object.entries(counts)) {
      into.set(type, (into.get(type) ?? 0) + count);
    }
  }
}

function countListening(statuses: Iterable<ForwarderStatus>, protocol: Protocol): number {
  let count = 0;
  for (const status of statuses) if (status[protocol]?.phase === "listening") count++;
  return count;
}
