/**
 * A TCP listener and its live connections: accepts, admits each client through the source gate
 * (allow-list, limits: a refused one is closed at once, before any dial), forwards the others to
 * the current target (resolved and checked against the target policy; a forbidden one is closed
 * without a dial), enforces the optional idle timeout, and drains on stop.
 * @module
 */

import { getLogger } from "@logtape/logtape";
import { abortableDelay } from "../util/abortable_delay.ts";
import type { StopCause } from "./access_log.ts";
import { DialDeadlines } from "./dial_deadlines.ts";
import { LogThrottle } from "./log_throttle.ts";
import type { Budget } from "./budget.ts";
import type { TcpSpec } from "../spec.ts";
import type { RunningForwarder } from "./listener_part.ts";
import type { ForwarderPolicyOptions } from "./policy/forwarder_policy.ts";
import { type GateRejection, SourceGate, type SourceLimits } from "./policy/source_gate.ts";
import { TargetPolicy } from "./policy/target_policy.ts";
import type { TcpCounters, TcpErrorType, TcpRejectReason } from "./state.ts";
import {
  TcpConnection,
  type TcpConnectionContext,
  type TcpRoute,
  type TcpTarget,
} from "./tcp_connection.ts";
import { reportingResolver, type TargetResolver } from "./target_resolver.ts";

const log = getLogger(["undying-proxy", "tcp"]);

/** Options of one {@linkcode TcpForwarder}. */
export interface TcpForwarderOptions extends ForwarderPolicyOptions {
  /** Forwarder name, for logs. */
  readonly name: string;
  /** Advanced in place; shared with the supervisor's `counters()`. */
  readonly counters: TcpCounters;
  /** Where new connections go; see {@linkcode TcpForwarder.update}. */
  readonly spec: TcpSpec;
  readonly dialTimeoutMs: number;
  /** Close a connection after this long without data in either direction; 0 = never. */
  readonly idleTimeoutMs: number;
  /** Whether clients send a PROXY header when the spec does not say. @default false */
  readonly acceptProxyProtocol?: boolean;
  /** Deadline for a client's whole PROXY header. @default 5000 */
  readonly proxyHeaderTimeoutMs?: number;
  /** Whether connections get access records when the spec does not say. @default false */
  readonly accessLog?: boolean;
  /** Share of connections with an access record, 0-1. @default 1 */
  readonly accessLogSampleRate?: number;
  /** Sockets connections may hold (2 each); a connection beyond it is shed (accepted, closed). */
  readonly sockets?: Budget;
  /** Told how many connections were aborted because the drain grace period ended. */
  readonly onForcedClose?: (count: number) => void;
}

/** The admission rules of a TCP spec. */
export function tcpSourceLimits(
  spec: TcpSpec,
  defaultSourceRanges: readonly string[],
): SourceLimits {
  return {
    sourceRanges: spec.sourceRanges ?? defaultSourceRanges,
    ...(spec.maxConnections !== undefined && { maxActive: spec.maxConnections }),
    ...(spec.maxConnectionsPerSource !== undefined &&
      { maxActivePerSource: spec.maxConnectionsPerSource }),
    ...(spec.connectionsPerSecondPerSource !== undefined &&
      { ratePerSecondPerSource: spec.connectionsPerSecondPerSource }),
    ...(spec.connectionBurstPerSource !== undefined &&
      { burstPerSource: spec.connectionBurstPerSource }),
  };
}

/** The counter (and spec field) of each gate rejection. */
const TCP_REJECTIONS: Readonly<Record<GateRejection, TcpRejectReason>> = {
  SourceNotAllowed: "SourceNotAllowed",
  Active: "MaxConnections",
  ActivePerSource: "MaxConnectionsPerSource",
  Rate: "ConnectionRate",
};

/** Sockets a forwarded connection holds: the client's and the target's. */
const SOCKETS_PER_CONNECTION = 2;

/** Longest pause after repeated accept errors (e.g. out of file descriptors). */
const MAX_ACCEPT_BACKOFF_MS = 1000;

/** Forwards the connections of one bound listener (which it owns and closes). */
export class TcpForwarder implements RunningForwarder<TcpSpec> {
  /** Resolves once the listening socket is closed and its port free again. */
  readonly released: Promise<void>;
  readonly #listener: Deno.TcpListener;
  readonly #options: TcpForwarderOptions;
  readonly #context: TcpConnectionContext;
  readonly #deadlines: DialDeadlines;
  readonly #connections = new Set<TcpConnection>();
  readonly #stop = new AbortController();
  readonly #dialLog: LogThrottle;
  readonly #acceptLog: LogThrottle;
  readonly #rejectLog = new LogThrottle();
  readonly #proxyHeaderLog = new LogThrottle();
  readonly #gate: SourceGate;
  /** The client address each admitted connection holds a place in the gate for. */
  readonly #sources = new Map<TcpConnection, string>();
  #spec: TcpSpec;
  #target: TcpTarget;
  #resolver!: TargetResolver;
  /** The lookup started by the last `update()` (to report the verdict early), awaited by `drain()`. */
  #firstLookup: Promise<unknown> = Promise.resolve();
  readonly #shedLog: LogThrottle;
  #idleTimer: ReturnType<typeof setInterval> | undefined;
  #drained: PromiseWithResolvers<void> | undefined;

  constructor(listener: Deno.TcpListener, options: TcpForwarderOptions) {
    this.#listener = listener;
    this.#options = options;
    this.#spec = options.spec;
    this.#target = this.#targetOf(options.spec);
    this.#gate = new SourceGate(tcpSourceLimits(options.spec, options.defaultSourceRanges ?? []));
    this.#retarget(options.spec);
    this.#dialLog = new LogThrottle();
    this.#acceptLog = new LogThrottle();
    this.#shedLog = new LogThrottle();
    this.#deadlines = new DialDeadlines(options.dialTimeoutMs);
    this.#context = {
      name: options.name,
      listenPort: listener.addr.port,
      ...(options.proxyHeaderTimeoutMs !== undefined &&
        { proxyHeaderTimeoutMs: options.proxyHeaderTimeoutMs }),
      ...(options.accessLogSampleRate !== undefined &&
        { accessLogSampleRate: options.accessLogSampleRate }),
      onProxyHeaderError: (fault, detail, peer) => this.#logProxyHeaderError(fault, detail, peer),
      counters: options.counters,
      deadlines: this.#deadlines,
      onDialError: (type, error) => this.#logDialError(type, error),
      onClosed: (connection) => this.#closed(connection),
      onBug: (error) => {
        log.error("TCP connection of {forwarder} failed unexpectedly: {error}", {
          forwarder: this.#options.name,
          error,
        });
      },
    };
    if (options.idleTimeoutMs > 0) {
      const everyMs = Math.max(10, Math.min(1000, options.idleTimeoutMs / 4));
      this.#idleTimer = setInterval(() => this.#closeIdle(), everyMs);
    }
    this.released = this.#acceptLoop();
  }

  /** The bound port. */
  get port(): number {
    return this.#listener.addr.port;
  }

  /** Sends new connections to the target of `spec`; live connections keep theirs. New limits apply to new clients. */
  update(spec: TcpSpec): void {
    const old = this.#spec;
    this.#spec = spec;
    this.#target = this.#targetOf(spec);
    if (old.targetHost !== spec.targetHost || old.targetPort !== spec.targetPort) {
      this.#retarget(spec);
    }
    this.#gate.reconfigure(tcpSourceLimits(spec, this.#options.defaultSourceRanges ?? []));
  }

  /** A fresh resolver for the target of `spec`; its verdict is reported as soon as it is known. */
  #retarget(spec: TcpSpec): void {
    ({ resolver: this.#resolver, firstLookup: this.#firstLookup } = reportingResolver(
      spec.targetHost,
      spec.targetPort,
      {
        policy: this.#options.policy ?? TargetPolicy.ALLOW_ALL,
        ...(this.#options.onTarget && { onTarget: this.#options.onTarget }),
      },
    ));
  }

  /**
   * Stops accepting at once, gives live connections up to `graceMs` to finish, then closes the
   * rest (their access records say `cause`). Resolves when every socket is closed.
   */
  async drain(graceMs: number, cause: StopCause = "drained"): Promise<void> {
    if (!this.#stop.signal.aborted) {
      this.#stop.abort();
      this.#listener.close();
    }
    if (this.#connections.size > 0) {
      const graceOver = new AbortController();
      await Promise.race([
        this.#allClosed(),
        abortableDelay(graceMs, graceOver.signal),
      ]);
      graceOver.abort();
    }
    const forced = this.#connections.size;
    if (forced > 0) {
      this.#options.counters.errors.DrainTimeout += forced;
      this.#options.onForcedClose?.(forced);
      log.warn(
        "Aborted {count} TCP connection(s) of {forwarder} still open after the drain grace period of {graceMs} ms",
        { forwarder: this.#options.name, count: forced, graceMs },
      );
    }
    for (const connection of this.#connections) connection.abort(cause);
    this.#deadlines.abortAll();
    await this.#allClosed();
    clearInterval(this.#idleTimer);
    await this.released;
    await this.#firstLookup;
  }

  async #acceptLoop(): Promise<void> {
    let backoffMs = 0;
    const signal = this.#stop.signal;
    while (!signal.aborted) {
      let client: Deno.TcpConn;
      try {
        client = await this.#listener.accept();
        backoffMs = 0;
      } catch (error) {
        if (signal.aborted) return;
        this.#options.counters.errors.Accept++;
        const suppressed = this.#acceptLog.take();
        if (suppressed !== undefined) {
          log.warn("Accept failed on TCP port {port} of {forwarder}: {error}", {
            forwarder: this.#options.name,
            port: this.port,
            error,
            suppressed,
          });
        }
        backoffMs = Math.min(MAX_ACCEPT_BACKOFF_MS, Math.max(10, backoffMs * 2));
        await abortableDelay(backoffMs, signal);
        continue;
      }
      this.#serve(client);
    }
  }

  /**
   * Admits `client` through the source gate and the target policy, then forwards it; a refused one
   * is closed before anything is dialled. The address checked is the client's: with PROXY headers
   * accepted, the one its header carries (read first, with its deadline), else the socket peer's.
   */
  #serve(client: Deno.TcpConn): void {
    const target = this.#target;
    if (target.acceptProxyHeader) {
      if (!this.#takeSockets(client)) return;
      this.#open(client).start(target, (connection) => {
        const source = connection.clientAddress.hostname;
        const route = this.#admit(source);
        if (!("refused" in route)) this.#sources.set(connection, source);
        return route;
      });
      return;
    }
    const source = client.remoteAddr.hostname;
    const route = this.#admit(source);
    if ("refused" in route) {
      closeQuietly(client);
      return;
    }
    if (!this.#takeSockets(client)) {
      this.#gate.release(source);
      return;
    }
    const connection = this.#open(client);
    this.#sources.set(connection, source);
    connection.start(target, () => route);
  }

  /**
   * Where a client from `source` is dialled, or why it is refused (counted, logged rate-limited);
   * an admitted client holds its place in the gate until `release()`.
   */
  #admit(source: string): TcpRoute {
    const nowMs = Date.now();
    const rejection = this.#gate.admit(source, nowMs);
    const resolver = this.#resolver;
    let reason: TcpRejectReason | undefined;
    if (rejection !== undefined) {
      reason = TCP_REJECTIONS[rejection];
    } else if (resolver.forbidden(nowMs) !== undefined) {
      this.#gate.release(source);
      reason = "TargetForbidden";
    }
    if (reason !== undefined) {
      this.#countRejection(source, reason);
      return { refused: reason };
    }
    return resolver.cached(nowMs)?.addr ?? resolver.resolve().then((resolved) => resolved.addr);
  }

  /** Takes the sockets of one connection from the budget; false when `client` was shed (closed). */
  #takeSockets(client: Deno.TcpConn): boolean {
    if (this.#options.sockets?.take(SOCKETS_PER_CONNECTION) !== false) return true;
    closeQuietly(client);
    this.#options.counters.errors.SocketLimit++;
    const suppressed = this.#shedLog.take();
    if (suppressed !== undefined) {
      log.warn(
        "Shed a new connection on TCP port {port} of {forwarder}: {max} sockets in use (--max-open-sockets)",
        {
          forwarder: this.#options.name,
          port: this.port,
          max: this.#options.sockets?.max,
          suppressed,
        },
      );
    }
    return false;
  }

  /** A live connection of `client`, counted (its sockets are taken already). */
  #open(client: Deno.TcpConn): TcpConnection {
    const connection = new TcpConnection(client, this.#context);
    this.#connections.add(connection);
    this.#options.counters.activeConnections++;
    this.#options.counters.connectionsTotal++;
    return connection;
  }

  /** Counts a client refused before anything was dialled, by reason; logged rate-limited. */
  #countRejection(source: string, reason: TcpRejectReason): void {
    this.#options.counters.rejected[reason]++;
    const suppressed = this.#rejectLog.take();
    if (suppressed === undefined) return;
    log.warn("Refused a TCP connection from {source} on port {port} of {forwarder}: {reason}", {
      forwarder: this.#options.name,
      port: this.port,
      source,
      reason: reason === "TargetForbidden"
        ? `${reason} (${this.#resolver.forbidden(Date.now())?.rule ?? "target forbidden"})`
        : reason,
      suppressed,
    });
  }

  #closed(connection: TcpConnection): void {
    this.#connections.delete(connection);
    const source = this.#sources.get(connection);
    if (source !== undefined) {
      this.#sources.delete(connection);
      this.#gate.release(source);
    }
    this.#options.sockets?.give(SOCKETS_PER_CONNECTION);
    this.#options.counters.activeConnections--;
    if (this.#connections.size === 0) this.#drained?.resolve();
  }

  #allClosed(): Promise<void> {
    if (this.#connections.size === 0) return Promise.resolve();
    this.#drained ??= Promise.withResolvers();
    const promise = this.#drained.promise;
    promise.then(() => this.#drained = undefined);
    return promise;
  }

  #closeIdle(): void {
    const nowMs = Date.now();
    const oldest = nowMs - this.#options.idleTimeoutMs;
    for (const connection of this.#connections) {
      if (connection.idleSince(nowMs) <= oldest) {
        this.#options.counters.errors.IdleTimeout++;
        connection.close("idle_timeout");
      }
    }
  }

  #logDialError(type: TcpErrorType | "TargetForbidden", error: unknown): void {
    const suppressed = this.#dialLog.take();
    if (suppressed === undefined) return;
    log.warn("Cannot reach TCP target {host}:{targetPort} of {forwarder} ({type}): {error}", {
      forwarder: this.#options.name,
      host: this.#spec.targetHost,
      targetPort: this.#spec.targetPort,
      type,
      error,
      suppressed,
    });
  }

  #logProxyHeaderError(fault: string, detail: string, peer: Deno.NetAddr): void {
    const suppressed = this.#proxyHeaderLog.take();
    if (suppressed === undefined) return;
    log.warn("Refused a TCP client of {forwarder} from {peer}: PROXY header {fault}: {detail}", {
      forwarder: this.#options.name,
      peer: `${peer.hostname}:${peer.port}`,
      fault,
      detail,
      suppressed,
    });
  }

  /** What new connections do under `spec`, with this forwarder's defaults. */
  #targetOf(spec: TcpSpec): TcpTarget {
    return {
      hostname: spec.targetHost,
      port: spec.targetPort,
      proxyProtocol: spec.proxyProtocol,
      acceptProxyHeader: spec.acceptProxyProtocol ?? this.#options.acceptProxyProtocol ?? false,
      accessLog: spec.accessLog ?? this.#options.accessLog ?? false,
    };
  }
}

/** Closes a socket that may be gone already. */
function closeQuietly(socket: Deno.TcpConn): void {
  try {
    socket.close();
  } catch {
    // Already gone.
  }
}
