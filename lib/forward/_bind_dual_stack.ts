/**
 * Binding helper shared by the TCP and UDP listeners: "::" is dual-stack on Linux (with the default
 * `net.ipv6.bindv6only=0`), but on a host with IPv6 disabled it fails with EAFNOSUPPORT; then the
 * IPv4 wildcard is the best the host offers.
 * @module
 */

/** `bind(address)`, falling back to "0.0.0.0" when `address` is "::" and IPv6 is unavailable. */
export function bindDualStack<T>(address: string, bind: (hostname: string) => T): T {
  try {
    return bind(address);
  } catch (error) {
    if (address !== "::" || !isAddressFamilyUnsupported(error)) throw error;
    return bind("0.0.0.0");
  }
}

function isAddressFamilyUnsupported(error: unknown): boolean {
  return error instanceof Error && /os error 97\b|family not supported/i.test(error.message);
}
