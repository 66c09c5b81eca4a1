/**
 * IP address text ↔ bytes, the one parser and formatter of the data plane (PROXY protocol headers,
 * target policy, source allow-lists): IPv4 dotted quads, IPv6 in any RFC 4291 text form (with `::`,
 * an embedded IPv4 tail at the very end, or a `%zone`, which is ignored), formatted per RFC 5952.
 * An IPv4-mapped IPv6 address (`::ffff:1.2.3.4`, what a dual-stack socket reports for an IPv4
 * peer) can be unmapped to the IPv4 address it carries.
 * @module
 */

/** An address as bytes: 4 for IPv4, 16 for IPv6. */
export type IpBytes = Uint8Array;

const IPV4_PART = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;
const HEX_GROUP = /^[0-9A-Fa-f]{1,4}$/;
const MAPPED_PREFIX = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff] as const;

/** The 4 bytes of an IPv4 dotted quad (no leading zeros), or undefined. */
export function parseIpv4(text: string): IpBytes | undefined {
  const parts = text.split(".");
  if (parts.length !== 4 || !parts.every((part) => IPV4_PART.test(part))) return undefined;
  return Uint8Array.from(parts, Number);
}

/** The 16 bytes of an IPv6 address (`%zone` ignored), or undefined. */
export function parseIpv6(text: string): IpBytes | undefined {
  const zone = text.indexOf("%");
  const halves = (zone === -1 ? text : text.slice(0, zone)).split("::");
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

/** The bytes of an IP literal, IPv4 and IPv4-mapped IPv6 as 4, other IPv6 as 16; or undefined. */
export function parseIp(text: string): IpBytes | undefined {
  if (!text.includes(":")) return parseIpv4(text);
  const v6 = parseIpv6(text);
  return v6 !== undefined && isIpv4Mapped(v6) ? v6.slice(12) : v6;
}

/**
 * {@linkcode parseIp}, for text that must be an address.
 * @throws {TypeError} when `text` is not an IP address.
 */
export function ipBytes(text: string): IpBytes {
  const bytes = parseIp(text);
  if (bytes === undefined) throw new TypeError(`Not an IP address: ${JSON.stringify(text)}`);
  return bytes;
}

/** `bytes` as 16 bytes: IPv4 as an IPv4-mapped IPv6 address. */
export function asIpv6(bytes: IpBytes): IpBytes {
  if (bytes.length === 16) return bytes;
  const mapped = new Uint8Array(16);
  mapped.set(MAPPED_PREFIX);
  mapped.set(bytes, 12);
  return mapped;
}

/** Whether 16 address bytes are an IPv4-mapped IPv6 address. */
export function isIpv4Mapped(bytes: IpBytes): boolean {
  return bytes.length === 16 && MAPPED_PREFIX.every((byte, index) => bytes[index] === byte);
}

/** Text of 4 or 16 address bytes: a dotted quad, or RFC 5952 IPv6 (longest zero run as `::`). */
export function formatIp(bytes: IpBytes): string {
  if (bytes.length === 4) return bytes.join(".");
  if (isIpv4Mapped(bytes)) return `::ffff:${bytes.subarray(12).join(".")}`;
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((bytes[i]! << 8) | bytes[i + 1]!);
  // The longest run of two or more zero groups becomes "::" (the first of equal runs).
  let bestStart = -1;
  let bestLength = 1;
  for (let start = 0; start < 8;) {
    let end = start;
    while (end < 8 && groups[end] === 0) end++;
    if (end - start > bestLength) {
      bestStart = start;
      bestLength = end - start;
    }
    start = end === start ? start + 1 : end;
  }
  const hex = (list: number[]) => list.map((group) => group.toString(16)).join(":");
  if (bestStart < 0) return hex(groups);
  return `${hex(groups.slice(0, bestStart))}::${hex(groups.slice(bestStart + bestLength))}`;
}
