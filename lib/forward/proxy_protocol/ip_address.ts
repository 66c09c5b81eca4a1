/**
 * IP address text ↔ bytes, as the PROXY protocol needs them: IPv4 dotted quads, IPv6 in any RFC 4291
 * text form (with `::`, an embedded IPv4 tail, or a `%zone`), and IPv4-mapped IPv6 addresses
 * (`::ffff:1.2.3.4`, what a dual-stack socket reports for IPv4 peers) unmapped to IPv4.
 * @module
 */

/** An address as bytes: 4 for IPv4, 16 for IPv6. */
export type IpBytes = Uint8Array;

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
const MAPPED_PREFIX = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff] as const;

/** The 4 bytes of an IPv4 dotted quad, or undefined. */
export function parseIpv4(text: string): IpBytes | undefined {
  if (!IPV4.test(text)) return undefined;
  return Uint8Array.from(text.split(".", 4), Number);
}

/** The 16 bytes of an IPv6 address (`%zone` ignored), or undefined. */
export function parseIpv6(text: string): IpBytes | undefined {
  const zone = text.indexOf("%");
  if (zone >= 0) text = text.slice(0, zone);
  const halves = text.split("::");
  if (halves.length > 2) return undefined;
  const groups = (part: string): number[] | undefined => {
    if (part === "") return [];
    const result: number[] = [];
    const fields = part.split(":");
    for (const [index, field] of fields.entries()) {
      if (index === fields.length - 1 && field.includes(".")) {
        const v4 = parseIpv4(field);
        if (v4 === undefined) return undefined;
        result.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
      } else if (/^[0-9A-Fa-f]{1,4}$/.test(field)) {
        result.push(Number.parseInt(field, 16));
      } else {
        return undefined;
      }
    }
    return result;
  };
  const head = groups(halves[0]!);
  const tail = halves.length === 2 ? groups(halves[1]!) : [];
  if (head === undefined || tail === undefined) return undefined;
  const missing = 8 - head.length - tail.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) return undefined;
  const all = [...head, ...new Array<number>(missing).fill(0), ...tail];
  const bytes = new Uint8Array(16);
  for (const [index, group] of all.entries()) {
    bytes[2 * index] = group >> 8;
    bytes[2 * index + 1] = group & 0xff;
  }
  return bytes;
}

/**
 * The bytes of an IP literal: IPv4 (and IPv4-mapped IPv6) as 4 bytes, other IPv6 as 16.
 * @throws {TypeError} when `text` is not an IP address.
 */
export function ipBytes(text: string): IpBytes {
  const v4 = parseIpv4(text);
  if (v4 !== undefined) return v4;
  const v6 = parseIpv6(text);
  if (v6 === undefined) throw new TypeError(`Not an IP address: ${JSON.stringify(text)}`);
  return isMapped(v6) ? v6.slice(12) : v6;
}

/** `bytes` as 16 bytes: IPv4 as an IPv4-mapped IPv6 address. */
export function asIpv6(bytes: IpBytes): IpBytes {
  if (bytes.length === 16) return bytes;
  const mapped = new Uint8Array(16);
  mapped.set(MAPPED_PREFIX);
  mapped.set(bytes, 12);
  return mapped;
}

/** Text of 4 or 16 address bytes: a dotted quad, or RFC 5952 IPv6 (longest zero run as `::`). */
export function formatIp(bytes: IpBytes): string {
  if (bytes.length === 4) return bytes.join(".");
  if (isMapped(bytes)) return `::ffff:${bytes.subarray(12).join(".")}`;
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((bytes[i]! << 8) | bytes[i + 1]!);
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

function isMapped(bytes: IpBytes): boolean {
  return bytes.length === 16 && MAPPED_PREFIX.every((byte, index) => bytes[index] === byte);
}
