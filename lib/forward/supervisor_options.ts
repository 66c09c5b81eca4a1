/**
 * The options of a {@linkcode Supervisor}, their defaults and their checks. The defaults are
 * {@linkcode SUPERVISOR_DEFAULTS}, the one place they are written down: the command line's flag
 * defaults (and so `--help` and the README's flag table) are derived from it.
 * @module
 */

import { TCP_ENGINE_CHOICES, type TcpEngineChoice } from "./tcp_engine_choice.ts";
import { UDP_ENGINE_CHOICES, type UdpEngineChoice } from "./udp_engine_choice.ts";

import { parseCidr } from "./policy/cidr.ts";
import { TargetPolicy, type TargetPolicyOptions } from "./policy/target_policy.ts";

/** Options of a {@linkcode Supervisor}, checked once by its constructor; defaults below. */
export interface SupervisorOptions {
  /** Address every listener binds. "::" is dual-stack; e.g. "127.0.0.2" or "0.0.0.0". */
  listenAddress?: string;
  /** Give up connecting to a TCP target after this long. */
  dialTimeoutMs?: number;
  /** Live connections/sessions get this long after their listener stops. */
  drainGraceMs?: number;
  /** Close a TCP connection idle this long in both directions; 0 = never. */
  tcpIdleTimeoutMs?: number;
  /** UDP sessions per forwarder; datagrams from further clients are dropped. */
  udpMaxSessions?: number;
  /** UDP receive buffer per socket; smaller buffers truncate (counted). */
  udpBufferBytes?: number;
  /**
   * Sockets that connections (2 each) and sessions (1 each) of this thread may hold at once; new
   * ones beyond it are shed and counted (`SocketLimit`). With `workers`, each thread gets an equal
   * share.
   */
  maxOpenSockets?: number;
  /**
   * Bytes of UDP session buffers at most (each session reserves its buffer's worst case); clients
   * beyond it are refused and counted (`BufferBudget`).
   */
  udpBufferBudgetBytes?: number;
  /** First bind retry delay. */
  bindRetryInitialMs?: number;
  /** Longest bind retry delay. */
  bindRetryMaxMs?: number;
  /**
   * Forwarding threads. Above 1, TCP listeners are bound with `reusePort` and `workers - 1` Web
   * Workers run the same TCP forwarders; the kernel spreads new connections over the threads. On
   * the batched UDP engine, `workers` engine threads bind every UDP port (SO_REUSEPORT); the
   * portable UDP engine stays on the main thread (Deno cannot share a UDP port). Note: with
   * `reusePort`, another process of the same user binding the same port shares it instead of
   * failing.
   */
  workers?: number;
  /** Bind TCP listeners with `reusePort` (set for and by workers). */
  tcpReusePort?: boolean;
  /** Which target addresses may be dialled (plain data: it travels to workers). @default {} (all) */
  targetPolicy?: TargetPolicyOptions;
  /** Client ranges of parts without their own `sourceRanges`. @default [] (everyone) */
  defaultSourceRanges?: readonly string[];
  /** TCP clients must send a PROXY header unless their spec says `acceptProxyProtocol: false`. @default false */
  acceptProxyProtocol?: boolean;
  /** Deadline for a client's whole PROXY header. @default 5000 */
  proxyHeaderTimeoutMs?: number;
  /** Access records for every object unless its spec says `accessLog: false`. @default false */
  accessLog?: boolean;
  /** Share of connections/sessions with an access record, above 0 and at most 1. @default 1 */
  accessLogSampleRate?: number;
  /**
   * UDP engine: "batched" (libc through FFI in `workers` engine threads; fails when it cannot
   * run), "portable" (`Deno.listenDatagram` on this thread), or "auto" (batched when it can run and
   * passes its self-test, else portable with a warning). The library default is "portable"; the
   * command line's is "auto".
   */
  udpEngine?: UdpEngineChoice;
  /**
   * Microseconds a batched UDP engine thread keeps polling after traffic instead of sleeping: a
   * datagram within that window finds it awake, without a wake-up (costly in VMs), at the price of
   * a CPU while traffic flows. 0 turns it off. @default 0
   */
  udpBusyPollUs?: number;
  /**
   * TCP engine: "splice" (libc through FFI in `workers` engine threads, splice(2) through pipes;
   * fails when it cannot run), "portable" (`Deno.listen`, with `workers - 1` forwarding workers),
   * or "auto" (splice when it can run and passes its self-test, else portable with a warning).
   * @default "portable"
   */
  tcpEngine?: TcpEngineChoice;
}

/** Every option, defaults filled in. */
export type ResolvedSupervisorOptions = Readonly<Required<SupervisorOptions>>;

/** The default of every option. */
export const SUPERVISOR_DEFAULTS: ResolvedSupervisorOptions = {
  listenAddress: "::",
  dialTimeoutMs: 5000,
  drainGraceMs: 10_000,
  tcpIdleTimeoutMs: 0,
  udpMaxSessions: 10_000,
  udpBufferBytes: 65_535,
  maxOpenSockets: 1_000_000,
  udpBufferBudgetBytes: 256 * 1024 * 1024,
  bindRetryInitialMs: 500,
  bindRetryMaxMs: 30_000,
  workers: 1,
  tcpReusePort: false,
  targetPolicy: {},
  defaultSourceRanges: [],
  acceptProxyProtocol: false,
  proxyHeaderTimeoutMs: 5000,
  accessLog: false,
  accessLogSampleRate: 1,
  udpEngine: "portable",
  udpBusyPollUs: 0,
  tcpEngine: "portable",
};

const BOOLEANS = new Set(["tcpReusePort", "acceptProxyProtocol", "accessLog"]);

/** Lower bounds of the numeric options (all are integers). */
const MINIMUMS: Readonly<
  Record<
    Exclude<
      keyof SupervisorOptions,
      | "listenAddress"
      | "tcpReusePort"
      | "udpEngine"
      | "tcpEngine"
      | "targetPolicy"
      | "defaultSourceRanges"
      | "acceptProxyProtocol"
      | "accessLog"
      | "accessLogSampleRate"
    >,
    number
  >
> = {
  dialTimeoutMs: 1,
  drainGraceMs: 0,
  tcpIdleTimeoutMs: 0,
  udpMaxSessions: 1,
  udpBufferBytes: 1,
  maxOpenSockets: 1,
  udpBufferBudgetBytes: 1,
  bindRetryInitialMs: 1,
  bindRetryMaxMs: 1,
  workers: 1,
  proxyHeaderTimeoutMs: 1,
  udpBusyPollUs: 0,
};

/**
 * `options` with the defaults filled in (and `tcpReusePort` on when there are `workers`).
 * @throws {RangeError} when an option is unknown, a number is not an integer within range, or
 *   `bindRetryMaxMs` is below `bindRetryInitialMs`.
 */
export function resolveSupervisorOptions(options: SupervisorOptions): ResolvedSupervisorOptions {
  const resolved = { ...SUPERVISOR_DEFAULTS };
  for (const [key, value] of Object.entries(options)) {
    if (value === undefined) continue;
    if (key === "listenAddress") {
      if (typeof value !== "string" || value === "") {
        throw new RangeError(
          `Invalid listenAddress ${JSON.stringify(value)}: must be an IP address or host name`,
        );
      }
      resolved.listenAddress = value;
      continue;
    }
    if (key === "targetPolicy") {
      new TargetPolicy(value as TargetPolicyOptions); // throws a RangeError naming a bad range
      resolved.targetPolicy = value as TargetPolicyOptions;
      continue;
    }
    if (key === "defaultSourceRanges") {
      if (!Array.isArray(value)) {
        throw new RangeError(
          `Invalid defaultSourceRanges ${JSON.stringify(value)}: must be a list`,
        );
      }
      value.forEach((range) => parseCidr(String(range)));
      resolved.defaultSourceRanges = value;
      continue;
    }
    if (BOOLEANS.has(key)) {
      if (typeof value !== "boolean") {
        throw new RangeError(`Invalid ${key} ${JSON.stringify(value)}: must be a boolean`);
      }
      (resolved as Record<string, unknown>)[key] = value;
      continue;
    }
    if (key === "accessLogSampleRate") {
      if (typeof value !== "number" || !(value > 0 && value <= 1)) {
        throw new RangeError(`Invalid accessLogSampleRate ${value}: must be above 0 and at most 1`);
      }
      resolved.accessLogSampleRate = value;
      continue;
    }
    if (key === "udpEngine") {
      if (!(UDP_ENGINE_CHOICES as readonly unknown[]).includes(value)) {
        throw new RangeError(
          `Invalid udpEngine ${JSON.stringify(value)}: must be one of ${
            UDP_ENGINE_CHOICES.join(", ")
          }`,
        );
      }
      resolved.udpEngine = value as UdpEngineChoice;
      continue;
    }
    if (key === "tcpEngine") {
      if (!(TCP_ENGINE_CHOICES as readonly unknown[]).includes(value)) {
        throw new RangeError(
          `Invalid tcpEngine ${JSON.stringify(value)}: must be one of ${
            TCP_ENGINE_CHOICES.join(", ")
          }`,
        );
      }
      resolved.tcpEngine = value as TcpEngineChoice;
      continue;
    }
    const min = MINIMUMS[key as keyof typeof MINIMUMS];
    if (min === undefined) throw new RangeError(`Unknown Supervisor option "${key}"`);
    if (!Number.isSafeInteger(value) || value < min) {
      throw new RangeError(`Invalid ${key} ${value}: must be an integer >= ${min}`);
    }
    (resolved as Record<string, unknown>)[key] = value;
  }
  if (resolved.bindRetryMaxMs < resolved.bindRetryInitialMs) {
    throw new RangeError(
      `Invalid bindRetryMaxMs ${resolved.bindRetryMaxMs}: must be >= bindRetryInitialMs ${resolved.bindRetryInitialMs}`,
    );
  }
  if (resolved.workers > 1) resolved.tcpReusePort = true; // every thread binds each TCP port
  return resolved;
}
