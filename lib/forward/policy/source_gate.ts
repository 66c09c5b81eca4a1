/**
 * Who may open a connection or session on one listener: the source allow-list (`sourceRanges`),
 * the concurrent limits (all sources, per source) and the per-source rate of new ones. A plain
 * object with no I/O, so every engine (the portable forwarders, a batched UDP engine) can call it:
 * `admit()` before anything is dialled or allocated, `release()` when the connection or session
 * ends.
 *
 * The address checked is the client's: the socket's peer address, or, once PROXY protocol from a
 * trusted load balancer is read, the source address the header carries (call `admit()` after the
 * header, with that address).
 * @module
 */

import { type Cidr, findCidr, parseCidr, parseIp } from "./cidr.ts";
import { TokenBuckets } from "./token_buckets.ts";

/** The admission rules of one listener, as plain data (spec fields or flags). */
export interface SourceLimits {
  /** CIDR ranges clients must come from; empty or absent = everyone. */
  readonly sourceRanges?: readonly string[];
  /** Connections or sessions open at once, all sources together. */
  readonly maxActive?: number;
  /** Connections or sessions open at once per source address. */
  readonly maxActivePerSource?: number;
  /** New connections per second per source address (a token bucket). */
  readonly ratePerSecondPerSource?: number;
  /** New connections a source may open at once before the rate applies. @default the rate, at least 1 */
  readonly burstPerSource?: number;
}

/** Verdicts of `allows()` remembered, so a flood from one address is not parsed per datagram. */
const MAX_REMEMBERED = 4096;

/** Why a client was turned away. */
export type GateRejection = "SourceNotAllowed" | "Active" | "ActivePerSource" | "Rate";

/** Admission control of one listener. */
export class SourceGate {
  readonly #perSource = new Map<string, number>();
  /** `allows()` by address text; cleared when the ranges change or it is full. */
  readonly #allowed = new Map<string, boolean>();
  #ranges: readonly Cidr[] = [];
  #maxActive = Infinity;
  #maxPerSource = Infinity;
  #rate: TokenBuckets | undefined;
  #rateKey = "";
  #active = 0;

  /** @throws {RangeError} when a range or a number is invalid. */
  constructor(limits: SourceLimits) {
    this.reconfigure(limits);
  }

  /**
   * Applies new rules to new clients; the open ones stay and still count against the limits (and
   * the per-source rate keeps its buckets when it did not change).
   * @throws {RangeError} when a range or a number is invalid (then nothing changes).
   */
  reconfigure(limits: SourceLimits): void {
    const ranges = (limits.sourceRanges ?? []).map(parseCidr);
    const maxActive = positive("maxActive", limits.maxActive);
    const maxPerSource = positive("maxActivePerSource", limits.maxActivePerSource);
    const rate = limits.ratePerSecondPerSource;
    const burst = limits.burstPerSource ?? Math.max(1, rate ?? 1);
    const rateKey = rate === undefined ? "" : `${rate}/${burst}`;
    if (rateKey !== this.#rateKey) {
      this.#rate = rate === undefined ? undefined : new TokenBuckets(rate, burst);
      this.#rateKey = rateKey;
    }
    this.#ranges = ranges;
    this.#allowed.clear();
    this.#maxActive = maxActive;
    this.#maxPerSource = maxPerSource;
  }

  /** Connections or sessions admitted and not released. */
  get active(): number {
    return this.#active;
  }

  /** Open connections or sessions of `source`. */
  activeOf(source: string): number {
    return this.#perSource.get(source) ?? 0;
  }

  /** True when `source` lies in the allowed ranges (always, without ranges). */
  allows(source: string): boolean {
    if (this.#ranges.length === 0) return true;
    let allowed = this.#allowed.get(source);
    if (allowed === undefined) {
      const ip = parseIp(source);
      allowed = ip !== undefined && findCidr(this.#ranges, ip) !== undefined;
      if (this.#allowed.size >= MAX_REMEMBERED) this.#allowed.clear();
      this.#allowed.set(source, allowed);
    }
    return allowed;
  }

  /**
   * Admits a new connection or session from `source` (an IP address), counting it as active, or
   * says why not (then nothing is counted).
   */
  admit(source: string, nowMs: number): GateRejection | undefined {
    if (!this.allows(source)) return "SourceNotAllowed";
    if (this.#active >= this.#maxActive) return "Active";
    const perSource = this.#perSource.get(source) ?? 0;
    if (perSource >= this.#maxPerSource) return "ActivePerSource";
    if (this.#rate !== undefined && !this.#rate.take(source, nowMs)) return "Rate";
    this.#active++;
    this.#perSource.set(source, perSource + 1);
    return undefined;
  }

  /** Ends one admitted connection or session of `source`. */
  release(source: string): void {
    this.#active--;
    const left = (this.#perSource.get(source) ?? 1) - 1;
    if (left > 0) this.#perSource.set(source, left);
    else this.#perSource.delete(source);
  }
}

function positive(name: string, value: number | undefined): number {
  if (value === undefined) return Infinity;
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new RangeError(`${name} must be a whole number >= 1, got ${value}`);
  }
  return value;
}
