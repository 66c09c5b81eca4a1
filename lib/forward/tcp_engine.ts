/**
 * The TCP engine of a supervisor (`--tcp-engine`): the splice engine (libc through FFI in engine
 * threads, `tcp_splice/`) when chosen and working, else the portable `Deno.listen` engine
 * ({@linkcode TcpForwarder}). Both give the supervisor a {@linkcode RunningForwarder} per TCP
 * listener and advance the same {@linkcode TcpCounters}.
 *
 * The splice engine implements the fields of {@linkcode TcpSpec} it knows ({@linkcode
 * SPLICE_TCP_FIELDS}) and the access policy (target rules, default source ranges); a forwarder whose
 * spec sets any other field (a feature added to the portable engine only), or a per-source limit
 * while several engine threads share the port, runs on the portable engine, with a log line saying
 * so, never with the feature silently ignored.
 * @module
 */

import { getLogger } from "@logtape/logtape";
import {
  type EngineChoice,
  nativeUnavailableReason,
  startNativeEngine,
} from "../ffi/engine_selection.ts";
import type { TcpSpec } from "../spec.ts";
import { bindDualStack } from "./_bind_dual_stack.ts";
import type { Budget } from "./budget.ts";
import type { RunningForwarder, TargetReport } from "./listener_part.ts";
import type { TargetPolicy } from "./policy/target_policy.ts";
import { newTcpCounters, type TcpCounters } from "./state.ts";
import { TcpForwarder } from "./tcp_forwarder.ts";
import { spliceSelfTest } from "./tcp_splice/self_test.ts";
import { SharedTcpCounters } from "./tcp_splice/shared_tcp_counters.ts";
import { type SpliceTcpEngine, startSpliceTcpEngine } from "./tcp_splice/splice_engine.ts";
import { SpliceTcpForwarder } from "./tcp_splice/splice_forwarder.ts";
import type { TcpEngineChoice, TcpEngineKind } from "./tcp_engine_choice.ts";

export type { TcpEngineChoice, TcpEngineKind };

const log = getLogger(["undying-proxy", "tcp"]);

/**
 * Per-source limits: each engine thread counts only its own clients, so with several threads they
 * would not be exact; such parts run on the portable engine then (one accept loop per port).
 */
const PER_SOURCE_TCP_FIELDS = [
  "maxConnectionsPerSource",
  "connectionsPerSecondPerSource",
  "connectionBurstPerSource",
] as const;

/** The `TcpSpec` fields the splice engine implements. */
export const SPLICE_TCP_FIELDS: ReadonlySet<string> = new Set([
  "listenPort",
  "targetHost",
  "targetPort",
  "sourceRanges",
  "maxConnections",
  ...PER_SOURCE_TCP_FIELDS,
  "proxyProtocol",
  "accessLog",
  "acceptProxyProtocol",
]);

/** What every TCP listener of a supervisor shares. */
export interface TcpEngineOptions {
  readonly choice: TcpEngineChoice;
  /** Engine threads of the splice engine (each binds every TCP port with SO_REUSEPORT). */
  readonly threads: number;
  readonly listenAddress: string;
  readonly dialTimeoutMs: number;
  readonly idleTimeoutMs: number;
  /** Portable engine: bind with `reusePort` (other threads share the port). */
  readonly reusePort: boolean;
  /** Portable engine: this thread's sockets budget (2 per connection). */
  readonly sockets?: Budget;
  /**
   * Splice engine: sockets of the whole process (`--max-open-sockets`); each engine thread admits
   * `maxOpenSockets / threads / 2` connections at most (fewer if its descriptor share is smaller).
   */
  readonly maxOpenSockets?: number;
  /** Told how many connections were aborted because a drain grace period ended. */
  readonly onForcedClose?: (count: number) => void;
  /** Which target addresses may be dialled. @default TargetPolicy.ALLOW_ALL */
  readonly policy?: TargetPolicy;
  /** `sourceRanges` of parts without their own. @default [] (everyone) */
  readonly defaultSourceRanges?: readonly string[];
  /** Clients send a PROXY header unless the spec says otherwise. @default false */
  readonly acceptProxyProtocol?: boolean;
  /** Deadline for a client's whole PROXY header. @default 5000 */
  readonly proxyHeaderTimeoutMs?: number;
  /** Access records unless the spec says otherwise. @default false */
  readonly accessLog?: boolean;
  /** Share of connections with an access record, 0-1. @default 1 */
  readonly accessLogSampleRate?: number;
}

/**
 * Why a TCP part must run on the portable engine when `threads` engine threads share each port:
 * the spec fields the splice engine does not implement, and per-source limits over several threads.
 */
export function portableOnly(spec: TcpSpec, threads: number): string[] {
  const reasons = unsupportedBySplice(spec);
  if (threads > 1) {
    for (const field of PER_SOURCE_TCP_FIELDS) {
      if (spec[field] !== undefined) reasons.push(`${field} with --workers > 1`);
    }
  }
  return reasons;
}

/** The fields of `spec` the splice engine does not implement (set to a value). */
export function unsupportedBySplice(spec: TcpSpec): string[] {
  return Object.entries(spec)
    .filter(([key, value]) => value !== undefined && !SPLICE_TCP_FIELDS.has(key))
    .map(([key]) => key);
}

/** Opens TCP listeners on the chosen engine. */
export class TcpEngine {
  /** The engine in use once the splice engine started and passed its self-test (or not). */
  readonly ready: Promise<TcpEngineKind>;
  readonly #options: TcpEngineOptions;
  /** True while the splice engine may be used (its counters live in shared memory). */
  readonly #spliceCandidate: boolean;
  #splice: SpliceTcpEngine | undefined;

  /** Starts the splice engine in the background when `choice` allows it. */
  constructor(options: TcpEngineOptions) {
    this.#options = options;
    this.#spliceCandidate = options.choice === "splice" ||
      (options.choice === "auto" && nativeUnavailableReason() === undefined);
    const choice: EngineChoice = options.choice === "splice" ? "native" : options.choice;
    this.ready = startNativeEngine({
      name: "splice TCP",
      choice,
      start: () => startSpliceTcpEngine(options.threads),
      selfTest: spliceSelfTest,
      close: (engine) => engine.close(),
    }).then((engine) => {
      this.#splice = engine;
      return engine === undefined ? "portable" : "splice";
    });
    this.ready.catch(() => {}); // reported by open() and by whoever awaits `ready`
  }

  /** Counters for a new TCP part (in shared memory when the splice engine may serve it). */
  newCounters(): TcpCounters {
    return this.#spliceCandidate ? new SharedTcpCounters(this.#options.threads) : newTcpCounters();
  }

  /**
   * Why `spec` needs the portable engine whatever the choice (see {@linkcode portableOnly}); empty
   * when the splice engine can serve it.
   */
  portableReasons(spec: TcpSpec): string[] {
    return portableOnly(spec, this.#options.threads);
  }

  /** False when a listener of `before` must be rebound to serve `after` (the engine changes). */
  sameEngine(before: TcpSpec, after: TcpSpec): boolean {
    return !this.#spliceCandidate ||
      (this.portableReasons(before).length > 0) === (this.portableReasons(after).length > 0);
  }

  /** Binds `spec.listenPort` and forwards; synchronous on the portable engine. */
  open(
    name: string,
    spec: TcpSpec,
    counters: TcpCounters,
    onTarget?: TargetReport,
  ): RunningForwarder<TcpSpec> | Promise<RunningForwarder<TcpSpec>> {
    const portable = () => this.#openPortable(name, spec, counters, onTarget);
    if (!this.#spliceCandidate) return portable();
    return this.ready.then(
      (kind): RunningForwarder<TcpSpec> | Promise<RunningForwarder<TcpSpec>> => {
        const splice = this.#splice;
        if (kind === "portable" || splice === undefined) return portable();
        const unsupported = this.portableReasons(spec);
        if (unsupported.length > 0) {
          log.warn(
            "TCP of {forwarder} runs on the portable engine: the splice engine does not implement {fields}",
            { forwarder: name, fields: unsupported.join(", ") },
          );
          return portable();
        }
        if (!(counters instanceof SharedTcpCounters)) throw new Error("TCP counters not shared");
        return SpliceTcpForwarder.open(splice, {
          name,
          counters,
          spec,
          listenAddress: this.#options.listenAddress,
          dialTimeoutMs: this.#options.dialTimeoutMs,
          idleTimeoutMs: this.#options.idleTimeoutMs,
          maxConnectionsPerThread: Math.max(
            1,
            Math.floor((this.#options.maxOpenSockets ?? Infinity) / splice.count / 2),
          ),
          ...(this.#options.onForcedClose && { onForcedClose: this.#options.onForcedClose }),
          ...(this.#options.policy && { policy: this.#options.policy }),
          ...(this.#options.defaultSourceRanges &&
            { defaultSourceRanges: this.#options.defaultSourceRanges }),
          ...(onTarget && { onTarget }),
          ...(this.#options.accessLog !== undefined && { accessLog: this.#options.accessLog }),
          ...(this.#options.accessLogSampleRate !== undefined &&
            { accessLogSampleRate: this.#options.accessLogSampleRate }),
          ...(this.#options.acceptProxyProtocol !== undefined &&
            { acceptProxyProtocol: this.#options.acceptProxyProtocol }),
          ...(this.#options.proxyHeaderTimeoutMs !== undefined &&
            { proxyHeaderTimeoutMs: this.#options.proxyHeaderTimeoutMs }),
        });
      },
    );
  }

  /** Stops the engine threads (after every listener drained). */
  async close(): Promise<void> {
    await this.ready.catch(() => {});
    await this.#splice?.close();
  }

  #openPortable(
    name: string,
    spec: TcpSpec,
    counters: TcpCounters,
    onTarget: TargetReport | undefined,
  ): TcpForwarder {
    const listener = bindDualStack(
      this.#options.listenAddress,
      (hostname) =>
        Deno.listen({
          hostname,
          port: spec.listenPort,
          transport: "tcp",
          reusePort: this.#options.reusePort,
        }),
    );
    return new TcpForwarder(listener, {
      name,
      counters,
      spec,
      dialTimeoutMs: this.#options.dialTimeoutMs,
      idleTimeoutMs: this.#options.idleTimeoutMs,
      ...(this.#options.sockets && { sockets: this.#options.sockets }),
      ...(this.#options.onForcedClose && { onForcedClose: this.#options.onForcedClose }),
      ...(this.#options.policy && { policy: this.#options.policy }),
      ...(this.#options.defaultSourceRanges &&
        { defaultSourceRanges: this.#options.defaultSourceRanges }),
      ...(onTarget && { onTarget }),
      ...(this.#options.acceptProxyProtocol !== undefined &&
        { acceptProxyProtocol: this.#options.acceptProxyProtocol }),
      ...(this.#options.proxyHeaderTimeoutMs !== undefined &&
        { proxyHeaderTimeoutMs: this.#options.proxyHeaderTimeoutMs }),
      ...(this.#options.accessLog !== undefined && { accessLog: this.#options.accessLog }),
      ...(this.#options.accessLogSampleRate !== undefined &&
        { accessLogSampleRate: this.#options.accessLogSampleRate }),
    });
  }
}
