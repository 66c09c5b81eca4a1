/**
 * What the Go operator did to the cluster, for the swap test (no Go toolchain or image here): its
 * reconcile of one object, transcribed from `/work/shared/reference/original-operator-behaviour.md`
 * (§1 reconcile flow, §5 `service_handler.go`): add the finalizer, put one port named after the
 * object into the managed Service of its protocol, set `status.ready`. The Service write is its
 * `updateService`: rewrite the first port with the object's name in place, else append one, and
 * send the whole port list as a JSON merge patch carrying `resourceVersion`.
 * @module
 */
import type { Service, ServicePort } from "kubernetes-types/core/v1.d.ts";
import type { UnDyingProxy } from "../../k8s/undying_proxy_types.ts";
import type { ControlPlane, KubectlResult } from "./control_plane.ts";
import { patchObject } from "./operator.ts";

const FINALIZER = "undyingproxies.proxy.sfact.io/finalizer";

/** The Go operator's `manageServiceForUnDyingProxy` for one object and protocol; the kubectl result. */
export async function goManageServicePort(
  cp: ControlPlane,
  namespace: string,
  service: string,
  object: string,
  listenPort: number,
  protocol: "TCP" | "UDP",
): Promise<KubectlResult> {
  const current = JSON.parse(
    await cp.kubectlOk(["get", "service", service, "-n", namespace, "-o", "json"]),
  ) as Service;
  const ports: ServicePort[] = current.spec?.ports ?? [];
  const done = ports.some((p) =>
    p.name === object && p.port === listenPort && p.targetPort === listenPort &&
    p.protocol === protocol
  );
  if (done) return { code: 0, stdout: "unchanged", stderr: "" };
  const existing = ports.find((p) => p.name === object);
  if (existing) Object.assign(existing, { port: listenPort, targetPort: listenPort, protocol });
  else ports.push({ name: object, port: listenPort, targetPort: listenPort, protocol });
  const patch = {
    metadata: { resourceVersion: current.metadata?.resourceVersion },
    spec: { ports },
  };
  return await cp.kubectl([
    "patch",
    "service",
    service,
    "-n",
    namespace,
    "--type=merge",
    "--field-manager=undying-proxy-operator",
    "-p",
    JSON.stringify(patch),
  ]);
}

/**
 * One reconcile of the Go operator for `object`: finalizer, Service ports (throws on a refused
 * Service write, as its reconcile returned the error), `status.ready`.
 */
export async function goReconcile(
  cp: ControlPlane,
  namespace: string,
  object: UnDyingProxy,
): Promise<void> {
  const name = object.metadata.name ?? "";
  if (!object.metadata.finalizers?.includes(FINALIZER)) {
    const finalizers = [...object.metadata.finalizers ?? [], FINALIZER];
    await patchObject(cp, namespace, "undyingproxy", name, { metadata: { finalizers } });
  }
  const parts = [
    ["undying-proxy-tcp", object.spec?.tcp?.listenPort, "TCP"],
    ["undying-proxy-udp", object.spec?.udp?.listenPort, "UDP"],
  ] as const;
  for (const [service, port, protocol] of parts) {
    if (port === undefined) continue;
    const result = await goManageServicePort(cp, namespace, service, name, port, protocol);
    if (result.code !== 0) {
      throw new Error(`The Go operator's Service write for ${name} failed: ${result.stderr}`);
    }
  }
  await cp.kubectlOk([
    "patch",
    "undyingproxy",
    name,
    "-n",
    namespace,
    "--subresource=status",
    "--type=merge",
    "-p",
    JSON.stringify({ status: { ready: true } }),
  ]);
}
