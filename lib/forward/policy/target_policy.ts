/**
 * Where forwarders may send traffic: the `--allowed-target-cidrs` and `--denied-target-cidrs`
 * rules, applied to resolved IP addresses (a name is checked after every resolution, so DNS cannot
 * smuggle a denied address in). A denied range wins over an allowed one; an empty allow list allows
 * every address that is not denied.
 *
 * The options are plain data (they travel to forwarding workers); each thread parses them once.
 * @module
 */

import { type Cidr, findCidr, parseCidr, parseIp } from "./cidr.ts";

/** The target rules, as given (CIDR texts). */
export interface TargetPolicyOptions {
  /** Only these ranges may be targets; empty = every address not denied. @default [] */
  readonly allowedCidrs?: readonly string[];
  /** Never targets; wins over `allowedCidrs`. @default [] */
  readonly deniedCidrs?: readonly string[];
  /** Why a denied range is there, by its CIDR text (e.g. "the API server"), for messages. */
  readonly notes?: Readonly<Record<string, string>>;
}

/** A target address that may not be used, and the rule that says so. */
export interface ForbiddenTarget {
  /** The resolved address. */
  readonly address: string;
  /** The rule, e.g. `127.0.0.0/8 (loopback) in --denied-target-cidrs`. */
  readonly rule: string;
}

/** A denied address as an error (what a resolution throws when every address is denied). */
export class TargetForbiddenError extends Error {
  override readonly name = "TargetForbiddenError";
  /** The first denied address and its rule. */
  readonly forbidden: ForbiddenTarget;

  /** @param forbidden The denied address and the rule. */
  constructor(forbidden: ForbiddenTarget) {
    super(`target address ${forbidden.address} is forbidden: ${forbidden.rule}`);
    this.forbidden = forbidden;
  }
}

/**
 * The deny list of operator mode (`--denied-target-cidrs` unset): loopback, unspecified ("this
 * network") and link-local (cloud metadata at 169.254.169.254) ranges; the API server's own
 * addresses are added by the caller.
 */
export const OPERATOR_DENIED_TARGETS: Readonly<Record<string, string>> = {
  "127.0.0.0/8": "loopback",
  "::1": "loopback",
  "0.0.0.0/8": "unspecified",
  "::": "unspecified",
  "169.254.0.0/16": "link-local, cloud metadata",
  "fe80::/10": "link-local",
};

/**
 * The operator-mode default rules: the API server's addresses (first, so messages name them), then
 * {@linkcode OPERATOR_DENIED_TARGETS}.
 * @param apiServerAddresses IP addresses the API server is reached at.
 */
export function operatorTargetDefaults(
  apiServerAddresses: readonly string[],
): Required<Pick<TargetPolicyOptions, "deniedCidrs" | "notes">> {
  const notes: Record<string, string> = {};
  for (const address of apiServerAddresses) notes[address] = "the API server";
  for (const [cidr, note] of Object.entries(OPERATOR_DENIED_TARGETS)) notes[cidr] ??= note;
  return { deniedCidrs: Object.keys(notes), notes };
}

/** Checks resolved target addresses against the rules. */
export class TargetPolicy {
  /** Allows every address (file mode's default). */
  static readonly ALLOW_ALL: TargetPolicy = new TargetPolicy({});
  readonly #allowed: readonly Cidr[];
  readonly #denied: readonly Cidr[];
  readonly #notes: Readonly<Record<string, string>>;

  /** @throws {RangeError} when a CIDR text is invalid. */
  constructor(options: TargetPolicyOptions) {
    this.#allowed = (options.allowedCidrs ?? []).map(parseCidr);
    this.#denied = (options.deniedCidrs ?? []).map(parseCidr);
    this.#notes = options.notes ?? {};
  }

  /** True when no address is ever denied (no lookup needed to decide). */
  get allowsAll(): boolean {
    return this.#allowed.length === 0 && this.#denied.length === 0;
  }

  /**
   * Why `address` (an IP literal) may not be a target, or undefined when it may. A text that is not
   * an IP address is forbidden (it would need a lookup the policy cannot see).
   */
  forbidden(address: string): ForbiddenTarget | undefined {
    if (this.allowsAll) return undefined;
    const ip = parseIp(address);
    if (ip === undefined) return { address, rule: "not an IP address" };
    const denied = findCidr(this.#denied, ip);
    if (denied !== undefined) {
      const note = this.#notes[denied.text];
      return {
        address,
        rule: `${denied.text}${note ? ` (${note})` : ""} in --denied-target-cidrs`,
      };
    }
    if (this.#allowed.length > 0 && findCidr(this.#allowed, ip) === undefined) {
      return { address, rule: "not in --allowed-target-cidrs" };
    }
    return undefined;
  }
}
