/**
 * PROXY protocol header encoding (HAProxy's "The PROXY protocol" versions 1 and 2), as plain
 * functions writing into a caller's `Uint8Array` so any engine (the socket loops, a batched FFI
 * engine) can put the header in front of its bytes without an extra copy.
 *
 * Both addresses of a header are of one family: when one side is IPv4 and the other IPv6, the IPv4
 * side is sent as an IPv4-mapped IPv6 address; IPv4-mapped addresses on both sides are sent as IPv4.
 * @module
 */

import { asIpv6, formatIp, type IpBytes, ipBytes } from "../../util/ip_address.ts";

/** The 12 bytes every version 2 header starts with: `\r\n\r\n\0\r\nQUIT\n`. */
export const PROXY_V2_SIGNATURE: Uint8Array = Uint8Array.of(
  0x0d,
  0x0a,
  0x0d,
  0x0a,
  0x00,
  0x0d,
  0x0a,
  0x51,
  0x55,
  0x49,
  0x54,
  0x0a,
);
/** Longest version 1 header, CRLF included (the specification's 107 bytes). */
export const PROXY_V1_MAX_BYTES = 107;
/** Version 2 header bytes before the addresses: signature, version/command, family, length. */
export const PROXY_V2_FIXED_BYTES = 16;
/** Longest version 2 header we write (IPv6 addresses, no TLVs). */
export const PROXY_V2_MAX_WRITTEN_BYTES = 52;

/** A transport a version 2 header can name. */
export type ProxyTransport = "stream" | "dgram";

/** An endpoint as sockets report it: an IP literal and a port. */
export interface Endpoint {
  readonly hostname: string;
  readonly port: number;
}

/** Both endpoints as bytes of the same family (4 or 16 bytes each), ready to encode repeatedly. */
export interface ProxyEndpoints {
  readonly source: IpBytes;
  readonly sourcePort: number;
  readonly destination: IpBytes;
  readonly destinationPort: number;
}

/**
 * Converts the client (`source`) and the address it reached (`destination`) to bytes of one family.
 * @throws {TypeError} when a hostname is not an IP literal.
 */
export function proxyEndpoints(source: Endpoint, destination: Endpoint): ProxyEndpoints {
  let from = ipBytes(source.hostname);
  let to = ipBytes(destination.hostname);
  if (from.length !== to.length) {
    from = asIpv6(from);
    to = asIpv6(to);
  }
  return {
    source: from,
    sourcePort: source.port,
    destination: to,
    destinationPort: destination.port,
  };
}

/** Bytes of the version 2 header for `endpoints` (28 for IPv4, 52 for IPv6; no TLVs). */
export function proxyV2HeaderBytes(endpoints: ProxyEndpoints): number {
  return PROXY_V2_FIXED_BYTES + 2 * endpoints.source.length + 4;
}

/**
 * Writes a version 2 PROXY header (command PROXY, INET or INET6, STREAM or DGRAM) at `offset`.
 * @returns the bytes written ({@linkcode proxyV2HeaderBytes}).
 * @throws {RangeError} when `out` has no room from `offset`.
 */
export function writeProxyV2Header(
  out: Uint8Array,
  offset: number,
  transport: ProxyTransport,
  endpoints: ProxyEndpoints,
): number {
  const total = proxyV2HeaderBytes(endpoints);
  if (offset + total > out.length) {
    throw new RangeError(`PROXY v2 header needs ${total} bytes at offset ${offset}`);
  }
  const ipv6 = endpoints.source.length === 16;
  out.set(PROXY_V2_SIGNATURE, offset);
  out[offset + 12] = 0x21; // version 2, command PROXY
  out[offset + 13] = (ipv6 ? 0x20 : 0x10) | (transport === "stream" ? 0x01 : 0x02);
  const length = total - PROXY_V2_FIXED_BYTES;
  out[offset + 14] = length >> 8;
  out[offset + 15] = length & 0xff;
  let at = offset + PROXY_V2_FIXED_BYTES;
  out.set(endpoints.source, at);
  at += endpoints.source.length;
  out.set(endpoints.destination, at);
  at += endpoints.destination.length;
  out[at++] = endpoints.sourcePort >> 8;
  out[at++] = endpoints.sourcePort & 0xff;
  out[at++] = endpoints.destinationPort >> 8;
  out[at++] = endpoints.destinationPort & 0xff;
  return total;
}

/**
 * Writes a version 1 PROXY header (`PROXY TCP4|TCP6 src dst sport dport\r\n`) at `offset`.
 * @returns the bytes written (at most {@linkcode PROXY_V1_MAX_BYTES}).
 * @throws {RangeError} when `out` has no room from `offset`.
 */
export function writeProxyV1Header(
  out: Uint8Array,
  offset: number,
  endpoints: ProxyEndpoints,
): number {
  const family = endpoints.source.length === 16 ? "TCP6" : "TCP4";
  const line = `PROXY ${family} ${formatIp(endpoints.source)} ${formatIp(endpoints.destination)} ` +
    `${endpoints.sourcePort} ${endpoints.destinationPort}\r\n`;
  const { read, written } = new TextEncoder().encodeInto(line, out.subarray(offset));
  if (read !== line.length) {
    throw new RangeError(`PROXY v1 header needs ${line.length} bytes at offset ${offset}`);
  }
  return written;
}

/** A complete header as a new array: version 1 (TCP only) or version 2. */
export function encodeProxyHeader(
  version: "v1" | "v2",
  transport: ProxyTransport,
  endpoints: ProxyEndpoints,
): Uint8Array {
  if (version === "v2") {
    const out = new Uint8Array(proxyV2HeaderBytes(endpoints));
    writeProxyV2Header(out, 0, transport, endpoints);
    return out;
  }
  if (transport !== "stream") throw new TypeError("PROXY protocol v1 carries TCP only");
  const out = new Uint8Array(PROXY_V1_MAX_BYTES);
  return out.subarray(0, writeProxyV1Header(out, 0, endpoints));
}
