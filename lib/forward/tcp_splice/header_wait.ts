/**
 * A client whose PROXY header (from a load balancer in front) a splice engine thread waits for:
 * the bytes received so far and what they amount to, judged as the portable engine judges them
 * (`read_header.ts`): a complete header (its carried client, and the bytes after it, which go to the
 * target first), a refusal (missing, malformed, or the connection closed before the header ended),
 * or more to wait for. Plain code, no I/O.
 * @module
 */

import { DEFAULT_MAX_PROXY_HEADER_BYTES, parseProxyHeader } from "../proxy_protocol/decode.ts";
import type { Endpoint } from "../proxy_protocol/encode.ts";

/** Bytes of a header at most: the longest version 2 header accepted and its fixed part. */
export const MAX_HEADER_BYTES = DEFAULT_MAX_PROXY_HEADER_BYTES + 16;

/** What the bytes received so far amount to. */
export type HeaderProgress =
  | { readonly kind: "incomplete" }
  | { readonly kind: "refused"; readonly fault: "missing" | "malformed"; readonly detail: string }
  | {
    readonly kind: "accepted";
    /** The carried client; undefined when the header carries none (the socket's peer stands). */
    readonly source: Endpoint | undefined;
    /** Connection bytes received after the header. */
    readonly rest: Uint8Array;
  };

/** The header bytes of one waiting client. */
export class HeaderWait {
  /** When the whole header must have arrived (else the client is refused: timeout). */
  readonly deadlineMs: number;
  #received = new Uint8Array(0);

  constructor(deadlineMs: number) {
    this.deadlineMs = deadlineMs;
  }

  /** Room left for header bytes (a read takes at most this many). */
  get room(): number {
    return MAX_HEADER_BYTES - this.#received.length;
  }

  /** Adds `bytes` (copied) and says what the bytes so far amount to. */
  add(bytes: Uint8Array): HeaderProgress {
    const joined = new Uint8Array(this.#received.length + bytes.length);
    joined.set(this.#received);
    joined.set(bytes, this.#received.length);
    this.#received = joined;
    const parsed = parseProxyHeader(joined);
    if (parsed.kind === "rejected") {
      return { kind: "refused", fault: parsed.fault, detail: parsed.detail };
    }
    if (parsed.kind === "accepted") {
      return { kind: "accepted", source: parsed.source, rest: joined.subarray(parsed.length) };
    }
    if (this.room > 0) return { kind: "incomplete" };
    return {
      kind: "refused",
      fault: "malformed",
      detail: `no complete PROXY header in ${MAX_HEADER_BYTES} bytes`,
    };
  }

  /** The refusal when the client closed before its header was complete. */
  ended(): HeaderProgress {
    const length = this.#received.length;
    return length === 0
      ? { kind: "refused", fault: "missing", detail: "closed before sending any byte" }
      : {
        kind: "refused",
        fault: "malformed",
        detail: `closed after ${length} bytes of an incomplete PROXY header`,
      };
  }
}
