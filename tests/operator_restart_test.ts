/**
 * End to end: the API server goes away and comes back while the operator runs. Forwarding goes on
 * while it is down; a replica started meanwhile stays unready until its first list; afterwards the
 * watches resume and every change made after the restart is applied (nothing is lost).
 */
import assert from "node:assert/strict";
import { controlPlaneTest, startControlPlane } from "./_support/control_plane.ts";
import { readExactly, startTcpEcho, writeAll } from "./_support/net_tcp.ts";
import {
  applySample,
  explainFailure,
  getProxy,
  nextFreePort,
  NO_MANAGED_SERVICES,
  operatorKubeconfig,
  startOperator,
  waitForReason,
  waitReady,
} from "./_support/operator.ts";
import { waitUntil } from "./_support/_wait_until.ts";

const encoder = new TextEncoder();

async function reaches(
  port: number,
  target: { accepted: number },
  hostname = "127.0.0.2",
): Promise<boolean> {
  const before = target.accepted;
  const conn = await Deno.connect({ hostname, port });
  try {
    await writeAll(conn, encoder.encode("x"));
    await readExactly(conn, 1);
  } finally {
    conn.close();
  }
  return target.accepted > before;
}

controlPlaneTest("operator: an API server restart mid-run loses nothing", async () => {
  await using cp = await startControlPlane();
  const ns = await cp.createNamespace("op-restart");
  const kubeconfig = await operatorKubeconfig(cp, ns);
  await using first = startTcpEcho();
  await using second = startTcpEcho();
  const portA = nextFreePort();
  const portB = nextFreePort();
  await applySample(cp, ns, "tcp.yaml", {
    name: "alpha",
    tcp: { listenPort: portA, targetPort: first.port },
  });
  await using operator = await startOperator({
    kubeconfig,
    namespace: ns,
    replica: "op-a",
    args: NO_MANAGED_SERVICES,
  });
  await explainFailure([operator], async () => {
    await waitReady(operator);
    assert.ok(await reaches(portA, first));

    await cp.stopApiServer();
    assert.ok(await reaches(portA, first), "forwarding goes on while the API server is down");
    // A replica starting now cannot list the objects: it must not report ready until it has.
    await using late = await startOperator({
      kubeconfig,
      namespace: ns,
      replica: "op-b",
      listenAddress: "127.0.0.3",
      args: NO_MANAGED_SERVICES,
    });
    await waitUntil(
      "op-b answering /readyz with 503",
      async () => (await late.readyzStatus()) === 503 ? true : undefined,
    );
    await cp.startApiServer();
    await waitReady(late, 90_000);
    assert.ok(await reaches(portA, first, "127.0.0.3"), "op-b forwards after its first list");

    // Changes after the restart: a new object, a retarget, then a delete.
    await applySample(cp, ns, "tcp.yaml", {
      name: "beta",
      tcp: { listenPort: portB, targetPort: second.port },
    });
    await waitForReason(cp, ns, "beta", "Listening", 90_000);
    assert.ok(await reaches(portB, second));
    await cp.kubectlOk([
      "patch",
      "undyingproxy",
      "alpha",
      "-n",
      ns,
      "--type=merge",
      "-p",
      JSON.stringify({ spec: { tcp: { targetPort: second.port } } }),
    ]);
    await waitUntil(
      "alpha retargeted",
      async () => (await reaches(portA, second)) ? true : undefined,
    );
    await cp.kubectlOk(["delete", "undyingproxy", "beta", "-n", ns, "--wait=false"]);
    await waitUntil(
      "beta gone",
      async () => (await getProxy(cp, ns, "beta")) === undefined ? true : undefined,
    );
    assert.ok(await operator.isReady());
    assert.equal(await late.stop(), 0);
  });
  assert.equal(await operator.stop(), 0);
});
