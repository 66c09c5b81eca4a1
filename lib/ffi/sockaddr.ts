/**
 * Socket addresses as bytes (`struct sockaddr_in` / `sockaddr_in6`) from and to IP literals. Pure
 * code: the main thread encodes resolved targets, the engine threads decode for logs and ports.
 * @module
 */

import { formatIp, parseIpv4, parseIpv6 } from "../util/ip_address.ts";
import type { AbiLayout } from "./layout.ts";

/** An IP literal and port; `family` 6 also for IPv4-mapped IPv6 addresses. */
export interface IpEndpoint {
  readonly family: 4 | 6;
  readonly hostname: string;
  readonly port: number;
}

/**
 * `struct sockaddr_in` (IPv4 literal) or `sockaddr_in6` (IPv6 literal) for `hostname:port`.
 * @throws {TypeError} when `hostname` is not an IP literal (or has a `%zone`: no scope is set).
 */
export function encodeSockaddr(layout: AbiLayout, hostname: string, port: number): Uint8Array {
  const { sockaddr, constants } = layout;
  const v4 = parseIpv4(hostname);
  const bytes = new Uint8Array(v4 !== undefined ? sockaddr.in4Size : sockaddr.in6Size);
  const view = new DataView(bytes.buffer);
  view.setUint16(sockaddr.port, port, false);
  if (v4 !== undefined) {
    view.setUint16(sockaddr.family, constants.AF_INET, true);
    bytes.set(v4, sockaddr.in4Addr);
    return bytes;
  }
  const v6 = hostname.includes("%") ? undefined : parseIpv6(hostname);
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
  const at = sockaddr.in6Addr;
  const hostname = formatIp(bytes.subarray(at, at + 16));
  return { family: 6, hostname, port };
}
