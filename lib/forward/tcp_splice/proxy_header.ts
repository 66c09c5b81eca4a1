/**
 * The PROXY protocol header a splice engine thread sends to the target before a client's bytes:
 * the client (the accepted socket's peer) as source, the accepted socket's local address as
 * destination, as the portable engine writes it. Pure code.
 * @module
 */

import type { AbiLayout } from "../../ffi/layout.ts";
import { decodeSockaddr } from "../../ffi/sockaddr.ts";
import { encodeProxyHeader, proxyEndpoints } from "../proxy_protocol/encode.ts";

/** The `version` header of a connection from `peer` to `local` (both `sockaddr` bytes). */
export function streamProxyHeader(
  layout: AbiLayout,
  version: "v1" | "v2",
  peer: Uint8Array,
  local: Uint8Array,
): Uint8Array {
  const endpoints = proxyEndpoints(decodeSockaddr(layout, peer), decodeSockaddr(layout, local));
  return encodeProxyHeader(version, "stream", endpoints);
}
