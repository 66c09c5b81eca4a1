/**
 * Pure translation of UnDyingProxy objects into the desired set the supervisor converges to.
 *
 * - Instance selection: an operator started with `--instance-name X` handles only objects annotated
 *   `proxy.sfact.io/instance: X`; one started without it handles only objects without that
 *   annotation (or with an empty value). Several operator sets (one per external IP) can so share a
 *   namespace.
 * - Order: oldest first (`metadata.creationTimestamp`, then `namespace/name`), so when two objects
 *   want the same port the older one keeps it, on every replica alike.
 * - Objects being deleted are left out (their listeners stop). Invalid specs are reported whole and
 *   never half-started.
 * @module
 */

import type { ObjectMeta } from "kubernetes-types/meta/v1.d.ts";
import { type ForwarderSpec, parseForwarderSpec, type SpecProblem } from "../spec.ts";
import { targetNamespaceProblems } from "./target_namespaces.ts";

/** Annotation that assigns an object to one operator instance (`--instance-name`). */
export const INSTANCE_ANNOTATION = "proxy.sfact.io/instance";

/** The parts of an UnDyingProxy object this module reads. */
export interface ProxyObject {
  readonly metadata?: ObjectMeta;
  readonly spec?: unknown;
}

/** An object whose spec was rejected, with every problem found. */
export interface InvalidProxy {
  /** `namespace/name`. */
  readonly name: string;
  readonly problems: readonly SpecProblem[];
}

/** The desired set built from all objects of one operator instance. */
export interface DesiredSet {
  /** Valid specs of live objects, oldest first. */
  readonly specs: readonly ForwarderSpec[];
  /** Live objects whose spec is invalid. */
  readonly invalid: readonly InvalidProxy[];
}

/** The forwarder name of an object: `namespace/name`. */
export function forwarderName(object: ProxyObject): string {
  return `${object.metadata?.namespace ?? ""}/${object.metadata?.name ?? ""}`;
}

/** True when the object belongs to the operator instance named `instanceName` ("" = default). */
export function isSelected(object: ProxyObject, instanceName: string): boolean {
  return (object.metadata?.annotations?.[INSTANCE_ANNOTATION] ?? "") === instanceName;
}

/** True when the object has a deletion timestamp. */
export function isDeleting(object: ProxyObject): boolean {
  return object.metadata?.deletionTimestamp !== undefined;
}

/** Orders objects oldest first, then by `namespace/name` (ties and missing timestamps). */
export function compareAge(a: ProxyObject, b: ProxyObject): number {
  const ta = Date.parse(a.metadata?.creationTimestamp ?? "");
  const tb = Date.parse(b.metadata?.creationTimestamp ?? "");
  const byTime = (Number.isNaN(ta) ? Infinity : ta) - (Number.isNaN(tb) ? Infinity : tb);
  if (byTime !== 0 && !Number.isNaN(byTime)) return byTime;
  const na = forwarderName(a);
  const nb = forwarderName(b);
  return na < nb ? -1 : na > nb ? 1 : 0;
}

/** The objects of one instance, oldest first (including those being deleted). */
export function selectProxies<T extends ProxyObject>(
  objects: Iterable<T>,
  instanceName: string,
): T[] {
  return [...objects].filter((o) => isSelected(o, instanceName)).sort(compareAge);
}

/** Builds the desired set from the objects of one instance (see the module doc for the rules). */
export function desiredFromProxies(
  objects: Iterable<ProxyObject>,
  instanceName: string,
  options: { readonly allowedTargetNamespaces?: "*" | readonly string[] | undefined } = {},
): DesiredSet {
  const specs: ForwarderSpec[] = [];
  const invalid: InvalidProxy[] = [];
  const allowed = options.allowedTargetNamespaces;
  for (const object of selectProxies(objects, instanceName)) {
    if (isDeleting(object)) continue;
    const name = forwarderName(object);
    const result = parseForwarderSpec(name, object.spec ?? {});
    const forbidden = result.ok && allowed !== undefined
      ? targetNamespaceProblems(result.spec, object.metadata?.namespace ?? "", allowed)
      : [];
    if (!result.ok) invalid.push({ name, problems: result.problems });
    else if (forbidden.length > 0) invalid.push({ name, problems: forbidden });
    else specs.push(result.spec);
  }
  return { specs, invalid };
}
