/**
 * The operator's finalizer on UnDyingProxy objects: added on first sight, removed once this
 * instance has cleaned up after a deleted object. Both use a JSON patch that `test`s what it
 * changes, so concurrent writers (other replicas, users) are never overwritten: a failed test or a
 * conflict re-reads the object and tries again.
 * @module
 */

import type { ObjectMeta } from "kubernetes-types/meta/v1.d.ts";
import { ApiError } from "../kube/api_error.ts";
import type { JsonPatchOperation, KubeClient } from "../kube/client.ts";
import type { CustomObject, Resource } from "../kube/resources.ts";

/** The finalizer the operator puts on every object it handles. */
export const FINALIZER = "undyingproxies.proxy.sfact.io/finalizer";

/** True when the object carries {@linkcode FINALIZER}. */
export function hasFinalizer(object: { readonly metadata?: ObjectMeta }): boolean {
  return object.metadata?.finalizers?.includes(FINALIZER) ?? false;
}

/** The JSON patch adding {@linkcode FINALIZER}, or `undefined` when it is already there. */
export function addFinalizerPatch(
  object: { readonly metadata?: ObjectMeta },
): JsonPatchOperation[] | undefined {
  const finalizers = object.metadata?.finalizers;
  if (finalizers?.includes(FINALIZER)) return undefined;
  if (finalizers === undefined) {
    return [
      { op: "test", path: "/metadata/resourceVersion", value: object.metadata?.resourceVersion },
      { op: "add", path: "/metadata/finalizers", value: [FINALIZER] },
    ];
  }
  return [
    { op: "test", path: "/metadata/finalizers", value: finalizers },
    { op: "add", path: "/metadata/finalizers/-", value: FINALIZER },
  ];
}

/** The JSON patch removing {@linkcode FINALIZER}, or `undefined` when it is not there. */
export function removeFinalizerPatch(
  object: { readonly metadata?: ObjectMeta },
): JsonPatchOperation[] | undefined {
  const index = object.metadata?.finalizers?.indexOf(FINALIZER) ?? -1;
  if (index < 0) return undefined;
  return [
    { op: "test", path: `/metadata/finalizers/${index}`, value: FINALIZER },
    { op: "remove", path: `/metadata/finalizers/${index}` },
  ];
}

const ATTEMPTS = 5;

/**
 * Applies `makePatch` to the object, re-reading it and retrying when another writer got there
 * first (409, or 422 from a failed `test`). A vanished object, or one that needs no patch, is done.
 * @returns false when the object is gone or needed no change.
 * @throws {ApiError} when every attempt failed or the error is not a race.
 */
async function patchWithRetry(
  target: FinalizerTarget,
  makePatch: (object: CustomObject) => JsonPatchOperation[] | undefined,
): Promise<boolean> {
  const { client, resource, object, signal } = target;
  const namespace = object.metadata?.namespace ?? "";
  const name = object.metadata?.name ?? "";
  let current = object;
  for (let attempt = 1;; attempt++) {
    const patch = makePatch(current);
    if (patch === undefined) return false;
    try {
      await client.patch(resource, {
        name,
        type: "json",
        patch,
        namespace,
        ...(signal ? { signal } : {}),
      });
      return true;
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      if (error.kind === "NotFound") return false;
      if (attempt >= ATTEMPTS || (error.kind !== "Conflict" && error.kind !== "Invalid")) {
        throw error;
      }
    }
    try {
      current = await client.get(resource, name, { namespace, ...(signal ? { signal } : {}) });
    } catch (error) {
      if (error instanceof ApiError && error.kind === "NotFound") return false;
      throw error;
    }
    if (current.metadata?.uid !== object.metadata?.uid) return false;
  }
}

/** The object whose finalizers change, and how to reach it. */
export interface FinalizerTarget {
  readonly client: KubeClient;
  readonly resource: Resource<CustomObject>;
  readonly object: CustomObject;
  readonly signal?: AbortSignal | undefined;
}

/** Adds {@linkcode FINALIZER} unless present; true when this call added it. */
export function addFinalizer(target: FinalizerTarget): Promise<boolean> {
  return patchWithRetry(target, addFinalizerPatch);
}

/** Removes {@linkcode FINALIZER} if present; true when this call removed it. */
export function removeFinalizer(target: FinalizerTarget): Promise<boolean> {
  return patchWithRetry(target, removeFinalizerPatch);
}
