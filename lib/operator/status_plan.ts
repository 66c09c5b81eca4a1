/**
 * Pure decision of one replica's status work for one object in a reconcile pass: the entry to
 * write (and the summary, when this replica is the aggregator), whether a write is needed (changed,
 * or heartbeat due, but never a repeat of a write the watch has not shown yet), and which stale
 * entries to remove. Also whether other replicas still listen for a deleted object.
 * @module
 */

import type { Condition } from "kubernetes-types/meta/v1.d.ts";
import type { UnDyingProxy, UnDyingProxyReplicaStatus } from "../../k8s/undying_proxy_types.ts";
import type { ForwarderStatus } from "../forward/state.ts";
import type { ForwarderSpec, SpecProblem } from "../spec.ts";
import {
  aggregatorOf,
  canonical,
  entryAgeMs,
  partitionEntries,
  replicaEntry,
  sameEntry,
  type StatusSummary,
  statusSummary,
  withOwnEntry,
} from "./status.ts";

/** What this replica last wrote for an object, and when (epoch ms). */
export interface LastWrite {
  readonly key: string;
  readonly at: number;
}

/** Everything {@linkcode planStatus} needs about one object. */
export interface StatusPlanInput {
  readonly object: UnDyingProxy;
  readonly replica: { readonly name: string; readonly node?: string | undefined };
  /** The object's valid spec, or the problems that made it invalid. */
  readonly spec: ForwarderSpec | { readonly problems: readonly SpecProblem[] };
  /** The supervisor's state of this object's forwarder (absent when not running). */
  readonly forwarder: ForwarderStatus | undefined;
  readonly servicePortProblem?: string | undefined;
  /** This replica's previous write for the object, if any. */
  readonly last?: LastWrite | undefined;
  readonly heartbeatMs: number;
  readonly staleAfterMs: number;
  readonly now: Date;
}

/** What to do for one object. */
export interface StatusPlan {
  readonly entry: UnDyingProxyReplicaStatus;
  /** Set when this replica is the aggregator. */
  readonly summary?: StatusSummary;
  /** True when the entry (and summary) must be applied now. */
  readonly write: boolean;
  /** Identifies the content written, for {@linkcode LastWrite}. */
  readonly key: string;
  /** Names of stale entries to remove. */
  readonly stale: readonly string[];
}

/** The summary fields without `lastTransitionTime`, for comparison. */
export function summaryKey(summary: Partial<StatusSummary> | undefined): string {
  if (summary === undefined) return "";
  const { conditions, ...rest } = summary;
  return canonical({
    ...rest,
    conditions: (conditions ?? []).map(({ lastTransitionTime: _, ...c }) => c),
  });
}

/** The `Ready` condition stored on the object. */
function storedReady(object: UnDyingProxy): Condition | undefined {
  return object.status?.conditions?.find((c) => c.type === "Ready");
}

/** The summary fields as stored on the object. */
export function storedSummary(object: UnDyingProxy): Partial<StatusSummary> {
  const status = object.status ?? {};
  const ready = storedReady(object);
  return {
    ...(status.ready !== undefined ? { ready: status.ready } : {}),
    ...(status.observedGeneration !== undefined
      ? { observedGeneration: status.observedGeneration }
      : {}),
    ...(status.listening !== undefined ? { listening: status.listening } : {}),
    ...(status.target !== undefined ? { target: status.target } : {}),
    conditions: ready ? [ready] : [],
  };
}

/** Plans this replica's status work for one object (see the module doc). */
export function planStatus(input: StatusPlanInput): StatusPlan {
  const { object, now } = input;
  const generation = object.metadata.generation ?? 0;
  const stored: UnDyingProxyReplicaStatus[] = object.status?.replicas ?? [];
  const spec = "problems" in input.spec ? undefined : input.spec;
  const entry = replicaEntry({
    replica: input.replica,
    generation,
    spec,
    forwarder: input.forwarder,
    now,
  });
  const { fresh, stale } = partitionEntries(withOwnEntry(stored, entry), now, input.staleAfterMs);
  const summary = aggregatorOf(fresh) === input.replica.name
    ? statusSummary({
      generation,
      spec: input.spec,
      deleting: object.metadata.deletionTimestamp !== undefined,
      entries: fresh,
      servicePortProblem: input.servicePortProblem,
      previous: storedReady(object),
      now,
    })
    : undefined;
  const storedOwn = stored.find((e) => e.name === input.replica.name);
  const key = canonical({
    entry: { ...entry, lastUpdateTime: undefined },
    summary: summaryKey(summary),
  });
  const changed = !sameEntry(storedOwn, entry) ||
    (summary !== undefined && summaryKey(summary) !== summaryKey(storedSummary(object)));
  const due = storedOwn === undefined || entryAgeMs(storedOwn, now) >= input.heartbeatMs;
  // The watch may not show our last write yet: do not repeat it before the heartbeat is due.
  const repeat = input.last !== undefined && input.last.key === key &&
    now.getTime() - input.last.at < input.heartbeatMs;
  return {
    entry,
    ...(summary !== undefined ? { summary } : {}),
    write: (changed || due) && !repeat,
    key,
    stale: stale.map((e) => e.name),
  };
}

/** What {@linkcode planWithdrawal} needs about one object. */
export interface WithdrawalInput {
  readonly object: UnDyingProxy;
  /** The replica that stops. */
  readonly replica: string;
  /** The object's valid spec, or the problems that made it invalid. */
  readonly spec: ForwarderSpec | { readonly problems: readonly SpecProblem[] };
  readonly servicePortProblem?: string | undefined;
  readonly staleAfterMs: number;
  readonly now: Date;
}

/** What a stopping replica writes for one object. */
export interface Withdrawal {
  /** `status.replicas` without the stopping replica's entry (and without stale ones). */
  readonly replicas: UnDyingProxyReplicaStatus[];
  /** The summary derived from those entries: Ready False when none is left listening. */
  readonly summary: StatusSummary;
}

/**
 * Plans the status write of a replica that stops: its entry goes, and it writes the summary of
 * the entries left (whatever replica aggregated before), so that the object never claims a
 * listener that no longer exists; with none left, Ready is False with reason NoReplicaListening.
 */
export function planWithdrawal(input: WithdrawalInput): Withdrawal {
  const { object, now } = input;
  const others = (object.status?.replicas ?? []).filter((e) => e.name !== input.replica);
  const { fresh } = partitionEntries(others, now, input.staleAfterMs);
  const summary = statusSummary({
    generation: object.metadata.generation ?? 0,
    spec: input.spec,
    deleting: object.metadata.deletionTimestamp !== undefined,
    entries: fresh,
    servicePortProblem: input.servicePortProblem,
    previous: storedReady(object),
    withdrawing: input.replica,
    now,
  });
  return { replicas: fresh, summary };
}

/**
 * Names of other replicas whose fresh entry still reports a listener for the object (a deleted
 * object keeps its finalizer until this is empty).
 */
export function othersListening(input: {
  readonly object: UnDyingProxy;
  /** This replica, left out. */
  readonly replica: string;
  readonly now: Date;
  readonly staleAfterMs: number;
}): string[] {
  const { object, replica, now, staleAfterMs } = input;
  const { fresh } = partitionEntries(object.status?.replicas ?? [], now, staleAfterMs);
  return fresh.filter((e) =>
    e.name !== replica && (e.tcp?.state === "Listening" || e.udp?.state === "Listening")
  ).map((e) => e.name);
}
