/**
 * One TCP listener on the splice engine, seen from the main thread: binds the port on every engine
 * thread (SO_REUSEPORT when there are several, so the kernel spreads connections over them),
 * resolves the listen address and the target here (the engine threads get addresses, never names;
 * a target name is looked up again every few seconds and on every update), and relays drains. The
 * access policy is checked as the portable engine checks it: the target rules here (a forbidden
 * target is published as such and reported; new clients are closed), the source ranges and limits
 * by the engine threads at accept (see `admission.ts`).
 * @module
 */

import { getLogger } from "@logtape/logtape";
import type { TcpSpec } from "../../spec.ts";
import { abortableDelay } from "../../util/abortable_delay.ts";
import type { RunningForwarder } from "../listener_part.ts";
import type { ForwarderPolicyOptions } from "../policy/forwarder_policy.ts";
import { bindEveryThread, writeEngineRecord } from "../native_listener.ts";
import { listenHostname, NativeTarget } from "../native_target.ts";
import { ListenerSettings } from "../udp_batched/listener_settings.ts";
import { validateTcpPolicy } from "./admission.ts";
import type { ConnectionRecord, TcpCloseCause, TcpListenerPolicy } from "./messages.ts";
import type { StopCause } from "../access_log.ts";
import type { SharedTcpCounters } from "./shared_tcp_counters.ts";
import type { SpliceTcpEngine } from "./splice_engine.ts";

const log = getLogger(["undying-proxy", "tcp"]);

/** Deadline for a client's PROXY header unless the program sets one (as the portable engine's). */
const DEFAULT_PROXY_HEADER_TIMEOUT_MS = 5000;
/** Timeouts do not apply through the shared settings (TCP gets them once, at listen). */
const NO_TIMEOUTS = { readTimeoutMs: 0, writeTimeoutMs: 0 };

/** Options of {@linkcode SpliceTcpForwarder.open}. */
export interface SpliceTcpForwarderOptions extends ForwarderPolicyOptions {
  /** Forwarder name, for logs. */
  readonly name: string;
  /** Shared with the engine threads (one row each). */
  readonly counters: SharedTcpCounters;
  readonly spec: TcpSpec;
  /** IP literal or host name to bind; "::" is dual-stack. */
  readonly listenAddress: string;
  readonly dialTimeoutMs: number;
  /** 0 = never. */
  readonly idleTimeoutMs: number;
  /** Connections each engine thread admits at most (fewer if its descriptor share is smaller). */
  readonly maxConnectionsPerThread?: number;
  /** Told how many connections were aborted because the drain grace period ended. */
  readonly onForcedClose?: (count: number) => void;
  /** Whether connections get access records when the spec does not say. @default false */
  readonly accessLog?: boolean;
  /** Share of connections with an access record, 0-1. @default 1 */
  readonly accessLogSampleRate?: number;
  /** Whether clients send a PROXY header when the spec does not say. @default false */
  readonly acceptProxyProtocol?: boolean;
  /** Deadline for a client's whole PROXY header. @default 5000 */
  readonly proxyHeaderTimeoutMs?: number;
}

let lastId = 0;

/** A TCP listener whose connections the splice engine threads forward. */
export class SpliceTcpForwarder implements RunningForwarder<TcpSpec> {
  /** Resolves once every thread closed the listening socket. */
  readonly released: Promise<void>;
  readonly #released = Promise.withResolvers<void>();
  readonly #engine: SpliceTcpEngine;
  readonly #id: number;
  readonly #port: number;
  readonly #name: string;
  readonly #counters: SharedTcpCounters;
  readonly #onForcedClose: ((count: number) => void) | undefined;
  readonly #options: SpliceTcpForwarderOptions;
  readonly #settings: ListenerSettings;
  #spec: TcpSpec;
  readonly #target: NativeTarget;
  #stopping: Promise<unknown> | undefined;
  #drained: Promise<unknown> | undefined;
  #closing: Promise<void> | undefined;

  /**
   * Binds `spec.listenPort` on every engine thread and starts forwarding.
   * @throws the bind error (named by errno) or a failed lookup of the listen address.
   */
  static async open(
    engine: SpliceTcpEngine,
    options: SpliceTcpForwarderOptions,
  ): Promise<SpliceTcpForwarder> {
    const policy = tcpListenerPolicy(options.spec, options);
    validateTcpPolicy(policy);
    const hostname = await listenHostname(options.listenAddress);
    const settings = new ListenerSettings();
    const { spec } = options;
    const target = await NativeTarget.open(spec.targetHost, spec.targetPort, {
      ...options,
      protocol: "TCP",
      publish: (current) => settings.write(current, NO_TIMEOUTS),
    });
    settings.write(target.current, NO_TIMEOUTS);
    const id = ++lastId;
    const connectionsInUse = new SharedArrayBuffer(4);
    try {
      const port = await bindEveryThread(
        engine.count,
        spec.listenPort,
        (index, port) =>
          engine.request(index, {
            kind: "listen",
            id,
            name: options.name,
            hostname,
            port,
            reusePort: engine.count > 1,
            threads: engine.count,
            dialTimeoutMs: options.dialTimeoutMs,
            idleTimeoutMs: options.idleTimeoutMs,
            maxConnections: options.maxConnectionsPerThread ?? Infinity,
            counters: options.counters.block.buffer,
            settings: settings.buffer,
            connectionsInUse,
            policy,
          }),
        (index) => engine.request(index, { kind: "close", id }),
      );
      return new SpliceTcpForwarder(engine, { id, port, target, settings, options });
    } catch (error) {
      target.stop();
      throw error;
    }
  }

  private constructor(
    engine: SpliceTcpEngine,
    bound: {
      id: number;
      port: number;
      target: NativeTarget;
      settings: ListenerSettings;
      options: SpliceTcpForwarderOptions;
    },
  ) {
    this.#engine = engine;
    this.#id = bound.id;
    this.#port = bound.port;
    this.#name = bound.options.name;
    this.#counters = bound.options.counters;
    this.#onForcedClose = bound.options.onForcedClose;
    this.#options = bound.options;
    this.#spec = bound.options.spec;
    this.#target = bound.target;
    this.#settings = bound.settings;
    engine.onRecords(this.#id, (record) => this.#writeRecord(record as ConnectionRecord));
    this.released = this.#released.promise;
  }

  /** The bound port. */
  get port(): number {
    return this.#port;
  }

  /**
   * New connections go to the target of `spec` and follow its rules (at once on every thread);
   * live ones keep theirs.
   * @throws {RangeError} when a source range or limit is invalid (then nothing changes).
   */
  update(spec: TcpSpec): void {
    const old = this.#spec;
    const policy = tcpListenerPolicy(spec, this.#options);
    validateTcpPolicy(policy);
    this.#spec = spec;
    if (JSON.stringify(policy) !== JSON.stringify(tcpListenerPolicy(old, this.#options))) {
      const generation = this.#settings.nextPolicy();
      this.#engine.requestAll({ kind: "policy", id: this.#id, policy, generation }).catch(() => {});
    }
    if (old.targetHost !== spec.targetHost || old.targetPort !== spec.targetPort) {
      this.#target.retarget(spec.targetHost, spec.targetPort);
    }
  }

  /**
   * Stops accepting at once (the port is free when `released` resolves), gives live connections up
   * to `graceMs` to finish, then resets the rest. A later call with a shorter grace ends it sooner.
   */
  async drain(graceMs: number, cause: StopCause = "drained"): Promise<void> {
    this.#target.stop();
    this.#stopping ??= this.#engine.requestAll({ kind: "stopAccepting", id: this.#id })
      .catch(() => {}).then(() => this.#released.resolve());
    await this.#stopping;
    this.#drained ??= this.#engine.requestAll({ kind: "drain", id: this.#id }).catch(() => {});
    if (this.#closing === undefined) {
      const graceOver = new AbortController();
      await Promise.race([this.#drained, abortableDelay(graceMs, graceOver.signal)]);
      graceOver.abort();
    }
    this.#closing ??= this.#close(graceMs, cause);
    await this.#closing;
  }

  async #close(graceMs: number, cause: TcpCloseCause): Promise<void> {
    const answers = await this.#engine.requestAll({ kind: "close", id: this.#id, cause })
      .catch(() => []);
    this.#engine.forgetRecords(this.#id); // a thread's records arrive before its answer
    const forced = answers.reduce(
      (sum, answer) => sum + (answer.kind === "done" ? answer.count : 0),
      0,
    );
    if (forced > 0) {
      this.#counters.errors.DrainTimeout += forced;
      this.#onForcedClose?.(forced);
      log.warn(
        "Aborted {count} TCP connection(s) of {forwarder} still open after the drain grace period of {graceMs} ms",
        { forwarder: this.#name, count: forced, graceMs },
      );
    }
  }

  /** Writes the access record of a connection an engine thread ended. */
  #writeRecord(record: ConnectionRecord): void {
    const { reason, detail, ...traffic } = record;
    writeEngineRecord(
      {
        forwarder: this.#name,
        protocol: "tcp",
        listenPort: this.#port,
        targetHost: this.#spec.targetHost,
        targetPort: this.#spec.targetPort,
      },
      traffic,
      reason,
      detail,
    );
  }
}

/**
 * The spec's source ranges (or the defaults), connection limits, PROXY headers (sent, accepted)
 * and access records, as the engine threads take them.
 */
export function tcpListenerPolicy(
  spec: TcpSpec,
  defaults: Pick<
    SpliceTcpForwarderOptions,
    | "defaultSourceRanges"
    | "accessLog"
    | "accessLogSampleRate"
    | "acceptProxyProtocol"
    | "proxyHeaderTimeoutMs"
  > = {},
): TcpListenerPolicy {
  return {
    sourceRanges: spec.sourceRanges ?? defaults.defaultSourceRanges ?? [],
    maxConnections: spec.maxConnections,
    maxConnectionsPerSource: spec.maxConnectionsPerSource,
    connectionsPerSecondPerSource: spec.connectionsPerSecondPerSource,
    connectionBurstPerSource: spec.connectionBurstPerSource,
    proxyProtocol: spec.proxyProtocol,
    accessLogShare: (spec.accessLog ?? defaults.accessLog ?? false)
      ? defaults.accessLogSampleRate ?? 1
      : 0,
    acceptProxyProtocol: spec.acceptProxyProtocol ?? defaults.acceptProxyProtocol ?? false,
    proxyHeaderTimeoutMs: defaults.proxyHeaderTimeoutMs ?? DEFAULT_PROXY_HEADER_TIMEOUT_MS,
  };
}
