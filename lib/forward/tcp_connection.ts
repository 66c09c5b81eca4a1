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
import {
  detailOf,
  type EndReason,
  sampled,
  splitForwarderName,
  writeAccessRecord,
} from "./access_log.ts";
import { TargetForbiddenError } from "./policy/target_policy.ts";
import { sharedBufferPool } from "./buffer_pool.ts";
import type { DialDeadlines } from "./dial_deadlines.ts";
import {
  PROXY_V1_MAX_BYTES,
  PROXY_V2_MAX_WRITTEN_BYTES,
  proxyEndpoints,
  writeProxyV1Header,
  writeProxyV2Header,
} from "./proxy_protocol/encode.ts";
import { type ProxyHeaderRefusal, readProxyHeader } from "./proxy_protocol/read_header.ts";
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
  /** Forwarder name (`namespace/name`), for access records. @default "" */
  readonly name?: string;
  /** The listener's port, for access records. @default 0 */
  readonly listenPort?: number;
  /** Deadline for the whole PROXY header of a client (with `acceptProxyHeader`). @default 5000 */
  readonly proxyHeaderTimeoutMs?: number;
  /** Share of connections with an access record (with `accessLog`), 0-1. @default 1 */
  readonly accessLogSampleRate?: number;
  /** Called once per refused PROXY header, for (rate-limited) logging. */
  readonly onProxyHeaderError?: (
    fault: ProxyHeaderRefusal,
    detail: string,
    peer: Deno.NetAddr,
  ) => void;
}

/** A socket address to dial: an IP address (checked against the target policy) or a name. */
export interface TcpAddress {
  readonly hostname: string;
  readonly port: number;
}

/** Where one admitted client is dialled (a lookup in progress is a promise), or why it is refused. */
export type TcpRoute = TcpAddress | Promise<TcpAddress> | { readonly refused: string };

/** Where new connections go, and how. */
export interface TcpTarget {
  readonly hostname: string;
  readonly port: number;
  /** Send this PROXY header version (client's address) to the target first; absent = none. */
  readonly proxyProtocol?: "v1" | "v2" | undefined;
  /** Every client must start with a PROXY header, which is stripped; its address is the client's. */
  readonly acceptProxyHeader?: boolean;
  /** Write an access record when the connection ends (sampled by the context's rate). */
  readonly accessLog?: boolean;
}

/** Counter of each way a PROXY header from a client is refused. */
const PROXY_HEADER_ERRORS: Record<ProxyHeaderRefusal, TcpErrorType> = {
  missing: "ProxyHeaderMissing",
  malformed: "ProxyHeaderMalformed",
  timeout: "ProxyHeaderTimeout",
};
const DEFAULT_PROXY_HEADER_TIMEOUT_MS = 5000;

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
  readonly #startMs = Date.now();
  #target: TcpTarget | undefined;
  #clientAddress: Deno.NetAddr;
  /** True once a PROXY header gave the client's address. */
  #carried = false;
  #bytesToTarget = 0;
  #bytesToClient = 0;
  #endReason: EndReason | undefined;
  #endDetail: string | undefined;

  /** @param client An accepted connection, owned (and closed) by this object from now on. */
  constructor(client: Deno.TcpConn, context: TcpConnectionContext) {
    this.#client = client;
    this.#context = context;
    this.#clientAddress = client.remoteAddr;
  }

  /**
   * The client's address: the one its PROXY header carried when the listener accepts PROXY headers
   * (final once the header was read, before the target is dialled), else the socket peer's. This is
   * the address to log, to send on and to check against allow-lists.
   */
  get clientAddress(): Deno.NetAddr {
    return this.#clientAddress;
  }

  /** The socket peer (the load balancer when a PROXY header was accepted). */
  get peerAddress(): Deno.NetAddr {
    return this.#client.remoteAddr;
  }

  /**
   * Dials `target` and forwards until both directions end, either side fails, or `close()`; then
   * calls the context's `onClosed`. No frame waits for the two copy loops: they count themselves
   * down (less memory per idle connection than an awaited `Promise.all`).
   *
   * `route` (default: `target` itself) is asked once the client is known (after its PROXY header,
   * if any) where to dial: an address, a lookup in progress (its failure is counted as
   * `ResolveTargetAddress`, a `TargetForbiddenError` as a rejected connection, `TargetForbidden`),
   * or a refusal (already counted by the caller); nothing is dialled for the last two.
   */
  start(target: TcpTarget, route?: (connection: TcpConnection) => TcpRoute): void {
    this.#target = target;
    this.#connect(target, route).catch(this.#bug);
  }

  async #connect(
    target: TcpTarget,
    route: ((connection: TcpConnection) => TcpRoute) | undefined,
  ): Promise<void> {
    const client = this.#client;
    setNoDelay(client);
    let early: Uint8Array | undefined;
    if (target.acceptProxyHeader) {
      early = await this.#readProxyHeader();
      if (early === undefined) {
        this.#finish();
        return;
      }
    }
    const address = route === undefined ? target : route(this);
    if ("refused" in address) {
      this.#setEnd("refused", address.refused);
      this.#finish();
      return;
    }
    const upstream = await this.#dial(address);
    if (upstream === undefined) {
      this.#finish();
      return;
    }
    this.#upstream = upstream;
    setNoDelay(upstream);
    if ((target.proxyProtocol !== undefined || early?.length) && !await this.#sendFirst(early)) {
      this.#finish();
      return;
    }
    this.#copying = 2;
    this.#pump(client, upstream, true).catch(this.#bug);
    this.#pump(upstream, client, false).catch(this.#bug);
  }

  /**
   * Reads the client's PROXY header; returns the bytes that followed it, or undefined (counted,
   * reported) when the header is refused or the connection was closed meanwhile.
   */
  async #readProxyHeader(): Promise<Uint8Array | undefined> {
    const context = this.#context;
    const read = await readProxyHeader(this.#client, {
      timeoutMs: context.proxyHeaderTimeoutMs ?? DEFAULT_PROXY_HEADER_TIMEOUT_MS,
    });
    if (this.#closed) return undefined;
    if (read.kind === "rejected") {
      context.counters.errors[PROXY_HEADER_ERRORS[read.fault]]++;
      this.#setEnd("refused", `PROXY header ${read.fault}: ${read.detail}`);
      context.onProxyHeaderError?.(read.fault, read.detail, this.#client.remoteAddr);
      return undefined;
    }
    if (read.source !== undefined) {
      this.#clientAddress = { transport: "tcp", ...read.source };
      this.#carried = true;
    }
    return read.rest;
  }

  /** Writes our PROXY header (if any) and the client's early bytes (if any) in one write. */
  async #sendFirst(early: Uint8Array | undefined): Promise<boolean> {
    const upstream = this.#upstream!;
    const version = this.#target?.proxyProtocol;
    let out = early ?? new Uint8Array(0);
    if (version !== undefined) {
      const endpoints = proxyEndpoints(this.#clientAddress, this.#client.localAddr);
      const room = Math.max(PROXY_V1_MAX_BYTES, PROXY_V2_MAX_WRITTEN_BYTES);
      out = new Uint8Array(room + (early?.length ?? 0));
      const length = version === "v1"
        ? writeProxyV1Header(out, 0, endpoints)
        : writeProxyV2Header(out, 0, "stream", endpoints);
      if (early !== undefined) out.set(early, length);
      out = out.subarray(0, length + (early?.length ?? 0));
    }
    try {
      let written = 0;
      while (written < out.length) written += await upstream.write(out.subarray(written));
    } catch (error) {
      if (!this.#closed) {
        this.#context.counters.errors.CopyClientToTarget++;
        this.#setEnd("target_closed", detailOf(error));
      }
      return false;
    }
    const earlyBytes = early?.length ?? 0;
    this.#context.counters.bytesClientToTarget += earlyBytes;
    this.#bytesToTarget += earlyBytes;
    return true;
  }

  /** Reports an unexpected error and ends the connection. */
  readonly #bug = (error: unknown): void => {
    this.#setEnd("error", detailOf(error));
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
    const target = this.#target;
    if (
      target !== undefined &&
      sampled(target.accessLog === true, this.#context.accessLogSampleRate ?? 1)
    ) {
      this.#writeAccessRecord(target);
    }
    this.#context.onClosed(this);
  }

  /** Records why the connection ends, unless a reason was recorded already. */
  #setEnd(reason: EndReason, detail?: string): void {
    if (this.#endReason !== undefined) return;
    this.#endReason = reason;
    this.#endDetail = detail;
  }

  #writeAccessRecord(target: TcpTarget): void {
    const context = this.#context;
    const forwarder = context.name ?? "";
    const client = this.#clientAddress;
    const peer = this.#client.remoteAddr;
    const resolved = this.#upstream?.remoteAddr;
    writeAccessRecord({
      forwarder,
      ...splitForwarderName(forwarder),
      protocol: "tcp",
      clientAddress: client.hostname,
      clientPort: client.port,
      ...(this.#carried && { peerAddress: peer.hostname, peerPort: peer.port }),
      listenPort: context.listenPort ?? 0,
      targetHost: target.hostname,
      ...(resolved !== undefined && { targetAddress: resolved.hostname }),
      targetPort: target.port,
      bytesClientToTarget: this.#bytesToTarget,
      bytesTargetToClient: this.#bytesToClient,
      startTime: new Date(this.#startMs).toISOString(),
      durationMs: Date.now() - this.#startMs,
      endReason: this.#endReason ?? "error",
      ...(this.#endDetail !== undefined && { endDetail: this.#endDetail }),
    });
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
   * @param reason Why, for the access record (unless the connection had already ended).
   */
  close(reason?: EndReason): void {
    if (reason !== undefined) this.#setEnd(reason);
    if (this.#ending) return; // an abort in progress closes once its resets are done
    this.#closed = true;
    closeQuietly(this.#client);
    if (this.#upstream) closeQuietly(this.#upstream);
  }

  /**
   * Aborts the connection: both peers get an RST (through the system worker, where it runs; else a
   * FIN), so that a cut transfer never looks complete; the sockets close once they are reset.
   * Idempotent, like `close()`.
   * @param reason Why, for the access record (unless the connection had already ended).
   */
  abort(reason?: EndReason): void {
    if (reason !== undefined) this.#setEnd(reason);
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

  async #dial(target: TcpAddress | Promise<TcpAddress>): Promise<Deno.TcpConn | undefined> {
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
          this.#setEnd("refused", `TargetForbidden: ${detailOf(error)}`);
          this.#context.onDialError("TargetForbidden", error);
        } else {
          const type = signal.aborted ? "DialTimeout" : "ResolveTargetAddress";
          const reported = signal.aborted ? new Error("lookup timed out") : error;
          counters.errors[type]++;
          this.#setEnd("dial_failed", `${type}: ${detailOf(reported)}`);
          this.#context.onDialError(type, reported);
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
      const reported = timedOut ? new Error("dial timed out") : error;
      this.#setEnd("dial_failed", `${type}: ${detailOf(reported)}`);
      this.#context.onDialError(type, reported);
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
    let reading = true;
    try {
      for (;;) {
        reading = true;
        const n = await from.read(buffer);
        if (n === null) {
          this.#setEnd(toTarget ? "client_closed" : "target_closed");
          break;
        }
        this.#reads++;
        reading = false;
        let written = 0;
        while (written < n) {
          const m = await to.write(
            written === 0 && n === buffer.length ? buffer : buffer.subarray(written, n),
          );
          written += m;
          if (toTarget) {
            counters.bytesClientToTarget += m;
            this.#bytesToTarget += m;
          } else {
            counters.bytesTargetToClient += m;
            this.#bytesToClient += m;
          }
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
    } catch (error) {
      // A reset (or other failure) on one side is passed on as a reset to the other.
      if (!this.#ending) {
        counters.errors[toTarget ? "CopyClientToTarget" : "CopyTargetToClient"]++;
        // A failed read is that side's end; a failed write is the other side's.
        this.#setEnd(
          toTarget === reading ? "client_closed" : "target_closed",
          detailOf(error),
        );
      }
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
