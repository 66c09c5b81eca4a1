/**
 * End to end: how often one operator replica writes a new object's status, counted as the API
 * server's watch events on the object. The first pass after the object appears already knows
 * whether its listener is bound, so the status is written once to its final state; no
 * `Pending` write precedes it, and no pass after it writes again.
 */
import assert from "node:assert/strict";
import type { UnDyingProxy } from "../k8s/undying_proxy_types.ts";
import type { CustomObject } from "../lib/kube/resources.ts";
import { UNDYING_PROXIES } from "../lib/kube/resources.ts";
import { abortableDelay } from "../lib/util/abortable_delay.ts";
import { type ControlPlane, integrationTest } from "./_support/control_plane.ts";
import { clientFor } from "./_support/kube_clients.ts";
import { startTcpEcho } from "./_support/net_tcp.ts";
import {
  applySample,
  nextFreePort,
  NO_MANAGED_SERVICES,
  operatorKubeconfig,
  readyCondition,
  waitForProxy,
  withOperator,
} from "./_support/operator.ts";

/** How long the object must stay unwritten after it turned Ready (3 resync-free seconds). */
const QUIET_MS = 3_000;

/** Requests the API server has served on the `status` subresource of UnDyingProxies, by verb. */
async function statusRequests(cp: ControlPlane): Promise<Record<string, number>> {
  const metrics = await cp.kubectlOk(["get", "--raw", "/metrics"]);
  const counts: Record<string, number> = {};
  for (const line of metrics.split("\n")) {
    if (!line.startsWith("apiserver_request_total{")) continue;
    if (!line.includes('resource="undyingproxies"') || !line.includes('subresource="status"')) {
      continue;
    }
    const verb = /verb="([A-Z]+)"/.exec(line)?.[1] ?? "?";
    counts[verb] = (counts[verb] ?? 0) + Number(line.slice(line.lastIndexOf(" ") + 1));
  }
  return counts;
}

integrationTest(
  "operator: a new object's status is written once, straight to Listening",
  async (cp) => {
    const ns = await cp.createNamespace("op-writes");
    const kubeconfig = await operatorKubeconfig(cp, ns);
    await using target = startTcpEcho();
    const port = nextFreePort();
    // The default engines (splice TCP, batched UDP) bind in their threads: the pass waits for them.
    const args = NO_MANAGED_SERVICES;
    await withOperator({ kubeconfig, namespace: ns, args }, async () => {
      using client = await clientFor(cp.adminKubeconfigPath);
      const stop = new AbortController();
      /** One entry per status change seen: the Ready reason and each replica's TCP state. */
      const written: string[] = [];
      let last: string | undefined;
      const watching = (async () => {
        for await (
          const event of client.watch<CustomObject>(UNDYING_PROXIES, {
            namespace: ns,
            signal: stop.signal,
          })
        ) {
          if (event.type !== "ADDED" && event.type !== "MODIFIED") continue;
          const status = (event.object as UnDyingProxy).status;
          if (status === undefined || JSON.stringify(status) === last) continue;
          last = JSON.stringify(status);
          const states = status.replicas?.map((r) => `${r.name}:${r.tcp?.state}`).join(",");
          written.push(`${readyCondition(event.object as UnDyingProxy)?.reason} ${states}`);
        }
      })().catch((error) => {
        if (!stop.signal.aborted) throw error;
      });
      await abortableDelay(500); // the watch is open before the object exists
      const before = await statusRequests(cp);
      await applySample(cp, ns, "tcp.yaml", {
        name: "counted",
        tcp: { listenPort: port, targetPort: target.port },
      });
      await waitForProxy(
        cp,
        ns,
        "counted",
        "Ready",
        (o) => readyCondition(o)?.status === "True",
      );
      await abortableDelay(QUIET_MS);
      stop.abort();
      await watching;
      const after = await statusRequests(cp);
      const requests = Object.entries(after).map(([verb, n]) =>
        `${verb} ${n - (before[verb] ?? 0)}`
      );
      assert.deepEqual(written, ["Listening op-a:Listening"], `status changes: ${written}`);
      assert.deepEqual(requests, ["APPLY 1"], `status requests: ${requests}`);
    });
  },
);
