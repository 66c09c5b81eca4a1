/**
 * Pure computation of an UnDyingProxy's status: this replica's entry of `status.replicas` and the
 * summary fields (`ready`, `observedGeneration`, `listening`, `target`, the `Ready` condition)
 * derived from every fresh replica entry.
 *
 * Ready does not flap between replicas: only one replica, the aggregator (the smallest name among
 * the fresh entries), writes the summary fields, and it derives them from all entries alike.
 * Entries whose `lastUpdateTime` is older than the stale threshold are ignored and removed.
 * @module
 */

import type { Condition } from "kubernetes-types/meta/v1.d.ts";
import type {
  UnDyingProxyListenerStatus,
  UnDyingProxyListenState,
  UnDyingProxyReplicaStatus,
  UnDyingProxyStatus,
} from "../../k8s/undying_proxy_types.ts";
import type { ForwarderStatus, ListenerState, Protocol } from "../forward/state.ts";
import { describeProblems, type ForwarderSpec, type SpecProblem } from "../spec.ts";

/** Reasons of the `Ready` condition. */
export type ReadyReason =
  | "Listening"
  | "Pending"
  | "BindFailed"
  | "PortConflict"
  | "TargetForbidden"
  | "InvalidSpec"
  | "ServicePortFailed"
  | "Terminating"
  | "NoReplicaListening";

/** The status fields the aggregator writes (the generated status type, these fields required). */
export type StatusSummary =
  & Required<Pick<UnDyingProxyStatus, "ready" | "observedGeneration" | "listening" | "conditions">>
  & Pick<UnDyingProxyStatus, "target">;

/** What the aggregator knows about one object when it computes the summary. */
export interface SummaryInput {
  readonly generation: number;
  /** The valid spec, or the problems that made it invalid. */
  readonly spec: ForwarderSpec | { readonly problems: readonly SpecProblem[] };
  readonly deleting: boolean;
  /** Fresh replica entries (this replica's newest one included). */
  readonly entries: readonly UnDyingProxyReplicaStatus[];
  /** Why the object's Service ports could not be kept, if they could not. */
  readonly servicePortProblem?: string | undefined;
  /** The `Ready` condition currently stored, to keep its `lastTransitionTime`. */
  readonly previous?: Condition | undefined;
  /** A replica that is stopping: `entries` are the others', without its own. */
  readonly withdrawing?: string | undefined;
  readonly now: Date;
}

const MAX_MESSAGE = 4096;

function listenerOf(state: ListenerState | undefined, port: number): UnDyingProxyListenerStatus {
  switch (state?.phase) {
    case "listening":
      return { state: "Listening", port: state.port };
    case "failed":
      return { state: "Failed", port, message: clip(state.reason) };
    case "conflict":
      return { state: "Conflict", port: state.port, message: `port held by ${state.holder}` };
    case "forbidden":
      return {
        state: "Forbidden",
        port: state.port,
        message: clip(`target address ${state.address} is forbidden: ${state.rule}`),
      };
    default:
      return { state: "Pending", port };
  }
}

function clip(text: string): string {
  return text.length > MAX_MESSAGE ? `${text.slice(0, MAX_MESSAGE - 1)}…` : text;
}

/** What {@linkcode replicaEntry} is made of. */
export interface ReplicaEntryInput {
  readonly replica: { readonly name: string; readonly node?: string | undefined };
  /** The object's `metadata.generation` this entry describes. */
  readonly generation: number;
  /** The valid spec, or undefined for an invalid one or an object being deleted. */
  readonly spec: ForwarderSpec | undefined;
  /** The supervisor's state of the forwarder, if it has one. */
  readonly forwarder: ForwarderStatus | undefined;
  readonly now: Date;
}

/**
 * This replica's entry for one object: the supervisor's state of each protocol part of the spec
 * (no parts for an invalid spec or an object being deleted, whose listeners are stopped).
 */
export function replicaEntry(input: ReplicaEntryInput): UnDyingProxyReplicaStatus {
  const { replica, generation, spec, forwarder, now } = input;
  const entry: UnDyingProxyReplicaStatus = {
    name: replica.name,
    observedGeneration: generation,
    lastUpdateTime: now.toISOString(),
  };
  if (replica.node) entry.node = replica.node;
  if (spec?.tcp) entry.tcp = listenerOf(forwarder?.tcp, spec.tcp.listenPort);
  if (spec?.udp) entry.udp = listenerOf(forwarder?.udp, spec.udp.listenPort);
  return entry;
}

/** True when two entries say the same thing (`lastUpdateTime` ignored). */
export function sameEntry(
  a: UnDyingProxyReplicaStatus | undefined,
  b: UnDyingProxyReplicaStatus | undefined,
): boolean {
  if (a === undefined || b === undefined) return a === b;
  const { lastUpdateTime: _a, ...restA } = a;
  const { lastUpdateTime: _b, ...restB } = b;
  return canonical(restA) === canonical(restB);
}

/** JSON with sorted keys, for order-insensitive comparison of plain objects. */
export function canonical(value: unknown): string {
  return JSON.stringify(
    value,
    (_key, v: unknown) =>
      v !== null && typeof v === "object" && !Array.isArray(v)
        ? Object.fromEntries(Object.entries(v).sort(([x], [y]) => x < y ? -1 : x > y ? 1 : 0))
        : v,
  );
}

/** Milliseconds since the entry was written (Infinity when it has no valid time). */
export function entryAgeMs(entry: UnDyingProxyReplicaStatus, now: Date): number {
  const at = Date.parse(entry.lastUpdateTime ?? "");
  return Number.isNaN(at) ? Infinity : now.getTime() - at;
}

/** Splits entries into fresh and stale by `lastUpdateTime` and the stale threshold. */
export function partitionEntries(
  entries: readonly UnDyingProxyReplicaStatus[],
  now: Date,
  staleAfterMs: number,
): { fresh: UnDyingProxyReplicaStatus[]; stale: UnDyingProxyReplicaStatus[] } {
  const fresh: UnDyingProxyReplicaStatus[] = [];
  const stale: UnDyingProxyReplicaStatus[] = [];
  for (const e of entries) (entryAgeMs(e, now) > staleAfterMs ? stale : fresh).push(e);
  return { fresh, stale };
}

/** Replaces (or adds) `own` in the stored entries, so a replica sees its newest report. */
export function withOwnEntry(
  entries: readonly UnDyingProxyReplicaStatus[],
  own: UnDyingProxyReplicaStatus,
): UnDyingProxyReplicaStatus[] {
  return [...entries.filter((e) => e.name !== own.name), own];
}

/** The replica that writes the summary fields: the smallest name among fresh entries. */
export function aggregatorOf(fresh: readonly UnDyingProxyReplicaStatus[]): string | undefined {
  let smallest: string | undefined;
  for (const { name } of fresh) if (smallest === undefined || name < smallest) smallest = name;
  return smallest;
}

function hostPort(host: string, port: number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}

/** The `target` printer column: the TCP part's target, else the UDP part's, both when they differ. */
export function targetSummary(spec: ForwarderSpec): string | undefined {
  const tcp = spec.tcp && hostPort(spec.tcp.targetHost, spec.tcp.targetPort);
  const udp = spec.udp && hostPort(spec.udp.targetHost, spec.udp.targetPort);
  if (tcp && udp && tcp !== udp) return `tcp ${tcp}, udp ${udp}`;
  return tcp ?? udp;
}

const PROTOCOLS: readonly Protocol[] = ["tcp", "udp"];

function describe(
  entry: UnDyingProxyReplicaStatus,
  protocol: Protocol,
  l: UnDyingProxyListenerStatus,
): string {
  const what = `${entry.name}: ${protocol.toUpperCase()} port ${l.port ?? "?"}`;
  return l.message ? `${what}: ${l.message}` : what;
}

function allListening(entry: UnDyingProxyReplicaStatus, spec: ForwarderSpec): boolean {
  return PROTOCOLS.every((p) => !spec[p] || entry[p]?.state === "Listening");
}

function readyVerdict(
  input: SummaryInput,
): { reason: ReadyReason; message: string; listening: number; reporting: number } {
  const entries = [...input.entries].sort((a, b) => a.name < b.name ? -1 : 1);
  const reporting = entries.length;
  if (input.deleting) {
    return {
      reason: "Terminating",
      message: "the object is being deleted",
      listening: 0,
      reporting,
    };
  }
  if ("problems" in input.spec) {
    return {
      reason: input.spec.problems.every((p) => p.forbidden) ? "TargetForbidden" : "InvalidSpec",
      message: describeProblems(input.spec.problems),
      listening: 0,
      reporting,
    };
  }
  if (reporting === 0 && input.withdrawing !== undefined) {
    return {
      reason: "NoReplicaListening",
      message: `no operator replica is listening: the last one, ${input.withdrawing}, stopped`,
      listening: 0,
      reporting,
    };
  }
  const spec = input.spec;
  const current = entries.filter((e) => e.observedGeneration === input.generation);
  const listening = current.filter((e) => allListening(e, spec)).length;
  const problems = (state: UnDyingProxyListenState): string[] =>
    current.flatMap((e) =>
      PROTOCOLS.flatMap((p) => {
        const l = e[p];
        return spec[p] && l?.state === state ? [describe(e, p, l)] : [];
      })
    );
  const forbidden = problems("Forbidden");
  if (forbidden.length > 0) {
    return { reason: "TargetForbidden", message: forbidden.join("; "), listening, reporting };
  }
  const conflicts = problems("Conflict");
  if (conflicts.length > 0) {
    return { reason: "PortConflict", message: conflicts.join("; "), listening, reporting };
  }
  const failures = problems("Failed");
  if (failures.length > 0) {
    return { reason: "BindFailed", message: failures.join("; "), listening, reporting };
  }
  if (input.servicePortProblem !== undefined) {
    return {
      reason: "ServicePortFailed",
      message: input.servicePortProblem,
      listening,
      reporting,
    };
  }
  const waiting = entries.filter((e) => !current.includes(e) || !allListening(e, spec))
    .map((e) => e.name);
  if (reporting === 0 || waiting.length > 0) {
    const message = reporting === 0
      ? "no operator replica has reported yet"
      : `waiting for ${waiting.join(", ")}`;
    return { reason: "Pending", message, listening, reporting };
  }
  const ports = PROTOCOLS.flatMap((p) => {
    const part = spec[p];
    return part ? [`${p.toUpperCase()} ${part.listenPort}`] : [];
  });
  const message = ports.length === 0
    ? "nothing to forward"
    : `${ports.join(" and ")} listening on ${listening} replica${listening === 1 ? "" : "s"}`;
  return { reason: "Listening", message, listening, reporting };
}

/** Computes the summary fields from every fresh replica entry (see the module doc). */
export function statusSummary(input: SummaryInput): StatusSummary {
  const verdict = readyVerdict(input);
  const status = verdict.reason === "Listening" ? "True" : "False";
  const condition: Condition = {
    type: "Ready",
    status,
    observedGeneration: input.generation,
    lastTransitionTime: input.previous?.status === status
      ? input.previous.lastTransitionTime
      : input.now.toISOString(),
    reason: verdict.reason,
    message: clip(verdict.message),
  };
  const summary: StatusSummary = {
    ready: status === "True",
    observedGeneration: input.generation,
    listening: `${verdict.listening}/${verdict.reporting}`,
    conditions: [condition],
  };
  const target = "problems" in input.spec ? undefined : targetSummary(input.spec);
  if (target !== undefined) summary.target = target;
  return summary;
}
