/**
 * Chainable builder of UnDyingProxy objects for unit tests.
 * @module
 */

import type { ObjectMeta } from "kubernetes-types/meta/v1.d.ts";
import type { UnDyingProxy } from "../../k8s/undying_proxy_types.ts";

/** `ObjectMeta` with writable fields, so tests can shape objects freely. */
export type MutableObjectMeta = { -readonly [K in keyof ObjectMeta]: ObjectMeta[K] };

/** A plain UnDyingProxy-shaped object as the API server returns it. */
export interface ProxyFixtureObject {
  apiVersion: "proxy.sfact.io/v1alpha1";
  kind: "UnDyingProxy";
  metadata: MutableObjectMeta;
  spec: { tcp?: Record<string, unknown>; udp?: Record<string, unknown> };
  status?: Record<string, unknown>;
}

/** Builds one UnDyingProxy object step by step; `build()` returns a fresh copy. */
export class ProxyFixture {
  #object: ProxyFixtureObject;

  constructor(name: string, namespace = "proxy") {
    this.#object = {
      apiVersion: "proxy.sfact.io/v1alpha1",
      kind: "UnDyingProxy",
      metadata: {
        name,
        namespace,
        uid: `uid-${namespace}-${name}`,
        generation: 1,
        resourceVersion: "1",
        creationTimestamp: "2026-01-01T00:00:00Z",
      },
      spec: {},
    };
  }

  /** Sets `metadata.creationTimestamp`. */
  created(timestamp: string): this {
    this.#object.metadata.creationTimestamp = timestamp;
    return this;
  }

  /** Sets `metadata.generation`. */
  generation(generation: number): this {
    this.#object.metadata.generation = generation;
    return this;
  }

  /** Adds an annotation. */
  annotate(key: string, value: string): this {
    this.#object.metadata.annotations = { ...this.#object.metadata.annotations, [key]: value };
    return this;
  }

  /** Sets the finalizers. */
  finalizers(...finalizers: string[]): this {
    this.#object.metadata.finalizers = finalizers;
    return this;
  }

  /** Marks the object as being deleted. */
  deleting(timestamp = "2026-01-02T00:00:00Z"): this {
    this.#object.metadata.deletionTimestamp = timestamp;
    return this;
  }

  /** Sets `spec.tcp`. */
  tcp(listenPort: unknown, targetPort: unknown = 80, targetHost: unknown = "127.0.0.1"): this {
    this.#object.spec.tcp = { listenPort, targetPort, targetHost };
    return this;
  }

  /** Sets `spec.udp` (timeouts left to the defaults). */
  udp(listenPort: unknown, targetPort: unknown = 80, targetHost: unknown = "127.0.0.1"): this {
    this.#object.spec.udp = { listenPort, targetPort, targetHost };
    return this;
  }

  /** Sets `status`. */
  status(status: Record<string, unknown>): this {
    this.#object.status = status;
    return this;
  }

  /** A deep copy of the object built so far. */
  build(): ProxyFixtureObject {
    return structuredClone(this.#object);
  }

  /** The object as the generated type (the fixture may hold invalid values on purpose). */
  typed(): UnDyingProxy {
    return this.build() as unknown as UnDyingProxy;
  }
}

/** Starts a fixture for an object named `name` in `namespace` (default `proxy`). */
export function proxy(name: string, namespace?: string): ProxyFixture {
  return new ProxyFixture(name, namespace);
}
