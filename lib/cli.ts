/**
 * The command line: one flag table feeds `parseArgs`, the typed {@linkcode Options}, `--help` and the
 * README's flag section. Flag names and spellings follow the Go operator (`--flag=value`, `-flag`,
 * `--bool=false` all work).
 * @module
 */
import { parseArgs } from "node:util";
import { parseCidrList } from "./forward/policy/cidr.ts";
import { TCP_ENGINE_CHOICES } from "./forward/tcp_engine_choice.ts";
import { UDP_ENGINE_CHOICES } from "./forward/udp_engine_choice.ts";
import { ipLiteralFamily } from "./spec.ts";
import { type ConfigMapRef, parseConfigMapRef } from "./ingress_nginx/stream_services.ts";
import { SUPERVISOR_DEFAULTS } from "./forward/supervisor_options.ts";
import { errorMessage } from "./util/error_message.ts";

/** A parsed `host:port` bind address; `hostname` is an IP literal or name without brackets. */
export interface BindAddress {
  readonly hostname: string;
  readonly port: number;
}

/** Log levels accepted by `--log-level` and `--zap-stacktrace-level`. */
export type LogLevelName = "debug" | "info" | "warn" | "error" | "fatal";

/** Where `--watch-namespaces` points: all namespaces, or a list (empty = the operator namespace). */
export type WatchNamespaces = "*" | readonly string[];

/** Groups of `--help`, in display order. */
const GROUPS = [
  "Source",
  "Forwarding",
  "Access policy",
  "Kubernetes operator",
  "Metrics and probes",
  "Logging",
] as const;

interface Flag<T> {
  readonly group: typeof GROUPS[number];
  /** parseArgs type: booleans take no separate value (`--x`, `--no-x`, `--x=false`). */
  readonly boolean?: true;
  /** Placeholder of the value in `--help`, e.g. `FILE`. */
  readonly valueName?: string;
  /** Default as the user would type it; parsed exactly like a user value. */
  readonly default: string;
  /**
   * Replaces `default` when the default depends on other flags (as given, before parsing): the
   * operator-mode metrics security, and what `--zap-devel` implies for the log settings.
   */
  readonly defaultFrom?: (given: GivenFlags) => string;
  /** Shown instead of `default` when the real default is computed at run time. */
  readonly defaultText?: string;
  readonly help: string;
  /** Appended to the option name: durations are `...Ms` (or `...Us`) in {@linkcode Options}. */
  readonly unit?: "Ms" | "Us";
  /**
   * Turns the raw text into the typed value; throws `RangeError` with the reason. `warn` reports a
   * value that is accepted but changed (logged at start).
   */
  readonly parse: (raw: string, warn: (message: string) => void) => T;
}

/** The flags as given on the command line, before parsing (absent = not given). */
export type GivenFlags = Readonly<Record<string, string | boolean | undefined>>;

/** Operator mode (no `--config`): the Go operator's metrics defaults apply. */
const operatorMode = (given: GivenFlags): boolean => given["config"] === undefined;
/** `--zap-devel` is on unless turned off: its default is true, as in the Go operator. */
const zapDevel = (given: GivenFlags): boolean => given["zap-devel"] !== false;

/** The flag table: the single source of truth for names, defaults and help. */
export const FLAGS = {
  "config": {
    group: "Source",
    valueName: "FILE",
    default: "",
    help:
      "YAML file of UnDyingProxy objects (standalone mode, no cluster). Watched: edits apply live. " +
      "Without it the program runs as a Kubernetes operator.",
    parse: optionalString,
  },
  "config-max-bytes": {
    group: "Source",
    valueName: "BYTES",
    default: "4194304",
    help: "Larger --config files are refused before they are parsed (the last good config keeps " +
      "running).",
    parse: (raw) => parseInteger(raw, 1, 64 * 1024 * 1024),
  },
  "config-allow-empty": {
    group: "Source",
    boolean: true,
    default: "false",
    help: "Apply a --config reload that removes every forwarder (an empty file, or none of the " +
      "objects left); without it such a reload is rejected as a likely truncated write.",
    parse: parseBoolean,
  },
  "check-config": {
    group: "Source",
    boolean: true,
    default: "false",
    help: "With --config: validate the file as a reload would, print every problem or a " +
      "one-line summary, and exit 0 (valid) or 1 (invalid) without starting anything.",
    parse: parseBoolean,
  },
  "listen-address": {
    group: "Forwarding",
    valueName: "IP",
    default: SUPERVISOR_DEFAULTS.listenAddress,
    help:
      'IP address the forwarders listen on; "::" is every interface, IPv4 and IPv6, "0.0.0.0" ' +
      "every IPv4 one.",
    parse: parseListenAddress,
  },
  "dial-timeout": {
    group: "Forwarding",
    valueName: "DURATION",
    unit: "Ms",
    default: durationText(SUPERVISOR_DEFAULTS.dialTimeoutMs),
    help: "Timeout to connect to a TCP target (units ms, s, m, h).",
    parse: (raw) => parseDurationMs(raw, { min: 1 }),
  },
  "drain-grace-period": {
    group: "Forwarding",
    valueName: "DURATION",
    unit: "Ms",
    default: durationText(SUPERVISOR_DEFAULTS.drainGraceMs),
    help: "On shutdown or removal, how long live TCP connections and UDP sessions may continue.",
    parse: (raw) => parseDurationMs(raw, { min: 0 }),
  },
  "tcp-idle-timeout": {
    group: "Forwarding",
    valueName: "DURATION",
    unit: "Ms",
    default: durationText(SUPERVISOR_DEFAULTS.tcpIdleTimeoutMs),
    help: "Close a TCP connection idle in both directions this long; 0 disables.",
    parse: (raw) => parseDurationMs(raw, { min: 0 }),
  },
  "udp-max-sessions": {
    group: "Forwarding",
    valueName: "N",
    default: String(SUPERVISOR_DEFAULTS.udpMaxSessions),
    help:
      "UDP sessions (client addresses) per forwarder; datagrams of new clients beyond it are dropped.",
    parse: (raw) => parseInteger(raw, 1, 1_000_000),
  },
  "udp-buffer-bytes": {
    group: "Forwarding",
    valueName: "BYTES",
    default: String(SUPERVISOR_DEFAULTS.udpBufferBytes),
    help: "UDP receive buffer; larger datagrams are counted and cut (portable engine) or dropped " +
      "(batched engine). The default truncates nothing. Go integer syntax (0x... too); values " +
      "above 65535 are lowered to 65535 with a warning.",
    parse: parseUdpBufferBytes,
  },
  "max-open-sockets": {
    group: "Forwarding",
    valueName: "N",
    default: "0",
    defaultText:
      "the file descriptor limit (RLIMIT_NOFILE) minus those open at start and a reserve",
    help: "Sockets that TCP connections (2 each) and UDP sessions (1 each) may hold at once, in " +
      "total; new connections beyond it are accepted and closed at once, new UDP clients dropped " +
      "(both counted as SocketLimit). 0 derives it from the limit.",
    parse: (raw) => parseInteger(raw, 0, 100_000_000),
  },
  "udp-buffer-budget-bytes": {
    group: "Forwarding",
    valueName: "BYTES",
    default: "268435456",
    help:
      "Memory for UDP sessions in total: each session reserves its worst case (batched engine: " +
      "4096 bytes; portable: its buffer of --udp-buffer-bytes in whole pages, and 16 KiB for the " +
      "rest: 86016 bytes by default); new clients beyond it are dropped (counted as BufferBudget).",
    parse: (raw) => parseInteger(raw, 4096, 64 * 1024 * 1024 * 1024),
  },
  "workers": {
    group: "Forwarding",
    valueName: "N",
    default: String(SUPERVISOR_DEFAULTS.workers),
    help:
      "Forwarding threads; above 1, listeners use SO_REUSEPORT and the kernel spreads new TCP " +
      "connections and UDP clients over the threads. UDP on the portable engine stays on one thread.",
    parse: (raw) => parseInteger(raw, 1, 64),
  },
  "accept-proxy-protocol": {
    group: "Forwarding",
    boolean: true,
    default: "false",
    help:
      "TCP clients must start with a PROXY protocol header (v1 or v2, from a load balancer) unless " +
      "their object sets spec.tcp.acceptProxyProtocol: false; its address becomes the client address.",
    parse: parseBoolean,
  },
  "proxy-header-timeout": {
    group: "Forwarding",
    valueName: "DURATION",
    unit: "Ms",
    default: "5s",
    help: "A client's whole PROXY protocol header must arrive within this time; else it is closed.",
    parse: (raw) => parseDurationMs(raw, { min: 1 }),
  },
  "udp-engine": {
    group: "Forwarding",
    valueName: "ENGINE",
    default: "auto",
    help:
      "batched (libc through FFI in engine threads: epoll, recvmmsg/sendmmsg; needs --allow-ffi), " +
      "io_uring (the batched engine with io_uring for every socket: multishot receives, batched " +
      "sends; needs a kernel and seccomp profile that allow it), portable (Deno.listenDatagram), or " +
      "auto (io_uring, else batched when io_uring is refused, on Linux x86-64/aarch64 when FFI is " +
      "allowed and the self-test passes; else portable with a warning).",
    parse: (raw) => oneOf(raw, UDP_ENGINE_CHOICES),
  },
  "udp-busy-poll": {
    group: "Forwarding",
    valueName: "DURATION",
    unit: "Us",
    default: durationText(SUPERVISOR_DEFAULTS.udpBusyPollUs / 1000),
    help:
      "After traffic, each batched UDP engine thread keeps polling its sockets this long instead " +
      "of sleeping (e.g. 50us, at most 10ms; 0 = off): a datagram within that window finds it " +
      "awake (in VMs, a wake-up is most of a round trip), at the price of up to a CPU per engine " +
      "thread while traffic flows.",
    parse: parseBusyPollUs,
  },
  "tcp-engine": {
    group: "Forwarding",
    valueName: "ENGINE",
    default: "auto",
    help:
      "splice (libc through FFI in --workers engine threads: epoll, splice(2) through pooled 1 MiB " +
      "pipes; needs --allow-ffi), portable (Deno.listen), or auto (splice on Linux x86-64/aarch64 " +
      "when FFI is allowed and its self-test passes, else portable with a warning).",
    parse: (raw) => oneOf(raw, TCP_ENGINE_CHOICES),
  },
  "allowed-target-cidrs": {
    group: "Access policy",
    valueName: "CIDRS",
    default: "",
    help: "Comma-separated CIDR ranges (IPv4, IPv6) every target must resolve into; empty allows " +
      "every address that is not denied. Checked after each lookup, before anything is sent.",
    parse: parseCidrs,
  },
  "denied-target-cidrs": {
    group: "Access policy",
    valueName: "CIDRS",
    default: "auto",
    defaultText:
      "operator mode: loopback, unspecified, link-local and the API server's addresses; file mode: none",
    help: "Comma-separated CIDR ranges no target may resolve into (wins over " +
      "--allowed-target-cidrs); an empty value turns the deny list off, auto is the default.",
    parse: (raw) => raw.trim() === "auto" ? undefined : parseCidrs(raw),
  },
  "allowed-target-namespaces": {
    group: "Access policy",
    valueName: "LIST",
    default: "",
    defaultText: "no restriction",
    help: "Operator mode: objects may only target Services (names with .svc) of their own " +
      'namespace or of these (comma-separated; "*" = any).',
    parse: (raw) => raw.trim() === "" ? undefined : parseNamespaces(raw),
  },
  "default-source-ranges": {
    group: "Access policy",
    valueName: "CIDRS",
    default: "",
    help: "Comma-separated CIDR ranges clients must come from, for objects without their own " +
      "sourceRanges; empty admits every client.",
    parse: parseCidrs,
  },
  "operator-namespace": {
    group: "Kubernetes operator",
    valueName: "NAMESPACE",
    default: "",
    help: "Namespace of the operator and of the managed Services; required in operator mode.",
    parse: optionalString,
  },
  "watch-namespaces": {
    group: "Kubernetes operator",
    valueName: "LIST",
    default: "",
    defaultText: "the operator namespace",
    help: 'Comma-separated namespaces to watch for UnDyingProxy objects, or "*" for all.',
    parse: parseNamespaces,
  },
  "instance-name": {
    group: "Kubernetes operator",
    valueName: "NAME",
    default: "",
    help: "Handle only objects selecting this instance; empty handles objects that select none.",
    parse: optionalString,
  },
  "replica-name": {
    group: "Kubernetes operator",
    valueName: "NAME",
    default: "",
    defaultText: "$POD_NAME, else the host name",
    help: "Name of this replica in the objects' status.",
    parse: optionalString,
  },
  "status-heartbeat": {
    group: "Kubernetes operator",
    valueName: "DURATION",
    unit: "Ms",
    default: "1m",
    help:
      "Each replica rewrites its unchanged status entry this often; entries of replicas silent " +
      "for 3 times as long are removed.",
    parse: (raw) => parseDurationMs(raw, { min: 100 }),
  },
  "kubeconfig": {
    group: "Kubernetes operator",
    valueName: "FILE",
    default: "",
    defaultText: "$KUBECONFIG, in-cluster config, ~/.kube/config",
    help: "Kubeconfig file to reach the API server.",
    parse: optionalString,
  },
  "tcp-service-to-manage": {
    group: "Kubernetes operator",
    valueName: "NAME",
    default: "undying-proxy-tcp",
    help: "Service whose TCP ports follow the objects; empty disables.",
    parse: (raw) => raw,
  },
  "udp-service-to-manage": {
    group: "Kubernetes operator",
    valueName: "NAME",
    default: "undying-proxy-udp",
    help: "Service whose UDP ports follow the objects; empty disables.",
    parse: (raw) => raw,
  },
  "tcp-services-configmap": {
    group: "Kubernetes operator",
    valueName: "NAMESPACE/NAME",
    default: "",
    help: "ingress-nginx tcp-services ConfigMap forwarded as it is (key: external port, value: " +
      "namespace/service:port[:PROXY[:PROXY]]); watched. An UnDyingProxy object wins a port both claim.",
    parse: parseConfigMapFlag,
  },
  "udp-services-configmap": {
    group: "Kubernetes operator",
    valueName: "NAMESPACE/NAME",
    default: "",
    help: "ingress-nginx udp-services ConfigMap, read like --tcp-services-configmap.",
    parse: parseConfigMapFlag,
  },
  "cluster-domain": {
    group: "Kubernetes operator",
    valueName: "DOMAIN",
    default: "cluster.local",
    help: "The cluster's DNS domain: ConfigMap entries target <service>.<namespace>.svc.<domain>.",
    parse: parseDnsDomain,
  },
  "metrics-bind-address": {
    group: "Metrics and probes",
    valueName: "ADDR",
    default: ":8080",
    help: 'Serve /metrics on this host:port (":PORT" = every interface); "0" disables.',
    parse: parseBindAddress,
  },
  "metrics-secure": {
    group: "Metrics and probes",
    boolean: true,
    default: "true",
    defaultText: "true; false with --config",
    defaultFrom: (given) => String(operatorMode(given)),
    help:
      "Serve /metrics over HTTPS with the certificate from --metrics-cert-path, or without it " +
      "a self-signed one made at start-up (in memory).",
    parse: parseBoolean,
  },
  "metrics-cert-path": {
    group: "Metrics and probes",
    valueName: "DIR",
    default: "",
    help: "Directory holding the metrics server certificate and key (with --metrics-secure).",
    parse: optionalString,
  },
  "metrics-cert-name": {
    group: "Metrics and probes",
    valueName: "FILE",
    default: "tls.crt",
    help: "Certificate file name in --metrics-cert-path.",
    parse: requiredString,
  },
  "metrics-cert-key": {
    group: "Metrics and probes",
    valueName: "FILE",
    default: "tls.key",
    help: "Private key file name in --metrics-cert-path.",
    parse: requiredString,
  },
  "metrics-authed": {
    group: "Metrics and probes",
    boolean: true,
    default: "true",
    defaultText: "true; false with --config",
    defaultFrom: (given) => String(operatorMode(given)),
    help: "Operator mode: /metrics needs a bearer token that the API server authenticates " +
      "(TokenReview) and allows to get /metrics (SubjectAccessReview).",
    parse: parseBoolean,
  },
  "enable-http2": {
    group: "Metrics and probes",
    boolean: true,
    default: "false",
    help: "Accepted for compatibility; no effect: plain HTTP is HTTP/1.1, and HTTPS always " +
      "offers HTTP/2 too (Deno.serve cannot turn it off).",
    parse: parseBoolean,
  },
  "health-probe-bind-address": {
    group: "Metrics and probes",
    valueName: "ADDR",
    default: ":8081",
    help: 'Serve /healthz and /readyz on this host:port; "0" disables.',
    parse: parseBindAddress,
  },
  "log-level": {
    group: "Logging",
    valueName: "LEVEL",
    default: "debug",
    defaultText: "debug; info with --zap-devel=false",
    defaultFrom: (given) => zapDevel(given) ? "debug" : "info",
    help:
      "Lowest level logged: debug, info, warn or error (zap's warning, dpanic, panic, fatal too).",
    parse: parseLogLevel,
  },
  "access-log": {
    group: "Logging",
    boolean: true,
    default: "false",
    help: "One access record (logger undying-proxy.access) per TCP connection and UDP session " +
      "when it ends, for every object unless it sets spec.accessLog: false.",
    parse: parseBoolean,
  },
  "access-log-sample-rate": {
    group: "Logging",
    valueName: "RATE",
    default: "1",
    help:
      "Share of connections and sessions with an access record, above 0 up to 1 (0.01 = 1 in 100).",
    parse: parseRate,
  },
  "log-format": {
    group: "Logging",
    valueName: "FORMAT",
    default: "text",
    defaultText: "text; json with --zap-devel=false",
    defaultFrom: (given) => zapDevel(given) ? "text" : "json",
    help: "json (one JSON object per line) or text (human-readable).",
    parse: (raw) => oneOf(raw, ["json", "text"] as const),
  },
  "zap-devel": {
    group: "Logging",
    boolean: true,
    default: "true",
    help: "Development logging, as in the Go operator (where it is on by default too): sets the " +
      "defaults of --log-level (debug), --log-format (text) and --zap-stacktrace-level (warn); " +
      "--zap-devel=false gives info, json and error.",
    parse: parseBoolean,
  },
  "zap-stacktrace-level": {
    group: "Logging",
    valueName: "LEVEL",
    default: "warn",
    defaultText: "warn; error with --zap-devel=false",
    defaultFrom: (given) => zapDevel(given) ? "warn" : "error",
    help: "Errors logged at this level or above include their stack trace (also: panic, dpanic).",
    parse: parseLogLevel,
  },
  "zap-log-level": {
    group: "Logging",
    valueName: "LEVEL",
    default: "",
    defaultText: "from --log-level",
    help: "Go operator compatibility: replaces --log-level; a number (zap's V level) means debug.",
    parse: parseZapLogLevel,
  },
  "zap-encoder": {
    group: "Logging",
    valueName: "ENCODER",
    default: "",
    defaultText: "from --log-format",
    help: "Go operator compatibility: json, or console (= text); replaces --log-format.",
    parse: parseZapEncoder,
  },
  "zap-time-encoding": {
    group: "Logging",
    valueName: "ENCODING",
    default: "",
    defaultText: "ISO 8601",
    help:
      "Go operator compatibility: epoch, millis, nano, iso8601, rfc3339 or rfc3339nano are accepted; log records always carry ISO 8601 timestamps.",
    parse: (raw) =>
      raw === ""
        ? undefined
        : oneOf(raw, ["epoch", "millis", "nano", "iso8601", "rfc3339", "rfc3339nano"] as const),
  },
} as const satisfies Record<string, Flag<unknown>>;

/** A flag name without the leading dashes. */
export type FlagName = keyof typeof FLAGS;

type CamelCase<S extends string> = S extends `${infer H}-${infer T}`
  ? `${H}${Capitalize<CamelCase<T>>}`
  : S;

type Unit<F> = F extends { readonly unit: infer U extends string } ? U : "";

/** Every flag, typed and in camelCase, durations in milliseconds (`--dial-timeout` → `dialTimeoutMs`). */
export type Options = {
  readonly [K in FlagName as `${CamelCase<K>}${Unit<typeof FLAGS[K]>}`]: ReturnType<
    typeof FLAGS[K]["parse"]
  >;
};

/** What the command line asks for; `warnings` name values that were accepted but changed. */
export type Command =
  | { readonly kind: "run"; readonly options: Options; readonly warnings: readonly string[] }
  | { readonly kind: "help" }
  | { readonly kind: "version" };

/** A bad command line: names the flag, the value and why. The program exits with code 2. */
export class FlagError extends Error {
  override readonly name = "FlagError";
  /** The flag as typed, e.g. `--dial-timeout`, or the stray argument. */
  readonly flag: string;

  /** @param flag The flag as typed; `message` should name it. */
  constructor(flag: string, message: string) {
    super(message);
    this.flag = flag;
  }
}

/**
 * Parses the command line.
 * @throws {FlagError} on an unknown flag, a missing or bad value, or a stray argument.
 */
export function parseCommandLine(args: readonly string[]): Command {
  const normalized = normalizeArgs(args);
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: normalized,
      options: parseArgsOptions(),
      strict: true,
      allowPositionals: false,
      allowNegative: true,
    }));
  } catch (error) {
    throw toFlagError(error);
  }
  if (values["help"] === true) return { kind: "help" };
  if (values["version"] === true) return { kind: "version" };

  const options: Record<string, unknown> = {};
  const warnings: string[] = [];
  for (const [name, flag] of flagEntries()) {
    const given = values[name];
    const raw = given === undefined ? flag.defaultFrom?.(values) ?? flag.default : String(given);
    const warn = (why: string) => warnings.push(`--${name}=${raw}: ${why}`);
    try {
      options[camelCase(name) + (flag.unit ?? "")] = flag.parse(raw, warn);
    } catch (error) {
      const why = errorMessage(error);
      throw new FlagError(`--${name}`, `invalid value "${raw}" for --${name}: ${why}`);
    }
  }
  const typed = options as Options;
  checkCombinations(typed);
  return { kind: "run", options: typed, warnings };
}

/** The `--help` text: every flag with its default, grouped. */
export function usage(version: string): string {
  const lines = [
    `undying-proxy ${version}: forwards TCP and UDP ports to targets, one UnDyingProxy object each.`,
    "",
    "Usage:",
    "  undying-proxy --config FILE [flags]               standalone: objects from a YAML file",
    "  undying-proxy --operator-namespace NS [flags]     operator: objects from Kubernetes",
    "  undying-proxy --check-config --config FILE        validate the file, start nothing",
    "  undying-proxy convert --tcp-services FILE ...     ingress-nginx ConfigMaps to objects (see",
    "                                                    undying-proxy convert --help)",
    "",
    "Flags take --name=value, --name value or -name=value; booleans also --name, --no-name.",
    "A later flag overrides an earlier one.",
  ];
  for (const group of GROUPS) {
    lines.push("", `${group}:`);
    for (const [name, flag] of flagEntries()) {
      if (flag.group !== group) continue;
      const value = "boolean" in flag ? "" : ` ${flag.valueName}`;
      lines.push(`  --${name}${value}`, `      ${flag.help} (default: ${shownDefault(flag, '"')})`);
    }
  }
  lines.push("", "  --help       print this help", "  --version    print the version");
  return lines.join("\n");
}

/** The flag table as Markdown (the README's flag section is this text). */
export function flagsMarkdown(): string {
  const rows = ["| Flag | Default | Meaning |", "|---|---|---|"];
  for (const [name, flag] of flagEntries()) {
    const value = "boolean" in flag ? "" : ` ${flag.valueName}`;
    const help = flag.help.replaceAll("|", "\\|");
    rows.push(`| \`--${name}${value}\` | ${shownDefault(flag, "`")} | ${help} |`);
  }
  return rows.join("\n");
}

/** A duration in milliseconds as the flags write it: `0`, `1m`, `10s`, `500ms` or `50us`. */
function durationText(ms: number): string {
  if (ms === 0) return "0";
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  if (ms % 1000 === 0) return `${ms / 1000}s`;
  if (Number.isInteger(ms)) return `${ms}ms`;
  return `${Math.round(ms * 1000)}us`;
}

/**
 * Parses a duration: Go syntax with units (`50us`, `500ms`, `5s`, `1m30s`, `1h`) or `0`.
 * @returns milliseconds, rounded
 * @throws {RangeError} naming the problem.
 */
export function parseDurationMs(raw: string, limits: { readonly min: number }): number {
  const ms = Math.round(parseDuration(raw));
  if (ms < limits.min) {
    throw new RangeError(limits.min > 0 ? "must be more than 0" : "must not be negative");
  }
  return ms;
}

/**
 * Parses `--udp-busy-poll`: a duration of at most {@linkcode MAX_BUSY_POLL_US} microseconds.
 * @returns microseconds, rounded
 * @throws {RangeError} naming the problem.
 */
export function parseBusyPollUs(raw: string): number {
  const us = Math.round(parseDuration(raw) * 1000);
  if (us > MAX_BUSY_POLL_US) {
    throw new RangeError(
      `must be at most ${durationText(MAX_BUSY_POLL_US / 1000)}: a longer window only burns CPU`,
    );
  }
  return us;
}

/** The longest `--udp-busy-poll`, in microseconds. */
const MAX_BUSY_POLL_US = 10_000;

/** A duration in Go syntax, in milliseconds (not rounded). */
function parseDuration(raw: string): number {
  const text = raw.trim();
  if (text === "0") return 0;
  const parts = [...text.matchAll(DURATION_PART)];
  if (parts.length === 0 || parts.map(([part]) => part).join("") !== text) {
    throw new RangeError("not a duration: use a number with a unit (us, ms, s, m, h), e.g. 5s");
  }
  return parts.reduce((ms, [, number, unit]) => ms + Number(number) * UNIT_MS[unit!]!, 0);
}

/**
 * Parses a bind address: `host:port`, `:port` (every interface), `[ipv6]:port`, or `0` (disabled → null).
 * @throws {RangeError} naming the problem.
 */
export function parseBindAddress(raw: string): BindAddress | null {
  if (raw === "0") return null;
  const match = /^(?:\[([^\]]+)\]|([^:[\]]*)):(\d+)$/.exec(raw);
  if (match === null) {
    throw new RangeError('expected host:port, :port, [ipv6]:port or "0" to disable');
  }
  const port = Number(match[3]);
  if (port > 65535) throw new RangeError("port must be at most 65535");
  return { hostname: match[1] ?? match[2] ?? "", port };
}

/** Milliseconds per duration unit. */
const UNIT_MS: Readonly<Record<string, number>> = {
  us: 0.001,
  µs: 0.001,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};
/** One number and unit of a duration (`ms` before `m` and `s`, `us` before `s`). */
const DURATION_PART = /(\d+(?:\.\d+)?)(us|µs|ms|s|m|h)/g;

function parseConfigMapFlag(raw: string): ConfigMapRef | undefined {
  if (raw === "") return undefined;
  const ref = parseConfigMapRef(raw);
  if (typeof ref === "string") throw new RangeError(ref);
  return ref;
}

function parseDnsDomain(raw: string): string {
  const domain = raw.endsWith(".") ? raw.slice(0, -1) : raw;
  if (!/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*$/.test(domain)) {
    throw new RangeError("must be a DNS domain such as cluster.local");
  }
  return domain;
}

function optionalString(raw: string): string | undefined {
  return raw === "" ? undefined : raw;
}

function requiredString(raw: string): string {
  if (raw === "") throw new RangeError("must not be empty");
  return raw;
}

function parseBoolean(raw: string): boolean {
  // The spellings Go's strconv.ParseBool accepts, as the old operator's flags did.
  if (["true", "1", "t", "T", "TRUE", "True"].includes(raw)) return true;
  if (["false", "0", "f", "F", "FALSE", "False"].includes(raw)) return false;
  throw new RangeError("expected true or false");
}

function parseRate(raw: string): number {
  const value = Number(raw.trim());
  if (raw.trim() === "" || !(value > 0 && value <= 1)) {
    throw new RangeError("expected a number above 0 and at most 1");
  }
  return value;
}

function parseInteger(raw: string, min: number, max: number): number {
  if (!/^\d+$/.test(raw.trim())) throw new RangeError("expected a whole number");
  const value = Number(raw);
  if (value < min || value > max) throw new RangeError(`must be between ${min} and ${max}`);
  return value;
}

/**
 * `--udp-buffer-bytes`: Go's integer syntax (`0x`, `0o`, `0b` prefixes, a leading 0 for octal, `_`
 * between digits after a prefix), as the Go operator's `flag.Int` read it. Above 65535 (the largest
 * UDP payload) is lowered to 65535 with a warning: the Go operator took any size.
 */
function parseUdpBufferBytes(raw: string, warn: (message: string) => void): number {
  const text = raw.trim();
  const match =
    /^(?:0[xX]_?([0-9a-fA-F](?:_?[0-9a-fA-F])*)|0[oO]_?([0-7](?:_?[0-7])*)|0[bB]_?([01](?:_?[01])*)|0(_?[0-7](?:_?[0-7])*)|(\d+))$/
      .exec(text);
  if (match === null) {
    throw new RangeError("expected a whole number (decimal, or 0x/0o/0b prefixed)");
  }
  const [, hex, octal, binary, leadingZeroOctal, decimal] = match;
  const [digits, base] = hex !== undefined
    ? [hex, 16]
    : octal !== undefined
    ? [octal, 8]
    : binary !== undefined
    ? [binary, 2]
    : leadingZeroOctal !== undefined
    ? [leadingZeroOctal, 8]
    : [decimal ?? "", 10];
  const value = Number.parseInt(digits.replaceAll("_", ""), base);
  if (value < 1) throw new RangeError("must be at least 1");
  if (value > 65535) {
    warn(`${value} bytes is more than the largest UDP datagram; using 65535`);
    return 65535;
  }
  return value;
}

/** An IP literal (IPv6 without brackets): a name would be looked up on every bind, and could fail. */
function parseListenAddress(raw: string): string {
  if (ipLiteralFamily(raw) !== 0) return raw;
  const example = 'e.g. "::" (every interface), "0.0.0.0" or "127.0.0.1"';
  if (/^\[.*\]$/.test(raw)) {
    throw new RangeError(`write an IPv6 address without brackets, ${example}`);
  }
  if (/:\d+$/.test(raw) && ipLiteralFamily(raw.replace(/:\d+$/, "")) === 4) {
    throw new RangeError(`an IP address without a port is expected, ${example}`);
  }
  throw new RangeError(`not an IP address, ${example}`);
}

/** A comma-separated CIDR list, checked; the texts as given (trimmed). */
function parseCidrs(raw: string): readonly string[] {
  return parseCidrList(raw).map((cidr) => cidr.text);
}

function parseNamespaces(raw: string): WatchNamespaces {
  if (raw.trim() === "*") return "*";
  const names = raw.split(",").map((name) => name.trim()).filter((name) => name !== "");
  for (const name of names) {
    if (!/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(name)) {
      throw new RangeError(`"${name}" is not a namespace name (a DNS label)`);
    }
  }
  return names;
}

function parseLogLevel(raw: string): LogLevelName {
  const aliases: Record<string, LogLevelName> = {
    warning: "warn",
    dpanic: "fatal",
    panic: "fatal",
  };
  return aliases[raw] ?? oneOf(raw, ["debug", "info", "warn", "error", "fatal"] as const);
}

/** zap's levels: names, or a positive number for its verbose V levels (all debug here). */
function parseZapLogLevel(raw: string): LogLevelName | undefined {
  if (raw === "") return undefined;
  return /^[1-9]\d*$/.test(raw) ? "debug" : parseLogLevel(raw);
}

function parseZapEncoder(raw: string): "json" | "text" | undefined {
  if (raw === "") return undefined;
  return oneOf(raw, ["json", "console"] as const) === "json" ? "json" : "text";
}

function oneOf<const T extends string>(raw: string, allowed: readonly T[]): T {
  const found = allowed.find((value) => value === raw);
  if (found === undefined) throw new RangeError(`expected one of ${allowed.join(", ")}`);
  return found;
}

function checkCombinations(options: Options): void {
  if (options.allowedTargetNamespaces !== undefined && options.config !== undefined) {
    throw new FlagError(
      "--allowed-target-namespaces",
      "--allowed-target-namespaces needs operator mode (objects of a --config file have no namespace)",
    );
  }
  if (options.checkConfig && options.config === undefined) {
    throw new FlagError("--check-config", "--check-config needs --config FILE: the file to check");
  }
  if (options.config === undefined && options.operatorNamespace === undefined) {
    throw new FlagError(
      "--operator-namespace",
      "--operator-namespace must be set in operator mode (or pass --config FILE for standalone mode)",
    );
  }
  const configMapFlag = options.tcpServicesConfigmap !== undefined
    ? "--tcp-services-configmap"
    : options.udpServicesConfigmap !== undefined
    ? "--udp-services-configmap"
    : undefined;
  if (configMapFlag !== undefined && options.config !== undefined) {
    throw new FlagError(
      configMapFlag,
      `${configMapFlag} needs operator mode: the ConfigMap is read from the cluster, and there is ` +
        "none with --config; convert it to objects instead (undying-proxy convert --help)",
    );
  }
  if (options.metricsAuthed && options.config !== undefined) {
    throw new FlagError(
      "--metrics-authed",
      "--metrics-authed=true needs operator mode: the Kubernetes API server checks the tokens, " +
        "and there is none with --config; leave it false and restrict access to the metrics port",
    );
  }
}

function flagEntries(): [FlagName, Flag<unknown>][] {
  return Object.entries(FLAGS) as [FlagName, Flag<unknown>][];
}

function shownDefault(flag: Flag<unknown>, quote: string): string {
  if (flag.defaultText !== undefined) return flag.defaultText;
  return flag.default === "" ? '""' : `${quote}${flag.default}${quote}`;
}

function camelCase(name: string): string {
  return name.replace(/-([a-z0-9])/g, (_, letter: string) => letter.toUpperCase());
}

function parseArgsOptions(): Record<string, { type: "string" | "boolean"; short?: string }> {
  const options: Record<string, { type: "string" | "boolean"; short?: string }> = {
    help: { type: "boolean", short: "h" },
    version: { type: "boolean" },
  };
  for (const [name, flag] of flagEntries()) {
    options[name] = { type: "boolean" in flag ? "boolean" : "string" };
  }
  return options;
}

/** Go-style spellings → parseArgs: `-name` → `--name`; `--bool=false` → `--no-bool`; no `--`. */
function normalizeArgs(args: readonly string[]): string[] {
  const result: string[] = [];
  for (const arg of args) {
    // `deno task start -- --flag` passes the "--" on; every setting is a flag, so it means nothing.
    if (arg === "--") continue;
    const long = /^-[^-]{2,}/.test(arg) ? `-${arg}` : arg;
    const match = /^--([^=]+)=(.*)$/s.exec(long);
    const flag = match?.[1] === undefined ? undefined : FLAGS[match[1] as FlagName];
    if (match !== null && flag !== undefined && "boolean" in flag) {
      const [, name = "", raw = ""] = match;
      let value: boolean;
      try {
        value = parseBoolean(raw);
      } catch {
        throw new FlagError(
          `--${name}`,
          `invalid value "${raw}" for --${name}: expected true or false`,
        );
      }
      result.push(value ? `--${name}` : `--no-${name}`);
    } else {
      result.push(long);
    }
  }
  return result;
}

function toFlagError(error: unknown): FlagError {
  if (!(error instanceof Error)) return new FlagError("", String(error));
  const code = (error as { code?: string }).code;
  const quoted = /'([^']+)'/.exec(error.message)?.[1] ?? "";
  const flag = quoted.split(" ")[0] ?? quoted;
  switch (code) {
    case "ERR_PARSE_ARGS_UNKNOWN_OPTION":
      return new FlagError(flag, `unknown flag ${flag} (see --help)`);
    case "ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL":
      return new FlagError(
        flag,
        `unexpected argument "${flag}": every setting is a --flag (see --help)`,
      );
    case "ERR_PARSE_ARGS_INVALID_OPTION_VALUE":
      return new FlagError(
        flag,
        error.message.includes("does not take an argument")
          ? `${flag} takes no value other than true or false`
          : `missing value for ${flag}`,
      );
    default:
      return new FlagError(flag, error.message);
  }
}
