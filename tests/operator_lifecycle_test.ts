/**
 * End to end: one operator process (shipped RBAC only) forwards TCP and UDP for objects applied with
 * kubectl, keeps the managed Services' ports, applies spec edits live and cleans up on delete.
 */
import assert from "node:assert/strict";
import { integrationTest } from "./_support/control_plane.ts";
import { readExactly, startTcpEcho, writeAll } from "./_support/net_tcp.ts";
import { startUdpEcho } from "./_support/net_udp.ts";
import {
  applySample,
  createManagedService,
  deleteProxy,
  nextFreePort,
  operatorKubeconfig,
  patchObject,
  readyCondition,
  servicePorts,
  tcpEchoes,
  udpEchoes,
  waitForEvents,
  waitForProxy,
  waitForReason,
  withOperator,
} from "./_support/operator.ts";
import { waitUntil } from "./_support/wait.ts";

const FINALIZER = "undyingproxies.proxy.sfact.io/finalizer";
const encoder = new TextEncoder();
const decoder = new TextDecoder();

async function tcpRefused(hostname: string, port: number): Promise<boolean> {
  try {
    (await Deno.connect({ hostname, port })).close();
    return false;
  } catch {
    return true;
  }
}

integrationTest(
  "operator: kubectl samples forward TCP and UDP, fill the Services, retarget live, clean up on delete",
  async (cp) => {
    const ns = await cp.createNamespace("op-life");
    const kubeconfig = await operatorKubeconfig(cp, ns);
    await createManagedService(cp, ns, "undying-proxy-tcp", "TCP");
    await createManagedService(cp, ns, "undying-proxy-udp", "UDP");
    await using tcpTarget = startTcpEcho();
    await using tcpTarget2 = startTcpEcho();
    await using udpTarget = startUdpEcho();
    const tcpPort = nextFreePort();
    const udpPort = nextFreePort();
    await applySample(cp, ns, "tcp.yaml", {
      name: "git-ssh",
      tcp: { listenPort: tcpPort, targetPort: tcpTarget.port },
    });
    await applySample(cp, ns, "udp.yaml", {
      name: "wireguard",
      udp: { listenPort: udpPort, targetPort: udpTarget.port },
    });
    // An empty spec forwards nothing, yet gets the finalizer and is Ready (as with the Go operator).
    await applySample(cp, ns, "tcp.yaml", { name: "empty" });

    await withOperator({ kubeconfig, namespace: ns }, async () => {
      assert.ok(await tcpEchoes("127.0.0.2", tcpPort, "hello tcp"));
      assert.ok(await udpEchoes("127.0.0.2", udpPort, "hello udp"));

      // Finalizer, status and printer columns.
      const tcpObject = await waitForReason(cp, ns, "git-ssh", "Listening");
      assert.ok(tcpObject.metadata.finalizers?.includes(FINALIZER));
      assert.equal(tcpObject.status?.ready, true);
      assert.equal(tcpObject.status?.listening, "1/1");
      assert.equal(tcpObject.status?.observedGeneration, tcpObject.metadata.generation);
      assert.deepEqual(tcpObject.status?.replicas?.map((r) => [r.name, r.tcp?.state]), [
        ["op-a", "Listening"],
      ]);
      const empty = await waitForReason(cp, ns, "empty", "Listening");
      assert.ok(empty.metadata.finalizers?.includes(FINALIZER));
      assert.deepEqual([empty.status?.ready, readyCondition(empty)?.message], [
        true,
        "nothing to forward",
      ]);
      const table = await cp.kubectlOk(["get", "undyingproxies", "-n", ns]);
      assert.match(
        table,
        new RegExp(`git-ssh\\s+True\\s+${tcpPort}\\s+127\\.0\\.0\\.1:\\d+\\s+1/1`),
      );

      // Service ports: one per object and protocol, placeholder kept.
      const tcpPorts = await waitUntil("TCP Service port", async () => {
        const ports = await servicePorts(cp, ns, "undying-proxy-tcp");
        return ports.some((p) => p.name === "git-ssh") ? ports : undefined;
      });
      assert.deepEqual(tcpPorts.map((p) => [p.name, p.port, p.targetPort, p.protocol]), [
        ["placeholder", 1, 1, "TCP"],
        ["git-ssh", tcpPort, tcpPort, "TCP"],
      ]);
      await waitUntil("UDP Service port", async () => {
        const ports = await servicePorts(cp, ns, "undying-proxy-udp");
        return ports.some((p) =>
            p.name === "wireguard" && p.port === udpPort &&
            p.protocol === "UDP"
          )
          ? true
          : undefined;
      });

      // Written with the Go operator's field manager.
      const managers = JSON.parse(
        await cp.kubectlOk([
          "get",
          "service",
          "undying-proxy-tcp",
          "-n",
          ns,
          "-o=json",
          "--show-managed-fields",
        ]),
      ) as { metadata: { managedFields?: { manager?: string }[] } };
      assert.ok(
        managers.metadata.managedFields?.some((f) => f.manager === "undying-proxy-operator"),
        JSON.stringify(managers.metadata.managedFields?.map((f) => f.manager)),
      );

      // A hand edit removing our port is repaired (the Service is watched).
      await patchObject(cp, ns, "service", "undying-proxy-tcp", [{
        op: "remove",
        path: "/spec/ports/1",
      }]);
      await waitUntil("TCP Service port repaired", async () => {
        const ports = await servicePorts(cp, ns, "undying-proxy-tcp");
        return ports.some((p) => p.name === "git-ssh" && p.port === tcpPort) ? true : undefined;
      });

      // Retarget live: an established connection keeps its old target, new ones get the new one.
      const established = await Deno.connect({ hostname: "127.0.0.2", port: tcpPort });
      try {
        await writeAll(established, encoder.encode("before"));
        assert.equal(decoder.decode(await readExactly(established, 6)), "before");
        await patchObject(cp, ns, "undyingproxy", "git-ssh", {
          spec: { tcp: { targetPort: tcpTarget2.port } },
        });
        await waitUntil("a new connection reaching the new target", async () => {
          await tcpEchoes("127.0.0.2", tcpPort, "probe");
          return tcpTarget2.accepted > 0 ? true : undefined;
        });
        await writeAll(established, encoder.encode("after"));
        assert.equal(decoder.decode(await readExactly(established, 5)), "after");
      } finally {
        established.close();
      }
      await waitForProxy(
        cp,
        ns,
        "git-ssh",
        "status of generation 2",
        (o) =>
          o.status?.observedGeneration === o.metadata.generation &&
          readyCondition(o)?.status === "True" &&
          o.status?.target === `127.0.0.1:${tcpTarget2.port}`,
      );

      // Delete: ports close, Service entries go, the object goes (finalizer released).
      await deleteProxy(cp, ns, "git-ssh");
      await waitUntil(
        "TCP port closed",
        async () => (await tcpRefused("127.0.0.2", tcpPort)) ? true : undefined,
      );
      assert.deepEqual(
        (await servicePorts(cp, ns, "undying-proxy-tcp")).map((p) => p.name),
        [
          "placeholder",
        ],
      );
      // The UDP object is untouched; moving its listen port rebinds and moves its Service port.
      assert.ok(await udpEchoes("127.0.0.2", udpPort, "still"));
      const movedPort = nextFreePort();
      await patchObject(cp, ns, "undyingproxy", "wireguard", {
        spec: { udp: { listenPort: movedPort } },
      });
      await waitUntil("UDP Service port moved", async () => {
        const ports = await servicePorts(cp, ns, "undying-proxy-udp");
        return ports.some((p) => p.name === "wireguard" && p.port === movedPort) &&
            ports.length === 2
          ? true
          : undefined;
      });
      await waitUntil("UDP forwarding on the new port", async () => {
        return (await udpEchoes("127.0.0.2", movedPort, "moved", 1000)) ? true : undefined;
      });
      await waitForEvents(cp, ns, "git-ssh", [
        "Listening",
        "ServicePortAdded",
        "Stopped",
        "ServicePortRemoved",
      ]);
    });
  },
);
