/**
 * Socket addresses as bytes (`struct sockaddr_in` / `sockaddr_in6`) from and to IP literals. Pure
 * code: the main thread encodes resolved targets, the engine threads decode for logs and ports.
 * @module
 */

import type { AbiLayout } from "./layout.ts";

/** An IP literal and port; `family` 6 also for IPv4-mapped IPv6 addresses. */
export interface IpEndpoint {
  readonly family: 4 | 6;
  readonly hostname: string;
  readonly port: number;
}

/**
 * `struct sockaddr_in` (IPv4 literal) or `sockaddr_in6` (IPv6 literal) for `hostname:port`.
 * @throws {TypeError} when `hostname` is not an IP literal.
 */
export function encodeSockaddr(layout: AbiLayout, hostname: string, port: number): Uint8Array {
  const { sockaddr, constants } = layout;
  const v4 = parseIPv4(hostname);
  const bytes = new Uint8Array(v4 !== undefined ? sockaddr.in4Size : sockaddr.in6Size);
  const view = new DataView(bytes.buffer);
  view.setUint16(sockaddr.port, port, false);
  if (v4 !== undefined) {
    view.setUint16(sockaddr.family, constants.AF_INET, true);
    bytes.set(v4, sockaddr.in4Addr);
    return bytes;
  }
  const v6 = parseIPv6(hostname);
  if (v6 === undefined) throw new TypeError(`Not an IP address: ${JSON.stringify(hostname)}`);
  view.setUint16(sockaddr.family, constants.AF_INET6, true);
  bytes.set(v6, sockaddr.in6Addr);
  return bytes;
}

/** The address in `bytes` (a `sockaddr_in` or `sockaddr_in6`). */
export function decodeSockaddr(layout: AbiLayout, bytes: Uint8Array): IpEndpoint {
  const { sockaddr, constants } = layout;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const port = view.getUint16(sockaddr.port, false);
  if (view.getUint16(sockaddr.family, true) === constants.AF_INET) {
    const at = sockaddr.in4Addr;
    return { family: 4, hostname: bytes.subarray(at, at + 4).join("."), port };
  }
  const groups: string[] = [];
  for (let i = 0; i < 8; i++) groups.push(view.getUint16(sockaddr.in6Addr + 2 * i).toString(16));
  // Canonical (RFC 5952) form, as Deno reports addresses.
  const hostname = new URL(`http://[${groups.join(":")}]/`).hostname.slice(1, -1);
  return { family: 6, hostname, port };
}

/** The 4 bytes of a dotted-quad IPv4 literal, or undefined. */
export function parseIPv4(text: string): Uint8Array | undefined {
  const parts = text.split(".");
  if (parts.length !== 4) return undefined;
  const bytes = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    const part = parts[i]!;
    if (!/^\d{1,3}$/.test(part) || Number(part) > 255) return undefined;
    bytes[i] = Number(part);
  }
  return bytes;
}

/** The 16 bytes of an IPv6 literal (with "::" and a trailing dotted quad allowed), or undefined. */
export function parseIPv6(text: string): Uint8Array | undefined {
  let groups: number[];
  const halves = text.split("::");
  if (halves.length > 2) return undefined;
  const head = parseGroups(halves[0]!);
  if (head === undefined) return undefined;
  if (halves.length === 2) {
    const tail = parseGroups(halves[1]!);
    if (tail === undefined || head.length + tail.length > 7) return undefined;
    groups = [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail];
  } else {
    groups = head;
  }
  if (groups.length !== 8) return undefined;
  const bytes = new Uint8Array(16);
  const view = new DataView(bytes.buffer);
  groups.forEach((group, i) => view.setUint16(2 * i, group));
  return bytes;
}

function parseGroups(text: string): number[] | undefined {
  if (text === "") return [];
  const parts = text.split(":");
  const groups: number[] = [];
  for (const [i, part] of parts.entries()) {
    if (i === parts.length - 1 && part.includes(".")) {
      const v4 = parseIPv4(part);
      if (v4 === undefined) return undefined;
      groups.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
    } else if (/^[0-9a-f]{1,4}$/i.test(part)) {
      groups.push(parseInt(part, 16));
    } else {
      return undefined;
    }
  }
  return groups;
}
