/** Helpers for tests that use the project's Kubernetes client against the test control plane. */
import { KubeClient, type KubeClientOptions } from "../../lib/kube/client.ts";
import { loadKubeconfig } from "../../lib/kube/kubeconfig.ts";
import { type CustomObject, UNDYING_PROXIES } from "../../lib/kube/resources.ts";

/** A client for the kubeconfig at `path` (no environment lookups). Close it with `using`. */
export async function clientFor(
  path: string,
  options: KubeClientOptions = {},
): Promise<KubeClient> {
  return new KubeClient(await loadKubeconfig({ path, env: () => undefined }), options);
}

/** An UnDyingProxy object forwarding TCP `listenPort` to 127.0.0.1:`targetPort`. */
export function undyingProxy(
  namespace: string,
  name: string,
  listenPort: number,
  targetPort = 9000,
): CustomObject {
  return {
    metadata: { namespace, name },
    spec: { tcp: { listenPort, targetPort, targetHost: "127.0.0.1" } },
  };
}

/**
 * Moves the TCP part of `object` to `listenPort` (a spec change) with a merge patch that carries
 * the object's resourceVersion, so a stale copy gets 409 Conflict.
 */
export function moveListenPort(
  client: KubeClient,
  object: CustomObject,
  listenPort: number,
): Promise<CustomObject> {
  const namespace = object.metadata?.namespace;
  return client.patch(UNDYING_PROXIES, {
    name: object.metadata?.name ?? "",
    type: "merge",
    patch: {
      metadata: { resourceVersion: object.metadata?.resourceVersion },
      spec: { tcp: { listenPort, targetPort: 9001, targetHost: "example.org" } },
    },
    ...(namespace ? { namespace } : {}),
  });
}

/**
 * Pulls from `iterator` until `done(item)` is true, returning everything pulled.
 * @throws Error naming `what` and what was seen when nothing satisfies `done` within `timeoutMs`
 */
export async function pullUntil<T>(
  iterator: AsyncIterator<T>,
  what: string,
  done: (item: T) => boolean,
  timeoutMs = 90_000,
): Promise<T[]> {
  const seen: T[] = [];
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<"expired">((resolve) => {
    timer = setTimeout(() => resolve("expired"), timeoutMs);
  });
  try {
    while (true) {
      const result = await Promise.race([iterator.next(), expired]);
      if (result === "expired") {
        throw new Error(
          `Timed out after ${timeoutMs} ms waiting for ${what}; saw ${JSON.stringify(seen)}`,
        );
      }
      if (result.done) throw new Error(`Iterator ended while waiting for ${what}`);
      seen.push(result.value);
      if (done(result.value)) return seen;
    }
  } finally {
    clearTimeout(timer);
  }
}
