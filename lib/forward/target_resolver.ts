/**
 * Resolves a target to the socket address new connections and sessions go to. IP literals need no
 * lookup; names go through the system resolver (`getaddrinfo`, as `Deno.connect` does: /etc/hosts,
 * search domains and ndots apply, which matters for Kubernetes service names), cached briefly so a
 * burst of new clients costs one lookup while DNS changes still reach new ones.
 *
 * Every resolved address is checked against the {@linkcode TargetPolicy}: the first allowed address
 * of a lookup is used; when none is allowed the target is forbidden (cached like an address, so a
 * flood of clients costs no lookups). Callers dial the checked IP address, never the name again, so
 * DNS cannot hand a denied address to the dial.
 * @module
 */

import { lookup } from "node:dns/promises";
import { ipLiteralFamily } from "../spec.ts";
import {
  type ForbiddenTarget,
  TargetForbiddenError,
  TargetPolicy,
} from "./policy/target_policy.ts";

/** A resolved target: where to send, and which wildcard address the session socket binds. */
export interface ResolvedTarget {
  readonly addr: Deno.NetAddr;
  /** "0.0.0.0" or "::", matching the target's address family. */
  readonly bindHostname: string;
}

/** How long a looked-up name is reused. */
const CACHE_MS = 5000;

/** Options of a {@linkcode TargetResolver}. */
export interface TargetResolverOptions {
  /** Which addresses may be targets. @default TargetPolicy.ALLOW_ALL */
  readonly policy?: TargetPolicy;
  /** Called after every lookup of a name: the forbidden address, or undefined when allowed. */
  readonly onLookup?: (forbidden: ForbiddenTarget | undefined) => void;
}

/** Resolves one `host:port`, caching names for a short time. */
export class TargetResolver {
  readonly #host: string;
  readonly #port: number;
  readonly #policy: TargetPolicy;
  readonly #onLookup: TargetResolverOptions["onLookup"];
  #cached: ResolvedTarget | ForbiddenTarget | undefined;
  #expiresAtMs = 0;
  #inFlight: Promise<ResolvedTarget> | undefined;

  /** @param host DNS name or IP literal (IPv6 without brackets). */
  constructor(host: string, port: number, options: TargetResolverOptions = {}) {
    this.#host = host;
    this.#port = port;
    this.#policy = options.policy ?? TargetPolicy.ALLOW_ALL;
    this.#onLookup = options.onLookup;
    const literal = literalTarget(host, port);
    if (literal !== undefined) {
      this.#cached = this.#policy.forbidden(literal.addr.hostname) ?? literal;
      this.#expiresAtMs = Infinity;
    }
  }

  /** The allowed target without waiting, when it is an IP literal or a fresh cache entry. */
  cached(nowMs: number): ResolvedTarget | undefined {
    const cached = nowMs < this.#expiresAtMs ? this.#cached : undefined;
    return cached !== undefined && "addr" in cached ? cached : undefined;
  }

  /** The forbidden address and rule, when the literal or a fresh lookup is forbidden. */
  forbidden(nowMs: number): ForbiddenTarget | undefined {
    const cached = nowMs < this.#expiresAtMs ? this.#cached : undefined;
    return cached !== undefined && "rule" in cached ? cached : undefined;
  }

  /**
   * Looks the name up (one lookup at a time).
   * @throws {TargetForbiddenError} when no address of the target is allowed; the lookup error when
   *   the name does not resolve.
   */
  resolve(): Promise<ResolvedTarget> {
    const nowMs = Date.now();
    const cached = this.cached(nowMs);
    if (cached !== undefined) return Promise.resolve(cached);
    const forbidden = this.forbidden(nowMs);
    if (forbidden !== undefined) return Promise.reject(new TargetForbiddenError(forbidden));
    this.#inFlight ??= this.#lookup().finally(() => this.#inFlight = undefined);
    return this.#inFlight;
  }

  async #lookup(): Promise<ResolvedTarget> {
    const addresses = await lookup(this.#host, { all: true });
    let firstForbidden: ForbiddenTarget | undefined;
    let resolved: ResolvedTarget | undefined;
    for (const { address, family } of addresses) {
      const forbidden = this.#policy.forbidden(address);
      if (forbidden === undefined) {
        resolved = target(address, family === 6 ? 6 : 4, this.#port);
        break;
      }
      firstForbidden ??= forbidden;
    }
    const outcome = resolved ?? firstForbidden;
    if (outcome === undefined) throw new Error(`failed to lookup address: ${this.#host}: none`);
    this.#cached = outcome;
    this.#expiresAtMs = Date.now() + CACHE_MS;
    this.#onLookup?.(resolved === undefined ? firstForbidden : undefined);
    if (resolved === undefined) throw new TargetForbiddenError(firstForbidden!);
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

/** A resolver whose verdict is being reported, and the first lookup (for names) to await on stop. */
export interface ReportingResolver {
  readonly resolver: TargetResolver;
  /** Settles when the first lookup of a name is done (at once for an IP literal); never rejects. */
  readonly firstLookup: Promise<unknown>;
}

/**
 * A resolver for `host:port` that tells `onTarget` whether the target is forbidden as soon as that
 * is known: at once for an IP literal, after a lookup started now for a name (so a status shows a
 * forbidden target before the first client), and again after every later lookup.
 */
export function reportingResolver(
  host: string,
  port: number,
  options: { readonly policy: TargetPolicy; readonly onTarget?: TargetResolverOptions["onLookup"] },
): ReportingResolver {
  const onTarget = options.onTarget;
  const resolver = new TargetResolver(host, port, {
    policy: options.policy,
    ...(onTarget && { onLookup: onTarget }),
  });
  const nowMs = Date.now();
  if (resolver.cached(nowMs) !== undefined || resolver.forbidden(nowMs) !== undefined) {
    onTarget?.(resolver.forbidden(nowMs));
    return { resolver, firstLookup: Promise.resolve() };
  }
  return {
    resolver,
    firstLookup: onTarget === undefined ? Promise.resolve() : resolver.resolve().catch(() => {}),
  };
}
