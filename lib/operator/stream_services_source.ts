/**
 * ingress-nginx `tcp-services` / `udp-services` ConfigMaps as a source of forwarders in operator
 * mode (`--tcp-services-configmap`, `--udp-services-configmap`).
 *
 * Reflectors keep the two ConfigMaps; every reconcile pass turns their entries into forwarder specs
 * named `<configmap namespace>/<configmap name>:<port>` that the operator appends AFTER the specs of
 * UnDyingProxy objects, so an object wins a port both claim (the entry reports the conflict). A
 * named service port is looked up in the Service (cached for a short time); a number needs no read.
 * Entries that cannot be forwarded are returned with the reason, for Events on the ConfigMap.
 * @module
 */
import type { ConfigMap, Service } from "kubernetes-types/core/v1.d.ts";
import { ExpiringCache } from "../expiring_cache.ts";
import {
  type ConfigMapRef,
  parseStreamServices,
  type StreamProtocol,
  type StreamService,
  type StreamServiceProblem,
} from "../ingress_nginx/stream_services.ts";
import {
  servicePortNumber,
  streamSection,
  validatedStreamSpec,
} from "../ingress_nginx/stream_spec.ts";
import { ApiError } from "../kube/api_error.ts";
import type { KubeClient } from "../kube/client.ts";
import { Reflector, type ReflectorOptions } from "../kube/reflector.ts";
import { CONFIG_MAPS, SERVICES } from "../kube/resources.ts";
import type { ForwarderSpec } from "../spec.ts";
import { errorMessage } from "../util/error_message.ts";

/** Options of {@linkcode StreamServicesSource}. */
export interface StreamServicesOptions {
  readonly client: KubeClient;
  readonly tcp?: ConfigMapRef | undefined;
  readonly udp?: ConfigMapRef | undefined;
  /** The cluster's DNS domain (`--cluster-domain`). */
  readonly clusterDomain: string;
  /** How long a Service read for a named port is reused. @default 10000 */
  readonly serviceCacheMs?: number;
  /** Reflector tuning (tests shorten the watch timeout). */
  readonly reflector?: Pick<
    ReflectorOptions,
    "watchTimeoutSeconds" | "livenessMarginMs" | "backoff"
  >;
}

/** An entry that cannot be forwarded, with the ConfigMap it came from. */
export interface RejectedEntry extends StreamServiceProblem {
  readonly configMap: ConfigMap;
}

/** What the ConfigMaps ask for in one pass. */
export interface StreamServicesDesired {
  /** Forwarder specs, ordered by ConfigMap (TCP first) and port. */
  readonly specs: readonly ForwarderSpec[];
  readonly rejected: readonly RejectedEntry[];
  /** The ConfigMap each forwarder came from (Events about it go there). */
  readonly owners: ReadonlyMap<string, ConfigMap>;
}

const SERVICE_CACHE_ENTRIES = 1024;

/** The ConfigMaps of one operator, watched, as forwarder specs. */
export class StreamServicesSource {
  readonly #client: KubeClient;
  readonly #clusterDomain: string;
  readonly #serviceCacheMs: number;
  readonly #watched: {
    ref: ConfigMapRef;
    protocol: StreamProtocol;
    reflector: Reflector<ConfigMap>;
  }[];
  readonly #services = new ExpiringCache<string, Service | string>({
    maxEntries: SERVICE_CACHE_ENTRIES,
  });

  /** Watches nothing until the reflectors run (see {@linkcode reflectors}). */
  constructor(options: StreamServicesOptions) {
    this.#client = options.client;
    this.#clusterDomain = options.clusterDomain;
    this.#serviceCacheMs = options.serviceCacheMs ?? 10_000;
    const watched = [["TCP", options.tcp], ["UDP", options.udp]] as const;
    this.#watched = watched.flatMap(([protocol, ref]) =>
      ref === undefined ? [] : [{
        ref,
        protocol,
        reflector: new Reflector(this.#client, CONFIG_MAPS, {
          ...options.reflector,
          namespace: ref.namespace,
          fieldSelector: `metadata.name=${ref.name}`,
        }),
      }]
    );
  }

  /** `ingress-nginx/tcp-services (TCP), …` for logs; empty when no ConfigMap is configured. */
  get description(): string {
    return this.#watched.map((w) => `${w.ref.namespace}/${w.ref.name} (${w.protocol})`).join(", ");
  }

  /** The reflectors the operator runs and waits for. */
  reflectors(): Reflector<ConfigMap>[] {
    return this.#watched.map((w) => w.reflector);
  }

  /** The forwarders the ConfigMaps ask for now; a missing ConfigMap asks for none. */
  async desired(signal: AbortSignal): Promise<StreamServicesDesired> {
    const specs: ForwarderSpec[] = [];
    const rejected: RejectedEntry[] = [];
    const owners = new Map<string, ConfigMap>();
    for (const { ref, protocol, reflector } of this.#watched) {
      const configMap = reflector.store.get(`${ref.namespace}/${ref.name}`);
      if (configMap === undefined) continue;
      const parsed = parseStreamServices(configMap.data, protocol);
      for (const problem of parsed.problems) rejected.push({ configMap, ...problem });
      for (const entry of parsed.services) {
        const name = `${ref.namespace}/${ref.name}:${entry.externalPort}`;
        const spec = await this.#spec(name, entry, signal);
        if (typeof spec === "string") {
          rejected.push({ configMap, protocol, key: entry.key, value: entry.value, reason: spec });
          continue;
        }
        specs.push(spec);
        owners.set(name, configMap);
      }
    }
    return { specs, rejected, owners };
  }

  async #spec(
    name: string,
    entry: StreamService,
    signal: AbortSignal,
  ): Promise<ForwarderSpec | string> {
    let port: number | string = entry.servicePort;
    if (typeof port === "string") {
      const service = await this.#service(entry.namespace, entry.service, signal);
      port = typeof service === "string" ? service : servicePortNumber(entry, service.spec?.ports);
    }
    if (typeof port === "string") return port;
    const section = streamSection(entry, port, this.#clusterDomain);
    return validatedStreamSpec(
      name,
      entry.protocol === "TCP" ? { tcp: section } : { udp: section },
    );
  }

  /** The Service, or why it cannot be read; kept for a short time either way. */
  #service(namespace: string, name: string, signal: AbortSignal): Promise<Service | string> {
    return this.#services.get(`${namespace}/${name}`, async () => {
      try {
        return await this.#client.get(SERVICES, name, { namespace, signal });
      } catch (error) {
        if (!(error instanceof ApiError)) throw error;
        if (error.kind === "NotFound") return `Service ${namespace}/${name} not found`;
        return `cannot read Service ${namespace}/${name} to look its port names up: ` +
          errorMessage(error);
      }
    }, () => this.#serviceCacheMs);
  }
}

/** `key "value": reason` of a rejected entry, for Events and logs. */
export function describeRejected(entry: RejectedEntry): string {
  return `${entry.protocol} entry ${entry.key}: "${entry.value}": ${entry.reason}`;
}
