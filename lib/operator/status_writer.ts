/**
 * Writes UnDyingProxy status through the `/status` subresource: this replica's entry (and, for the
 * aggregator, the summary fields) by server-side apply with the field manager
 * `undying-proxy/<replica>`, so replicas never overwrite each other's entries; and removal of
 * stale entries of other replicas by a JSON patch that `test`s each entry's
 * name first; at shutdown, removal of this replica's entry together with the summary of the entries
 * left, by a JSON patch that `test`s the whole list first (retried on a fresh read).
 * @module
 */

import type { UnDyingProxy, UnDyingProxyReplicaStatus } from "../../k8s/undying_proxy_types.ts";
import { ApiError } from "../kube/api_error.ts";
import type { JsonPatchOperation, KubeClient } from "../kube/client.ts";
import type { Resource } from "../kube/resources.ts";
import type { StatusSummary } from "./status.ts";
import type { Withdrawal } from "./status_plan.ts";

/** The field manager of one replica's status writes. */
export function statusFieldManager(replica: string): string {
  return `undying-proxy/${replica}`;
}

/** The apply configuration of one replica's status write. */
export function statusApplyConfiguration(
  object: UnDyingProxy,
  entry: UnDyingProxyReplicaStatus,
  summary: StatusSummary | undefined,
): UnDyingProxy {
  return {
    apiVersion: object.apiVersion,
    kind: object.kind,
    metadata: {
      name: object.metadata.name ?? "",
      namespace: object.metadata.namespace ?? "",
    },
    status: { replicas: [entry], ...summary },
  };
}

/** Where a status write goes: the client, the resource and the object written to. */
export interface StatusTarget {
  readonly client: KubeClient;
  readonly resource: Resource<UnDyingProxy>;
  readonly object: UnDyingProxy;
  readonly signal?: AbortSignal | undefined;
}

/** What {@linkcode applyReplicaStatus} writes. */
export interface ReplicaStatusWrite extends StatusTarget {
  /** This replica's entry in `status.replicas`. */
  readonly entry: UnDyingProxyReplicaStatus;
  /** The summary fields, written by the aggregating replica only. */
  readonly summary?: StatusSummary | undefined;
}

/**
 * Server-side applies this replica's entry (and the summary when given) to the object's status.
 * A vanished object is not an error.
 */
export async function applyReplicaStatus(write: ReplicaStatusWrite): Promise<void> {
  const { client, resource, object, entry, summary, signal } = write;
  try {
    await client.apply(resource, statusApplyConfiguration(object, entry, summary), {
      fieldManager: statusFieldManager(entry.name),
      force: true,
      subresource: "status",
      ...(signal ? { signal } : {}),
    });
  } catch (error) {
    if (error instanceof ApiError && error.kind === "NotFound") return;
    throw error;
  }
}

/** The JSON patch removing the named entries from `status.replicas`, or undefined if none is there. */
export function removeEntriesPatch(
  object: UnDyingProxy,
  names: ReadonlySet<string>,
): JsonPatchOperation[] | undefined {
  const ops: JsonPatchOperation[] = [
    { op: "test", path: "/metadata/uid", value: object.metadata.uid },
  ];
  const entries = object.status?.replicas ?? [];
  for (let i = entries.length - 1; i >= 0; i--) {
    const name = entries[i]?.name;
    if (name === undefined || !names.has(name)) continue;
    ops.push(
      { op: "test", path: `/status/replicas/${i}/name`, value: name },
      { op: "remove", path: `/status/replicas/${i}` },
    );
  }
  return ops.length > 1 ? ops : undefined;
}

/**
 * Removes the named entries from the object's `status.replicas`. Returns false when another writer
 * changed the list first (the caller's next pass sees the new list) or the object is gone.
 */
export async function removeReplicaEntries(
  target: StatusTarget & { readonly names: ReadonlySet<string> },
): Promise<boolean> {
  const { client, resource, object, names, signal } = target;
  const patch = removeEntriesPatch(object, names);
  if (patch === undefined) return false;
  try {
    await client.patch(resource, {
      name: object.metadata.name ?? "",
      type: "json",
      patch,
      namespace: object.metadata.namespace ?? "",
      subresource: "status",
      ...(signal ? { signal } : {}),
    });
    return true;
  } catch (error) {
    if (
      error instanceof ApiError &&
      (error.kind === "NotFound" || error.kind === "Invalid" || error.kind === "Conflict")
    ) {
      return false;
    }
    throw error;
  }
}

/**
 * The JSON patch of a stopping replica: if `status.replicas` is still what `object` shows, replace
 * it with `replicas` and write the summary fields.
 */
export function withdrawalPatch(
  object: UnDyingProxy,
  replicas: readonly UnDyingProxyReplicaStatus[],
  summary: StatusSummary,
): JsonPatchOperation[] {
  return [
    { op: "test", path: "/metadata/uid", value: object.metadata.uid },
    { op: "test", path: "/status/replicas", value: object.status?.replicas ?? [] },
    { op: "replace", path: "/status/replicas", value: replicas },
    ...Object.entries(summary).map(([field, value]): JsonPatchOperation => ({
      op: "add",
      path: `/status/${field}`,
      value,
    })),
  ];
}

/** Attempts of {@linkcode withdrawReplica}: another writer may change the list in between. */
const WITHDRAWAL_ATTEMPTS = 4;

/**
 * Takes `replica`'s entry out of the object's status and writes the summary `plan` derives from
 * the entries left. When another writer changed the list first, reads the object again and
 * re-plans (bounded). Returns false when there is nothing to withdraw or the object is gone.
 */
export async function withdrawReplica(
  target: StatusTarget & {
    readonly replica: string;
    readonly plan: (object: UnDyingProxy) => Withdrawal;
  },
): Promise<boolean> {
  const { client, resource, object, replica, plan, signal } = target;
  const name = object.metadata.name ?? "";
  const options = { namespace: object.metadata.namespace ?? "", ...(signal ? { signal } : {}) };
  let current = object;
  for (let attempt = 1; attempt <= WITHDRAWAL_ATTEMPTS; attempt++) {
    if (!current.status?.replicas?.some((e) => e.name === replica)) return false;
    const { replicas, summary } = plan(current);
    try {
      await client.patch(resource, {
        name,
        type: "json",
        patch: withdrawalPatch(current, replicas, summary),
        ...options,
        subresource: "status",
      });
      return true;
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      if (error.kind === "NotFound") return false;
      if (error.kind !== "Invalid" && error.kind !== "Conflict") throw error;
    }
    try {
      current = await client.get(resource, name, options);
    } catch (error) {
      if (error instanceof ApiError && error.kind === "NotFound") return false;
      throw error;
    }
  }
  return false;
}
