/**
 * The environment of a child process started with `clearEnv`: nothing of the parent's but what
 * Deno needs to load modules on this machine.
 */

/**
 * Variables a clean child keeps: where Deno caches modules, and what lets it reach the package
 * registry (trusted certificate authorities, proxies). Without them a child on a machine with an
 * empty cache fails with `invalid peer certificate: UnknownIssuer` behind a corporate CA or proxy.
 */
export const PASSED_THROUGH = [
  "DENO_DIR",
  "DENO_CERT",
  "DENO_TLS_CA_STORE",
  "NODE_EXTRA_CA_CERTS",
  "SSL_CERT_FILE",
  "SSL_CERT_DIR",
  "NPM_CONFIG_REGISTRY",
  "HTTP_PROXY",
  "HTTPS_PROXY",
  "NO_PROXY",
  "ALL_PROXY",
  "http_proxy",
  "https_proxy",
  "no_proxy",
  "all_proxy",
] as const;

/**
 * A clean environment for a Deno child: the {@linkcode PASSED_THROUGH} variables that are set,
 * `DENO_NO_UPDATE_CHECK=1`, then `extra` (which wins).
 */
export function cleanEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = { DENO_NO_UPDATE_CHECK: "1" };
  for (const name of PASSED_THROUGH) {
    const value = Deno.env.get(name);
    if (value !== undefined) env[name] = value;
  }
  return { ...env, ...extra };
}
