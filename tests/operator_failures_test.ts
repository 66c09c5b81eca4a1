/**
 * End to end: what users see when something is wrong — an invalid object refused by the API
 * server, a port conflict, a bind failure and a spec only the operator rejects in `kubectl get` and
 * `kubectl describe` (conditions and Events), the error counter, recovery once the port is free,
 * objects of another operator instance left alone, and the oldest object winning a contested port.
 */
import assert from "node:assert/strict";
import { OPERATOR_ERROR_TYPES } from "../lib/operator/operator_errors.ts";
import { integrationTest } from "./_support/control_plane.ts";
import { startTcpEcho } from "./_support/net_tcp.ts";
import {
  applySample,
  getProxy,
  nextFreePort,
  NO_MANAGED_SERVICES,
  operatorKubeconfig,
  patchObject,
  reaches,
  readyCondition,
  sampleYaml,
  waitForReason,
  withOperator,
} from "./_support/operator.ts";
import { waitUntil } from "./_support/wait.ts";

integrationTest(
  "operator: the API server refuses invalid objects with a clear message",
  async (cp) => {
    const ns = await cp.createNamespace("op-invalid");
    const bad = await sampleYaml("tcp.yaml", {
      name: "bad-port",
      tcp: { listenPort: 70000, targetPort: 22 },
    });
    const result = await cp.kubectl(["apply", "-n", ns, "-f", "-"], { stdin: bad });
    assert.notEqual(result.code, 0);
    assert.match(result.stderr, /spec\.tcp\.listenPort/);
    const dotted = await sampleYaml("tcp.yaml", {
      name: "a.b",
      tcp: { listenPort: 7, targetPort: 7 },
    });
    const named = await cp.kubectl(["apply", "-n", ns, "-f", "-"], { stdin: dotted });
    assert.notEqual(named.code, 0);
    assert.match(named.stderr, /metadata\.name/);
    // PROXY protocol fields: enums per protocol, booleans; the valid sample is shown by -o wide.
    const proxySample = await Deno.readTextFile(
      new URL("../k8s/samples/proxy_protocol.yaml", import.meta.url),
    );
    for (
      const [broken, field] of [
        [
          proxySample.replace("proxyProtocol: v2\n  udp:", "proxyProtocol: v3\n  udp:"),
          "spec.tcp.proxyProtocol",
        ],
        [
          proxySample.replace(/proxyProtocol: v2\n$/, "proxyProtocol: v1\n"),
          "spec.udp.proxyProtocol",
        ],
        [
          proxySample.replace("acceptProxyProtocol: true", "acceptProxyProtocol: maybe"),
          "spec.tcp.acceptProxyProtocol",
        ],
        [proxySample.replace("accessLog: true", "accessLog: 1"), "spec.accessLog"],
      ] as const
    ) {
      assert.notEqual(broken, proxySample, field);
      const refused = await cp.kubectl(["apply", "-n", ns, "-f", "-"], { stdin: broken });
      assert.notEqual(refused.code, 0, field);
      assert.match(refused.stderr, new RegExp(field.replaceAll(".", "\\.")), field);
    }
    await cp.kubectlOk(["apply", "-n", ns, "-f", "-"], { stdin: proxySample });
    const wide = await cp.kubectlOk(["get", "undp", "game-server-7777", "-n", ns, "-o", "wide"]);
    assert.match(wide, /TCP-PROXY\s+UDP-PROXY\s+ACCEPT-PROXY\s+ACCESS-LOG/);
    assert.match(wide, /\sv2\s+v2\s+true\s+true\s*$/m);
  },
);

integrationTest(
  "operator: a port conflict and a bind failure show in kubectl get and describe, then recover",
  async (cp) => {
    const ns = await cp.createNamespace("op-failures");
    const kubeconfig = await operatorKubeconfig(cp, ns);
    await using target = startTcpEcho();
    const contested = nextFreePort();
    const busy = nextFreePort();
    // Something else already listens on `busy` at the operator's address.
    const squatter = Deno.listen({ hostname: "127.0.0.2", port: busy });
    let squatterOpen = true;
    try {
      const apply = (name: string, listenPort: number, annotations?: Record<string, string>) =>
        applySample(cp, ns, "tcp.yaml", {
          name,
          tcp: { listenPort, targetPort: target.port },
          ...(annotations ? { annotations } : {}),
        });
      await apply("zz-older", contested);
      // Timestamps have one-second resolution: make "aa-younger" clearly younger. Its name sorts
      // first, so only its age can make "zz-older" win the port.
      await new Promise((resolve) => setTimeout(resolve, 1100));
      await apply("aa-younger", contested);
      await apply("blocked", busy);
      await apply("elsewhere", nextFreePort(), { "proxy.sfact.io/instance": "other" });
      // Lexically an IPv6 address, so the API server takes it; the operator's full parse does not.
      await applySample(cp, ns, "tcp.yaml", {
        name: "bad-host",
        tcp: { listenPort: nextFreePort(), targetPort: target.port },
        targetHost: "1::2::3",
      });

      await withOperator({
        kubeconfig,
        namespace: ns,
        args: NO_MANAGED_SERVICES,
      }, async (operator) => {
        await waitForReason(cp, ns, "zz-older", "Listening");
        const younger = await waitForReason(cp, ns, "aa-younger", "PortConflict");
        assert.match(readyCondition(younger)?.message ?? "", /held by .*\/zz-older/);
        const blocked = await waitForReason(cp, ns, "blocked", "BindFailed");
        assert.equal(blocked.status?.ready, false);
        assert.equal(blocked.status?.replicas?.[0]?.tcp?.state, "Failed");

        const wide = await cp.kubectlOk(["get", "undyingproxies", "-n", ns, "-o", "wide"]);
        assert.match(wide, /aa-younger\s+False\s.*PortConflict/);
        assert.match(wide, /blocked\s+False\s.*BindFailed/);
        assert.match(wide, /zz-older\s+True\s.*Listening/);
        const invalid = await waitForReason(cp, ns, "bad-host", "InvalidSpec");
        assert.match(
          readyCondition(invalid)?.message ?? "",
          /^spec\.tcp\.targetHost: "1::2::3": is not a valid IPv6 address$/,
        );
        // kubectl describe: the condition at once, the Events once written (bounded wait).
        const describe = (name: string) =>
          cp.kubectlOk(["describe", "undyingproxy", name, "-n", ns]);
        assert.match(await describe("blocked"), /Reason:\s+BindFailed/);
        await waitUntil(
          "BindFailed, PortConflict and InvalidSpec Events in describe",
          async () =>
            /Warning\s+BindFailed/.test(await describe("blocked")) &&
              /Warning\s+PortConflict/.test(await describe("aa-younger")) &&
              /Warning\s+InvalidSpec\s.*spec\.tcp\.targetHost: "1::2::3"/.test(
                await describe("bad-host"),
              )
              ? true
              : undefined,
          { timeoutMs: 30_000 },
        );

        // The Go operator's error counter (a counter, every type exported from 0) saw the bind
        // failure.
        const metrics = await operator.metrics();
        const errors = (type: string) =>
          metrics.series.get(`undying_proxy_operator_errors_total{type="${type}"}`);
        assert.equal(metrics.types.get("undying_proxy_operator_errors_total"), "counter");
        for (const type of OPERATOR_ERROR_TYPES) assert.notEqual(errors(type), undefined, type);
        assert.ok((errors("FailedSetupTCPForwarder") ?? 0) >= 1);
        assert.equal(errors("FailedSetupUDPForwarder"), 0);
        assert.equal(errors("InvalidSpec"), 1, "counted once per generation, not per pass");

        // Another instance's object: no finalizer, no status from this operator.
        const elsewhere = await getProxy(cp, ns, "elsewhere");
        assert.equal(elsewhere?.metadata.finalizers, undefined);
        assert.equal(elsewhere?.status, undefined);

        // The port becomes free: the listener binds on its next retry.
        squatter.close();
        squatterOpen = false;
        await waitForReason(cp, ns, "blocked", "Listening");
        // The older object goes: the younger one takes the port over.
        await cp.kubectlOk(["delete", "undyingproxy", "zz-older", "-n", ns, "--wait=false"]);
        await waitForReason(cp, ns, "aa-younger", "Listening");
      });
    } finally {
      if (squatterOpen) squatter.close();
    }
  },
);

integrationTest(
  "operator: an older object moved onto a younger one's port takes it over (oldest wins)",
  async (cp) => {
    const ns = await cp.createNamespace("op-oldest");
    const kubeconfig = await operatorKubeconfig(cp, ns);
    await using oldTarget = startTcpEcho();
    await using youngTarget = startTcpEcho();
    const [oldPort, shared] = [nextFreePort(), nextFreePort()];
    await applySample(cp, ns, "tcp.yaml", {
      name: "older",
      tcp: { listenPort: oldPort, targetPort: oldTarget.port },
    });
    await new Promise((resolve) => setTimeout(resolve, 1100)); // creationTimestamp is in seconds
    await applySample(cp, ns, "tcp.yaml", {
      name: "younger",
      tcp: { listenPort: shared, targetPort: youngTarget.port },
    });
    await withOperator({ kubeconfig, namespace: ns, args: NO_MANAGED_SERVICES }, async () => {
      await waitForReason(cp, ns, "younger", "Listening");
      assert.ok(await reaches(shared, youngTarget));
      // The holder is younger: a replica started now would give the port to "older"; so must this
      // one, which has run all along.
      await patchObject(cp, ns, "undyingproxy", "older", { spec: { tcp: { listenPort: shared } } });
      const younger = await waitForReason(cp, ns, "younger", "PortConflict");
      assert.match(readyCondition(younger)?.message ?? "", /held by .*\/older/);
      await waitForReason(cp, ns, "older", "Listening");
      assert.ok(await reaches(shared, oldTarget));
    });
  },
);
