/**
 * Keeps the operator's ports in the managed Services (see `service_port_plan.ts` for the rules):
 * plans against the cached Service, writes only when something differs, and writes with a merge
 * patch that carries the Service's `resourceVersion`, so a concurrent writer (another replica, a
 * hand edit) makes it re-read and re-plan instead of being overwritten.
 * @module
 */

import type { Service, ServicePort } from "kubernetes-types/core/v1.d.ts";
import type { ForwarderSpec } from "../spec.ts";
import { ApiError } from "../kube/api_error.ts";
import type { KubeClient } from "../kube/client.ts";
import { SERVICES } from "../kube/resources.ts";
import {
  MANAGED_PORTS_ANNOTATION,
  parseOwnedPorts,
  planServicePorts,
  type ServiceProtocol,
  type WantedPort,
  wantedServicePorts,
} from "./service_port_plan.ts";

/** One Service the operator keeps ports in, and for which protocols. */
export interface ManagedService {
  readonly name: string;
  readonly protocols: readonly ServiceProtocol[];
}

/**
 * The managed Services from `--tcp-service-to-manage` and `--udp-service-to-manage` (an empty name
 * disables that protocol); one Service named by both flags carries both protocols.
 */
export function managedServices(tcpService: string, udpService: string): ManagedService[] {
  if (tcpService !== "" && tcpService === udpService) {
    return [{ name: tcpService, protocols: ["TCP", "UDP"] }];
  }
  const services: ManagedService[] = [];
  if (tcpService !== "") services.push({ name: tcpService, protocols: ["TCP"] });
  if (udpService !== "") services.push({ name: udpService, protocols: ["UDP"] });
  return services;
}

/** The outcome of one {@linkcode syncServicePorts} call. */
export interface ServicePortSync {
  readonly service: ManagedService;
  /** Ports this call wrote into the Service. */
  readonly added: readonly WantedPort[];
  /** Ports this call took out of the Service. */
  readonly removed: readonly ServicePort[];
  /** Why a forwarder (`namespace/name`) has no port in the Service, for those that have none. */
  readonly problems: ReadonlyMap<string, string>;
  /** Set when the Service could not be synced at all (missing, forbidden, rejected...). */
  readonly error?: Error;
}

/** What {@linkcode syncServicePorts} works on. */
export interface SyncServicePortsOptions {
  readonly client: KubeClient;
  /** The operator's namespace, where the Service lives. */
  readonly namespace: string;
  readonly managed: ManagedService;
  /** The complete desired set. */
  readonly desired: readonly ForwarderSpec[];
  /** The Service as last seen by the watch, to skip a read when nothing changed. */
  cached?: Service | undefined;
  /** Field manager of the writes. @default "undying-proxy-operator" */
  fieldManager?: string;
  signal?: AbortSignal;
}

const ATTEMPTS = 5;

/**
 * Makes the Service `managed.name` in `namespace` carry exactly the ports the desired set needs,
 * leaving foreign ports alone. Never throws for API failures: they are returned in `error`.
 */
export async function syncServicePorts(
  options: SyncServicePortsOptions,
): Promise<ServicePortSync> {
  const { client, namespace, managed, desired } = options;
  const wanted = wantedServicePorts(desired, managed.protocols, namespace);
  const signal = options.signal ? { signal: options.signal } : {};
  let service = options.cached;
  const failed = (error: Error): ServicePortSync => ({
    service: managed,
    added: [],
    removed: [],
    problems: new Map(wanted.map((w) => [w.owner, serviceProblem(namespace, managed, error)])),
    error,
  });
  for (let attempt = 1;; attempt++) {
    try {
      service ??= await client.get(SERVICES, managed.name, { namespace, ...signal });
    } catch (error) {
      if (error instanceof ApiError) return failed(error);
      throw error;
    }
    const plan = planServicePorts(
      service.spec?.ports ?? [],
      parseOwnedPorts(service.metadata?.annotations?.[MANAGED_PORTS_ANNOTATION]),
      wanted,
    );
    const problems = new Map(plan.blocked.map((b) => [
      b.wanted.owner,
      `Service ${namespace}/${managed.name}: ${b.reason}`,
    ]));
    if (!plan.changed) return { service: managed, added: [], removed: [], problems };
    const patch = {
      metadata: {
        resourceVersion: service.metadata?.resourceVersion,
        annotations: {
          [MANAGED_PORTS_ANNOTATION]: plan.owned.length > 0 ? plan.owned.join(",") : null,
        },
      },
      spec: { ports: plan.ports },
    };
    try {
      await client.patch(SERVICES, {
        name: managed.name,
        type: "merge",
        patch,
        namespace,
        fieldManager: options.fieldManager ?? "undying-proxy-operator",
        ...signal,
      });
      return { service: managed, added: plan.added, removed: plan.removed, problems };
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      if (error.kind !== "Conflict" || attempt >= ATTEMPTS) return failed(error);
      service = undefined; // Someone else wrote first: re-read, re-plan.
    }
  }
}

function serviceProblem(namespace: string, managed: ManagedService, error: Error): string {
  if (error instanceof ApiError && error.kind === "NotFound") {
    return `Service ${namespace}/${managed.name} not found (create it, or disable with an empty ` +
      `--${managed.protocols[0]?.toLowerCase() ?? "tcp"}-service-to-manage)`;
  }
  return `Service ${namespace}/${managed.name}: ${error.message}`;
}
