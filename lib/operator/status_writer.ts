/**
 * Writes UnDyingProxy status through the `/status` subresource: this replica's entry (and, for the
 * aggregator, the summary fields) by server-side apply with the field manager
 * `undying-proxy/<replica>`, so replicas never overwrite each other's entries; and removal of
 * entries (stale ones, or this replica's own at shutdown) by a JSON patch that `test`s each entry's
 * name first.
 * @module
 */

import type { UnDyingProxy, UnDyingProxyReplicaStatus } from "../../k8s/undying_proxy_types.ts";
import { ApiError } from "../kube/api_error.ts";
import type { JsonPatchOperation, KubeClient } from "../kube/client.ts";
import type { Resource } from "../kube/resources.ts";
import type { StatusSummary } from "./status.ts";

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

/**
 * Server-side applies this replica's entry (and the summary when given) to the object's status.
 * A vanished object is not an error.
 */
export async function applyReplicaStatus(
  client: KubeClient,
  resource: Resource<UnDyingProxy>,
  object: UnDyingProxy,
  entry: UnDyingProxyReplicaStatus,
  summary: StatusSummary | undefined,
  signal?: AbortSignal,
): Promise<void> {
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
  client: KubeClient,
  resource: Resource<UnDyingProxy>,
  object: UnDyingProxy,
  names: ReadonlySet<string>,
  signal?: AbortSignal,
): Promise<boolean> {
  const patch = removeEntriesPatch(object, names);
  if (patch === undefined) return false;
  try {
    await client.patch(resource, object.metadata.name ?? "", "json", patch, {
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
