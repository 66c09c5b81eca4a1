/**
 * PROXY protocol header decoding (versions 1 and 2), incremental: call {@linkcode parseProxyHeader}
 * with every byte received so far until it stops answering `incomplete`. Strict, as the
 * specification asks of a receiver: anything that is not exactly a header is rejected, with a reason.
 * @module
 */

import type { Endpoint } from "./encode.ts";
import { PROXY_V1_MAX_BYTES, PROXY_V2_FIXED_BYTES, PROXY_V2_SIGNATURE } from "./encode.ts";
import { formatIp, parseIpv4, parseIpv6 } from "../../util/ip_address.ts";

/** Why a header was refused: none at all, or a broken one. */
export type ProxyHeaderFault = "missing" | "malformed";

/** Outcome of parsing the first bytes of a connection. */
export type ProxyHeaderParse =
  /** More bytes are needed. */
  | { readonly kind: "incomplete" }
  | { readonly kind: "rejected"; readonly fault: ProxyHeaderFault; readonly detail: string }
  | {
    readonly kind: "accepted";
    readonly version: 1 | 2;
    /** Header bytes (the connection's own data starts after them). */
    readonly length: number;
    /**
     * The client and the address it connected to, or undefined for a header without addresses
     * (`PROXY UNKNOWN`, a version 2 LOCAL command, or an UNSPEC/UNIX family): then the socket's own
     * addresses stand.
     */
    readonly source?: Endpoint;
    readonly destination?: Endpoint;
  };

/** Longest version 2 header accepted (with its TLVs) unless the caller says otherwise. */
export const DEFAULT_MAX_PROXY_HEADER_BYTES = 4096;

const V1_PREFIX = new TextEncoder().encode("PROXY ");
const INCOMPLETE = { kind: "incomplete" } as const;
const PORT = /^(0|[1-9]\d{0,4})$/;

/**
 * Parses a PROXY header at the start of `bytes`.
 * @param maxBytes Longest version 2 header accepted; longer ones are `malformed`.
 */
export function parseProxyHeader(
  bytes: Uint8Array,
  maxBytes: number = DEFAULT_MAX_PROXY_HEADER_BYTES,
): ProxyHeaderParse {
  if (startsLike(bytes, PROXY_V2_SIGNATURE)) {
    return bytes.length < PROXY_V2_SIGNATURE.length ? INCOMPLETE : parseV2(bytes, maxBytes);
  }
  if (startsLike(bytes, V1_PREFIX)) {
    return bytes.length < V1_PREFIX.length ? INCOMPLETE : parseV1(bytes);
  }
  return rejected("missing", "the connection does not start with a PROXY protocol header");
}

/** True when `bytes` and `prefix` agree on their common length (and `bytes` is not empty). */
function startsLike(bytes: Uint8Array, prefix: Uint8Array): boolean {
  const n = Math.min(bytes.length, prefix.length);
  if (n === 0) return true;
  for (let i = 0; i < n; i++) if (bytes[i] !== prefix[i]) return false;
  return true;
}

function rejected(fault: ProxyHeaderFault, detail: string): ProxyHeaderParse {
  return { kind: "rejected", fault, detail };
}

function parseV1(bytes: Uint8Array): ProxyHeaderParse {
  let end = -1;
  const limit = Math.min(bytes.length, PROXY_V1_MAX_BYTES);
  for (let i = V1_PREFIX.length; i < limit; i++) {
    if (bytes[i] === 0x0a) {
      end = i;
      break;
    }
  }
  if (end < 0) {
    return bytes.length >= PROXY_V1_MAX_BYTES
      ? rejected("malformed", `v1 header without CRLF in its first ${PROXY_V1_MAX_BYTES} bytes`)
      : INCOMPLETE;
  }
  if (bytes[end - 1] !== 0x0d) return rejected("malformed", "v1 header line does not end in CRLF");
  const line = String.fromCharCode(...bytes.subarray(0, end - 1));
  const fields = line.split(" ");
  const length = end + 1;
  if (fields[1] === "UNKNOWN") return { kind: "accepted", version: 1, length };
  if (fields.length !== 6) {
    return rejected("malformed", `v1 header needs 6 fields, got ${fields.length}`);
  }
  const [, family, sourceText, destinationText, sourcePort, destinationPort] = fields as [
    string,
    string,
    string,
    string,
    string,
    string,
  ];
  const parseAddress = family === "TCP4" ? parseIpv4 : family === "TCP6" ? parseIpv6 : undefined;
  if (parseAddress === undefined) {
    return rejected(
      "malformed",
      `v1 protocol ${JSON.stringify(family)} is not TCP4, TCP6 or UNKNOWN`,
    );
  }
  const source = parseAddress(sourceText);
  const destination = parseAddress(destinationText);
  if (source === undefined || destination === undefined || sourceText.includes("%")) {
    return rejected("malformed", `v1 addresses are not ${family} addresses`);
  }
  const ports = [sourcePort, destinationPort].map((text) =>
    PORT.test(text) && Number(text) <= 65535 ? Number(text) : -1
  );
  if (ports[0] === -1 || ports[1] === -1) return rejected("malformed", "v1 ports are not 0-65535");
  return {
    kind: "accepted",
    version: 1,
    length,
    source: { hostname: formatIp(source), port: ports[0]! },
    destination: { hostname: formatIp(destination), port: ports[1]! },
  };
}

function parseV2(bytes: Uint8Array, maxBytes: number): ProxyHeaderParse {
  if (bytes.length < PROXY_V2_FIXED_BYTES) return INCOMPLETE;
  const versionCommand = bytes[12]!;
  if (versionCommand >> 4 !== 2) {
    return rejected("malformed", `v2 header with version ${versionCommand >> 4}`);
  }
  const command = versionCommand & 0x0f;
  if (command > 1) return rejected("malformed", `v2 header with unknown command ${command}`);
  const family = bytes[13]! >> 4;
  const transport = bytes[13]! & 0x0f;
  if (family > 3 || transport > 2) {
    return rejected("malformed", `v2 header with unknown family/transport 0x${hex(bytes[13]!)}`);
  }
  const length = PROXY_V2_FIXED_BYTES + ((bytes[14]! << 8) | bytes[15]!);
  if (length > maxBytes) {
    return rejected("malformed", `v2 header of ${length} bytes, more than ${maxBytes}`);
  }
  const addressBytes = family === 1 ? 12 : family === 2 ? 36 : family === 3 ? 216 : 0;
  if (length - PROXY_V2_FIXED_BYTES < addressBytes) {
    return rejected("malformed", `v2 address block of ${length - 16} bytes is too short`);
  }
  if (bytes.length < length) return INCOMPLETE;
  if (command === 0 || family === 0 || family === 3) {
    return { kind: "accepted", version: 2, length };
  }
  const size = family === 1 ? 4 : 16;
  const at = PROXY_V2_FIXED_BYTES;
  const portAt = at + 2 * size;
  return {
    kind: "accepted",
    version: 2,
    length,
    source: {
      hostname: formatIp(bytes.slice(at, at + size)),
      port: (bytes[portAt]! << 8) | bytes[portAt + 1]!,
    },
    destination: {
      hostname: formatIp(bytes.slice(at + size, at + 2 * size)),
      port: (bytes[portAt + 2]! << 8) | bytes[portAt + 3]!,
    },
  };
}

function hex(byte: number): string {
  return byte.toString(16).padStart(2, "0");
}
