/**
 * The UDP engine of a supervisor (`--udp-engine`): the batched engine (libc through FFI in engine
 * threads, `udp_batched/`) when chosen and working, else the portable `Deno.listenDatagram` engine
 * ({@linkcode UdpForwarder}). Both give the supervisor a {@linkcode RunningForwarder} per UDP
 * listener and advance the same {@linkcode UdpCounters}.
 * @module
 */

import {
  type EngineChoice,
  nativeUnavailableReason,
  startNativeEngine,
} from "../ffi/engine_selection.ts";
import { getLogger } from "@logtape/logtape";
import type { UdpSpec } from "../spec.ts";
import { bindDualStack } from "./_bind_dual_stack.ts";
import type { RunningForwarder, TargetReport } from "./listener_part.ts";
import type { TargetPolicy } from "./policy/target_policy.ts";
import { newUdpCounters, type UdpCounters } from "./state.ts";
import {
  type BatchedUdpEngine,
  enableIoUring,
  setBusyPoll,
  startBatchedUdpEngine,
} from "./udp_batched/batched_engine.ts";
import { BatchedUdpForwarder } from "./udp_batched/batched_forwarder.ts";
import { selfTest } from "./udp_batched/self_test.ts";
import { SharedUdpCounters } from "./udp_batched/shared_udp_counters.ts";
import { UdpForwarder } from "./udp_forwarder.ts";
import type { Budget } from "./budget.ts";
import type { UdpEngineChoice, UdpEngineKind } from "./udp_engine_choice.ts";

export type { UdpEngineChoice, UdpEngineKind };

const log = getLogger(["undying-proxy", "udp"]);

/** What every UDP listener of a supervisor shares. */
export interface UdpEngineOptions {
  readonly choice: UdpEngineChoice;
  /** Engine threads of the batched engine (each binds every UDP port with SO_REUSEPORT). */
  readonly threads: number;
  /** Busy-polling window of the batched engine's threads, in microseconds. @default 0 (off) */
  readonly busyPollUs?: number;
  readonly listenAddress: string;
  readonly maxSessions: number;
  readonly bufferBytes: number;
  /** Whether sessions get access records when the spec does not say. @default false */
  readonly accessLog?: boolean;
  /** Share of sessions with an access record, 0-1. @default 1 */
  readonly accessLogSampleRate?: number;
  /** Sockets of UDP sessions (one each), shared with this thread's TCP (and the engine threads). */
  readonly sockets: Budget;
  /** Bytes of UDP sessions: the portable engine's buffers, the batched engine's session state. */
  readonly bufferBudget: Budget;
  /** Which target addresses may be used. @default TargetPolicy.ALLOW_ALL */
  readonly policy?: TargetPolicy;
  /** `sourceRanges` of parts without their own. @default [] (everyone) */
  readonly defaultSourceRanges?: readonly string[];
}

/**
 * True when a UDP part must run on the portable engine even when the batched one runs: it limits
 * sessions per source while several engine threads share the port (each thread would count only
 * its own clients, so the limit is kept exact on one socket instead). The batched engine does
 * everything else itself: the access policy, PROXY headers, access records.
 */
export function needsPortable(spec: UdpSpec, threads: number): boolean {
  return threads > 1 && spec.maxSessionsPerSource !== undefined;
}

/** Opens UDP listeners on the chosen engine. */
export class UdpEngine {
  /** The engine in use once the batched engine started and passed its self-test (or not). */
  readonly ready: Promise<UdpEngineKind>;
  readonly #options: UdpEngineOptions;
  /** True while the batched engine may be used (its counters live in shared memory). */
  readonly #batchedCandidate: boolean;
  #batched: BatchedUdpEngine | undefined;

  /** Starts the batched engine in the background when `choice` allows it. */
  constructor(options: UdpEngineOptions) {
    this.#options = options;
    this.#batchedCandidate = options.choice === "batched" || options.choice === "io_uring" ||
      (options.choice === "auto" && nativeUnavailableReason() === undefined);
    const choice: EngineChoice = options.choice === "batched" || options.choice === "io_uring"
      ? "native"
      : options.choice;
    let ioUring = false;
    this.ready = startNativeEngine({
      name: options.choice === "io_uring" ? "io_uring UDP" : "batched UDP",
      choice,
      start: async () => {
        const engine = await startBatchedUdpEngine(options.threads);
        if (options.busyPollUs) await setBusyPoll(engine, options.busyPollUs);
        if (options.choice === "batched" || options.choice === "portable") return engine;
        const refused = await enableIoUring(engine);
        ioUring = refused === undefined;
        if (refused === undefined) return engine;
        if (options.choice === "io_uring") {
          await engine.close();
          throw new Error(`io_uring is not available: ${refused}`);
        }
        // Expected under RuntimeDefault seccomp profiles: information, not a warning.
        log.info("io_uring is not available ({reason}); the batched UDP engine uses epoll", {
          reason: refused,
        });
        return engine;
      },
      selfTest,
      close: (engine) => engine.close(),
    }).then((engine) => {
      this.#batched = engine;
      return engine === undefined ? "portable" : ioUring ? "io_uring" : "batched";
    });
    this.ready.catch(() => {}); // reported by open() and by whoever awaits `ready`
  }

  /** Counters for a new UDP part (in shared memory when the batched engine may serve it). */
  newCounters(): UdpCounters {
    return this.#batchedCandidate ? new SharedUdpCounters(this.#options.threads) : newUdpCounters();
  }

  /**
   * True when `spec` needs the portable engine whatever the choice (see {@linkcode needsPortable});
   * a spec change that flips this rebinds the listener (see {@linkcode UdpEngine.sameEngine}).
   */
  needsPortable(spec: UdpSpec): boolean {
    return needsPortable(spec, this.#options.threads);
  }

  /** False when a listener of `before` must be rebound to serve `after` (the engine changes). */
  sameEngine(before: UdpSpec, after: UdpSpec): boolean {
    return !this.#batchedCandidate || this.needsPortable(before) === this.needsPortable(after);
  }

  /** Binds `spec.listenPort` and forwards; synchronous on the portable engine. */
  open(
    name: string,
    spec: UdpSpec,
    counters: UdpCounters,
    onTarget?: TargetReport,
  ): RunningForwarder<UdpSpec> | Promise<RunningForwarder<UdpSpec>> {
    const portable = () => this.#openPortable(name, spec, counters, onTarget);
    if (!this.#batchedCandidate) return portable();
    if (this.needsPortable(spec)) {
      log.warn(
        "UDP of {forwarder} runs on the portable engine: maxSessionsPerSource with --workers {threads} (each engine thread would count only its own clients)",
        { forwarder: name, threads: this.#options.threads },
      );
      return portable();
    }
    return this.ready.then(
      (kind): RunningForwarder<UdpSpec> | Promise<RunningForwarder<UdpSpec>> => {
        const batched = this.#batched;
        if (kind === "portable" || batched === undefined) return portable();
        if (!(counters instanceof SharedUdpCounters)) throw new Error("UDP counters not shared");
        return BatchedUdpForwarder.open(batched, {
          name,
          counters,
          spec,
          listenAddress: this.#options.listenAddress,
          maxSessions: this.#options.maxSessions,
          bufferBytes: this.#options.bufferBytes,
          sockets: this.#options.sockets,
          sessionBytes: this.#options.bufferBudget,
          ...(this.#options.accessLog !== undefined && { accessLog: this.#options.accessLog }),
          ...(this.#options.accessLogSampleRate !== undefined &&
            { accessLogSampleRate: this.#options.accessLogSampleRate }),
          ...(this.#options.policy && { policy: this.#options.policy }),
          ...(this.#options.defaultSourceRanges &&
            { defaultSourceRanges: this.#options.defaultSourceRanges }),
          ...(onTarget && { onTarget }),
        });
      },
    );
  }

  /** Stops the engine threads (after every listener drained). */
  async close(): Promise<void> {
    await this.ready.catch(() => {});
    await this.#batched?.close();
  }

  #openPortable(
    name: string,
    spec: UdpSpec,
    counters: UdpCounters,
    onTarget: TargetReport | undefined,
  ): UdpForwarder {
    const socket = bindDualStack(
      this.#options.listenAddress,
      (hostname) => Deno.listenDatagram({ hostname, port: spec.listenPort, transport: "udp" }),
    );
    return new UdpForwarder(socket, {
      name,
      counters,
      spec,
      maxSessions: this.#options.maxSessions,
      bufferBytes: this.#options.bufferBytes,
      ...(this.#options.accessLog !== undefined && { accessLog: this.#options.accessLog }),
      ...(this.#options.accessLogSampleRate !== undefined &&
        { accessLogSampleRate: this.#options.accessLogSampleRate }),
      sockets: this.#options.sockets,
      bufferBudget: this.#options.bufferBudget,
      ...(this.#options.policy && { policy: this.#options.policy }),
      ...(this.#options.defaultSourceRanges &&
        { defaultSourceRanges: this.#options.defaultSourceRanges }),
      ...(onTarget && { onTarget }),
    });
  }
}
