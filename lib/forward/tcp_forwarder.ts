/**
 * A TCP listener and its live connections: accepts, forwards each connection to the current target,
 * enforces the optional idle timeout, and drains on stop.
 * @module
 */

import { getLogger } from "@logtape/logtape";
import { abortableDelay } from "../util/abortable_delay.ts";
import { DialDeadlines } from "./dial_deadlines.ts";
import { LogThrottle } from "./log_throttle.ts";
import type { Budget } from "./budget.ts";
import type { TcpSpec } from "../spec.ts";
import type { RunningForwarder } from "./listener_part.ts";
import type { TcpCounters, TcpErrorType } from "./state.ts";
import { TcpConnection, type TcpConnectionContext, type TcpTarget } from "./tcp_connection.ts";

const log = getLogger(["undying-proxy", "tcp"]);

/** Options of one {@linkcode TcpForwarder}. */
export interface TcpForwarderOptions {
  /** Forwarder name, for logs. */
  readonly name: string;
  /** Advanced in place; shared with the supervisor's `counters()`. */
  readonly counters: TcpCounters;
  /** Where new connections go; see {@linkcode TcpForwarder.update}. */
  readonly spec: TcpSpec;
  readonly dialTimeoutMs: number;
  /** Close a connection after this long without data in either direction; 0 = never. */
  readonly idleTimeoutMs: number;
  /** Sockets connections may hold (2 each); a connection beyond it is shed (accepted, closed). */
  readonly sockets?: Budget;
  /** Told how many connections were aborted because the drain grace period ended. */
  readonly onForcedClose?: (count: number) => void;
}

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
  readonly #shedLog: LogThrottle;
  #target: TcpTarget;
  #idleTimer: ReturnType<typeof setInterval> | undefined;
  #drained: PromiseWithResolvers<void> | undefined;

  constructor(listener: Deno.TcpListener, options: TcpForwarderOptions) {
    this.#listener = listener;
    this.#options = options;
    this.#target = targetOf(options.spec);
    this.#dialLog = new LogThrottle();
    this.#acceptLog = new LogThrottle();
    this.#shedLog = new LogThrottle();
    this.#deadlines = new DialDeadlines(options.dialTimeoutMs);
    this.#context = {
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

  /** Sends new connections to the target of `spec`; live connections keep theirs. */
  update(spec: TcpSpec): void {
    this.#target = targetOf(spec);
  }

  /**
   * Stops accepting at once, gives live connections up to `graceMs` to finish, then closes the
   * rest. Resolves when every socket is closed.
   */
  async drain(graceMs: number): Promise<void> {
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
    for (const connection of this.#connections) connection.abort();
    this.#deadlines.abortAll();
    await this.#allClosed();
    clearInterval(this.#idleTimer);
    await this.released;
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

  #serve(client: Deno.TcpConn): void {
    const counters = this.#options.counters;
    if (this.#options.sockets?.take(SOCKETS_PER_CONNECTION) === false) {
      client.close();
      counters.errors.SocketLimit++;
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
      return;
    }
    const connection = new TcpConnection(client, this.#context);
    this.#connections.add(connection);
    counters.activeConnections++;
    counters.connectionsTotal++;
    connection.start(this.#target);
  }

  #closed(connection: TcpConnection): void {
    this.#connections.delete(connection);
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
        connection.close();
      }
    }
  }

  #logDialError(type: TcpErrorType, error: unknown): void {
    const suppressed = this.#dialLog.take();
    if (suppressed === undefined) return;
    log.warn("Cannot reach TCP target {host}:{targetPort} of {forwarder} ({type}): {error}", {
      forwarder: this.#options.name,
      host: this.#target.hostname,
      targetPort: this.#target.port,
      type,
      error,
      suppressed,
    });
  }
}

function targetOf(spec: TcpSpec): TcpTarget {
  return { hostname: spec.targetHost, port: spec.targetPort };
}
