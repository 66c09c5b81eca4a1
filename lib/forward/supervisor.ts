/**
 * Converges running TCP/UDP listeners to a complete desired set of forwarder specs.
 *
 * Guarantees:
 * - A forwarder whose spec part did not change is never touched (no dropped sessions elsewhere).
 * - Target or timeout changes apply live to new connections/sessions; the listener stays open.
 * - A new `listenPort` rebinds (the old listener drains); removing `tcp` or `udp` stops only that part.
 * - One forwarder per protocol+port: the first in desired-set order gets it (the source orders the
 *   set: oldest object first, or document order), also from a later forwarder that holds it, which
 *   drains; the others report `conflict` and take the port over as soon as it is theirs and free.
 * - A bind failure marks only that part `failed` and is retried with capped exponential backoff.
 * @module
 */

import { getLogger } from "@logtape/logtape";
import type { ForwarderSpec, TcpSpec, UdpSpec } from "../spec.ts";
import type { StopCause } from "./access_log.ts";
import { Budget } from "./budget.ts";
import { isLookupError } from "./_lookup_error.ts";
import { copyTcpCounters, ForwardWorkers } from "./forward_workers.ts";
import { ListenerPart, type RunningForwarder, type TargetReport } from "./listener_part.ts";
import { TargetPolicy } from "./policy/target_policy.ts";
import type {
  ForwarderCounters,
  ForwarderStatus,
  Protocol,
  TcpCounters,
  UdpCounters,
} from "./state.ts";
import { TcpEngine, type TcpEngineKind } from "./tcp_engine.ts";
import { UdpEngine, type UdpEngineKind } from "./udp_engine.ts";
import {
  type ResolvedSupervisorOptions,
  resolveSupervisorOptions,
  type SupervisorOptions,
} from "./supervisor_options.ts";

export type { SupervisorOptions };

const log = getLogger(["undying-proxy", "supervisor"]);

/** The running state of one forwarder in the desired set. */
interface Entry {
  readonly name: string;
  tcp?: ListenerPart<TcpSpec> | undefined;
  udp?: ListenerPart<UdpSpec> | undefined;
  /** Counters survive rebinds and retargets; they go when their part goes. */
  tcpCounters?: TcpCounters | undefined;
  udpCounters?: UdpCounters | undefined;
  /** Rebuilt by `apply()`, read by `counters()`. */
  counters: ForwarderCounters;
}

/** What `#stopPart()` needs of a part of either protocol. */
type StoppablePart = Pick<ListenerPart<TcpSpec>, "stop">;

/** Makes the running listeners match the desired set of forwarders. */
export class Supervisor {
  readonly #options: ResolvedSupervisorOptions;
  #entries = new Map<string, Entry>();
  /** Port claims, keyed `tcp:8000`; a stopping part keeps its claim until its port is free. */
  readonly #claims = new Map<
    string,
    { readonly forwarder: string; readonly part: StoppablePart }
  >();
  readonly #stopping = new Set<Promise<void>>();
  readonly #listeners = new Set<(name: string) => void>();
  /** Last status reported per forwarder, to emit changes only. */
  readonly #reported = new Map<string, string>();
  /** The other forwarding threads, when `workers` > 1 on the portable TCP engine. */
  #workers: ForwardWorkers | undefined;
  /** Starts when `workers` > 1 and the TCP engine turned out portable. */
  readonly #workersStarted: Promise<void>;
  /** The latest desired set, for workers that start after it was applied. */
  #desired: readonly ForwarderSpec[] = [];
  readonly #policy: TargetPolicy;
  readonly #udpEngine: UdpEngine;
  readonly #tcpEngine: TcpEngine;
  /** Sockets of this thread's connections and sessions. */
  readonly #sockets: Budget;
  /** Bytes of this thread's UDP session buffers. */
  readonly #udpBuffers: Budget;
  /** TCP connections cut because a drain grace period ended. */
  #forcedCloses = 0;
  #closed = false;

  /** @throws {RangeError} when an option is unknown or out of range. */
  constructor(options: SupervisorOptions = {}) {
    const resolved = resolveSupervisorOptions(options);
    this.#options = resolved;
    this.#policy = new TargetPolicy(resolved.targetPolicy);
    // Every thread gets an equal share of the sockets budget.
    const socketShare = Math.max(1, Math.floor(resolved.maxOpenSockets / resolved.workers));
    this.#sockets = new Budget(socketShare);
    this.#udpBuffers = new Budget(resolved.udpBufferBudgetBytes);
    this.#tcpEngine = new TcpEngine({
      choice: resolved.tcpEngine,
      threads: resolved.workers,
      listenAddress: resolved.listenAddress,
      dialTimeoutMs: resolved.dialTimeoutMs,
      idleTimeoutMs: resolved.tcpIdleTimeoutMs,
      reusePort: resolved.tcpReusePort,
      sockets: this.#sockets,
      maxOpenSockets: resolved.maxOpenSockets,
      onForcedClose: (count) => this.#forcedCloses += count,
      policy: this.#policy,
      defaultSourceRanges: resolved.defaultSourceRanges,
      acceptProxyProtocol: resolved.acceptProxyProtocol,
      proxyHeaderTimeoutMs: resolved.proxyHeaderTimeoutMs,
      accessLog: resolved.accessLog,
      accessLogSampleRate: resolved.accessLogSampleRate,
    });
    // On the splice engine, the engine threads share each TCP port; else forwarding workers do.
    this.#workersStarted = resolved.workers === 1
      ? Promise.resolve()
      : this.#tcpEngine.ready.then((kind) => {
        if (kind !== "portable" || this.#closed) return;
        const { workers: _, ...perWorker } = options;
        this.#workers = new ForwardWorkers(resolved.workers - 1, {
          ...perWorker,
          maxOpenSockets: socketShare,
        });
        this.#workers.apply(this.#desired);
      }, () => {});
    this.#udpEngine = new UdpEngine({
      choice: resolved.udpEngine,
      threads: resolved.workers,
      busyPollUs: resolved.udpBusyPollUs,
      listenAddress: resolved.listenAddress,
      maxSessions: resolved.udpMaxSessions,
      bufferBytes: resolved.udpBufferBytes,
      accessLog: resolved.accessLog,
      accessLogSampleRate: resolved.accessLogSampleRate,
      sockets: this.#sockets,
      bufferBudget: this.#udpBuffers,
      policy: this.#policy,
      defaultSourceRanges: resolved.defaultSourceRanges,
    });
  }

  /**
   * The UDP engine in use, once the batched engine passed its self-test or was ruled out.
   * @throws when `udpEngine` is "batched" and that engine cannot run.
   */
  udpEngine(): Promise<UdpEngineKind> {
    return this.#udpEngine.ready;
  }

  /**
   * The TCP engine in use, once the splice engine passed its self-test or was ruled out.
   * @throws when `tcpEngine` is "splice" and that engine cannot run.
   */
  tcpEngine(): Promise<TcpEngineKind> {
    return this.#tcpEngine.ready;
  }

  /**
   * Converges to the complete desired set (valid specs only). Array order is the priority for port
   * conflicts, also over a current holder. Free ports are bound before this returns, so
   * `statuses()` right after it reports `listening` or `failed`; a retry after a failure is timed.
   * @throws {TypeError} when two specs share a name.
   * @throws {Error} after `close()`.
   */
  apply(desired: readonly ForwarderSpec[]): void {
    if (this.#closed) throw new Error("Supervisor is closed");
    const names = new Set<string>();
    for (const spec of desired) {
      if (names.has(spec.name)) throw new TypeError(`Duplicate forwarder name "${spec.name}"`);
      names.add(spec.name);
    }
    for (const entry of this.#entries.values()) {
      if (!names.has(entry.name)) {
        this.#stopPart(entry.tcp, "removed");
        this.#stopPart(entry.udp, "removed");
      }
    }
    const next = new Map<string, Entry>();
    for (const spec of desired) {
      const entry = this.#entries.get(spec.name) ?? {
        name: spec.name,
        counters: { name: spec.name },
      };
      entry.tcp = this.#reconcilePart(entry, { protocol: "tcp", part: entry.tcp, spec: spec.tcp });
      entry.udp = this.#reconcilePart(entry, { protocol: "udp", part: entry.udp, spec: spec.udp });
      entry.counters = {
        name: spec.name,
        ...(entry.tcpCounters && { tcp: entry.tcpCounters }),
        ...(entry.udpCounters && { udp: entry.udpCounters }),
      };
      next.set(spec.name, entry);
    }
    const removed = [...this.#entries.keys()].filter((name) => !names.has(name));
    this.#entries = next;
    this.#assignPorts();
    for (const name of removed) this.#report(name);
    for (const name of names) this.#report(name);
    this.#desired = desired;
    this.#workers?.apply(desired);
  }

  /** Current state of every forwarder in the desired set, in desired-set order. */
  statuses(): ForwarderStatus[] {
    return [...this.#entries.values()].map(statusOf);
  }

  /**
   * Resolves once every bind in progress has succeeded or failed: engines that bind in their own
   * threads (the splice TCP and batched UDP engines) report `pending` until then.
   */
  async settled(): Promise<void> {
    const parts = [...this.#entries.values()].flatMap((entry) =>
      PROTOCOLS.map((protocol) => entry[protocol]).filter((part) => part !== undefined)
    );
    await Promise.all(parts.map((part) => part.binding()));
  }

  /**
   * Calls `listener` with a forwarder name whenever its status changes, including removal.
   * @returns A function that unsubscribes.
   */
  onChange(listener: (name: string) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /**
   * Live counters of every forwarder in the desired set (the objects the data path advances). With
   * workers, TCP counters are fresh sums of this thread's and the workers' latest reports.
   */
  *counters(): Iterable<ForwarderCounters> {
    const workers = this.#workers;
    for (const entry of this.#entries.values()) {
      const counters = entry.counters;
      if (workers === undefined || counters.tcp === undefined) {
        yield counters;
        continue;
      }
      const tcp = copyTcpCounters(counters.tcp);
      workers.addTcpCounters(entry.name, tcp);
      yield { ...counters, tcp };
    }
  }

  /** This thread's budgets: sockets held by connections and sessions, bytes of UDP buffers. */
  get budgets(): { readonly sockets: Budget; readonly udpBuffers: Budget } {
    return { sockets: this.#sockets, udpBuffers: this.#udpBuffers };
  }

  /**
   * TCP connections cut (aborted) because a drain grace period ended, in every thread, so far: after
   * `close()`, those of the shutdown included. (UDP sessions left at the end are only counted.)
   */
  get forcedCloses(): number {
    return this.#forcedCloses + (this.#workers?.forcedCloses ?? 0);
  }

  /**
   * Stops everything: listeners stop accepting at once, live connections and sessions get up to
   * `graceMs` (default `drainGraceMs`), then everything is closed. Idempotent.
   */
  async close(options: { graceMs?: number } = {}): Promise<void> {
    const graceMs = options.graceMs ?? this.#options.drainGraceMs;
    if (!this.#closed) {
      this.#closed = true;
      for (const entry of this.#entries.values()) {
        this.#stopPart(entry.tcp, "drained", graceMs);
        this.#stopPart(entry.udp, "drained", graceMs);
      }
      const names = [...this.#entries.keys()];
      this.#entries.clear();
      for (const name of names) this.#report(name);
      this.#track(this.#workersStarted.then(() => this.#workers?.close(graceMs)));
    }
    while (this.#stopping.size > 0) await Promise.all(this.#stopping);
    await this.#udpEngine.close();
    await this.#tcpEngine.close();
  }

  /** Same as `close()` with the default grace period. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /** Keeps, updates, replaces or stops one protocol part of `entry` to match `change.spec`. */
  #reconcilePart<S extends TcpSpec | UdpSpec>(
    entry: Entry,
    change: {
      readonly protocol: Protocol;
      readonly part: ListenerPart<S> | undefined;
      readonly spec: S | undefined;
    },
  ): ListenerPart<S> | undefined {
    const { protocol, part, spec } = change;
    if (spec === undefined) {
      this.#stopPart(part, "removed");
      entry[`${protocol}Counters`] = undefined;
      return undefined;
    }
    if (part !== undefined) {
      if (sameSpec(part.spec, spec)) return part;
      if (part.spec.listenPort === spec.listenPort && this.#sameEngine(protocol, part.spec, spec)) {
        part.update(spec);
        return part;
      }
      this.#stopPart(part, "replaced");
    }
    return this.#newPart(entry, protocol, spec);
  }

  /** False when a part must move to the other engine to serve `after`. */
  #sameEngine(protocol: Protocol, before: TcpSpec | UdpSpec, after: TcpSpec | UdpSpec): boolean {
    return protocol === "tcp"
      ? this.#tcpEngine.sameEngine(before as TcpSpec, after as TcpSpec)
      : this.#udpEngine.sameEngine(before as UdpSpec, after as UdpSpec);
  }

  #newPart<S extends TcpSpec | UdpSpec>(
    entry: Entry,
    protocol: Protocol,
    spec: S,
  ): ListenerPart<S> {
    const name = entry.name;
    let open;
    let onBindError;
    if (protocol === "tcp") {
      const counters = entry.tcpCounters ??= this.#tcpEngine.newCounters();
      open = (spec: TcpSpec, onTarget: TargetReport) =>
        this.#tcpEngine.open(name, spec, counters, onTarget);
      onBindError = () => counters.errors.Listen++;
    } else {
      const counters = entry.udpCounters ??= this.#udpEngine.newCounters();
      open = (spec: UdpSpec, onTarget: TargetReport) =>
        this.#udpEngine.open(name, spec, counters, onTarget);
      onBindError = (error: unknown) =>
        counters.errors[isLookupError(error) ? "ResolveListenAddress" : "Listen"]++;
    }
    return new ListenerPart<S>(spec, {
      forwarder: name,
      protocol,
      open: open as unknown as (
        spec: S,
        onTarget: TargetReport,
      ) => RunningForwarder<S> | Promise<RunningForwarder<S>>,
      onBindError,
      bindRetryInitialMs: this.#options.bindRetryInitialMs,
      bindRetryMaxMs: this.#options.bindRetryMaxMs,
      onChange: () => this.#report(name),
    });
  }

  /**
   * Gives each protocol+port to the first forwarder in desired-set order that wants it: a later
   * forwarder holding it drains and waits; a free port is bound at once; the others report the
   * forwarder that comes first (or, while it is still draining, the one that holds the port).
   */
  #assignPorts(): void {
    const first = new Map<string, string>();
    for (const entry of this.#entries.values()) {
      for (const protocol of PROTOCOLS) {
        const part = entry[protocol];
        if (part === undefined) continue;
        const key = claimKey(protocol, part.spec.listenPort);
        if (!first.has(key)) first.set(key, entry.name);
        else if (part.claimed) this.#displace(entry, protocol);
      }
    }
    for (const entry of this.#entries.values()) {
      for (const protocol of PROTOCOLS) {
        const part = entry[protocol];
        if (part === undefined || part.claimed) continue;
        const key = claimKey(protocol, part.spec.listenPort);
        const owner = first.get(key) as string;
        const holder = this.#claims.get(key);
        if (owner !== entry.name) part.waitFor(owner);
        else if (holder === undefined) {
          this.#claims.set(key, { forwarder: entry.name, part });
          part.start();
        } else part.waitFor(holder.forwarder);
      }
    }
  }

  /** Stops a part that holds a port an earlier forwarder wants; a fresh part waits in its place. */
  #displace(entry: Entry, protocol: Protocol): void {
    const part = entry[protocol];
    if (part === undefined) return;
    this.#stopPart(part, "replaced");
    if (protocol === "tcp") entry.tcp = this.#newPart(entry, "tcp", part.spec as TcpSpec);
    else entry.udp = this.#newPart(entry, "udp", part.spec as UdpSpec);
  }

  #stopPart(
    part: StoppablePart | undefined,
    cause: StopCause,
    graceMs = this.#options.drainGraceMs,
  ): void {
    if (part === undefined) return;
    const { released, done } = part.stop(graceMs, cause);
    const key = [...this.#claims].find(([, claim]) => claim.part === part)?.[0];
    if (key !== undefined) {
      released.then(() => {
        this.#claims.delete(key);
        if (!this.#closed) this.#assignPorts();
      });
    }
    this.#track(done);
  }

  /** Keeps `done` in the set `close()` waits for. */
  #track(done: Promise<void>): void {
    const stopping = done.catch((error) => {
      log.error("Stopping a listener failed: {error}", { error });
    }).finally(() => this.#stopping.delete(stopping));
    this.#stopping.add(stopping);
  }

  #report(name: string): void {
    const entry = this.#entries.get(name);
    const status = entry === undefined ? undefined : JSON.stringify(statusOf(entry));
    if (status === this.#reported.get(name)) return;
    if (status === undefined) this.#reported.delete(name);
    else this.#reported.set(name, status);
    for (const listener of this.#listeners) {
      try {
        listener(name);
      } catch (error) {
        log.error("A status listener failed for {forwarder}: {error}", { forwarder: name, error });
      }
    }
  }
}

function statusOf(entry: Entry): ForwarderStatus {
  return {
    name: entry.name,
    ...(entry.tcp && { tcp: entry.tcp.state }),
    ...(entry.udp && { udp: entry.udp.state }),
  };
}

const PROTOCOLS: readonly Protocol[] = ["tcp", "udp"];

function claimKey(protocol: Protocol, port: number): string {
  return `${protocol}:${port}`;
}

/** Field by field; list fields (`sourceRanges`) by their items. */
function sameSpec(a: TcpSpec | UdpSpec, b: TcpSpec | UdpSpec): boolean {
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  return [...keys].every((key) => {
    const x = (a as unknown as Record<string, unknown>)[key];
    const y = (b as unknown as Record<string, unknown>)[key];
    if (Array.isArray(x) && Array.isArray(y)) {
      return x.length === y.length && x.every((item, index) => item === y[index]);
    }
    return x === y;
  });
}
