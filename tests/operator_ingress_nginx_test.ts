/**
 * End to end: ingress-nginx's `tcp-services` / `udp-services` ConfigMaps as they are, read by the
 * real operator under the shipped RBAC (`k8s/rbac/` + `k8s/ingress-nginx/`). Service names resolve
 * through a private `/etc/hosts` (the program runs in its own mount namespace) to loopback targets.
 */
import assert from "node:assert/strict";
import type { ConfigMap, Service } from "kubernetes-types/core/v1.d.ts";
import { type ControlPlane, integrationTest } from "./_support/control_plane.ts";
import { renderKustomization } from "./_support/kustomize.ts";
import { readExactly, startTcpEcho, startTcpServer, writeAll } from "./_support/net_tcp.ts";
import { startUdpEcho } from "./_support/net_udp.ts";
import {
  applySample,
  createManagedService,
  explainFailure,
  nextFreePort,
  NO_MANAGED_SERVICES,
  operatorKubeconfig,
  type OperatorProcess,
  servicePorts,
  startOperator,
  tcpEchoes,
  udpEchoes,
  waitForEvents,
  waitForReason,
  waitReady,
} from "./_support/operator.ts";
import { waitUntil } from "./_support/wait.ts";

const LISTEN = "127.0.0.2";

/** Applies the shipped ConfigMap RBAC for ConfigMaps in `cmNamespace` and an operator in `opNamespace`. */
async function grantConfigMaps(cp: ControlPlane, cmNamespace: string, opNamespace: string) {
  const rendered = (await renderKustomization("k8s/ingress-nginx", { namespace: cmNamespace }))
    .replaceAll("namespace: undying-proxy", `namespace: ${opNamespace}`)
    .replaceAll(
      "name: undying-proxy-service-reader",
      `name: undying-proxy-service-reader-${opNamespace}`,
    );
  await cp.kubectlOk(["apply", "-f", "-"], { stdin: rendered });
}

async function applyConfigMap(
  cp: ControlPlane,
  namespace: string,
  name: string,
  data: Record<string, string>,
): Promise<void> {
  const configMap: ConfigMap = {
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: { name, namespace },
    data,
  };
  await cp.kubectlOk(["apply", "-f", "-"], { stdin: JSON.stringify(configMap) });
}

async function applyService(
  cp: ControlPlane,
  namespace: string,
  name: string,
  ports: { name: string; port: number; protocol: "TCP" | "UDP" }[],
) {
  const service: Service = {
    apiVersion: "v1",
    kind: "Service",
    metadata: { name, namespace },
    spec: { ports: ports.map((p) => ({ ...p, targetPort: p.port })) },
  };
  await cp.kubectlOk(["apply", "-f", "-"], { stdin: JSON.stringify(service) });
}

async function hostsFile(names: Record<string, string>): Promise<string> {
  const path = await Deno.makeTempFile({ prefix: "undying-proxy-hosts-" });
  const lines = [
    "127.0.0.1 localhost",
    ...Object.entries(names).map(([name, ip]) => `${ip} ${name}`),
  ];
  await Deno.writeTextFile(path, `${lines.join("\n")}\n`);
  return path;
}

/** Starts the operator reading both ConfigMaps of `cmNs`, seeing `hosts` as /etc/hosts. */
function startConfigMapOperator(
  setup: { kubeconfig: string; op: string; cmNs: string; hosts: string },
  args: readonly string[] = [],
): Promise<OperatorProcess> {
  return startOperator({
    kubeconfig: setup.kubeconfig,
    namespace: setup.op,
    replica: "op-a",
    listenAddress: LISTEN,
    hostsFile: setup.hosts,
    args: [
      ...args,
      `--tcp-services-configmap=${setup.cmNs}/tcp-services`,
      `--udp-services-configmap=${setup.cmNs}/udp-services`,
    ],
  });
}

function waitEchoes(protocol: "TCP" | "UDP", port: number, expected = true): Promise<true> {
  return waitUntil(
    `${protocol} ${LISTEN}:${port} ${expected ? "forwards" : "is closed"}`,
    async () => {
      const echoes = protocol === "TCP"
        ? await tcpEchoes(LISTEN, port)
        : await udpEchoes(LISTEN, port, "ping", 500);
      return echoes === expected ? true : undefined;
    },
    { timeoutMs: 30_000, intervalMs: 250 },
  );
}

async function errorCount(operator: OperatorProcess, type: string): Promise<number> {
  const { series } = await operator.metrics();
  let sum = 0;
  for (const [name, value] of series) {
    if (
      name.startsWith("undying_proxy_operator_errors_total{") && name.includes(`type="${type}"`)
    ) sum += value;
  }
  return sum;
}

integrationTest(
  "ingress-nginx: the documented example ConfigMaps forward as they are",
  async (cp) => {
    const op = await cp.createNamespace("op-nginx-doc");
    const cmNs = await cp.createNamespace("ingress-nginx");
    const kubeconfig = await operatorKubeconfig(cp, op);
    await grantConfigMaps(cp, cmNs, op);
    // Exactly the values of ingress-nginx's "Exposing TCP and UDP services" page.
    await applyConfigMap(cp, cmNs, "tcp-services", { "9000": "default/example-go:8080" });
    await applyConfigMap(cp, cmNs, "udp-services", { "53": "kube-system/kube-dns:53" });
    await using tcpTarget = startTcpEcho({ hostname: "127.0.0.6", port: 8080 });
    await using udpTarget = startUdpEcho({ hostname: "127.0.0.6", port: 53 });
    const hosts = await hostsFile({
      "example-go.default.svc.cluster.local": "127.0.0.6",
      "kube-dns.kube-system.svc.cluster.local": "127.0.0.6",
    });
    await using operator = await startConfigMapOperator(
      { kubeconfig, op, cmNs, hosts },
      NO_MANAGED_SERVICES,
    );
    await explainFailure([operator], async () => {
      await waitReady(operator);
      await waitEchoes("TCP", 9000);
      await waitEchoes("UDP", 53);
      assert.ok(tcpTarget.accepted > 0 && udpTarget.received > 0);
    });
    assert.equal(await operator.stop(), 0);
    await Deno.remove(hosts);
  },
);

integrationTest(
  "ingress-nginx: 50 mixed ports, named ports, edits, a bad entry, objects win a port",
  async (cp) => {
    const op = await cp.createNamespace("op-nginx");
    const cmNs = await cp.createNamespace("ingress-nginx");
    const apps = await cp.createNamespace("games");
    const kubeconfig = await operatorKubeconfig(cp, op);
    await grantConfigMaps(cp, cmNs, op);
    await createManagedService(cp, op, "undying-proxy-tcp", "TCP");
    await createManagedService(cp, op, "undying-proxy-udp", "UDP");
    await using tcpTarget = startTcpEcho({ hostname: "127.0.0.7" });
    await using udpTarget = startUdpEcho({ hostname: "127.0.0.7" });
    await using movedTarget = startTcpEcho({ hostname: "127.0.0.7" });
    const names: Record<string, string> = {};
    const tcp: Record<string, string> = {};
    const udp: Record<string, string> = {};
    const tcpPorts: number[] = [];
    const udpPorts: number[] = [];
    for (let i = 0; i < 50; i++) {
      const port = nextFreePort();
      const named = i % 5 === 0;
      const service = named ? `named-${i}` : `svc-${i}`;
      names[`${service}.${apps}.svc.cluster.local`] = "127.0.0.7";
      const protocol = i < 30 ? "TCP" : "UDP";
      const target = protocol === "TCP" ? tcpTarget.port : udpTarget.port;
      if (named) await applyService(cp, apps, service, [{ name: "game", port: target, protocol }]);
      (protocol === "TCP" ? tcp : udp)[String(port)] = `${apps}/${service}:${
        named ? "game" : target
      }`;
      (protocol === "TCP" ? tcpPorts : udpPorts).push(port);
    }
    // An object already claims one more port that an entry also wants: the object wins.
    const contested = nextFreePort();
    await applySample(cp, op, "tcp.yaml", {
      name: "owner",
      tcp: { listenPort: contested, targetPort: tcpTarget.port },
    });
    tcp[String(contested)] = `${apps}/svc-1:${tcpTarget.port}`;
    tcp["not-a-port"] = `${apps}/svc-1:80`;
    // ":PROXY:PROXY": read the load balancer's header, send one (v1) to the target.
    const proxied = nextFreePort();
    const received: string[] = [];
    await using proxyTarget = startTcpServer(async (conn) => {
      const buffer = new Uint8Array(4096);
      let text = "";
      while (!text.endsWith("ping")) {
        const n = await conn.read(buffer);
        if (n === null) break;
        text += new TextDecoder().decode(buffer.subarray(0, n));
      }
      received.push(text);
      await writeAll(conn, new TextEncoder().encode("pong"));
    }, { hostname: "127.0.0.7" });
    tcp[String(proxied)] = `${apps}/svc-proxied:${proxyTarget.port}:PROXY:PROXY`;
    names[`svc-proxied.${apps}.svc.cluster.local`] = "127.0.0.7";
    await applyConfigMap(cp, cmNs, "tcp-services", tcp);
    await applyConfigMap(cp, cmNs, "udp-services", udp);
    const hosts = await hostsFile(names);
    await using operator = await startConfigMapOperator({ kubeconfig, op, cmNs, hosts });
    await explainFailure([operator], async () => {
      await waitReady(operator);
      for (const port of tcpPorts) await waitEchoes("TCP", port);
      for (const port of udpPorts) await waitEchoes("UDP", port);
      // The client address the load balancer carried reaches the target in our header.
      const lb = await waitUntil("the PROXY entry listening", async () => {
        try {
          return await Deno.connect({ hostname: LISTEN, port: proxied });
        } catch {
          return undefined;
        }
      });
      await writeAll(
        lb,
        new TextEncoder().encode(`PROXY TCP4 203.0.113.7 ${LISTEN} 40000 ${proxied}\r\nping`),
      );
      assert.equal(new TextDecoder().decode(await readExactly(lb, 4)), "pong");
      lb.close();
      assert.match(received[0] ?? "", /^PROXY TCP4 203\.0\.113\.7 \S+ 40000 \d+\r\nping$/);
      await waitForReason(cp, op, "owner", "Listening");
      await waitForEvents(cp, cmNs, "tcp-services", ["InvalidEntry", "PortConflict"]);
      assert.ok(await errorCount(operator, "InvalidConfigMapEntry") >= 1);

      // The managed Services carry every forwarded port.
      await waitUntil("managed Services carry the entries' ports", async () => {
        const tcpService = (await servicePorts(cp, op, "undying-proxy-tcp")).map((p) => p.port);
        const udpService = (await servicePorts(cp, op, "undying-proxy-udp")).map((p) => p.port);
        return tcpPorts.every((p) => tcpService.includes(p)) && udpPorts.every((p) =>
            udpService.includes(p)
          ) &&
            tcpService.includes(contested)
          ? true
          : undefined;
      }, { timeoutMs: 30_000 });

      // A live connection on an unchanged port survives an edit that moves, adds and removes others.
      const live = await Deno.connect({ hostname: LISTEN, port: tcpPorts[1]! });
      await writeAll(live, new TextEncoder().encode("a"));
      await readExactly(live, 1);
      const [moved, removed] = [tcpPorts[2]!, tcpPorts[3]!];
      const added = nextFreePort();
      const edited = {
        ...tcp,
        [String(moved)]: `${apps}/svc-2:${movedTarget.port}`,
        [String(added)]: `${apps}/svc-4:${tcpTarget.port}`,
      };
      delete edited[String(removed)];
      await applyConfigMap(cp, cmNs, "tcp-services", edited);
      await waitEchoes("TCP", added);
      await waitEchoes("TCP", removed, false);
      await waitUntil("the moved port reaches its new target", async () => {
        const before = movedTarget.accepted;
        return await tcpEchoes(LISTEN, moved) && movedTarget.accepted > before ? true : undefined;
      }, { timeoutMs: 30_000 });
      await writeAll(live, new TextEncoder().encode("b"));
      assert.equal(new TextDecoder().decode(await readExactly(live, 1)), "b");
      live.close();
      for (const port of udpPorts) {
        assert.ok(await udpEchoes(LISTEN, port), `UDP ${port} still forwards`);
      }
    });
    assert.equal(await operator.stop(), 0);
    await Deno.remove(hosts);
  },
);
