/**
 * End to end: two operator processes on different loopback addresses both forward and both report
 * status (one field manager each, Ready steady); a delete closes the port on both; killing one
 * leaves the other serving, a delete is not held up by the dead one for longer than its entry takes
 * to go stale, and its entry is removed; a clean shutdown withdraws the entry at once.
 */
import assert from "node:assert/strict";
import { integrationTest } from "./_support/control_plane.ts";
import { startTcpEcho } from "./_support/net_tcp.ts";
import {
  applySample,
  createManagedService,
  deleteProxy,
  explainFailure,
  getProxy,
  nextFreePort,
  operatorKubeconfig,
  readyCondition,
  servicePorts,
  startOperator,
  tcpEchoes,
  waitForProxy,
  waitReady,
} from "./_support/operator.ts";
import { waitUntil } from "./_support/wait.ts";

integrationTest(
  "operator: two replicas both forward and report; a killed one's entry goes stale and is removed",
  async (cp) => {
    const ns = await cp.createNamespace("op-replicas");
    const kubeconfig = await operatorKubeconfig(cp, ns);
    await using target = startTcpEcho();
    const port = nextFreePort();
    const doomedPort = nextFreePort();
    const orphanedPort = nextFreePort();
    await applySample(cp, ns, "tcp.yaml", {
      name: "shared",
      tcp: { listenPort: port, targetPort: target.port },
    });
    await createManagedService(cp, ns, "undying-proxy-tcp", "TCP");
    const common = {
      kubeconfig,
      namespace: ns,
      // Both replicas keep the same TCP Service (conflicting writes are re-planned).
      args: ["--udp-service-to-manage=", "--status-heartbeat=1s"],
    };
    await using a = await startOperator({
      ...common,
      replica: "replica-a",
      listenAddress: "127.0.0.2",
    });
    await using b = await startOperator({
      ...common,
      replica: "replica-b",
      listenAddress: "127.0.0.3",
    });
    await explainFailure([a, b], async () => {
      await waitReady(a);
      await waitReady(b);
      assert.ok(await tcpEchoes("127.0.0.2", port));
      assert.ok(await tcpEchoes("127.0.0.3", port));
      const both = await waitForProxy(
        cp,
        ns,
        "shared",
        "both replicas listening",
        (o) => o.status?.listening === "2/2" && readyCondition(o)?.status === "True",
      );
      assert.deepEqual(both.status?.replicas?.map((r) => [r.name, r.tcp?.state]).sort(), [
        ["replica-a", "Listening"],
        ["replica-b", "Listening"],
      ]);

      // Two writers, one Service: exactly one port for the object, the placeholder kept.
      await waitUntil("the object's port in the Service", async () => {
        const ports = await servicePorts(cp, ns, "undying-proxy-tcp");
        return ports.some((p) => p.name === "shared") ? true : undefined;
      });
      assert.deepEqual(
        (await servicePorts(cp, ns, "undying-proxy-tcp")).map((p) => [p.name, p.port]),
        [["placeholder", 1], ["shared", port]],
      );

      // One field manager per replica, on the status subresource.
      const managed = JSON.parse(
        await cp.kubectlOk(["get", "undp", "shared", "-n", ns, "-o=json", "--show-managed-fields"]),
      ) as { metadata: { managedFields?: { manager?: string; subresource?: string }[] } };
      const statusManagers = (managed.metadata.managedFields ?? [])
        .filter((f) => f.subresource === "status").map((f) => f.manager).sort();
      assert.deepEqual(statusManagers, ["undying-proxy/replica-a", "undying-proxy/replica-b"]);
      // Steady state with two writers (heartbeats every second): Ready never leaves True.
      for (let sample = 0; sample < 12; sample++) {
        const object = await getProxy(cp, ns, "shared");
        assert.ok(object);
        assert.equal(readyCondition(object)?.status, "True", `Ready flapped at sample ${sample}`);
        await new Promise((resolve) => setTimeout(resolve, 250));
      }

      // A delete: every replica stops listening, one releases the finalizer, the port goes.
      for (
        const [name, listenPort] of [["doomed", doomedPort], ["orphaned", orphanedPort]] as const
      ) {
        await applySample(cp, ns, "tcp.yaml", {
          name,
          tcp: { listenPort, targetPort: target.port },
        });
        await waitForProxy(cp, ns, name, `${name} on both`, (o) => o.status?.listening === "2/2");
      }
      assert.ok(await tcpEchoes("127.0.0.2", doomedPort));
      assert.ok(await tcpEchoes("127.0.0.3", doomedPort));
      await deleteProxy(cp, ns, "doomed");
      await waitUntil(
        "doomed closed on both replicas",
        async () =>
          !(await tcpEchoes("127.0.0.2", doomedPort)) && !(await tcpEchoes("127.0.0.3", doomedPort))
            ? true
            : undefined,
      );
      await waitUntil("doomed's Service port removed", async () => {
        const names = (await servicePorts(cp, ns, "undying-proxy-tcp")).map((p) => p.name).sort();
        return names.join(",") === "orphaned,placeholder,shared" ? true : undefined;
      });

      await a.kill();
      assert.ok(await tcpEchoes("127.0.0.3", port), "the surviving replica still forwards");
      // A dead replica's entry still says Listening: the finalizer waits only until it is stale.
      await deleteProxy(cp, ns, "orphaned");
      assert.equal(await tcpEchoes("127.0.0.3", orphanedPort), false);
      const after = await waitForProxy(
        cp,
        ns,
        "shared",
        "stale replica-a removed",
        (o) =>
          o.status?.replicas?.length === 1 && o.status.replicas[0]?.name === "replica-b" &&
          o.status.listening === "1/1" && readyCondition(o)?.status === "True",
      );
      assert.equal(after.status?.ready, true);
      assert.ok(await tcpEchoes("127.0.0.3", port));
    });
    assert.equal(await b.stop(), 0);
    const withdrawn = await getProxy(cp, ns, "shared");
    assert.deepEqual(withdrawn?.status?.replicas ?? [], [], "a clean shutdown withdraws the entry");
  },
);
