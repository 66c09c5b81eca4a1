/**
 * End to end: the API server goes away and comes back while the operator runs. Forwarding goes on
 * while it is down; a replica started meanwhile stays unready until its first list; afterwards the
 * watches resume and every change made after the restart is applied (nothing is lost). A watch
 * gap with etcd compacted in between (410 Gone on resume) ends in a re-list and the same converged
 * state, including an object deleted unseen.
 */
import assert from "node:assert/strict";
import { controlPlaneTest, integrationTest, startControlPlane } from "./_support/control_plane.ts";
import { startTcpEcho } from "./_support/net_tcp.ts";
import {
  applySample,
  createManagedService,
  deleteProxy,
  getProxy,
  nextFreePort,
  NO_MANAGED_SERVICES,
  operatorKubeconfig,
  patchObject,
  reaches,
  servicePorts,
  startOperator,
  tcpEchoes,
  waitForReason,
  waitReady,
  withOperator,
} from "./_support/operator.ts";
import { waitUntil } from "./_support/wait.ts";

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
  await withOperator({
    kubeconfig,
    namespace: ns,
    args: NO_MANAGED_SERVICES,
  }, async (operator) => {
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
    // Ready needs one listening replica; each replica's watch resumes after its own backoff.
    for (const hostname of ["127.0.0.2", "127.0.0.3"]) {
      await waitUntil(
        `beta forwarding on ${hostname}`,
        async () => (await reaches(portB, second, hostname).catch(() => false)) ? true : undefined,
        { timeoutMs: 90_000 },
      );
    }
    await patchObject(cp, ns, "undyingproxy", "alpha", {
      spec: { tcp: { targetPort: second.port } },
    });
    await waitUntil(
      "alpha retargeted",
      async () => (await reaches(portA, second)) ? true : undefined,
    );
    await deleteProxy(cp, ns, "beta");
    assert.ok(await operator.isReady());
    assert.equal(await late.stop(), 0);
  });
});

integrationTest(
  "operator: a watch gap across an etcd compaction (410) re-lists and converges",
  async (cp) => {
    const ns = await cp.createNamespace("op-gap");
    const kubeconfig = await operatorKubeconfig(cp, ns);
    await createManagedService(cp, ns, "undying-proxy-tcp", "TCP");
    await using first = startTcpEcho();
    await using second = startTcpEcho();
    const [keptPort, doomedPort, newPort] = [nextFreePort(), nextFreePort(), nextFreePort()];
    const apply = (name: string, listenPort: number) =>
      applySample(cp, ns, "tcp.yaml", { name, tcp: { listenPort, targetPort: first.port } });
    await apply("kept", keptPort);
    await apply("doomed", doomedPort);
    const portNames = async () =>
      (await servicePorts(cp, ns, "undying-proxy-tcp")).map((p) => p.name).sort().join(",");
    await withOperator({
      kubeconfig,
      namespace: ns,
      args: ["--udp-service-to-manage="],
    }, async (operator) => {
      await waitForReason(cp, ns, "doomed", "Listening");
      assert.ok(await tcpEchoes("127.0.0.2", doomedPort));
      await waitUntil(
        "both ports in the Service",
        async () => (await portNames()) === "doomed,kept,placeholder" ? true : undefined,
      );

      // The operator sees nothing while it is frozen: the restart ends its watches (with no event
      // pending in them), then an object goes (its finalizer removed by hand), one comes, one is
      // retargeted, and etcd is compacted past all of it: the resumed watches get 410 Gone.
      operator.pause();
      try {
        await cp.restartApiServer();
        await cp.kubectlOk(["delete", "undyingproxy", "doomed", "-n", ns, "--wait=false"]);
        await patchObject(cp, ns, "undyingproxy", "doomed", [{
          op: "remove",
          path: "/metadata/finalizers",
        }]);
        assert.equal(await getProxy(cp, ns, "doomed"), undefined);
        await apply("newcomer", newPort);
        await patchObject(cp, ns, "undyingproxy", "kept", {
          spec: { tcp: { targetPort: second.port } },
        });
        await cp.compactEtcd();
      } finally {
        operator.resume();
      }

      await waitForReason(cp, ns, "newcomer", "Listening", 90_000);
      assert.ok(await tcpEchoes("127.0.0.2", newPort));
      await waitUntil(
        "the port of the object deleted unseen closed",
        async () => (await tcpEchoes("127.0.0.2", doomedPort)) ? undefined : true,
      );
      await waitUntil(
        "kept retargeted",
        async () => (await reaches(keptPort, second)) || undefined,
      );
      await waitUntil(
        "the Service converged",
        async () => (await portNames()) === "kept,newcomer,placeholder" ? true : undefined,
      );
      assert.match(operator.output(), /undyingproxies watch expired/);
      assert.ok(await operator.isReady());
    });
  },
  { restartsControlPlane: true },
);
