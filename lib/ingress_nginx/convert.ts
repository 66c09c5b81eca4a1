/**
 * Turns ingress-nginx `tcp-services` / `udp-services` ConfigMaps into UnDyingProxy objects: one per
 * external port, with TCP and UDP in one object where port and target agree, named after what they
 * forward (`tcp-9000-example-go`, `tcp-udp-53-kube-dns`), each a valid DNS label.
 * @module
 */
import {
  UNDYING_PROXY_GROUP,
  UNDYING_PROXY_KIND,
  UNDYING_PROXY_VERSION,
} from "../../k8s/undying_proxy_types.ts";
import {
  parseStreamServices,
  type StreamProtocol,
  type StreamService,
  type StreamServiceProblem,
} from "./stream_services.ts";
import {
  servicePortNumber,
  type SpecSection,
  streamSection,
  validatedStreamSpec,
} from "./stream_spec.ts";

/** The parts of a Service the converter reads (to resolve named ports). */
export interface ServicePorts {
  readonly metadata?: { readonly name?: string; readonly namespace?: string };
  readonly spec?: {
    readonly ports?: readonly { name?: string; port: number; protocol?: string }[];
  };
}

/** What to convert. */
export interface ConvertInput {
  /** `data` of the `tcp-services` ConfigMap. */
  readonly tcp?: Readonly<Record<string, string>> | undefined;
  /** `data` of the `udp-services` ConfigMap. */
  readonly udp?: Readonly<Record<string, string>> | undefined;
  /** Services to look named ports up in (`kubectl get svc -A -o yaml`). */
  readonly services?: readonly ServicePorts[];
  /** `metadata.namespace` of every object; absent: none (kubectl's `-n` decides). */
  readonly namespace?: string | undefined;
  /** The cluster's DNS domain. */
  readonly clusterDomain: string;
}

/** One UnDyingProxy manifest. */
export interface ProxyManifest {
  readonly apiVersion: string;
  readonly kind: string;
  readonly metadata: { name: string; namespace?: string };
  readonly spec: { tcp?: SpecSection; udp?: SpecSection };
}

/** The objects, the entries that could not be converted, and notes on converted ones. */
export interface ConvertResult {
  readonly objects: readonly ProxyManifest[];
  readonly problems: readonly StreamServiceProblem[];
  readonly notes: readonly string[];
}

const MAX_NAME = 63;

/** Converts both ConfigMaps (see the module doc). */
export function convertStreamServices(input: ConvertInput): ConvertResult {
  const problems: StreamServiceProblem[] = [];
  const notes: string[] = [];
  const byPort = new Map<
    number,
    Map<StreamProtocol, { entry: StreamService; section: SpecSection }>
  >();
  for (const [protocol, data] of [["TCP", input.tcp], ["UDP", input.udp]] as const) {
    const parsed = parseStreamServices(data, protocol);
    problems.push(...parsed.problems);
    for (const entry of parsed.services) {
      const ports = findService(input.services, entry)?.spec?.ports;
      const port = typeof entry.servicePort === "string" && ports === undefined
        ? `port "${entry.servicePort}" is a name: pass the Service ${entry.namespace}/` +
          `${entry.service} with --services (kubectl get svc -A -o yaml) or use its number`
        : servicePortNumber(entry, ports);
      if (typeof port === "string") {
        problems.push({ protocol, key: entry.key, value: entry.value, reason: port });
        continue;
      }
      if (entry.note) notes.push(`${protocol} ${entry.key} "${entry.value}": ${entry.note}`);
      const sections = byPort.get(entry.externalPort) ?? new Map();
      sections.set(protocol, { entry, section: streamSection(entry, port, input.clusterDomain) });
      byPort.set(entry.externalPort, sections);
    }
  }
  const objects: ProxyManifest[] = [];
  for (const [port, sections] of [...byPort].sort(([a], [b]) => a - b)) {
    const valid = [...sections.values()].filter(({ entry, section }) => {
      const key = entry.protocol === "TCP" ? "tcp" : "udp";
      const checked = validatedStreamSpec(entry.key, { [key]: section });
      if (typeof checked === "string") {
        problems.push({
          protocol: entry.protocol,
          key: entry.key,
          value: entry.value,
          reason: checked,
        });
      }
      return typeof checked !== "string";
    });
    const [first, second] = valid;
    const merged = first && second && sameTarget(first.section, second.section);
    for (const group of merged ? [valid] : valid.map((one) => [one])) {
      const spec = Object.fromEntries(
        group.map((g) => [g.entry.protocol === "TCP" ? "tcp" : "udp", g.section]),
      );
      const name = objectName(group.map((g) => g.entry.protocol), port, group[0]!.entry.service);
      objects.push({
        apiVersion: `${UNDYING_PROXY_GROUP}/${UNDYING_PROXY_VERSION}`,
        kind: UNDYING_PROXY_KIND,
        metadata: { name, ...(input.namespace !== undefined && { namespace: input.namespace }) },
        spec,
      });
    }
  }
  return { objects, problems, notes };
}

function findService(
  services: readonly ServicePorts[] | undefined,
  entry: StreamService,
): ServicePorts | undefined {
  return services?.find((s) =>
    s.metadata?.name === entry.service && s.metadata?.namespace === entry.namespace
  );
}

function sameTarget(a: SpecSection, b: SpecSection): boolean {
  return a.targetHost === b.targetHost && a.targetPort === b.targetPort;
}

/** `tcp-9000-example-go`: protocols, port, service; cut to a DNS label. */
export function objectName(
  protocols: readonly StreamProtocol[],
  port: number,
  service: string,
): string {
  const head = `${protocols.map((p) => p.toLowerCase()).join("-")}-${port}-`;
  return (head + service).slice(0, MAX_NAME).replace(/-+$/, "");
}
