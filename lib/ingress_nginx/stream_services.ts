/**
 * Reads ingress-nginx `tcp-services` / `udp-services` ConfigMap data as ingress-nginx reads it.
 *
 * Each key is an external port; each value is
 * `<namespace>/<service>:<service port number or name>[:PROXY[:PROXY]]`. For TCP the first `PROXY`
 * (any letter case) decodes PROXY protocol from the load balancer in front, the second sends it to
 * the target; an empty or other third field means "no decode" (`ns/svc:80::PROXY` only sends).
 * ingress-nginx ignores the suffixes for UDP, and so does this reader (it says so in a note).
 *
 * Stricter than ingress-nginx, which logged and skipped such entries: every entry it cannot use is
 * returned as a problem naming the key, the value and why, and never stops the valid ones.
 * @module
 */

/** A ConfigMap's protocol: `tcp-services` or `udp-services`. */
export type StreamProtocol = "TCP" | "UDP";

/** One usable ConfigMap entry. */
export interface StreamService {
  readonly protocol: StreamProtocol;
  /** The ConfigMap key: the port to listen on. */
  readonly externalPort: number;
  readonly namespace: string;
  readonly service: string;
  /** A Service port number, or the name of a Service port (resolved through the Service). */
  readonly servicePort: number | string;
  /** First `:PROXY`: read a PROXY protocol header from the load balancer (TCP only). */
  readonly decodeProxy: boolean;
  /** Second `:PROXY`: send a PROXY protocol header to the target (TCP only). */
  readonly encodeProxy: boolean;
  /** The raw key and value, for messages. */
  readonly key: string;
  readonly value: string;
  /** Something the user should know about an entry that is still used (e.g. ignored suffixes). */
  readonly note?: string;
}

/** One ConfigMap entry that cannot be used, and why. */
export interface StreamServiceProblem {
  readonly protocol: StreamProtocol;
  readonly key: string;
  readonly value: string;
  readonly reason: string;
}

/** The outcome of {@linkcode parseStreamServices}: usable entries by port, and the rest. */
export interface ParsedStreamServices {
  /** Sorted by external port. */
  readonly services: readonly StreamService[];
  readonly problems: readonly StreamServiceProblem[];
}

const DNS_1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_1035_LABEL = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
/** A Service port name (IANA_SVC_NAME): 1-15 of a-z, 0-9, '-', at least one letter, no '--'. */
const PORT_NAME = /^(?=.*[a-z])(?!.*--)[a-z0-9]([-a-z0-9]{0,13}[a-z0-9])?$/;

/** Parses the `data` of one ConfigMap of the given protocol. */
export function parseStreamServices(
  data: Readonly<Record<string, string>> | undefined,
  protocol: StreamProtocol,
): ParsedStreamServices {
  const services: StreamService[] = [];
  const problems: StreamServiceProblem[] = [];
  for (const [key, value] of Object.entries(data ?? {})) {
    const result = parseEntry(key, value, protocol);
    if (typeof result === "string") problems.push({ protocol, key, value, reason: result });
    else services.push(result);
  }
  services.sort((a, b) => a.externalPort - b.externalPort);
  return { services, problems };
}

/** One entry, or why it cannot be used. */
function parseEntry(key: string, value: string, protocol: StreamProtocol): StreamService | string {
  const externalPort = portNumber(key);
  if (externalPort === undefined) {
    return `the key must be the external port, a number from 1 to 65535`;
  }
  const fields = value.split(":");
  const [nsName = "", port = ""] = fields;
  if (fields.length < 2) {
    return `the value must be "namespace/service:port" (optionally followed by ":PROXY" twice)`;
  }
  const slash = nsName.split("/");
  if (slash.length !== 2) return `"${nsName}" is not "namespace/service"`;
  const [namespace = "", service = ""] = slash;
  if (!DNS_1123_LABEL.test(namespace) || namespace.length > 63) {
    return `namespace "${namespace}" is not a valid namespace name (DNS-1123 label)`;
  }
  if (!DNS_1035_LABEL.test(service) || service.length > 63) {
    return `service "${service}" is not a valid Service name (DNS-1035 label)`;
  }
  const servicePort = portNumber(port) ?? (PORT_NAME.test(port) ? port : undefined);
  if (servicePort === undefined) {
    return `service port "${port}" is neither a port number (1-65535) nor a port name`;
  }
  const proxy = fields.slice(2);
  const decode = /^proxy$/i.test(proxy[0] ?? "");
  const encode = proxy.length === 2 && /^proxy$/i.test(proxy[1] ?? "");
  const unknown = proxy.filter((field) => field !== "" && !/^proxy$/i.test(field));
  if (unknown.length > 0 || proxy.length > 2) {
    return `after the port only ":PROXY" (decode) and ":PROXY" (encode) may follow, ` +
      `got ":${proxy.join(":")}"`;
  }
  const base = { protocol, externalPort, namespace, service, servicePort, key, value };
  if (protocol === "UDP") {
    const note = decode || encode
      ? "PROXY suffixes are ignored for UDP, as ingress-nginx ignores them"
      : undefined;
    return { ...base, decodeProxy: false, encodeProxy: false, ...(note && { note }) };
  }
  return { ...base, decodeProxy: decode, encodeProxy: encode };
}

/** A decimal port number from 1 to 65535, else undefined. */
function portNumber(text: string): number | undefined {
  if (!/^\d{1,5}$/.test(text)) return undefined;
  const port = Number(text);
  return port >= 1 && port <= 65535 ? port : undefined;
}

/** The cluster DNS name of a Service, e.g. `example-go.default.svc.cluster.local`. */
export function serviceHost(namespace: string, service: string, clusterDomain: string): string {
  return `${service}.${namespace}.svc.${clusterDomain}`;
}

/** A ConfigMap named by a flag (`--tcp-services-configmap=NAMESPACE/NAME`). */
export interface ConfigMapRef {
  readonly namespace: string;
  readonly name: string;
}

/** `namespace/name` of a ConfigMap flag value, or why it is not one. */
export function parseConfigMapRef(value: string): ConfigMapRef | string {
  const parts = value.split("/");
  const [namespace = "", name = ""] = parts;
  if (parts.length !== 2 || !DNS_1123_LABEL.test(namespace) || namespace.length > 63) {
    return `must be NAMESPACE/NAME`;
  }
  if (!/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(name) || name.length > 253) {
    return `must be NAMESPACE/NAME (NAME: a ConfigMap name)`;
  }
  return { namespace, name };
}
