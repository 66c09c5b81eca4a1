/**
 * The drop-in promise, against a real API server: a cluster set up by the Go operator (its CRD,
 * RBAC, Deployment and Services as reconstructed in `tests/go_operator/`, objects it reconciled:
 * finalizer, ports named after the objects, `status.ready`), including a bracketed IPv6 target and
 * zero UDP timeouts. Then the documented swap: our CRD and RBAC applied, the Deployment's image
 * replaced, and this program run with the Deployment's own arguments (only the bind addresses moved
 * to loopback). Everything keeps forwarding, the Services keep their shape and port names, and the
 * metrics dashboards and alerts use are scraped with a token over HTTPS. Then the whole of
 * `k8s/default` over it (an overlay replacing `loadBalancerIP`, as Go users had) and the program with
 * our Deployment's arguments: the same again. Then the rollback: the Go CRD again and the Go
 * operator's Service writes for every object, with no `Duplicate value`.
 */
import assert from "node:assert/strict";
import denoConfig from "../deno.json" with { type: "json" };
import { FLAGS } from "../lib/cli.ts";
import type { Deployment } from "kubernetes-types/apps/v1.d.ts";
import type { Service } from "kubernetes-types/core/v1.d.ts";
import type { UnDyingProxy } from "../k8s/undying_proxy_types.ts";
import {
  type ControlPlane,
  controlPlaneTest,
  startControlPlane,
} from "./_support/control_plane.ts";
import { goManageServicePort, goReconcile } from "./_support/go_operator.ts";
import { renderKustomization, repoRoot } from "./_support/kustomize.ts";
import { startTcpEcho } from "./_support/net_tcp.ts";
import { startUdpEcho } from "./_support/net_udp.ts";
import { parseExposition, type ProgramProcess, startProgram } from "./_support/program.ts";
import { peerCertificate } from "./_support/peer_certificate.ts";
import {
  getProxy,
  nextFreePort,
  tcpEchoes,
  udpEchoes,
  waitForReason,
} from "./_support/operator.ts";
import { waitUntil } from "./_support/wait.ts";

const GO = `${repoRoot}tests/go_operator/`;
const SERVICES = ["undying-proxy-tcp", "undying-proxy-udp"] as const;
const PLACEHOLDERS = ["any-port", "lowest-port", "highest-port"];

/** The Go operator's ten metrics and their types. */
const GO_METRICS: Record<string, string> = {
  undying_proxy_tcp_forwarders: "gauge",
  undying_proxy_tcp_from_clients_to_target_bytes_total: "counter",
  undying_proxy_tcp_from_target_to_clients_bytes_total: "counter",
  undying_proxy_tcp_forwarding_errors_total: "counter",
  undying_proxy_udp_forwarders: "gauge",
  undying_proxy_udp_clients_connected: "gauge",
  undying_proxy_udp_from_clients_to_target_bytes_total: "counter",
  undying_proxy_udp_from_target_to_clients_bytes_total: "counter",
  undying_proxy_udp_forwarding_errors_total: "counter",
  undying_proxy_operator_errors_total: "counter",
};
/** The Go operator's `type` values of its two forwarding error counters. */
const GO_ERROR_TYPES = {
  tcp: ["Accept", "DialServerTarget", "CopyClientToTarget", "CopyTargetToClient"],
  udp: [
    "ResolveListenAddress",
    "ResolveTargetAddress",
    "Listen",
    "DialUDPTarget",
    "SetWriteDeadlineClientToTarget",
    "WriteToTarget",
    "ReadFromClient",
    "SetReadDeadlineTargetToClient",
    "SetWriteDeadlineTargetToClient",
    "WriteToClient",
    "ReadFromTarget",
  ],
};

/** A Service's ports as `name/port/protocol/nodePort` rows, and its loadBalancerIP. */
async function serviceShape(cp: ControlPlane, ns: string, name: string) {
  const service = JSON.parse(
    await cp.kubectlOk(["get", "service", name, "-n", ns, "-o", "json"]),
  ) as Service;
  return {
    loadBalancerIP: service.spec?.loadBalancerIP,
    ports: (service.spec?.ports ?? []).map((p) =>
      `${p.name}/${p.port}/${p.targetPort}/${p.protocol}/${p.nodePort}`
    ),
    annotations: service.metadata?.annotations ?? {},
  };
}

async function applyJson(cp: ControlPlane, ns: string, object: unknown): Promise<void> {
  await cp.kubectlOk(["apply", "-n", ns, "-f", "-"], { stdin: JSON.stringify(object) });
}

/**
 * The Deployment's container arguments as the kubelet would expand them (`$(VAR)` of the pod's
 * namespace), with the bind addresses moved to loopback (a shared test host).
 */
async function deploymentArgs(cp: ControlPlane, ns: string): Promise<string[]> {
  const deployment = JSON.parse(
    await cp.kubectlOk(["get", "deployment", "undying-proxy", "-n", ns, "-o", "json"]),
  ) as Deployment;
  const containers = deployment.spec?.template.spec?.containers ?? [];
  assert.equal(containers.length, 1, "one operator container");
  const container = containers[0];
  assert.equal(container?.image, `ghcr.io/sfact/undying-proxy:${denoConfig.version}`);
  const env = new Map(
    (container?.env ?? []).map((e) => [e.name, e.valueFrom?.fieldRef?.fieldPath]),
  );
  return (container?.args ?? []).map((arg) =>
    arg.replace(/\$\((\w+)\)/g, (_, name: string) => {
      assert.equal(env.get(name), "metadata.namespace", `$(${name}) is the pod's namespace`);
      return ns;
    }).replace(/=:(8080|8081)$/, "=127.0.0.1:0")
  );
}

/** Starts the program as the Deployment in `ns` would run it, as ServiceAccount `undying-proxy`. */
async function startAsDeployment(cp: ControlPlane, ns: string): Promise<ProgramProcess> {
  const kubeconfig = await cp.kubeconfigForServiceAccount(ns, "undying-proxy");
  const args = await deploymentArgs(cp, ns);
  // The targets here are on loopback, which a default target deny list (where the program has
  // one) refuses in operator mode; a cluster's targets are Service and pod addresses.
  const allowLoopback = "denied-target-cidrs" in FLAGS ? ["--denied-target-cidrs="] : [];
  return await startProgram(
    [
      ...args,
      `--kubeconfig=${kubeconfig}`,
      "--replica-name=swap-a",
      "--drain-grace-period=1s",
      ...allowLoopback,
    ],
    { metricsDefaults: true },
  );
}

/** Runs `body`; a failure carries the tail of the program's output. */
async function explained(program: ProgramProcess, body: () => Promise<void>): Promise<void> {
  try {
    await body();
  } catch (error) {
    throw new Error(`${error}\n--- program output ---\n${program.output().slice(-6000)}`);
  }
}

/** A token of ServiceAccount `scraper`, bound to the shipped metrics reader ClusterRole. */
async function scraperToken(cp: ControlPlane, ns: string): Promise<string> {
  await cp.kubectlOk(["create", "serviceaccount", "scraper", "-n", ns]);
  await cp.kubectlOk([
    "create",
    "clusterrolebinding",
    `${ns}-scraper`,
    "--clusterrole=undying-proxy-metrics-reader",
    `--serviceaccount=${ns}:scraper`,
  ]);
  return (await cp.kubectlOk(["create", "token", "scraper", "-n", ns])).trim();
}

/**
 * Scrapes over HTTPS (401 without a token) and checks what the Go operator's dashboards and alerts
 * read: its ten metrics with their types, its error counters by `type` only with every Go type,
 * live byte counters, and the process, controller, work queue and API client metrics.
 */
async function assertGoMetrics(program: ProgramProcess, token: string, ns: string) {
  assert.equal((await scrapeTls(program)).status, 401, "no token, no metrics");
  const body = await waitUntil("an authorized scrape", async () => {
    const answer = await scrapeTls(program, token);
    return answer.status === 200 ? answer.body : undefined;
  }, { timeoutMs: 30_000, intervalMs: 500 });
  const { series, types } = parseExposition(body);
  for (const [name, type] of Object.entries(GO_METRICS)) assert.equal(types.get(name), type, name);
  for (const protocol of ["tcp", "udp"] as const) {
    const name = `undying_proxy_${protocol}_forwarding_errors_total`;
    const labelSets = [...series.keys()].filter((key) => key.startsWith(`${name}{`));
    assert.ok(labelSets.every((key) => /\{type="\w+"\}$/.test(key)), `${name}: type only`);
    for (const type of GO_ERROR_TYPES[protocol]) {
      assert.ok(series.has(`${name}{type="${type}"}`), `${name}{type="${type}"}`);
    }
  }
  const game = `{forwarder="game",namespace="${ns}"}`;
  const positive = [
    `undying_proxy_tcp_from_clients_to_target_bytes_total${game}`,
    `undying_proxy_udp_from_target_to_clients_bytes_total${game}`,
    "process_resident_memory_bytes",
    "process_start_time_seconds",
    'controller_runtime_reconcile_total{controller="undyingproxy",result="success"}',
    'controller_runtime_reconcile_time_seconds_count{controller="undyingproxy"}',
    'workqueue_adds_total{name="undyingproxy"}',
  ];
  for (const key of positive) assert.ok((series.get(key) ?? 0) > 0, `${key} > 0`);
  assert.equal(types.get("process_cpu_seconds_total"), "counter");
  assert.ok(series.has('controller_runtime_reconcile_errors_total{controller="undyingproxy"}'));
  assert.ok(series.has('workqueue_depth{name="undyingproxy"}'));
  const requests = [...series.keys()].filter((key) =>
    /^rest_client_requests_total\{code="200",method="GET",host="127\.0\.0\.1:\d+"\}$/.test(key)
  );
  assert.equal(requests.length, 1, "rest_client_requests_total by code, method and host");
}

/** Scrapes `/metrics` over HTTPS (the self-signed certificate) with `token`. */
async function scrapeTls(program: ProgramProcess, token?: string) {
  using client = Deno.createHttpClient({ caCerts: [await peerCertificate(program.metricsPort)] });
  const response = await fetch(`https://127.0.0.1:${program.metricsPort}/metrics`, {
    client,
    headers: token === undefined ? {} : { authorization: `Bearer ${token}` },
  });
  return { status: response.status, body: await response.text() };
}

controlPlaneTest(
  "swap: the Go operator's install keeps forwarding, its Service ports and metrics under this image; the rollback finds its ports",
  async () => {
    await using cp = await startControlPlane({ installCrds: false });
    await using tcp4 = startTcpEcho();
    await using udp4 = startUdpEcho();
    await using tcp6 = startTcpEcho({ hostname: "::1" });
    await using udp6 = startUdpEcho({ hostname: "::1" });
    const [gamePort, v6Port, newPort] = [nextFreePort(), nextFreePort(), nextFreePort()];

    // 1. The Go operator's install, and its objects as it left them.
    await cp.kubectlOk(["apply", "-f", `${GO}crd.yaml`]);
    await cp.kubectlOk(["wait", "--for=condition=Established", "-f", `${GO}crd.yaml`]);
    const ns = await cp.createNamespace("swap");
    await cp.kubectlOk(["apply", "-n", ns, "-f", `${GO}manager.yaml`]);
    const objects = [
      {
        name: "game",
        spec: {
          tcp: { listenPort: gamePort, targetHost: "127.0.0.1", targetPort: tcp4.port },
          udp: { listenPort: gamePort, targetHost: "127.0.0.1", targetPort: udp4.port },
        },
      },
      {
        // The Go operator dialled "%s:%d": brackets were its only IPv6 spelling; 0 = default.
        name: "ipv6-game",
        spec: {
          tcp: { listenPort: v6Port, targetHost: "[::1]", targetPort: tcp6.port },
          udp: {
            listenPort: v6Port,
            targetHost: "[::1]",
            targetPort: udp6.port,
            readTimeoutSeconds: 0,
            writeTimeoutSeconds: 0,
          },
        },
      },
    ];
    for (const { name, spec } of objects) {
      const object = { apiVersion: "proxy.sfact.io/v1alpha1", kind: "UnDyingProxy", spec };
      await applyJson(cp, ns, { ...object, metadata: { name } });
      await goReconcile(cp, ns, (await getProxy(cp, ns, name)) as UnDyingProxy);
    }
    const before = await Promise.all(SERVICES.map((s) => serviceShape(cp, ns, s)));
    for (const [i, shape] of before.entries()) {
      assert.deepEqual(
        shape.ports.map((p) => p.split("/")[0]),
        [...PLACEHOLDERS, "game", "ipv6-game"],
        `${SERVICES[i]} as the Go operator left it`,
      );
    }

    // 2. The swap, as docs/migrating.md says: CRD, RBAC, then the image.
    await cp.kubectlOk(["apply", "--server-side", "-k", `${repoRoot}k8s/crd`]);
    await cp.kubectlOk([
      "wait",
      "--for=condition=Established",
      "crd/undyingproxies.proxy.sfact.io",
    ]);
    await cp.kubectlOk(["apply", "-n", ns, "-f", "-"], {
      stdin: await renderKustomization("k8s/rbac", { namespace: ns }),
    });
    await cp.kubectlOk([
      "set",
      "image",
      "-n",
      ns,
      "deployment/undying-proxy",
      `manager=ghcr.io/sfact/undying-proxy:${denoConfig.version}`,
    ]);
    const token = await scraperToken(cp, ns);
    const forwardsAll = async (what: string) => {
      assert.ok(await tcpEchoes("127.0.0.1", gamePort, "tcp v4"), what);
      assert.ok(await udpEchoes("127.0.0.1", gamePort, "udp v4"), what);
      assert.ok(await tcpEchoes("127.0.0.1", v6Port, "tcp to [::1]"), what);
      assert.ok(await udpEchoes("127.0.0.1", v6Port, "udp to [::1]"), what);
    };
    /** The Services as the Go operator left them, plus `extra` ports, adopted by this operator. */
    const servicesKept = async (owned: string, extraTcp: string[] = []) => {
      for (const [i, service] of SERVICES.entries()) {
        const after = await waitUntil(`${service} adopted`, async () => {
          const shape = await serviceShape(cp, ns, service);
          const want = i === 0 ? owned : "game,ipv6-game";
          return shape.annotations["proxy.sfact.io/managed-ports"] === want ? shape : undefined;
        });
        const extra = i === 0 ? extraTcp : [];
        assert.deepEqual(after.ports, [...before[i]?.ports ?? [], ...extra], `${service}: kept`);
        assert.equal(after.loadBalancerIP, "203.0.113.10");
      }
    };

    await using program = await startAsDeployment(cp, ns);
    await explained(program, async () => {
      for (const { name } of objects) {
        const object = await waitForReason(cp, ns, name, "Listening");
        assert.equal(object.status?.ready, true, name);
      }
      // The objects are read, not rewritten: the Go spelling and zeros stay as written.
      const v6 = await getProxy(cp, ns, "ipv6-game");
      assert.equal(v6?.spec?.tcp?.targetHost, "[::1]");
      assert.equal(v6?.spec?.udp?.readTimeoutSeconds, 0);
      await forwardsAll("with the Go Deployment's arguments");
      assert.ok(udp6.received > 0, "the UDP datagram reached the [::1] target");
      // The Services: taken over as they are (same names, ports, nodePorts, loadBalancerIP).
      await servicesKept("game,ipv6-game");
      await assertGoMetrics(program, token, ns);

      // An object made under this image gets a port the Go operator will recognise.
      await applyJson(cp, ns, {
        apiVersion: "proxy.sfact.io/v1alpha1",
        kind: "UnDyingProxy",
        metadata: { name: "newcomer" },
        spec: { tcp: { listenPort: newPort, targetHost: "127.0.0.1", targetPort: tcp4.port } },
      });
      await waitForReason(cp, ns, "newcomer", "Listening");
    });
    const newcomer = await waitUntil("newcomer's port", async () => {
      const ports = (await serviceShape(cp, ns, "undying-proxy-tcp")).ports;
      return ports.find((p) => p.startsWith(`newcomer/${newPort}/${newPort}/TCP/`));
    });
    program.signal("SIGTERM");
    assert.equal(await program.exited, 0, program.output().slice(-3000));

    // 3. The whole default install over the Go one, with an overlay keeping its loadBalancerIP;
    // then the program with our Deployment's arguments.
    const lbPatch = (name: string) => ({
      target: { kind: "Service", name },
      patch: JSON.stringify([
        { op: "replace", path: "/spec/loadBalancerIP", value: "203.0.113.10" },
      ]),
    });
    const install = await renderKustomization("k8s/default", {
      namespace: ns,
      patches: SERVICES.map(lbPatch),
    });
    await cp.kubectlOk(["apply", "--server-side", "--force-conflicts", "-f", "-"], {
      stdin: install,
    });
    await using ours = await startAsDeployment(cp, ns);
    await explained(ours, async () => {
      for (const name of ["game", "ipv6-game", "newcomer"]) {
        await waitForReason(cp, ns, name, "Listening");
      }
      await forwardsAll("with our Deployment's arguments");
      assert.ok(await tcpEchoes("127.0.0.1", newPort, "newcomer"));
      await servicesKept("game,ipv6-game,newcomer", [newcomer]);
      await assertGoMetrics(ours, token, ns);
    });
    ours.signal("SIGTERM");
    assert.equal(await ours.exited, 0, ours.output().slice(-3000));

    // 4. The rollback: the Go CRD, then the Go operator's Service write for every object.
    await cp.kubectlOk(["apply", "-f", `${GO}crd.yaml`]);
    for (const name of ["game", "ipv6-game", "newcomer"]) {
      const object = await getProxy(cp, ns, name);
      assert.ok(object, name);
      await goReconcile(cp, ns, object);
    }
    // A moved port is rewritten in place too, as the Go operator did.
    const moved = await goManageServicePort(
      cp,
      ns,
      "undying-proxy-udp",
      "game",
      gamePort + 1,
      "UDP",
    );
    assert.equal(moved.code, 0, moved.stderr);
    for (const service of SERVICES) {
      const names = (await serviceShape(cp, ns, service)).ports.map((p) => p.split("/")[0]);
      const expected = service === "undying-proxy-tcp"
        ? [...PLACEHOLDERS, "game", "ipv6-game", "newcomer"]
        : [...PLACEHOLDERS, "game", "ipv6-game"];
      assert.deepEqual(names, expected, `${service} after the rollback: one port per object`);
    }
  },
);
