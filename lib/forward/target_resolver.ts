/**
 * Resolves a UDP target to the socket address new sessions send to. IP literals need no lookup; names
 * go through the system resolver (`getaddrinfo`, as `Deno.connect` does for TCP: /etc/hosts, search
 * domains and ndots apply, which matters for Kubernetes service names), cached briefly so a burst of
 * new sessions costs one lookup while DNS changes still reach new sessions.
 * @module
 */

import { lookup } from "node:dns/promises";
import { ipLiteralFamily } from "../spec.ts";

/** A resolved target: where to send, and which wildcard address the session socket binds. */
export interface ResolvedTarget {
  readonly addr: Deno.NetAddr;
  /** "0.0.0.0" or "::", matching the target's address family. */
  readonly bindHostname: string;
}

/** How long a looked-up name is reused. */
const CACHE_MS = 5000;

/** Resolves one `host:port`, caching names for a short time. */
export class TargetResolver {
  readonly #host: string;
  readonly #port: number;
  #cached: ResolvedTarget | undefined;
  #expiresAtMs = 0;
  #inFlight: Promise<ResolvedTarget> | undefined;

  /** @param host DNS name or IP literal (IPv6 without brackets). */
  constructor(host: string, port: number) {
    this.#host = host;
    this.#port = port;
    const literal = literalTarget(host, port);
    if (literal !== undefined) {
      this.#cached = literal;
      this.#expiresAtMs = Infinity;
    }
  }

  /** The target without waiting, when it is an IP literal or a fresh cache entry. */
  cached(nowMs: number): ResolvedTarget | undefined {
    return nowMs < this.#expiresAtMs ? this.#cached : undefined;
  }

  /** Looks the name up (one lookup at a time); rejects when it does not resolve. */
  resolve(): Promise<ResolvedTarget> {
    const cached = this.cached(Date.now());
    if (cached !== undefined) return Promise.resolve(cached);
    this.#inFlight ??= this.#lookup().finally(() => this.#inFlight = undefined);
    return this.#inFlight;
  }

  async #lookup(): Promise<ResolvedTarget> {
    const { address, family } = await lookup(this.#host);
    const resolved = target(address, family === 6 ? 6 : 4, this.#port);
    this.#cached = resolved;
    this.#expiresAtMs = Date.now() + CACHE_MS;
    return resolved;
  }
}

function literalTarget(host: string, port: number): ResolvedTarget | undefined {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(host)?.[1];
  if (mapped !== undefined && ipLiteralFamily(mapped) === 4) return target(mapped, 4, port);
  const family = ipLiteralFamily(host);
  if (family === 0) return undefined;
  // Received addresses come back in canonical (RFC 5952) form; compare like with like.
  const hostname = family === 6 ? new URL(`http://[${host}]/`).hostname.slice(1, -1) : host;
  return target(hostname, family, port);
}

function target(hostname: string, family: 4 | 6, port: number): ResolvedTarget {
  return {
    addr: { transport: "udp", hostname, port },
    bindHostname: family === 6 ? "::" : "0.0.0.0",
  };
}
