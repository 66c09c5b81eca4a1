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
import { lookup } from "node:dns/promises";
import { currentLayout } from "../../ffi/layout.ts";
import { encodeSockaddr } from "../../ffi/sockaddr.ts";
import { ipLiteralFamily, type UdpSpec } from "../../spec.ts";
import { abortableDelay } from "../../util/abortable_delay.ts";
import type { RunningForwarder } from "../listener_part.ts";
import { LogThrottle } from "../log_throttle.ts";
import type { ForwarderPolicyOptions } from "../policy/forwarder_policy.ts";
import { TargetForbiddenError, TargetPolicy } from "../policy/target_policy.ts";
import { reportingResolver, type TargetResolver } from "../target_resolver.ts";
import type { BatchedUdpEngine } from "./batched_engine.ts";
import { type EngineTarget, type EngineTimeouts, ListenerSettings } from "./listener_settings.ts";
import type { CloseCause, ListenerPolicy, SessionRecord } from "./messages.ts";
import {
  splitForwarderName,
  type StopCause,
  UDP_FAILURE_REASONS,
  writeAccessRecord,
} from "../access_log.ts";
import type { SharedUdpCounters } from "./shared_udp_counters.ts";
import { errorMessage } from "../../util/error_message.ts";

const log = getLogger(["undying-proxy", "udp"]);

/** How often a target name is looked up again. */
const RERESOLVE_MS = 5000;

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
  readonly #resolveLog = new LogThrottle();
  #spec: UdpSpec;
  #resolver: TargetResolver;
  #target: EngineTarget | "forbidden" | undefined;
  readonly #options: BatchedUdpForwarderOptions;
  readonly #settings: ListenerSettings;
  #timer: ReturnType<typeof setInterval> | undefined;
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
    const resolver = newResolver(options.spec, options);
    const target = await resolveTarget(resolver, options.name, undefined);
    const id = ++lastId;
    const sessionsInUse = new SharedArrayBuffer(4);
    const settings = new ListenerSettings();
    settings.write(target, timeoutsOf(options.spec));
    let port = options.spec.listenPort;
    const bound: number[] = [];
    try {
      for (let index = 0; index < engine.count; index++) {
        const answer = await engine.request(index, {
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
          policy: listenerPolicy(options.spec, options),
        });
        if (answer.kind !== "listening") {
          throw new Error(answer.kind === "listenFailed" ? answer.message : answer.kind);
        }
        bound.push(index);
        port = answer.port;
      }
    } catch (error) {
      await Promise.all(
        bound.map((index) => engine.request(index, { kind: "close", id }).catch(() => {})),
      );
      throw error;
    }
    return new BatchedUdpForwarder(engine, { id, port, resolver, target, settings, options });
  }

  private constructor(
    engine: BatchedUdpEngine,
    bound: {
      id: number;
      port: number;
      resolver: TargetResolver;
      target: EngineTarget | "forbidden" | undefined;
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
    this.#resolver = bound.resolver;
    this.#target = bound.target;
    this.#settings = bound.settings;
    this.#options = bound.options;
    engine.onRecords(this.#id, (record) => this.#writeRecord(record as SessionRecord));
    this.released = this.#released.promise;
    this.#timer = setInterval(() => this.#refreshTarget(), RERESOLVE_MS);
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
      for (let index = 0; index < this.#engine.count; index++) {
        this.#engine.request(index, { kind: "policy", id: this.#id, policy, generation })
          .catch(() => {});
      }
    }
    if (old.targetHost !== spec.targetHost || old.targetPort !== spec.targetPort) {
      this.#resolver = newResolver(spec, this.#options);
      const nowMs = Date.now();
      const literal = this.#resolver.cached(nowMs);
      if (literal === undefined && this.#resolver.forbidden(nowMs) === undefined) {
        this.#refreshTarget();
        return;
      }
      this.#target = literal === undefined
        ? "forbidden"
        : engineTarget(literal.addr.hostname, literal.addr.port);
    }
    this.#publish();
  }

  /**
   * Takes no new clients from now on; live sessions keep forwarding until they expire or `graceMs`
   * passes; then every thread closes the socket. A later call with a shorter grace ends it sooner.
   */
  async drain(graceMs: number, cause: StopCause = "drained"): Promise<void> {
    this.#drained ??= Promise.all(
      Array.from(
        { length: this.#engine.count },
        (_, index) => this.#engine.request(index, { kind: "drain", id: this.#id }).catch(() => {}),
      ),
    );
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
    clearInterval(this.#timer);
    await Promise.all(
      Array.from(
        { length: this.#engine.count },
        (_, index) =>
          this.#engine.request(index, { kind: "close", id: this.#id, cause }).catch(() => {}),
      ),
    );
    this.#engine.forgetRecords(this.#id); // a thread's records arrive before its answer
    this.#released.resolve();
  }

  /** Writes the access record of a session an engine thread ended. */
  #writeRecord(record: SessionRecord): void {
    const { errorType, detail, startMs, endMs, reason, ...traffic } = record;
    const forwarder = this.#name;
    writeAccessRecord({
      forwarder,
      ...splitForwarderName(forwarder),
      protocol: "udp",
      listenPort: this.#port,
      targetHost: this.#spec.targetHost,
      targetPort: this.#spec.targetPort,
      ...traffic,
      startTime: new Date(startMs).toISOString(),
      durationMs: endMs - startMs,
      endReason: reason ?? (errorType && UDP_FAILURE_REASONS[errorType]) ?? "error",
      ...(errorType !== undefined && { endDetail: `${errorType}: ${detail ?? ""}` }),
    });
  }

  #refreshTarget(): void {
    if (this.#closing !== undefined) return;
    const resolver = this.#resolver;
    const nowMs = Date.now();
    const fresh = resolver.cached(nowMs) ?? resolver.forbidden(nowMs);
    if (fresh !== undefined && this.#target !== undefined) return;
    resolveTarget(resolver, this.#name, this.#resolveLog).then((target) => {
      if (resolver !== this.#resolver || this.#closing !== undefined) return;
      // A failed lookup keeps the last good address for new sessions.
      if (target === undefined && this.#target !== undefined) return;
      this.#target = target;
      this.#publish();
    });
  }

  #publish(): void {
    this.#settings.write(this.#target, timeoutsOf(this.#spec));
  }
}

/** The IP literal to bind: `address` itself, or what its name resolves to (also for TCP). */
export async function listenHostname(address: string): Promise<string> {
  if (ipLiteralFamily(address) !== 0) return address;
  try {
    return (await lookup(address)).address;
  } catch (error) {
    // The message the portable engine's lookup errors carry, so both count ResolveListenAddress.
    const reason = errorMessage(error);
    throw new Error(`failed to lookup address information: ${reason}`);
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

/** A resolver of the spec's target that checks the target policy and reports its verdict. */
function newResolver(spec: UdpSpec, options: ForwarderPolicyOptions): TargetResolver {
  return reportingResolver(spec.targetHost, spec.targetPort, {
    policy: options.policy ?? TargetPolicy.ALLOW_ALL,
    ...(options.onTarget && { onTarget: options.onTarget }),
  }).resolver;
}

/**
 * The target as the engine threads take it, `"forbidden"` when the target policy allows none of
 * its addresses, or undefined (logged) when its name does not resolve.
 */
async function resolveTarget(
  resolver: TargetResolver,
  name: string,
  throttle: LogThrottle | undefined,
): Promise<EngineTarget | "forbidden" | undefined> {
  try {
    const { addr } = await resolver.resolve();
    return engineTarget(addr.hostname, addr.port);
  } catch (error) {
    if (error instanceof TargetForbiddenError) return "forbidden";
    const suppressed = throttle === undefined ? 0 : throttle.take();
    if (suppressed !== undefined) {
      log.warn("Cannot resolve the UDP target of {forwarder}: {error}", {
        forwarder: name,
        error,
        suppressed,
      });
    }
    return undefined;
  }
}

/** `hostname:port` (an IP literal) as the engine threads take it. */
export function engineTarget(hostname: string, port: number): EngineTarget {
  const layout = currentLayout();
  if (layout === undefined) throw new Error("Native engines need Linux on x86-64/aarch64");
  return {
    sockaddr: encodeSockaddr(layout, hostname, port),
    family: hostname.includes(":") ? 6 : 4,
  };
}

function timeoutsOf(spec: UdpSpec): EngineTimeouts {
  return {
    readTimeoutMs: spec.readTimeoutSeconds * 1000,
    writeTimeoutMs: spec.writeTimeoutSeconds * 1000,
  };
}
