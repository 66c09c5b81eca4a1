/**
 * Chooses where the cluster configuration comes from, in controller-runtime's order: an explicit
 * kubeconfig, `KUBECONFIG`, the in-cluster service account, then `~/.kube/config`.
 *
 * @module
 */
import type { ClusterConfig } from "./cluster.ts";
import { isInCluster, loadInClusterConfig } from "./in_cluster.ts";
import { loadKubeconfig } from "./kubeconfig.ts";

/** Options of {@linkcode loadClusterConfig}. */
export interface ClusterConfigOptions {
  /** Explicit kubeconfig file (the `--kubeconfig` flag). */
  kubeconfig?: string;
  /** Kubeconfig context. @default the current context */
  context?: string;
  /** Environment lookup. @default Deno.env.get */
  env?: (name: string) => string | undefined;
  /** Service-account folder for in-cluster mode. @default SERVICE_ACCOUNT_DIR */
  serviceAccountDir?: string;
}

/**
 * Loads the cluster configuration the process should use.
 * @throws {KubeconfigError} when the chosen source is unusable.
 */
export function loadClusterConfig(options: ClusterConfigOptions = {}): Promise<ClusterConfig> {
  const env = options.env ?? Deno.env.get;
  const kubeconfig = {
    env,
    ...(options.kubeconfig !== undefined ? { path: options.kubeconfig } : {}),
    ...(options.context !== undefined ? { context: options.context } : {}),
  };
  if (options.kubeconfig !== undefined || (env("KUBECONFIG") ?? "") !== "" || !isInCluster(env)) {
    return loadKubeconfig(kubeconfig);
  }
  return loadInClusterConfig({
    env,
    ...(options.serviceAccountDir !== undefined
      ? { serviceAccountDir: options.serviceAccountDir }
      : {}),
  });
}
