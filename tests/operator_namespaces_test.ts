/**
 * End to end: all-namespaces mode with the shipped cluster RBAC (`k8s/rbac-cluster/`): objects of
 * the same name in two namespaces both forward and get distinct ports in the one managed Service;
 * a managed Service that does not exist is reported on the object and never blocks its deletion.
 * A list of namespaces with the documented per-namespace RoleBindings: only those are served (a
 * namespace without the binding keeps the operator unready and is counted as FailedFetch), one
 * Service named by both flags carries both protocols, and removing a protocol live stops only it.
 */
import assert from "node:assert/strict";
import { integrationTest } from "./_support/control_plane.ts";
import { renderKustomization, repoRoot } from "./_support/kustomize.ts";
import { readExactly, startTcpEcho, writeAll } from "./_support/net_tcp.ts";
import { startUdpEcho } from "./_support/net_udp.ts";
import {
  applySample,
  createManagedService,
  deleteProxy,
  getProxy,
  nextFreePort,
  NO_MANAGED_SERVICES,
  operatorKubeconfig,
  patchObject,
  readyCondition,
  servicePorts,
  startOperator,
  tcpEchoes,
  udpEchoes,
  waitForEvents,
  waitForReason,
  withOperator,
} from "./_support/operator.ts";
import { waitUntil } from "./_support/wait.ts";

integrationTest(
  "operator: all namespaces, one Service for same-named objects; a missing Service never blocks delete",
  async (cp) => {
    const ns = await cp.createNamespace("op-home");
    const apps = [await cp.createNamespace("op-app"), await cp.createNamespace("op-app")];
    const kubeconfig = await cp.kubeconfigForServiceAccount(ns, "undying-proxy");
    await cp.kubectlOk(["apply", "-f", "-"], {
      stdin: await renderKustomization("k8s/rbac-cluster", { namespace: ns }),
    });
    await createManagedService(cp, ns, "undying-proxy-tcp", "TCP");
    await using target = startTcpEcho();
    await using udpTarget = startUdpEcho();
    const ports = [nextFreePort(), nextFreePort()];
    for (const [i, app] of apps.entries()) {
      await applySample(cp, app, "tcp.yaml", {
        name: "same",
        tcp: { listenPort: ports[i] ?? 0, targetPort: target.port },
      });
    }
    const app0 = apps[0] ?? "";
    await applySample(cp, app0, "udp.yaml", {
      name: "no-service",
      udp: { listenPort: nextFreePort(), targetPort: udpTarget.port },
    });

    await withOperator({
      kubeconfig,
      namespace: ns,
      args: ["--watch-namespaces=*", "--udp-service-to-manage=missing-udp"],
    }, async () => {
      for (const port of ports) {
        const conn = await Deno.connect({ hostname: "127.0.0.2", port });
        try {
          await writeAll(conn, new TextEncoder().encode("hi"));
          assert.equal(new TextDecoder().decode(await readExactly(conn, 2)), "hi");
        } finally {
          conn.close();
        }
      }
      const servicePortList = await waitUntil("two ports in the Service", async () => {
        const list = await servicePorts(cp, ns, "undying-proxy-tcp");
        return list.length === 3 ? list : undefined;
      });
      const names = servicePortList.map((p) => p.name ?? "");
      assert.equal(new Set(names).size, 3, names.join(","));
      assert.deepEqual(servicePortList.map((p) => p.port).sort(), [1, ...ports].sort());
      for (const name of names.slice(1)) assert.match(name, /^op-app-.*-[0-9a-f]{8}$/);
      for (const app of apps) {
        await waitForReason(cp, app, "same", "Listening");
      }

      const failing = await waitForReason(cp, app0, "no-service", "ServicePortFailed");
      assert.match(readyCondition(failing)?.message ?? "", /missing-udp not found/);
      await waitForEvents(cp, app0, "no-service", ["ServicePortFailed"]);
      await deleteProxy(cp, app0, "no-service");
    });
  },
);

integrationTest(
  "operator: a list of namespaces (RoleBinding each) and one Service named by both flags",
  async (cp) => {
    const ns = await cp.createNamespace("op-list");
    const [a, b, unwatched] = [
      await cp.createNamespace("op-list-a"),
      await cp.createNamespace("op-list-b"),
      await cp.createNamespace("op-list-c"),
    ];
    const kubeconfig = await operatorKubeconfig(cp, ns);
    // The documented recipe: the ClusterRole, bound by a RoleBinding in each watched namespace.
    await cp.kubectlOk(["apply", "-f", `${repoRoot}k8s/rbac-cluster/cluster_role.yaml`]);
    for (const watched of [a, b]) {
      await cp.kubectlOk([
        "create",
        "rolebinding",
        "undying-proxy",
        "-n",
        watched,
        "--clusterrole=undying-proxy",
        `--serviceaccount=${ns}:undying-proxy`,
      ]);
    }
    await createManagedService(cp, ns, "undying-proxy", "TCP");
    await using tcpTarget = startTcpEcho();
    await using udpTarget = startUdpEcho();
    const gamePort = nextFreePort();
    const dnsPort = nextFreePort();
    const ignoredPort = nextFreePort();
    await applySample(cp, a, "game_server.yaml", {
      name: "game",
      tcp: { listenPort: gamePort, targetPort: tcpTarget.port },
      udp: { listenPort: gamePort, targetPort: udpTarget.port },
    });
    await applySample(cp, b, "udp.yaml", {
      name: "dns",
      udp: { listenPort: dnsPort, targetPort: udpTarget.port },
    });
    await applySample(cp, unwatched, "tcp.yaml", {
      name: "ignored",
      tcp: { listenPort: ignoredPort, targetPort: tcpTarget.port },
    });

    // A watched namespace without the RoleBinding: never ready, the failure counted and logged.
    {
      await using blind = await startOperator({
        kubeconfig,
        namespace: ns,
        replica: "blind",
        listenAddress: "127.0.0.3",
        args: [`--watch-namespaces=${a},${unwatched}`, ...NO_MANAGED_SERVICES],
      });
      const failedFetch = async () =>
        (await blind.metrics()).series.get(
          'undying_proxy_operator_errors_total{type="FailedFetch"}',
        );
      await waitUntil(
        "FailedFetch counted",
        async () => ((await failedFetch()) ?? 0) >= 1 || undefined,
      );
      assert.equal(await blind.readyzStatus(), 503);
      assert.match(
        blind.output(),
        new RegExp(`namespaces/${unwatched}/undyingproxies.*forbidden`, "i"),
      );
      assert.equal(
        await tcpEchoes("127.0.0.3", gamePort),
        false,
        "nothing applied before a full list",
      );
      assert.equal(await blind.stop(), 0);
    }

    await withOperator({
      kubeconfig,
      namespace: ns,
      args: [
        `--watch-namespaces=${a},${b}`,
        "--tcp-service-to-manage=undying-proxy",
        "--udp-service-to-manage=undying-proxy",
      ],
    }, async () => {
      await waitForReason(cp, a, "game", "Listening");
      await waitForReason(cp, b, "dns", "Listening");
      assert.ok(await tcpEchoes("127.0.0.2", gamePort));
      assert.ok(await udpEchoes("127.0.0.2", gamePort));
      assert.ok(await udpEchoes("127.0.0.2", dnsPort));
      // The namespace not in the list: not served, not touched.
      assert.equal(await tcpEchoes("127.0.0.2", ignoredPort), false);
      const ignored = await getProxy(cp, unwatched, "ignored");
      assert.equal(ignored?.metadata.finalizers, undefined);
      assert.equal(ignored?.status, undefined);

      // One Service, both protocols: the same port number once per protocol, placeholder kept.
      const byProtocol = (ports: Awaited<ReturnType<typeof servicePorts>>) =>
        ports.map((p) => `${p.protocol}/${p.port}/${p.targetPort}`).sort();
      const expected = [
        "TCP/1/1",
        `TCP/${gamePort}/${gamePort}`,
        `UDP/${dnsPort}/${dnsPort}`,
        `UDP/${gamePort}/${gamePort}`,
      ];
      await waitUntil("both protocols in the one Service", async () => {
        const ports = await servicePorts(cp, ns, "undying-proxy");
        return JSON.stringify(byProtocol(ports)) === JSON.stringify(expected.sort())
          ? true
          : undefined;
      });
      const names = (await servicePorts(cp, ns, "undying-proxy")).map((p) => p.name ?? "");
      assert.equal(new Set(names).size, 4, names.join(","));
      // Both protocols in one Service: the names carry the protocol (the Go layout's bare names
      // would collide).
      for (const name of names.filter((n) => n !== "placeholder")) {
        assert.match(name, /^(tcp|udp)-/, names.join(","));
      }

      // Removing the UDP part live stops only UDP and takes only its Service port out.
      await patchObject(cp, a, "undyingproxy", "game", [{ op: "remove", path: "/spec/udp" }]);
      await waitUntil("game's UDP part gone", async () => {
        const ports = byProtocol(await servicePorts(cp, ns, "undying-proxy"));
        return !ports.includes(`UDP/${gamePort}/${gamePort}`) ? true : undefined;
      });
      await waitUntil(
        "game's UDP port closed",
        async () => (await udpEchoes("127.0.0.2", gamePort, "x", 500)) ? undefined : true,
      );
      assert.ok(await tcpEchoes("127.0.0.2", gamePort));
      assert.ok(await udpEchoes("127.0.0.2", dnsPort));

      // Deleting the object takes its remaining port out, and nothing else.
      await deleteProxy(cp, a, "game");
      await waitUntil("only the placeholder and dns left", async () => {
        const ports = byProtocol(await servicePorts(cp, ns, "undying-proxy"));
        return JSON.stringify(ports) === JSON.stringify(["TCP/1/1", `UDP/${dnsPort}/${dnsPort}`])
          ? true
          : undefined;
      });
      assert.equal(await tcpEchoes("127.0.0.2", gamePort), false);
    });
  },
);
