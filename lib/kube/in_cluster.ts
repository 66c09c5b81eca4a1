/**
 * In-cluster configuration from the pod's service account, as client-go's `InClusterConfig`:
 * `KUBERNETES_SERVICE_HOST`/`PORT`, and `token`, `ca.crt`, `namespace` under the service-account
 * folder. The token is read again for every request because projected tokens rotate.
 *
 * @module
 */
import { join } from "node:path";
import type { ClusterConfig } from "./cluster.ts";
import { readToken, tokenFileCredentials } from "./credentials.ts";
import { KubeconfigError } from "./kubeconfig_error.ts";
import { errorMessage } from "../util/error_message.ts";

/** The standard service-account folder inside a pod. */
export const SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount";

/** Options of {@linkcode loadInClusterConfig}. */
export interface InClusterOptions {
  /** Environment lookup. @default Deno.env.get */
  env?: (name: string) => string | undefined;
  /** Folder holding `token`, `ca.crt` and `namespace`. @default SERVICE_ACCOUNT_DIR */
  serviceAccountDir?: string;
}

/** True when the process looks like it runs in a pod (`KUBERNETES_SERVICE_HOST` is set). */
export function isInCluster(env: (name: string) => string | undefined = Deno.env.get): boolean {
  return (env("KUBERNETES_SERVICE_HOST") ?? "") !== "";
}

/**
 * Builds the configuration from the pod's service account.
 * @throws {KubeconfigError} when the environment or a service-account file is missing or unreadable.
 */
export async function loadInClusterConfig(options: InClusterOptions = {}): Promise<ClusterConfig> {
  const env = options.env ?? Deno.env.get;
  const dir = options.serviceAccountDir ?? SERVICE_ACCOUNT_DIR;
  const host = env("KUBERNETES_SERVICE_HOST") ?? "";
  const port = env("KUBERNETES_SERVICE_PORT") ?? "";
  if (host === "" || port === "") {
    throw new KubeconfigError(
      "environment",
      host === "" ? "KUBERNETES_SERVICE_HOST" : "KUBERNETES_SERVICE_PORT",
      "is not set, so this process is not running in a pod",
    );
  }
  const tokenPath = join(dir, "token");
  await readToken(tokenPath, tokenPath, ""); // fail early when the token is missing
  const caPath = join(dir, "ca.crt");
  let ca: string;
  try {
    ca = await Deno.readTextFile(caPath);
  } catch (error) {
    throw new KubeconfigError(caPath, "", `cannot read the cluster CA: ${errorMessage(error)}`, {
      cause: error,
    });
  }
  if (!ca.includes("-----BEGIN CERTIFICATE-----")) {
    throw new KubeconfigError(caPath, "", "does not hold a PEM certificate");
  }
  let namespace = "default";
  try {
    namespace = (await Deno.readTextFile(join(dir, "namespace"))).trim() || "default";
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  const hostPart = host.includes(":") ? `[${host}]` : host;
  return {
    server: `https://${hostPart}:${port}`,
    caCerts: [ca],
    credentials: tokenFileCredentials(tokenPath, tokenPath, ""),
    namespace,
    source: `in-cluster service account (${dir})`,
  };
}
