/**
 * Reads and strips the PROXY header a load balancer puts in front of a TCP connection, within a
 * deadline. Bytes that arrived after the header are handed back, to be forwarded first.
 * @module
 */

import {
  DEFAULT_MAX_PROXY_HEADER_BYTES,
  parseProxyHeader,
  type ProxyHeaderFault,
} from "./decode.ts";
import type { Endpoint } from "./encode.ts";

/** Why no header was accepted: {@linkcode ProxyHeaderFault}, or none complete before the deadline. */
export type ProxyHeaderRefusal = ProxyHeaderFault | "timeout";

/** Outcome of {@linkcode readProxyHeader}. */
export type ProxyHeaderRead =
  | {
    readonly kind: "accepted";
    /** The carried client and destination; undefined when the header carries none. */
    readonly source?: Endpoint;
    readonly destination?: Endpoint;
    /** Connection bytes received after the header (often empty). */
    readonly rest: Uint8Array;
  }
  | { readonly kind: "rejected"; readonly fault: ProxyHeaderRefusal; readonly detail: string };

/** Limits of {@linkcode readProxyHeader}. */
export interface ReadProxyHeaderOptions {
  /** The whole header must arrive within this long; else the connection is closed. */
  readonly timeoutMs: number;
  /** Longest header accepted. @default DEFAULT_MAX_PROXY_HEADER_BYTES */
  readonly maxBytes?: number;
}

const READ_CHUNK_BYTES = 512;

/**
 * Reads from `conn` until a complete PROXY header (version 1 or 2) arrived, or rejects it. On
 * timeout `conn` is closed (a pending read cannot be cancelled otherwise); on other rejections the
 * caller closes it.
 */
export async function readProxyHeader(
  conn: Deno.Conn,
  options: ReadProxyHeaderOptions,
): Promise<ProxyHeaderRead> {
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_PROXY_HEADER_BYTES;
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    try {
      conn.close();
    } catch {
      // Already closed.
    }
  }, options.timeoutMs);
  const timeout = (): ProxyHeaderRead => ({
    kind: "rejected",
    fault: "timeout",
    detail: `no complete PROXY header within ${options.timeoutMs} ms`,
  });
  let received = new Uint8Array(0);
  try {
    for (;;) {
      const chunk = new Uint8Array(READ_CHUNK_BYTES);
      let n: number | null;
      try {
        n = await conn.read(chunk);
      } catch (error) {
        if (timedOut) return timeout();
        return { kind: "rejected", fault: "malformed", detail: `read failed: ${error}` };
      }
      if (timedOut) return timeout();
      if (n === null) {
        return received.length === 0
          ? { kind: "rejected", fault: "missing", detail: "closed before sending any byte" }
          : {
            kind: "rejected",
            fault: "malformed",
            detail: `closed after ${received.length} bytes of an incomplete PROXY header`,
          };
      }
      const joined = new Uint8Array(received.length + n);
      joined.set(received);
      joined.set(chunk.subarray(0, n), received.length);
      received = joined;
      const parsed = parseProxyHeader(received, maxBytes);
      if (parsed.kind === "rejected") return parsed;
      if (parsed.kind === "accepted") {
        return {
          kind: "accepted",
          ...(parsed.source && { source: parsed.source }),
          ...(parsed.destination && { destination: parsed.destination }),
          rest: received.subarray(parsed.length),
        };
      }
    }
  } finally {
    clearTimeout(timer);
  }
}
