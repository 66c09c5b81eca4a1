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

const IPV4_PART = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;
const HEX_GROUP = /^[0-9A-Fa-f]{1,4}$/;

/**
 * Parses an IPv4 or IPv6 address (a zone such as `%eth0` is ignored); an IPv4-mapped IPv6 address
 * becomes IPv4.
 * @returns undefined when `text` is not an IP address.
 */
export function parseIp(text: string): IpAddress | undefined {
  if (!text.includes(":")) {
    const bytes = parseIpv4(text);
    return bytes === undefined ? undefined : { family: 4, bytes };
  }
  const zone = text.indexOf("%");
  const bytes = parseIpv6(zone === -1 ? text : text.slice(0, zone));
  if (bytes === undefined) return undefined;
  if (isIpv4Mapped(bytes)) return { family: 4, bytes: bytes.slice(12) };
  return { family: 6, bytes };
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

/** The address in its usual text form (IPv6 compressed as in RFC 5952). */
export function formatIp(address: IpAddress): string {
  const b = address.bytes;
  if (address.family === 4) return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((b[i]! << 8) | b[i + 1]!).toString(16));
  // The longest run of two or more zero groups becomes "::".
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8;) {
    if (groups[i] !== "0") {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === "0") j++;
    if (j - i > bestLength) [bestStart, bestLength] = [i, j - i];
    i = j;
  }
  if (bestStart === -1) return groups.join(":");
  const head = groups.slice(0, bestStart).join(":");
  const tail = groups.slice(bestStart + bestLength).join(":");
  return `${head}::${tail}`;
}

function parseIpv4(text: string): Uint8Array | undefined {
  const parts = text.split(".");
  if (parts.length !== 4 || !parts.every((part) => IPV4_PART.test(part))) return undefined;
  return Uint8Array.from(parts, Number);
}

function parseIpv6(text: string): Uint8Array | undefined {
  const halves = text.split("::");
  if (halves.length > 2) return undefined;
  const groupsOf = (half: string): number[] | undefined => {
    if (half === "") return [];
    const items = half.split(":");
    const groups: number[] = [];
    for (const [index, item] of items.entries()) {
      if (index === items.length - 1 && item.includes(".")) {
        const v4 = parseIpv4(item);
        if (v4 === undefined) return undefined;
        groups.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
      } else if (HEX_GROUP.test(item)) {
        groups.push(Number.parseInt(item, 16));
      } else {
        return undefined;
      }
    }
    return groups;
  };
  const head = groupsOf(halves[0]!);
  const tail = halves.length === 2 ? groupsOf(halves[1]!) : [];
  if (head === undefined || tail === undefined) return undefined;
  // An IPv4 tail is only allowed at the very end.
  if (halves.length === 2 && halves[0]!.includes(".")) return undefined;
  const count = head.length + tail.length;
  if (halves.length === 1 ? count !== 8 : count > 7) return undefined;
  const groups = [...head, ...new Array<number>(8 - count).fill(0), ...tail];
  const bytes = new Uint8Array(16);
  groups.forEach((group, i) => {
    bytes[2 * i] = group >> 8;
    bytes[2 * i + 1] = group & 0xff;
  });
  return bytes;
}

function isIpv4Mapped(bytes: Uint8Array): boolean {
  for (let i = 0; i < 10; i++) if (bytes[i] !== 0) return false;
  return bytes[10] === 0xff && bytes[11] === 0xff;
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
  return formatIp({ family: ip.family, bytes });
}
