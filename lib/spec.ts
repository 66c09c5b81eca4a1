/**
 * The forwarding spec model shared by every source of desired state (CR watch, YAML file) and the
 * data plane. Mirrors `spec` of the `UnDyingProxy` custom resource.
 * @module
 */

import { parseCidr } from "./forward/policy/cidr.ts";

/** What every protocol part has: where it listens, where it forwards, who may use it. */
export interface PartSpec {
  readonly listenPort: number;
  readonly targetPort: number;
  /**
   * DNS name or IP literal, IPv6 without brackets (a bracketed `[v6]`, the Go operator's only IPv6
   * spelling, is normalized). Resolved for new clients (cached 5 s).
   */
  readonly targetHost: string;
  /** CIDR ranges clients must come from; absent = the `--default-source-ranges` flag. */
  readonly sourceRanges?: readonly string[];
  /**
   * Send a PROXY protocol header (the client's address) to the target before the client's bytes;
   * absent = none. UDP accepts `v2` only (a header before every datagram).
   */
  readonly proxyProtocol?: ProxyProtocolVersion;
  /**
   * One access log record per connection/session (from `spec.accessLog`, copied into each part).
   * Absent = the program's default (`--access-log`).
   */
  readonly accessLog?: boolean;
}

/** A PROXY protocol version we send. */
export type ProxyProtocolVersion = "v1" | "v2";

/** One TCP forward: listen on `listenPort`, forward to `targetHost:targetPort`, within limits. */
export interface TcpSpec extends PartSpec {
  /**
   * Read and strip a PROXY header (v1 or v2) from every client; its address becomes the client
   * address (the one source ranges and limits check). Absent = the program's default
   * (`--accept-proxy-protocol`).
   */
  readonly acceptProxyProtocol?: boolean;
  /** Connections open at once; further ones are closed at accept. */
  readonly maxConnections?: number;
  /** Connections open at once per client address. */
  readonly maxConnectionsPerSource?: number;
  /** New connections per second per client address (token bucket). */
  readonly connectionsPerSecondPerSource?: number;
  /** New connections a client address may open at once. @default connectionsPerSecondPerSource */
  readonly connectionBurstPerSource?: number;
}

/** One UDP forward, with its session timeouts and limits. */
export interface UdpSpec extends PartSpec {
  /** Only v2 exists for datagrams. */
  readonly proxyProtocol?: "v2";
  /** Sessions at once (also bounded by `--udp-max-sessions`). */
  readonly maxSessions?: number;
  /** Sessions at once per client IP address (one per client port). */
  readonly maxSessionsPerSource?: number;
  /** A session expires after this many seconds without traffic in either direction. @default 30 */
  readonly readTimeoutSeconds: number;
  /** Upper bound for each send. @default 5 */
  readonly writeTimeoutSeconds: number;
}

/** The complete desired state of one forwarder, identified by `name` (a CR's `namespace/name`). */
export interface ForwarderSpec {
  readonly name: string;
  readonly tcp?: TcpSpec;
  readonly udp?: UdpSpec;
}

/** One validation problem: which field, the offending value, and why it is wrong. */
export interface SpecProblem {
  /** Dotted path, e.g. `spec.udp.listenPort`. */
  readonly field: string;
  readonly value: unknown;
  readonly reason: string;
  /** Set when the value is well-formed but the operator's target policy forbids it. */
  readonly forbidden?: true;
}

/**
 * Every problem as `field: value: reason` (`field: reason` for an absent field, whose reason says
 * "missing"), joined by "; " (conditions, Events and logs).
 */
export function describeProblems(problems: readonly SpecProblem[]): string {
  return problems.map((p) =>
    p.value === undefined
      ? `${p.field}: ${p.reason}`
      : `${p.field}: ${JSON.stringify(p.value)}: ${p.reason}`
  ).join("; ");
}

/** Result of {@linkcode parseForwarderSpec}: a valid spec or every problem found. */
export type SpecResult =
  | { readonly ok: true; readonly spec: ForwarderSpec }
  | { readonly ok: false; readonly problems: readonly SpecProblem[] };

/** UDP session idle timeout when `readTimeoutSeconds` is absent or 0 (as in the Go operator). */
export const DEFAULT_READ_TIMEOUT_SECONDS = 30;
/** UDP send bound when `writeTimeoutSeconds` is absent or 0 (as in the Go operator). */
export const DEFAULT_WRITE_TIMEOUT_SECONDS = 5;
/** Largest `readTimeoutSeconds` (one day): idle sessions always expire (the CRD's `maximum`). */
export const MAX_READ_TIMEOUT_SECONDS = 86_400;
/** Largest `writeTimeoutSeconds` (one hour): a stuck send always ends (the CRD's `maximum`). */
export const MAX_WRITE_TIMEOUT_SECONDS = 3_600;

const PART_FIELDS = [
  "listenPort",
  "targetPort",
  "targetHost",
  "sourceRanges",
  "proxyProtocol",
] as const;
const TCP_LIMITS = [
  "maxConnections",
  "maxConnectionsPerSource",
  "connectionsPerSecondPerSource",
  "connectionBurstPerSource",
] as const;
const UDP_LIMITS = ["maxSessions", "maxSessionsPerSource"] as const;
const TCP_FIELDS = [...PART_FIELDS, ...TCP_LIMITS, "acceptProxyProtocol"] as const;
const UDP_FIELDS = [
  ...PART_FIELDS,
  ...UDP_LIMITS,
  "readTimeoutSeconds",
  "writeTimeoutSeconds",
] as const;
/** Most `sourceRanges` entries per part (a bound on hostile input, like the CRD's maxItems). */
export const MAX_SOURCE_RANGES = 256;
/** Largest value of a limit field. */
export const MAX_LIMIT = 1_000_000;
const MAX_HOST_LENGTH = 253;
const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
const DNS_LABEL = /^[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$/;

/** The address family of an IP literal (`4`, or `6` for IPv6 without brackets), else 0. */
export function ipLiteralFamily(host: string): 0 | 4 | 6 {
  if (IPV4.test(host)) return 4;
  if (!host.includes(":") || host.includes("[") || host.includes("]")) return 0;
  try {
    new URL(`http://[${host}]/`);
    return 6;
  } catch {
    return 0;
  }
}

/**
 * Validates the `spec` of one UnDyingProxy object and applies the UDP timeout defaults.
 *
 * Every problem is returned at once, each naming its field and value; an invalid spec is rejected as
 * a whole. Absent or `null` `tcp`/`udp` sections mean "not forwarded"; a missing `spec` is an empty
 * one. Unknown fields are problems (they are usually typos).
 *
 * @param name The forwarder name (a CR's `namespace/name`).
 * @param spec The object's `.spec`, as decoded from JSON or YAML.
 * @returns The valid {@linkcode ForwarderSpec}, or every {@linkcode SpecProblem}.
 */
export function parseForwarderSpec(name: string, spec: unknown): SpecResult {
  const problems: SpecProblem[] = [];
  if (typeof name !== "string" || name === "") {
    problems.push({ field: "metadata.name", value: name, reason: "must be a non-empty string" });
  }
  if (spec === undefined || spec === null) spec = {};
  if (!isRecord(spec)) {
    problems.push({ field: "spec", value: spec, reason: "must be an object" });
    return { ok: false, problems };
  }
  checkUnknown("spec", spec, ["tcp", "udp", "accessLog"], problems);
  const accessLog = parseOptionalBoolean("spec.accessLog", spec.accessLog, problems);
  const shared = { ...(accessLog !== undefined && { accessLog }) };
  const tcpBase = withLimits(
    parseSection("spec.tcp", spec.tcp, TCP_FIELDS, problems),
    spec.tcp,
    "spec.tcp",
    TCP_LIMITS,
    problems,
  );
  const tcpAccept = isRecord(spec.tcp)
    ? parseOptionalBoolean("spec.tcp.acceptProxyProtocol", spec.tcp.acceptProxyProtocol, problems)
    : undefined;
  const tcp = tcpBase && {
    ...tcpBase,
    ...(tcpAccept !== undefined && { acceptProxyProtocol: tcpAccept }),
    ...shared,
  };
  const udpBase = withLimits(
    parseSection("spec.udp", spec.udp, UDP_FIELDS, problems),
    spec.udp,
    "spec.udp",
    UDP_LIMITS,
    problems,
  );
  if (isRecord(spec.udp) && spec.udp.proxyProtocol === "v1") {
    problems.push({
      field: "spec.udp.proxyProtocol",
      value: "v1",
      reason: "must be v2 (PROXY protocol v1 carries TCP only)",
    });
  }
  if (
    isRecord(spec.tcp) && spec.tcp.connectionBurstPerSource != null &&
    spec.tcp.connectionsPerSecondPerSource == null
  ) {
    problems.push({
      field: "spec.tcp.connectionBurstPerSource",
      value: spec.tcp.connectionBurstPerSource,
      reason: "needs spec.tcp.connectionsPerSecondPerSource (the rate the burst belongs to)",
    });
  }
  const udpTimeouts = isRecord(spec.udp) && {
    readTimeoutSeconds: parseTimeout(
      "spec.udp.readTimeoutSeconds",
      spec.udp.readTimeoutSeconds,
      DEFAULT_READ_TIMEOUT_SECONDS,
      MAX_READ_TIMEOUT_SECONDS,
      problems,
    ),
    writeTimeoutSeconds: parseTimeout(
      "spec.udp.writeTimeoutSeconds",
      spec.udp.writeTimeoutSeconds,
      DEFAULT_WRITE_TIMEOUT_SECONDS,
      MAX_WRITE_TIMEOUT_SECONDS,
      problems,
    ),
  };
  const udp = udpBase && udpTimeouts && { ...udpBase, ...udpTimeouts, ...shared } as UdpSpec;
  if (problems.length > 0) return { ok: false, problems };
  return {
    ok: true,
    spec: { name, ...(tcp && { tcp }), ...(udp && { udp }) },
  };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function checkUnknown(
  path: string,
  object: Record<string, unknown>,
  known: readonly string[],
  problems: SpecProblem[],
): void {
  for (const key of Object.keys(object)) {
    if (!known.includes(key)) {
      problems.push({
        field: `${path}.${key}`,
        value: object[key],
        reason: `unknown field (known: ${known.join(", ")})`,
      });
    }
  }
}

/** Checks the common fields of a `tcp`/`udp` section; undefined when absent or broken. */
function parseSection(
  path: string,
  section: unknown,
  known: readonly string[],
  problems: SpecProblem[],
): PartSpec | undefined {
  if (section === undefined || section === null) return undefined;
  if (!isRecord(section)) {
    problems.push({ field: path, value: section, reason: "must be an object" });
    return undefined;
  }
  const before = problems.length;
  checkUnknown(path, section, known, problems);
  const listenPort = parsePort(`${path}.listenPort`, section.listenPort, problems);
  const targetPort = parsePort(`${path}.targetPort`, section.targetPort, problems);
  const targetHost = parseHost(`${path}.targetHost`, section.targetHost, problems);
  const sourceRanges = parseSourceRanges(`${path}.sourceRanges`, section.sourceRanges, problems);
  const proxyProtocol = section.proxyProtocol;
  if (proxyProtocol !== undefined && proxyProtocol !== null && !isProxyVersion(proxyProtocol)) {
    problems.push({
      field: `${path}.proxyProtocol`,
      value: proxyProtocol,
      reason: "must be v1 or v2 (or absent: no PROXY header)",
    });
  }
  if (problems.length > before) return undefined;
  return {
    listenPort,
    targetPort,
    targetHost,
    ...(sourceRanges && { sourceRanges }),
    ...(isProxyVersion(proxyProtocol) && { proxyProtocol }),
  };
}

/** `part` with the limit fields `names` of `section` (absent or null = no limit). */
function withLimits<N extends string>(
  part: PartSpec | undefined,
  section: unknown,
  path: string,
  names: readonly N[],
  problems: SpecProblem[],
): (PartSpec & Partial<Record<N, number>>) | undefined {
  if (!isRecord(section)) return undefined;
  const limits: Partial<Record<N, number>> = {};
  for (const name of names) {
    const value = section[name];
    if (value === undefined || value === null) continue;
    if (!Number.isInteger(value) || (value as number) < 1 || (value as number) > MAX_LIMIT) {
      problems.push({
        field: `${path}.${name}`,
        value,
        reason: `must be an integer from 1 to ${MAX_LIMIT} (absent = no limit)`,
      });
    } else {
      limits[name] = value as number;
    }
  }
  return part && { ...part, ...limits };
}

function parseSourceRanges(
  field: string,
  value: unknown,
  problems: SpecProblem[],
): string[] | undefined {
  if (value === undefined || value === null) return undefined;
  if (!Array.isArray(value) || value.length === 0 || value.length > MAX_SOURCE_RANGES) {
    problems.push({
      field,
      value,
      reason: `must be a list of 1 to ${MAX_SOURCE_RANGES} CIDR ranges (absent = the default)`,
    });
    return undefined;
  }
  value.forEach((item, index) => {
    try {
      if (typeof item !== "string") throw new RangeError("must be a string");
      parseCidr(item);
    } catch (error) {
      problems.push({
        field: `${field}[${index}]`,
        value: item,
        reason: error instanceof Error ? error.message : String(error),
      });
    }
  });
  return value as string[];
}

function isProxyVersion(value: unknown): value is ProxyProtocolVersion {
  return value === "v1" || value === "v2";
}

function parseOptionalBoolean(
  field: string,
  value: unknown,
  problems: SpecProblem[],
): boolean | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "boolean") problems.push({ field, value, reason: "must be true or false" });
  return value === true;
}

function parsePort(field: string, value: unknown, problems: SpecProblem[]): number {
  if (value === undefined || value === null) {
    problems.push({ field, value, reason: "missing (an integer from 1 to 65535)" });
  } else if (!Number.isInteger(value) || (value as number) < 1 || (value as number) > 65535) {
    problems.push({ field, value, reason: "must be an integer from 1 to 65535" });
  }
  return value as number;
}

function parseHost(field: string, value: unknown, problems: SpecProblem[]): string {
  const reason = hostProblem(value);
  if (reason !== undefined) problems.push({ field, value, reason });
  return unbracketed(value as string);
}

/**
 * `[v6]` → `v6`: the Go operator built its dial address with `%s:%d`, so a bracketed IPv6 literal
 * was the only IPv6 spelling that worked there; both spellings are accepted and mean the same.
 */
function unbracketed(host: string): string {
  return typeof host === "string" && host.startsWith("[") && host.endsWith("]")
    ? host.slice(1, -1)
    : host;
}

function hostProblem(value: unknown): string | undefined {
  if (value === undefined || value === null) return "missing (a DNS name or an IP address)";
  if (typeof value !== "string" || value === "") return "must be a non-empty string";
  if (value.startsWith("[") || value.endsWith("]")) {
    const inner = unbracketed(value);
    return inner !== value && ipLiteralFamily(inner) === 6
      ? undefined
      : "brackets may only enclose an IPv6 address, e.g. [fd00::1]";
  }
  if (ipLiteralFamily(value) !== 0) return undefined;
  if (value.includes("://") || value.includes("/")) {
    return "must be a host name or IP address, not a URL (the port goes in targetPort)";
  }
  if (/^[^:]+:\d*$/.test(value)) {
    return "must be a host name or IP address without a port (the port goes in targetPort)";
  }
  if (value.includes(":")) return "is not a valid IPv6 address";
  if (value.length > MAX_HOST_LENGTH) return `must be at most ${MAX_HOST_LENGTH} characters`;
  const labels = (value.endsWith(".") ? value.slice(0, -1) : value).split(".");
  if (!labels.every((label) => DNS_LABEL.test(label))) {
    return "must be a DNS name (labels of 1-63 letters, digits, '-' or '_', separated by '.') or an IP address";
  }
  if (labels.every((label) => /^\d+$/.test(label))) return "is not a valid IPv4 address";
  return undefined;
}

function parseTimeout(
  field: string,
  value: unknown,
  fallback: number,
  max: number,
  problems: SpecProblem[],
): number {
  if (value === undefined || value === null || value === 0) return fallback;
  if (!Number.isInteger(value) || (value as number) < 0 || (value as number) > max) {
    problems.push({ field, value, reason: `must be an integer from 1 to ${max} (seconds)` });
  }
  return value as number;
}
