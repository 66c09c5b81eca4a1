/**
 * Builds the operator-mode source of desired state from the program's flags: loads the cluster
 * configuration, creates the client and the {@linkcode Operator}, and closes the client when the
 * operator stops.
 * @module
 */

import type { DesiredStateSource } from "../source.ts";
import { KubeClient, type RequestResult } from "../kube/client.ts";
import { loadClusterConfig } from "../kube/cluster_config.ts";
import type { LoopObserver } from "./loop_observer.ts";
import type { CountOperatorError } from "./operator_errors.ts";
import { Operator, type SupervisorView } from "./operator.ts";
import { StreamServicesSource } from "./stream_services_source.ts";
import type { ConfigMapRef } from "../ingress_nginx/stream_services.ts";

/** The flags operator mode reads (a subset of the program's `Options`). */
export interface OperatorFlags {
  readonly kubeconfig?: string | undefined;
  readonly operatorNamespace?: string | undefined;
  readonly watchNamespaces: "*" | readonly string[];
  readonly instanceName?: string | undefined;
  readonly replicaName?: string | undefined;
  readonly tcpServiceToManage: string;
  readonly udpServiceToManage: string;
  readonly statusHeartbeatMs?: number | undefined;
  readonly allowedTargetNamespaces?: "*" | readonly string[] | undefined;
  readonly tcpServicesConfigmap?: ConfigMapRef | undefined;
  readonly udpServicesConfigmap?: ConfigMapRef | undefined;
  readonly clusterDomain?: string | undefined;
}

/** What the operator gets from the rest of the program. */
export interface OperatorParts {
  readonly view: SupervisorView;
  readonly countError: CountOperatorError;
  /** Queue and pass events of the reconcile loop (controller-runtime style metrics). */
  readonly observer?: LoopObserver;
  /** Called with the outcome of every API request (`rest_client_requests_total`). */
  readonly onRequest?: (result: RequestResult) => void;
  /** Environment lookup (`POD_NAME`, `NODE_NAME`, `KUBECONFIG`). @default Deno.env.get */
  readonly env?: (name: string) => string | undefined;
}

/**
 * Opens the operator source. The replica name is `--replica-name`, else `$POD_NAME`, else the host
 * name; the node is `$NODE_NAME` when the program may read it.
 * @throws {RangeError} without `--operator-namespace`; `KubeconfigError` for an unusable config.
 */
export async function openOperator(
  flags: OperatorFlags,
  parts: OperatorParts,
): Promise<DesiredStateSource> {
  const env = parts.env ?? Deno.env.get;
  const config = await loadClusterConfig({
    env,
    ...(flags.kubeconfig !== undefined ? { kubeconfig: flags.kubeconfig } : {}),
  });
  const client = new KubeClient(config, parts.onRequest ? { onResult: parts.onRequest } : {});
  try {
    const node = optionalEnv(env, "NODE_NAME");
    const operator = new Operator({
      client,
      operatorNamespace: flags.operatorNamespace ?? "",
      watchNamespaces: flags.watchNamespaces,
      instanceName: flags.instanceName ?? "",
      replica: flags.replicaName || env("POD_NAME") || Deno.hostname(),
      ...(node ? { node } : {}),
      tcpService: flags.tcpServiceToManage,
      udpService: flags.udpServiceToManage,
      view: parts.view,
      countError: parts.countError,
      ...(parts.observer ? { observer: parts.observer } : {}),
      ...(flags.statusHeartbeatMs !== undefined ? { heartbeatMs: flags.statusHeartbeatMs } : {}),
      allowedTargetNamespaces: flags.allowedTargetNamespaces,
      ...(flags.tcpServicesConfigmap || flags.udpServicesConfigmap
        ? {
          streamServices: new StreamServicesSource({
            client,
            tcp: flags.tcpServicesConfigmap,
            udp: flags.udpServicesConfigmap,
            clusterDomain: flags.clusterDomain ?? "cluster.local",
          }),
        }
        : {}),
    });
    return {
      description: operator.description,
      run: async (apply, signal) => {
        try {
          await operator.run(apply, signal);
        } finally {
          client.close();
        }
      },
    };
  } catch (error) {
    client.close();
    throw error;
  }
}

/** Reads an environment variable the program may not be allowed to read (then: undefined). */
function optionalEnv(env: (name: string) => string | undefined, name: string): string | undefined {
  try {
    return env(name);
  } catch (error) {
    if (error instanceof Deno.errors.NotCapable || error instanceof Deno.errors.PermissionDenied) {
      return undefined;
    }
    throw error;
  }
}
