/**
 * IP addresses and CIDR ranges, IPv4 and IPv6, for the target policy and source allow-lists.
 *
 * Addresses are compared as bytes: IPv4 as 4, IPv6 as 16. An IPv4-mapped IPv6 address
 * (`::ffff:127.0.0.2`, what a dual-stack listener reports for an IPv4 client) is treated as the IPv4
 * address it carries, both as an address and as a range base, so one rule covers both spellings.
 * Ranges are parsed once (per spec or flag), never per packet; matching a parsed address walks the
 * list without allocating.
 * @module
 */

import { formatIp, parseIp as parseIpBytes } from "../../util/ip_address.ts";

/** A parsed IP address: 4 bytes (IPv4) or 16 bytes (IPv6). */
export interface IpAddress {
  readonly family: 4 | 6;
  readonly bytes: Uint8Array;
}

/** A parsed CIDR range; `text` is how it was written (for messages). */
export interface Cidr {
  readonly text: string;
  readonly family: 4 | 6;
  readonly bytes: Uint8Array;
  readonly prefix: number;
}

/**
 * Parses an IPv4 or IPv6 address (a zone such as `%eth0` is ignored); an IPv4-mapped IPv6 address
 * becomes IPv4.
 * @returns undefined when `text` is not an IP address.
 */
export function parseIp(text: string): IpAddress | undefined {
  const bytes = parseIpBytes(text);
  return bytes === undefined ? undefined : { family: bytes.length === 4 ? 4 : 6, bytes };
}

/**
 * Parses `address/prefix`, or a bare address (a single host: /32 or /128). The address must be the
 * first of its range (`10.0.0.0/8`, not `10.1.2.3/8`): a typo is more likely than the intent.
 * @throws {RangeError} naming the problem.
 */
export function parseCidr(text: string): Cidr {
  const trimmed = text.trim();
  const slash = trimmed.indexOf("/");
  const addressText = slash === -1 ? trimmed : trimmed.slice(0, slash);
  const ip = parseIp(addressText);
  if (ip === undefined || addressText.includes("%")) {
    throw new RangeError(
      `"${text}" is not an IP address or CIDR range (e.g. 10.0.0.0/8, fd00::/8)`,
    );
  }
  const mapped = ip.family === 4 && addressText.includes(":");
  const max = ip.family === 4 ? 32 : 128;
  let prefix = max;
  if (slash !== -1) {
    const prefixText = trimmed.slice(slash + 1);
    const written = /^\d{1,3}$/.test(prefixText) ? Number(prefixText) : NaN;
    // `::ffff:0:0/96` style prefixes count the 96 bits of the mapping prefix.
    prefix = mapped ? written - 96 : written;
    if (!(prefix >= 0 && prefix <= max)) {
      throw new RangeError(
        `"${text}": the prefix length must be from 0 to ${mapped ? 128 : max}`,
      );
    }
  }
  if (!isRangeStart(ip.bytes, prefix)) {
    throw new RangeError(
      `"${text}": the address has bits set beyond the /${slash === -1 ? max : prefix} prefix ` +
        `(did you mean ${formatRangeStart(ip, prefix)}/${prefix}?)`,
    );
  }
  return { text: trimmed, family: ip.family, bytes: ip.bytes, prefix };
}

/**
 * Parses a comma-separated list of CIDR ranges (spaces and empty items ignored).
 * @throws {RangeError} naming the first bad item.
 */
export function parseCidrList(text: string): Cidr[] {
  return text.split(",").map((item) => item.trim()).filter((item) => item !== "").map(parseCidr);
}

/** True when `address` lies in `cidr`. */
export function cidrContains(cidr: Cidr, address: IpAddress): boolean {
  if (cidr.family !== address.family) return false;
  const full = cidr.prefix >> 3;
  const a = cidr.bytes;
  const b = address.bytes;
  for (let i = 0; i < full; i++) if (a[i] !== b[i]) return false;
  const rest = cidr.prefix & 7;
  if (rest === 0) return true;
  const mask = (0xff << (8 - rest)) & 0xff;
  return ((a[full]! ^ b[full]!) & mask) === 0;
}

/** The first range of `cidrs` containing `address`, if any. */
export function findCidr(cidrs: readonly Cidr[], address: IpAddress): Cidr | undefined {
  for (const cidr of cidrs) if (cidrContains(cidr, address)) return cidr;
  return undefined;
}

function isRangeStart(bytes: Uint8Array, prefix: number): boolean {
  for (let bit = prefix; bit < bytes.length * 8; bit++) {
    if ((bytes[bit >> 3]! >> (7 - (bit & 7))) & 1) return false;
  }
  return true;
}

function formatRangeStart(ip: IpAddress, prefix: number): string {
  const bytes = ip.bytes.slice();
  for (let bit = prefix; bit < bytes.length * 8; bit++) bytes[bit >> 3]! &= ~(1 << (7 - (bit & 7)));
  return formatIp(bytes);
}
