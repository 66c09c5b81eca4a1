/**
 * The largest UDP payloads, for the UDP engines: what one datagram can carry to a target of each
 * family (a PROXY header included), and so the longest run one segmented send may hold.
 * @module
 */

/** Largest UDP payload over IPv6: 65,535 minus the 8-byte UDP header. */
export const MAX_UDP_PAYLOAD_BYTES = 65_527;
/** Largest UDP payload over IPv4: 65,535 minus the 20-byte IP and 8-byte UDP headers. */
export const MAX_UDP_PAYLOAD_BYTES_IPV4 = 65_507;
