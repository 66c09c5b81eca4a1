/**
 * Resource descriptors: which API group, version and plural an object type lives at, and whether it
 * is namespaced. The type parameter ties a descriptor to its object type, so the client's helpers
 * return `Service` for {@linkcode SERVICES}.
 *
 * @module
 */
import type {
  ConfigMap,
  Event as CoreEvent,
  Namespace,
  Service,
} from "kubernetes-types/core/v1.d.ts";
import type { Event } from "kubernetes-types/events/v1.d.ts";
import type { ObjectMeta } from "kubernetes-types/meta/v1.d.ts";

/** Any Kubernetes object. */
export interface KubeObject {
  /** e.g. `v1` or `proxy.sfact.io/v1alpha1`. */
  apiVersion?: string;
  /** e.g. `Service`. */
  kind?: string;
  /** Standard object metadata. */
  metadata?: ObjectMeta;
}

/** A custom object whose spec and status are not typed (yet). */
export interface CustomObject extends KubeObject {
  /** Desired state. */
  spec?: unknown;
  /** Observed state. */
  status?: unknown;
}

/** Where objects of type `T` live in the API. */
export interface Resource<T extends KubeObject = KubeObject> {
  /** API group; `""` for the core group. */
  readonly group: string;
  /** API version, e.g. `v1`. */
  readonly version: string;
  /** Plural resource name used in paths, e.g. `services`. */
  readonly plural: string;
  /** Object kind, e.g. `Service`. */
  readonly kind: string;
  /** True when objects live in a namespace. */
  readonly namespaced: boolean;
  /** Type marker only; never set. */
  readonly _object?: T;
}

/** Declares a resource descriptor for objects of type `T`. */
export function defineResource<T extends KubeObject>(
  resource: Omit<Resource<T>, "_object">,
): Resource<T> {
  return Object.freeze({ ...resource });
}

/** `v1` Services. */
export const SERVICES: Resource<Service> = defineResource<Service>({
  group: "",
  version: "v1",
  plural: "services",
  kind: "Service",
  namespaced: true,
});

/** `v1` ConfigMaps. */
export const CONFIG_MAPS: Resource<ConfigMap> = defineResource<ConfigMap>({
  group: "",
  version: "v1",
  plural: "configmaps",
  kind: "ConfigMap",
  namespaced: true,
});

/** `v1` Namespaces (cluster-scoped). */
export const NAMESPACES: Resource<Namespace> = defineResource<Namespace>({
  group: "",
  version: "v1",
  plural: "namespaces",
  kind: "Namespace",
  namespaced: false,
});

/** `events.k8s.io/v1` Events. */
export const EVENTS: Resource<Event> = defineResource<Event>({
  group: "events.k8s.io",
  version: "v1",
  plural: "events",
  kind: "Event",
  namespaced: true,
});

/** Core `v1` Events (what `kubectl describe` shows on older clusters). */
export const CORE_EVENTS: Resource<CoreEvent> = defineResource<CoreEvent>({
  group: "",
  version: "v1",
  plural: "events",
  kind: "Event",
  namespaced: true,
});

/** `proxy.sfact.io/v1alpha1` UnDyingProxies; retype with `defineResource<UnDyingProxy>(...)`. */
export const UNDYING_PROXIES: Resource<CustomObject> = defineResource<CustomObject>({
  group: "proxy.sfact.io",
  version: "v1alpha1",
  plural: "undyingproxies",
  kind: "UnDyingProxy",
  namespaced: true,
});

/** The `apiVersion` of a resource's objects, e.g. `v1` or `proxy.sfact.io/v1alpha1`. */
export function apiVersionOf(resource: Resource<KubeObject>): string {
  return resource.group === "" ? resource.version : `${resource.group}/${resource.version}`;
}

/** Where to find objects: a namespace (namespaced resources) and a name (single objects). */
export interface ObjectAddress {
  /** Namespace; omit for cluster-scoped resources, or to list/watch across all namespaces. */
  namespace?: string | undefined;
  /** Object name; omit for collections. */
  name?: string | undefined;
  /** Subresource, e.g. `status`. */
  subresource?: string | undefined;
}

/**
 * The URL path of a collection or object.
 * @throws {TypeError} for a namespace on a cluster-scoped resource, or a name or subresource
 * without the namespace a namespaced resource needs.
 */
export function resourcePath(resource: Resource<KubeObject>, address: ObjectAddress = {}): string {
  const { namespace, name, subresource } = address;
  const base = resource.group === ""
    ? `/api/${resource.version}`
    : `/apis/${resource.group}/${resource.version}`;
  if (!resource.namespaced && namespace !== undefined) {
    throw new TypeError(
      `${resource.plural} are cluster-scoped, but namespace "${namespace}" was given`,
    );
  }
  if (resource.namespaced && namespace === undefined && name !== undefined) {
    throw new TypeError(
      `${resource.plural} are namespaced, but no namespace was given for "${name}"`,
    );
  }
  if (subresource !== undefined && name === undefined) {
    throw new TypeError(`subresource "${subresource}" of ${resource.plural} needs an object name`);
  }
  let path = base;
  if (namespace !== undefined) path += `/namespaces/${encodeURIComponent(namespace)}`;
  path += `/${resource.plural}`;
  if (name !== undefined) path += `/${encodeURIComponent(name)}`;
  if (subresource !== undefined) path += `/${subresource}`;
  return path;
}

/** The store key of an object: `namespace/name`, or `name` for cluster-scoped objects. */
export function objectKey(object: KubeObject): string {
  const namespace = object.metadata?.namespace;
  const name = object.metadata?.name ?? "";
  return namespace ? `${namespace}/${name}` : name;
}
