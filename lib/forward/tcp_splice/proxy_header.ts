/**
 * The PROXY protocol header a splice engine thread sends to the target before a client's bytes:
 * the client (the accepted socket's peer, or the client a load balancer's header carried) as source, the accepted socket's local address as
 * destination, as the portable engine writes it. Pure code.
 * @module
 */

import type { AbiLayout } from "../../ffi/layout.ts";
import { decodeSockaddr } from "../../ffi/sockaddr.ts";
import { encodeProxyHeader, type Endpoint, proxyEndpoints } from "../proxy_protocol/encode.ts";

/**
 * The `version` header of a connection from `client` (the peer, or the client a load balancer's
 * header carried) to `local` (the accepted socket's `sockaddr` bytes).
 */
export function streamProxyHeader(
  layout: AbiLayout,
  version: "v1" | "v2",
  client: Endpoint,
  local: Uint8Array,
): Uint8Array {
  const endpoints = proxyEndpoints(client, decodeSockaddr(layout, local));
  return encodeProxyHeader(version, "stream", endpoints);
}
