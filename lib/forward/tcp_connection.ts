/**
 * One forwarded TCP connection: dial the target with a timeout, then copy both ways with a manual
 * read/write loop (faster than `pipeTo` on Deno, and it keeps half-close), propagating each
 * direction's end with `closeWrite()`.
 * @module
 */

import type { TcpCounters, TcpErrorType } from "./state.ts";

/** What a connection needs from its forwarder; read once per connection. */
export interface TcpConnectionContext {
  readonly counters: TcpCounters;
  readonly dialTimeoutMs: number;
  /** Called once per dial failure, for (rate-limited) logging. */
  readonly onDialError: (type: TcpErrorType, error: unknown) => void;
}

/** Where new connections go. */
export interface TcpTarget {
  readonly hostname: string;
  readonly port: number;
}

/** First read buffer per direction: small, so idle connections hold little memory. */
const SMALL_BUFFER_BYTES = 16 * 1024;
/** A direction that fills its small buffer is a bulk flow and gets this much instead. */
const BULK_BUFFER_BYTES = 256 * 1024;

/** A client connection being forwarded; `run()` resolves once both sockets are closed. */
export class TcpConnection {
  /** `Date.now()` of the last read in either direction (for the idle timeout). */
  lastActiveMs = Date.now();
  readonly #client: Deno.TcpConn;
  readonly #context: TcpConnectionContext;
  #upstream: Deno.TcpConn | undefined;
  #dialAbort: AbortController | undefined;
  #closed = false;

  /** @param client An accepted connection, owned (and closed) by this object from now on. */
  constructor(client: Deno.TcpConn, context: TcpConnectionContext) {
    this.#client = client;
    this.#context = context;
  }

  /** Dials `target` and forwards until both directions end, either side fails, or `close()`. */
  async run(target: TcpTarget): Promise<void> {
    const client = this.#client;
    try {
      setNoDelay(client);
      const upstream = await this.#dial(target);
      if (upstream === undefined) return;
      this.#upstream = upstream;
      setNoDelay(upstream);
      await Promise.all([
        this.#pump(client, upstream, true),
        this.#pump(upstream, client, false),
      ]);
    } finally {
      this.close();
    }
  }

  /** Closes both sockets at once (idempotent); errors caused by this are not counted. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#dialAbort?.abort();
    closeQuietly(this.#client);
    if (this.#upstream) closeQuietly(this.#upstream);
  }

  async #dial(target: TcpTarget): Promise<Deno.TcpConn | undefined> {
    const abort = new AbortController();
    this.#dialAbort = abort;
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      abort.abort();
    }, this.#context.dialTimeoutMs);
    try {
      const upstream = await Deno.connect({
        hostname: target.hostname,
        port: target.port,
        signal: abort.signal,
      });
      if (this.#closed) {
        closeQuietly(upstream);
        return undefined;
      }
      return upstream;
    } catch (error) {
      if (this.#closed) return undefined;
      const type: TcpErrorType = timedOut
        ? "DialTimeout"
        : isResolveError(error)
        ? "ResolveTargetAddress"
        : "DialServerTarget";
      this.#context.counters.errors[type]++;
      this.#context.onDialError(type, timedOut ? new Error("dial timed out") : error);
      return undefined;
    } finally {
      clearTimeout(timer);
      this.#dialAbort = undefined;
    }
  }

  /** Copies `from` → `to` until EOF (then half-closes `to`) or an error (then closes both). */
  async #pump(from: Deno.TcpConn, to: Deno.TcpConn, toTarget: boolean): Promise<void> {
    const counters = this.#context.counters;
    let buffer = new Uint8Array(SMALL_BUFFER_BYTES);
    try {
      for (;;) {
        const n = await from.read(buffer);
        if (n === null) break;
        this.lastActiveMs = Date.now();
        let written = 0;
        while (written < n) {
          const m = await to.write(
            written === 0 && n === buffer.length ? buffer : buffer.subarray(written, n),
          );
          written += m;
          if (toTarget) counters.bytesClientToTarget += m;
          else counters.bytesTargetToClient += m;
        }
        if (n === buffer.length && n < BULK_BUFFER_BYTES) {
          buffer = new Uint8Array(BULK_BUFFER_BYTES);
        }
      }
    } catch {
      if (!this.#closed) counters.errors[toTarget ? "CopyClientToTarget" : "CopyTargetToClient"]++;
      this.close();
      return;
    }
    try {
      await to.closeWrite();
    } catch {
      // The other direction already closed the socket; nothing left to signal.
    }
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

function closeQuietly(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch {
    // Already closed.
  }
}

/** Deno reports a failed name lookup in `Deno.connect` as a plain Error with this message. */
function isResolveError(error: unknown): boolean {
  return error instanceof Error && error.message.startsWith("failed to lookup address");
}
