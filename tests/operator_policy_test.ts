/**
 * End to end against a real API server: the target policy in operator mode (the default deny list
 * refusing the API server's own address and cloud metadata without sending them a packet; a name
 * resolving to a denied address; recovery once the target is allowed) and an object's own
 * `sourceRanges` and limits, seen in the status, Events and metrics.
 */
import assert from "node:assert/strict";
import { integrationTest } from "./_support/control_plane.ts";
import { tcpFrom, udpFrom } from "./_support/net_sources.ts";
import { startTcpEcho } from "./_support/net_tcp.ts";
import { within } from "./_support/wait.ts";
import {
  nextFreePort,
  NO_MANAGED_SERVICES,
  operatorKubeconfig,
  type OperatorProcess,
  patchObject,
  readyCondition,
  waitForEvents,
  waitForReason,
  withOperator,
} from "./_support/operator.ts";
import { waitForSeries } from "./_support/program.ts";
import type { ControlPlane } from "./_support/control_plane.ts";

/** Applies one UnDyingProxy with `spec` into `namespace`. */
async function applyProxy(
  cp: ControlPlane,
  namespace: string,
  name: string,
  spec: Record<string, unknown>,
): Promise<void> {
  const object = {
    apiVersion: "proxy.sfact.io/v1alpha1",
    kind: "UnDyingProxy",
    metadata: { name },
    spec,
  };
  await cp.kubectlOk(["apply", "-n", namespace, "-f", "-"], { stdin: JSON.stringify(object) });
}

/** Waits until the operator's metrics have every series of `expected`. */
function waitForMetrics(
  operator: OperatorProcess,
  expected: Record<string, number>,
): Promise<void> {
  return waitForSeries({ scrape: () => operator.metrics() }, expected);
}

integrationTest(
  "operator: the default deny list refuses the API server and cloud metadata without a packet",
  async (cp) => {
    const ns = await cp.createNamespace("op-deny-default");
    const kubeconfig = await operatorKubeconfig(cp, ns);
    const apiServer = new URL(cp.serverUrl);
    const [apiPort, metadataPort] = [nextFreePort(), nextFreePort()];
    await withOperator(
      { kubeconfig, namespace: ns, args: NO_MANAGED_SERVICES, defaultTargetPolicy: true },
      async (operator) => {
        await applyProxy(cp, ns, "api", {
          tcp: {
            listenPort: apiPort,
            targetHost: apiServer.hostname,
            targetPort: Number(apiServer.port),
          },
        });
        await applyProxy(cp, ns, "metadata", {
          tcp: { listenPort: metadataPort, targetHost: "169.254.169.254", targetPort: 80 },
          udp: { listenPort: metadataPort, targetHost: "169.254.169.254", targetPort: 53 },
        });
        const api = await waitForReason(cp, ns, "api", "TargetForbidden");
        assert.equal(
          readyCondition(api)?.message,
          `op-a: TCP port ${apiPort}: target address 127.0.0.1 is forbidden: ` +
            "127.0.0.1 (the API server) in --denied-target-cidrs",
        );
        assert.equal(api.status?.replicas?.[0]?.tcp?.state, "Forbidden");
        const metadata = await waitForReason(cp, ns, "metadata", "TargetForbidden");
        assert.match(
          readyCondition(metadata)?.message ?? "",
          /UDP port \d+: target address 169\.254\.169\.254 is forbidden: 169\.254\.0\.0\/16 \(link-local, cloud metadata\)/,
        );
        await waitForEvents(cp, ns, "metadata", ["TargetForbidden"]);
        await waitForEvents(cp, ns, "api", ["TargetForbidden"]);

        // Clients are closed at once: nothing is dialled (a dial to 169.254.169.254 would hang
        // until --dial-timeout), and no UDP session (so no upstream socket, no packet) exists.
        await using toApi = await tcpFrom("127.0.0.3", apiPort, operator.listenAddress);
        await within(toApi.closed, 2000, "the client of the API server's port is closed");
        await using toMetadata = await tcpFrom("127.0.0.3", metadataPort, operator.listenAddress);
        await within(toMetadata.closed, 2000, "the client of the metadata port is closed");
        using udp = udpFrom("127.0.0.3", operator.listenAddress);
        assert.equal(await udp.request("q", metadataPort, 300), undefined);
        const of = (name: string) => `forwarder="${name}",namespace="${ns}"`;
        await waitForMetrics(operator, {
          [`undying_proxy_tcp_rejected_connections_total{${of("api")},reason="TargetForbidden"}`]:
            1,
          [
            `undying_proxy_tcp_rejected_connections_total{${
              of("metadata")
            },reason="TargetForbidden"}`
          ]: 1,
          [
            `undying_proxy_udp_rejected_datagrams_total{${of("metadata")},reason="TargetForbidden"}`
          ]: 1,
          [`undying_proxy_udp_sessions_total{${of("metadata")}}`]: 0,
          [`undying_proxy_tcp_forwarder_errors_total{${of("metadata")},type="DialTimeout"}`]: 0,
          [`undying_proxy_tcp_forwarder_errors_total{${of("metadata")},type="DialServerTarget"}`]:
            0,
          [`undying_proxy_forwarder_state{${of("api")},protocol="tcp",state="forbidden"}`]: 1,
          'undying_proxy_operator_errors_total{type="TargetForbidden"}': 3,
        });
      },
    );
  },
);

integrationTest(
  "operator: a name resolving to a denied address is forbidden, others untouched; sourceRanges and limits per object",
  async (cp) => {
    const ns = await cp.createNamespace("op-deny-name");
    const kubeconfig = await operatorKubeconfig(cp, ns);
    await using echo = startTcpEcho({ hostname: "127.0.0.4" });
    const [byName, guarded] = [nextFreePort(), nextFreePort()];
    await withOperator(
      {
        kubeconfig,
        namespace: ns,
        args: [...NO_MANAGED_SERVICES, "--denied-target-cidrs=127.0.0.1,::1"],
      },
      async (operator) => {
        const host = operator.listenAddress;
        await applyProxy(cp, ns, "by-name", {
          tcp: { listenPort: byName, targetHost: "localhost", targetPort: echo.port },
        });
        await applyProxy(cp, ns, "guarded", {
          tcp: {
            listenPort: guarded,
            targetHost: "127.0.0.4",
            targetPort: echo.port,
            sourceRanges: ["127.0.0.3/32"],
            maxConnectionsPerSource: 1,
          },
        });
        const forbidden = await waitForReason(cp, ns, "by-name", "TargetForbidden");
        assert.match(
          readyCondition(forbidden)?.message ?? "",
          /target address (127\.0\.0\.1|::1) is forbidden: (127\.0\.0\.1|::1) in --denied-target-cidrs/,
        );
        await waitForReason(cp, ns, "guarded", "Listening");

        await using allowed = await tcpFrom("127.0.0.3", guarded, host);
        assert.equal(await allowed.echo("in"), "in");
        await using second = await tcpFrom("127.0.0.3", guarded, host);
        await within(second.closed, 2000, "a second connection from 127.0.0.3 is closed");
        await using outsider = await tcpFrom("127.0.0.5", guarded, host);
        await within(outsider.closed, 2000, "127.0.0.5 is outside sourceRanges");
        assert.equal(await allowed.echo("still"), "still");

        // The API server refuses a range that is not one.
        const bad = await cp.kubectl([
          "patch",
          "undyingproxy",
          "guarded",
          "-n",
          ns,
          "--type=merge",
          "-p",
          JSON.stringify({ spec: { tcp: { sourceRanges: ["example.com"] } } }),
        ]);
        assert.notEqual(bad.code, 0);
        assert.match(bad.stderr, /each source range must be an IP address or a CIDR range/);

        // Retargeted to an allowed address: forwarding resumes.
        await patchObject(cp, ns, "undyingproxy", "by-name", {
          spec: { tcp: { targetHost: "127.0.0.4" } },
        });
        await waitForReason(cp, ns, "by-name", "Listening");
        await waitForEvents(cp, ns, "by-name", ["TargetForbidden", "TargetAllowed"]);
        await using through = await tcpFrom("127.0.0.3", byName, host);
        assert.equal(await through.echo("now"), "now");
        const of = (name: string) => `forwarder="${name}",namespace="${ns}"`;
        await waitForMetrics(operator, {
          [
            `undying_proxy_tcp_rejected_connections_total{${
              of("guarded")
            },reason="SourceNotAllowed"}`
          ]: 1,
          [
            `undying_proxy_tcp_rejected_connections_total{${
              of("guarded")
            },reason="MaxConnectionsPerSource"}`
          ]: 1,
        });
      },
    );
  },
);

integrationTest(
  "operator: --allowed-target-namespaces leaves out objects targeting Services of other namespaces",
  async (cp) => {
    const ns = await cp.createNamespace("op-deny-ns");
    const kubeconfig = await operatorKubeconfig(cp, ns);
    const [own, other] = [nextFreePort(), nextFreePort()];
    await withOperator(
      {
        kubeconfig,
        namespace: ns,
        args: [...NO_MANAGED_SERVICES, "--allowed-target-namespaces=data"],
      },
      async (operator) => {
        await applyProxy(cp, ns, "own", {
          tcp: { listenPort: own, targetHost: `web.${ns}.svc.cluster.local`, targetPort: 80 },
        });
        await applyProxy(cp, ns, "other", {
          tcp: { listenPort: other, targetHost: "etcd.kube-system.svc", targetPort: 2379 },
        });
        const refused = await waitForReason(cp, ns, "other", "TargetForbidden");
        assert.match(
          readyCondition(refused)?.message ?? "",
          /spec\.tcp\.targetHost: "etcd\.kube-system\.svc": targets a Service of namespace "kube-system"; allowed are the object's own namespace "op-deny-ns-\w+" and data/,
        );
        await waitForEvents(cp, ns, "other", ["TargetForbidden"]);
        // The own namespace's Service is allowed (its name does not resolve here: nothing to check).
        await waitForReason(cp, ns, "own", "Listening");
        await waitForMetrics(operator, {
          'undying_proxy_operator_errors_total{type="TargetForbidden"}': 1,
        });
      },
    );
  },
);
