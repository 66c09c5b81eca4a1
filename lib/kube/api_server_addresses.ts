/**
 * The IP addresses this process reaches the API server at: the host of the configured server URL
 * (looked up when it is a name) and, in a cluster, `KUBERNETES_SERVICE_HOST`. Operator mode denies
 * them as targets by default, so an object cannot publish the API server through a proxy port.
 * @module
 */

import { lookup } from "node:dns/promises";
import { loadClusterConfig } from "./cluster_config.ts";

/** Options of {@linkcode apiServerAddresses}. */
export interface ApiServerAddressOptions {
  /** The `--kubeconfig` flag. */
  readonly kubeconfig?: string | undefined;
  /** Environment lookup. @default Deno.env.get */
  readonly env?: (name: string) => string | undefined;
}

/**
 * The API server's addresses, without duplicates; empty when the configuration cannot be loaded
 * (operator start-up then fails with that error anyway) or a name does not resolve.
 */
export async function apiServerAddresses(options: ApiServerAddressOptions = {}): Promise<string[]> {
  const env = options.env ?? Deno.env.get;
  const hosts = new Set<string>();
  try {
    const config = await loadClusterConfig({
      env,
      ...(options.kubeconfig !== undefined && { kubeconfig: options.kubeconfig }),
    });
    hosts.add(new URL(config.server).hostname.replace(/^\[(.*)\]$/, "$1"));
  } catch {
    // Reported by the operator itself when it opens the same configuration.
  }
  const serviceHost = optionalEnv(env, "KUBERNETES_SERVICE_HOST");
  if (serviceHost) hosts.add(serviceHost);
  const addresses = new Set<string>();
  for (const host of hosts) {
    try {
      for (const { address } of await lookup(host, { all: true })) addresses.add(address);
    } catch {
      // A name that does not resolve cannot be reached through a proxy port either.
    }
  }
  return [...addresses];
}

function optionalEnv(env: (name: string) => string | undefined, name: string): string | undefined {
  try {
    return env(name);
  } catch {
    return undefined; // Not allowed to read it: not in a cluster that sets it.
  }
}
