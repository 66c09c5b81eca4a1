/**
 * The UnDyingProxy `spec` that serves ingress-nginx ConfigMap entries: the one mapping used both by
 * the operator (entries as live forwarders) and by `undying-proxy convert` (entries as objects).
 *
 * The target is the Service's cluster DNS name and the Service port number (a named port is looked
 * up in the Service first); the first `:PROXY` suffix maps to `spec.tcp.acceptProxyProtocol: true`,
 * the second to `spec.tcp.proxyProtocol: v1` (what nginx's `proxy_protocol on` sends). The result is
 * validated like any object's spec, so a field this version cannot serve is a reported problem,
 * never a silently dropped suffix.
 * @module
 */
import { describeProblems, type ForwarderSpec, parseForwarderSpec } from "../spec.ts";
import { serviceHost, type StreamService } from "./stream_services.ts";

/** One protocol section of an UnDyingProxy spec, as written in YAML. */
export type SpecSection = Record<string, string | number | boolean>;

/** The `spec.tcp` or `spec.udp` section that forwards one entry to `targetPort` of its Service. */
export function streamSection(
  entry: StreamService,
  targetPort: number,
  clusterDomain: string,
): SpecSection {
  return {
    listenPort: entry.externalPort,
    targetHost: serviceHost(entry.namespace, entry.service, clusterDomain),
    targetPort,
    ...(entry.decodeProxy && { acceptProxyProtocol: true }),
    ...(entry.encodeProxy && { proxyProtocol: "v1" }),
  };
}

/**
 * Validates a spec built from entries like any object's spec.
 * @returns the forwarder spec, or why it cannot be served (the parser's field/value/reason list).
 */
export function validatedStreamSpec(
  name: string,
  spec: { tcp?: SpecSection; udp?: SpecSection },
): ForwarderSpec | string {
  const result = parseForwarderSpec(name, spec);
  return result.ok ? result.spec : describeProblems(result.problems);
}

/** The port number a Service gives `servicePort` (a number is itself), or why there is none. */
export function servicePortNumber(
  entry: StreamService,
  ports: readonly { name?: string; port: number; protocol?: string }[] | undefined,
): number | string {
  if (typeof entry.servicePort === "number") return entry.servicePort;
  const match = ports?.find((p) =>
    p.name === entry.servicePort && (p.protocol ?? "TCP") === entry.protocol
  );
  if (match) return match.port;
  const names = (ports ?? []).filter((p) => (p.protocol ?? "TCP") === entry.protocol)
    .map((p) => p.name ?? "(unnamed)");
  return `Service ${entry.namespace}/${entry.service} has no ${entry.protocol} port named ` +
    `"${entry.servicePort}" (${entry.protocol} ports: ${names.join(", ") || "none"})`;
}
