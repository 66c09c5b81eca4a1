/**
 * One forwarded TCP connection: dial the target with a timeout, then copy both ways with a manual
 * read/write loop (faster than `pipeTo` on Deno, and it keeps half-close), propagating each
 * direction's end with `closeWrite()`.
 *
 * Each direction starts with a 1 KiB buffer from a shared pool of lazily committed slabs
 * ({@linkcode sharedBufferPool}: four idle directions share one committed page), moves up to 16 KiB
 * (pooled) and 256 KiB (a plain allocation: measured ~15% faster than pooled slab slices for bulk
 * copies) as reads fill their buffer, and back down once reads are small again.
 * @module
 */

import { systemWorker } from "../ffi/system_worker_client.ts";
import { isLookupError } from "./_lookup_error.ts";
import { TargetForbiddenError } from "./policy/target_policy.ts";
import { sharedBufferPool } from "./buffer_pool.ts";
import type { DialDeadlines } from "./dial_deadlines.ts";
import type { TcpCounters, TcpErrorType } from "./state.ts";

/** What a connection needs from its forwarder; read once per connection. */
export interface TcpConnectionContext {
  readonly counters: TcpCounters;
  /** Dial timeout signals, shared by the connections of one listener. */
  readonly deadlines: DialDeadlines;
  /** Called once per dial failure (or forbidden target), for (rate-limited) logging. */
  readonly onDialError: (type: TcpErrorType | "TargetForbidden", error: unknown) => void;
  /** Called once per connection, when both sockets are closed. */
  readonly onClosed: (connection: TcpConnection) => void;
  /** Called if the forwarding code itself throws (a bug); the connection is closed. */
  readonly onBug: (error: unknown) => void;
}

/** Where new connections go: an IP address (checked against the target policy) or a name. */
export interface TcpTarget {
  readonly hostname: string;
  readonly port: number;
}

/**
 * Read buffer sizes per direction, smallest first. A direction starts with the first; a read that
 * fills its buffer moves it one size up; a read that would fit twice into a smaller size moves it
 * down to that size. The first two come from shared pools; the largest (bulk) is a plain allocation.
 */
export const BUFFER_TIERS = [1024, 16 * 1024, 256 * 1024] as const;
const POOLS = [sharedBufferPool(BUFFER_TIERS[0]), sharedBufferPool(BUFFER_TIERS[1])] as const;

/** A client connection being forwarded; `run()` resolves once both sockets are closed. */
export class TcpConnection {
  readonly #client: Deno.TcpConn;
  readonly #context: TcpConnectionContext;
  #upstream: Deno.TcpConn | undefined;
  #closed = false;
  /** While the system worker resets the sockets: settles once they are reset and closed. */
  #resetting: Promise<void> | undefined;
  #finished = false;
  /** Directions still copying. */
  #copying = 0;
  /** Directions that reached EOF and were half-closed. */
  #ended = 0;
  /** Reads so far in either direction (no clock read per read; see `idleSince()`). */
  #reads = 0;
  #readsSeen = 0;
  #quietSinceMs = 0;

  /** The client address this connection was admitted for (see `SourceGate`). */
  readonly source: string;

  /**
   * @param client An accepted connection, owned (and closed) by this object from now on.
   * @param source The client address it was admitted for. @default its peer address
   */
  constructor(client: Deno.TcpConn, context: TcpConnectionContext, source?: string) {
    this.#client = client;
    this.#context = context;
    this.source = source ?? client.remoteAddr.hostname;
  }

  /**
   * Dials `target` and forwards until both directions end, either side fails, or `close()`; then
   * calls the context's `onClosed`. No frame waits for the two copy loops: they count themselves
   * down (less memory per idle connection than an awaited `Promise.all`).
   *
   * A promised target is a lookup in progress: its failure is counted as `ResolveTargetAddress`,
   * a `TargetForbiddenError` as a rejected connection (`TargetForbidden`); nothing is dialled then.
   */
  start(target: TcpTarget | Promise<TcpTarget>): void {
    this.#connect(target).catch(this.#bug);
  }

  async #connect(target: TcpTarget | Promise<TcpTarget>): Promise<void> {
    const client = this.#client;
    setNoDelay(client);
    const upstream = await this.#dial(target);
    if (upstream === undefined) {
      this.#finish();
      return;
    }
    this.#upstream = upstream;
    setNoDelay(upstream);
    this.#copying = 2;
    this.#pump(client, upstream, true).catch(this.#bug);
    this.#pump(upstream, client, false).catch(this.#bug);
  }

  /** Reports an unexpected error and ends the connection. */
  readonly #bug = (error: unknown): void => {
    this.#context.onBug(error);
    this.#finish();
  };

  /** Closes both sockets and reports the end, once. */
  #finish(): void {
    if (this.#resetting !== undefined) {
      this.#resetting.then(() => this.#finish());
      return;
    }
    this.close();
    if (this.#finished) return;
    this.#finished = true;
    this.#context.onClosed(this);
  }

  /** True once the connection is closed or being aborted: nothing more is forwarded or counted. */
  get #ending(): boolean {
    return this.#closed || this.#resetting !== undefined;
  }

  /**
   * `nowMs` if data moved since the previous call, else when it last did: the idle sweeper calls this
   * periodically, so idleness is measured with the sweeper's clock reads only.
   */
  idleSince(nowMs: number): number {
    if (this.#reads !== this.#readsSeen || this.#quietSinceMs === 0) {
      this.#readsSeen = this.#reads;
      this.#quietSinceMs = nowMs;
    }
    return this.#quietSinceMs;
  }

  /**
   * Closes both sockets at once (idempotent); errors caused by this are not counted. A dial in
   * progress ends at its deadline (or when the listener aborts all dials) and is closed then.
   */
  close(): void {
    if (this.#ending) return; // an abort in progress closes once its resets are done
    this.#closed = true;
    closeQuietly(this.#client);
    if (this.#upstream) closeQuietly(this.#upstream);
  }

  /**
   * Aborts the connection: both peers get an RST (through the system worker, where it runs; else a
   * FIN), so that a cut transfer never looks complete; the sockets close once they are reset.
   * Idempotent, like `close()`.
   */
  abort(): void {
    if (this.#ending) return;
    const system = systemWorker();
    if (system === undefined) {
      this.close();
      return;
    }
    // The system worker resets the sockets; they are closed only after that (their descriptors
    // must not be reused meanwhile).
    const upstream = this.#upstream;
    this.#resetting = Promise.all([
      system.resetTcp(this.#client),
      upstream === undefined ? undefined : system.resetTcp(upstream),
    ]).then(() => {
      this.#resetting = undefined;
      this.close();
    });
  }

  async #dial(target: TcpTarget | Promise<TcpTarget>): Promise<Deno.TcpConn | undefined> {
    // One deadline covers the lookup of a name and the connect, as when Deno.connect resolved it.
    const signal = this.#context.deadlines.signal();
    if (target instanceof Promise) {
      try {
        target = await untilAborted(target, signal);
      } catch (error) {
        if (this.#closed) return undefined;
        const counters = this.#context.counters;
        if (error instanceof TargetForbiddenError) {
          counters.rejected.TargetForbidden++;
          this.#context.onDialError("TargetForbidden", error);
        } else {
          const type = signal.aborted ? "DialTimeout" : "ResolveTargetAddress";
          counters.errors[type]++;
          this.#context.onDialError(type, signal.aborted ? new Error("lookup timed out") : error);
        }
        return undefined;
      }
      if (this.#closed) return undefined;
    }
    try {
      const upstream = await Deno.connect({ hostname: target.hostname, port: target.port, signal });
      if (this.#ending) {
        closeQuietly(upstream);
        return undefined;
      }
      return upstream;
    } catch (error) {
      if (this.#ending) return undefined;
      const timedOut = signal.aborted;
      const type: TcpErrorType = timedOut
        ? "DialTimeout"
        : isLookupError(error)
        ? "ResolveTargetAddress"
        : "DialServerTarget";
      this.#context.counters.errors[type]++;
      this.#context.onDialError(type, timedOut ? new Error("dial timed out") : error);
      return undefined;
    }
  }

  /**
   * Copies `from` → `to` until EOF (then half-closes `to`, unless the other direction already ended:
   * closing both sockets then sends the FIN) or an error (then closes both).
   */
  async #pump(from: Deno.TcpConn, to: Deno.TcpConn, toTarget: boolean): Promise<void> {
    const counters = this.#context.counters;
    let tier = 0;
    let buffer = POOLS[0].acquire();
    try {
      for (;;) {
        const n = await from.read(buffer);
        if (n === null) break;
        this.#reads++;
        let written = 0;
        while (written < n) {
          const m = await to.write(
            written === 0 && n === buffer.length ? buffer : buffer.subarray(written, n),
          );
          written += m;
          if (toTarget) counters.bytesClientToTarget += m;
          else counters.bytesTargetToClient += m;
        }
        const next = n === buffer.length
          ? Math.min(tier + 1, 2)
          : 2 * n <= BUFFER_TIERS[0]
          ? 0
          : 2 * n <= BUFFER_TIERS[1]
          ? Math.min(tier, 1)
          : tier;
        if (next !== tier) {
          POOLS[tier]?.release(buffer);
          tier = next;
          buffer = POOLS[tier]?.acquire() ?? new Uint8Array(BUFFER_TIERS[2]);
        }
      }
    } catch {
      // A reset (or other failure) on one side is passed on as a reset to the other.
      if (!this.#ending) counters.errors[toTarget ? "CopyClientToTarget" : "CopyTargetToClient"]++;
      this.abort();
    } finally {
      POOLS[tier]?.release(buffer);
    }
    if (!this.#ending && ++this.#ended < 2) {
      try {
        await to.closeWrite();
      } catch {
        // The other direction already closed the socket; nothing left to signal.
      }
    }
    if (--this.#copying === 0) this.#finish();
  }
}

/** Small writes go out at once (Deno does not set TCP_NODELAY by default). */
function setNoDelay(conn: Deno.TcpConn): void {
  try {
    conn.setNoDelay(true);
  } catch {
    // The peer already went away; the first read or write reports it.
  }
}

/** `promise`, or a rejection once `signal` aborts (the promise keeps running; its result is dropped). */
function untilAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

function closeQuietly(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch {
    // Already closed.
  }
}
