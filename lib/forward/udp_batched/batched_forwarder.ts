/**
 * One UDP listener on the batched engine, seen from the main thread: binds the port on every engine
 * thread (SO_REUSEPORT when there are several, so the kernel spreads clients over them), resolves
 * the listen address and the target here (the engine threads get addresses, never names; target
 * names are looked up again every few seconds as the portable engine does for new sessions), and
 * relays updates and drains. The access policy is checked as the portable engine checks it: the
 * target rules here (a forbidden target is published as such; new clients are rejected), the
 * source ranges and session limits by the engine threads when a client opens a session.
 * @module
 */

import type { Budget } from "../budget.ts";
import { getLogger } from "@logtape/logtape";
import type { UdpSpec } from "../../spec.ts";
import { abortableDelay } from "../../util/abortable_delay.ts";
import type { RunningForwarder } from "../listener_part.ts";
import type { ForwarderPolicyOptions } from "../policy/forwarder_policy.ts";
import { bindEveryThread, writeEngineRecord } from "../native_listener.ts";
import { listenHostname, NativeTarget } from "../native_target.ts";
import type { BatchedUdpEngine } from "./batched_engine.ts";
import { type EngineTimeouts, ListenerSettings } from "./listener_settings.ts";
import type { CloseCause, ListenerPolicy, SessionRecord } from "./messages.ts";
import { type StopCause, UDP_FAILURE_REASONS } from "../access_log.ts";
import type { SharedUdpCounters } from "./shared_udp_counters.ts";

const log = getLogger(["undying-proxy", "udp"]);

/** Options of {@linkcode BatchedUdpForwarder.open}. */
export interface BatchedUdpForwarderOptions extends ForwarderPolicyOptions {
  /** Forwarder name, for logs. */
  readonly name: string;
  /** Shared with the engine threads (one row each). */
  readonly counters: SharedUdpCounters;
  readonly spec: UdpSpec;
  /** IP literal or host name to bind; "::" is dual-stack. */
  readonly listenAddress: string;
  /** Sessions at most, over every engine thread. */
  readonly maxSessions: number;
  /** Longest datagram forwarded; longer ones are counted and dropped. */
  readonly bufferBytes: number;
  /** Sockets of sessions (one each), shared with the main thread's TCP and every engine thread. */
  readonly sockets: Budget;
  /** Session memory (`BATCHED_SESSION_BYTES` each), over every engine thread. */
  readonly sessionBytes: Budget;
  /** Whether sessions get access records when the spec does not say. @default false */
  readonly accessLog?: boolean;
  /** Share of sessions with an access record, 0-1. @default 1 */
  readonly accessLogSampleRate?: number;
}

let lastId = 0;

/** A UDP listener whose datagrams the engine threads forward. */
export class BatchedUdpForwarder implements RunningForwarder<UdpSpec> {
  /** Resolves once every thread closed the listening socket. */
  readonly released: Promise<void>;
  readonly #released = Promise.withResolvers<void>();
  readonly #engine: BatchedUdpEngine;
  readonly #id: number;
  readonly #port: number;
  readonly #name: string;
  readonly #counters: SharedUdpCounters;
  #spec: UdpSpec;
  readonly #target: NativeTarget;
  readonly #options: BatchedUdpForwarderOptions;
  readonly #settings: ListenerSettings;
  #drained: Promise<unknown> | undefined;
  #closing: Promise<void> | undefined;

  /**
   * Binds `spec.listenPort` on every engine thread and starts forwarding.
   * @throws the bind error (named by errno) or a failed lookup of the listen address.
   */
  static async open(
    engine: BatchedUdpEngine,
    options: BatchedUdpForwarderOptions,
  ): Promise<BatchedUdpForwarder> {
    const hostname = await listenHostname(options.listenAddress);
    const settings = new ListenerSettings();
    const { spec } = options;
    let forwarder: BatchedUdpForwarder | undefined;
    const target = await NativeTarget.open(spec.targetHost, spec.targetPort, {
      ...options,
      protocol: "UDP",
      // Before the forwarder exists, with the spec it opens with.
      publish: (current) =>
        settings.write(current, timeoutsOf(forwarder === undefined ? spec : forwarder.#spec)),
    });
    settings.write(target.current, timeoutsOf(spec));
    const id = ++lastId;
    const sessionsInUse = new SharedArrayBuffer(4);
    try {
      const port = await bindEveryThread(
        engine.count,
        spec.listenPort,
        (index, port) =>
          engine.request(index, {
            kind: "listen",
            id,
            hostname,
            port,
            reusePort: engine.count > 1,
            maxSessions: options.maxSessions,
            bufferBytes: options.bufferBytes,
            counters: options.counters.block.buffer,
            sessionsInUse,
            settings: settings.buffer,
            sockets: { max: options.sockets.max, share: options.sockets.share },
            sessionBytes: { max: options.sessionBytes.max, share: options.sessionBytes.share },
            policy: listenerPolicy(spec, options),
          }),
        (index) => engine.request(index, { kind: "close", id }),
      );
      forwarder = new BatchedUdpForwarder(engine, { id, port, target, settings, options });
      return forwarder;
    } catch (error) {
      target.stop();
      throw error;
    }
  }

  private constructor(
    engine: BatchedUdpEngine,
    bound: {
      id: number;
      port: number;
      target: NativeTarget;
      settings: ListenerSettings;
      options: BatchedUdpForwarderOptions;
    },
  ) {
    this.#engine = engine;
    this.#id = bound.id;
    this.#port = bound.port;
    this.#name = bound.options.name;
    this.#counters = bound.options.counters;
    this.#spec = bound.options.spec;
    this.#target = bound.target;
    this.#settings = bound.settings;
    this.#options = bound.options;
    engine.onRecords(this.#id, (record) => this.#writeRecord(record as SessionRecord));
    this.released = this.#released.promise;
  }

  /** The bound port. */
  get port(): number {
    return this.#port;
  }

  /**
   * New sessions use the new target and rules (source ranges, limits, PROXY header); timeouts apply
   * to every session at once (shared memory).
   */
  update(spec: UdpSpec): void {
    const old = this.#spec;
    this.#spec = spec;
    const policy = listenerPolicy(spec, this.#options);
    if (JSON.stringify(policy) !== JSON.stringify(listenerPolicy(old, this.#options))) {
      const generation = this.#settings.nextPolicy();
      this.#engine.requestAll({ kind: "policy", id: this.#id, policy, generation }).catch(() => {});
    }
    if (old.targetHost !== spec.targetHost || old.targetPort !== spec.targetPort) {
      this.#target.retarget(spec.targetHost, spec.targetPort);
    }
    this.#publish();
  }

  /**
   * Takes no new clients from now on; live sessions keep forwarding until they expire or `graceMs`
   * passes; then every thread closes the socket. A later call with a shorter grace ends it sooner.
   */
  async drain(graceMs: number, cause: StopCause = "drained"): Promise<void> {
    this.#drained ??= this.#everyThread({ kind: "drain", id: this.#id });
    if (this.#closing === undefined) {
      const graceOver = new AbortController();
      await Promise.race([this.#drained, abortableDelay(graceMs, graceOver.signal)]);
      graceOver.abort();
      this.#countForcedCloses(graceMs);
    }
    this.#closing ??= this.#close(cause);
    await this.#closing;
  }

  /** Counts and logs the sessions still open when the drain grace ended (as the portable engine). */
  #countForcedCloses(graceMs: number): void {
    const forced = this.#counters.activeSessions;
    if (forced <= 0) return;
    // Counted and logged, but no abort: a UDP session has no end to wait for, only silence.
    this.#counters.errors.DrainTimeout += forced;
    log.warn(
      "Closed {count} UDP session(s) of {forwarder} still open after the drain grace period of {graceMs} ms",
      { forwarder: this.#name, count: forced, graceMs },
    );
  }

  async #close(cause: CloseCause): Promise<void> {
    this.#target.stop();
    await this.#everyThread({ kind: "close", id: this.#id, cause });
    this.#engine.forgetRecords(this.#id); // a thread's records arrive before its answer
    this.#released.resolve();
  }

  /** Sends `request` to every thread and waits for every answer (a broken thread's failure too). */
  #everyThread(request: Parameters<BatchedUdpEngine["requestAll"]>[0]): Promise<unknown> {
    return Promise.all(
      Array.from(
        { length: this.#engine.count },
        (_, index) => this.#engine.request(index, request).catch(() => {}),
      ),
    );
  }

  /** Writes the access record of a session an engine thread ended. */
  #writeRecord(record: SessionRecord): void {
    const { errorType, detail, reason, ...traffic } = record;
    writeEngineRecord(
      {
        forwarder: this.#name,
        protocol: "udp",
        listenPort: this.#port,
        targetHost: this.#spec.targetHost,
        targetPort: this.#spec.targetPort,
      },
      traffic,
      reason ?? (errorType && UDP_FAILURE_REASONS[errorType]) ?? "error",
      errorType === undefined ? undefined : `${errorType}: ${detail ?? ""}`,
    );
  }

  /** Publishes the target and the timeouts to the engine threads. */
  #publish(): void {
    this.#settings.write(this.#target.current, timeoutsOf(this.#spec));
  }
}

/**
 * The spec's source ranges (or the defaults), session limits, PROXY header and access records, as
 * the engine threads take them.
 */
export function listenerPolicy(
  spec: UdpSpec,
  defaults: Pick<
    BatchedUdpForwarderOptions,
    "defaultSourceRanges" | "accessLog" | "accessLogSampleRate"
  >,
): ListenerPolicy {
  return {
    sourceRanges: spec.sourceRanges ?? defaults.defaultSourceRanges ?? [],
    maxSessions: spec.maxSessions,
    maxSessionsPerSource: spec.maxSessionsPerSource,
    proxyV2: spec.proxyProtocol === "v2",
    accessLogShare: (spec.accessLog ?? defaults.accessLog ?? false)
      ? defaults.accessLogSampleRate ?? 1
      : 0,
  };
}

function timeoutsOf(spec: UdpSpec): EngineTimeouts {
  return {
    readTimeoutMs: spec.readTimeoutSeconds * 1000,
    writeTimeoutMs: spec.writeTimeoutSeconds * 1000,
  };
}
