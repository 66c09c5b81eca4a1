/**
 * End to end: two operator instances share a namespace (one per external address); each handles
 * only the objects that select it with the `proxy.sfact.io/instance` annotation (none = default).
 */
import assert from "node:assert/strict";
import { integrationTest } from "./_support/control_plane.ts";
import { startTcpEcho } from "./_support/net_tcp.ts";
import {
  applySample,
  explainFailure,
  nextFreePort,
  NO_MANAGED_SERVICES,
  operatorKubeconfig,
  startOperator,
  tcpEchoes,
  waitForReason,
  waitReady,
} from "./_support/operator.ts";

integrationTest("operator: instances sharing a namespace handle only their objects", async (cp) => {
  const ns = await cp.createNamespace("op-instances");
  const kubeconfig = await operatorKubeconfig(cp, ns);
  await using target = startTcpEcho();
  const plainPort = nextFreePort();
  const bluePort = nextFreePort();
  await applySample(cp, ns, "tcp.yaml", {
    name: "plain",
    tcp: { listenPort: plainPort, targetPort: target.port },
  });
  await applySample(cp, ns, "tcp.yaml", {
    name: "blue",
    tcp: { listenPort: bluePort, targetPort: target.port },
    annotations: { "proxy.sfact.io/instance": "blue" },
  });
  const args = NO_MANAGED_SERVICES;
  const common = { kubeconfig, namespace: ns };
  await using standard = await startOperator({
    ...common,
    replica: "default-0",
    listenAddress: "127.0.0.2",
    args,
  });
  await using blueOperator = await startOperator({
    ...common,
    replica: "blue-0",
    listenAddress: "127.0.0.3",
    args: [...args, "--instance-name=blue"],
  });
  await explainFailure([standard, blueOperator], async () => {
    await waitReady(standard);
    await waitReady(blueOperator);
    const plain = await waitForReason(cp, ns, "plain", "Listening");
    const blue = await waitForReason(cp, ns, "blue", "Listening");
    assert.deepEqual(plain.status?.replicas?.map((r) => r.name), ["default-0"]);
    assert.deepEqual(blue.status?.replicas?.map((r) => r.name), ["blue-0"]);
    assert.deepEqual([
      await tcpEchoes("127.0.0.2", plainPort),
      await tcpEchoes("127.0.0.3", plainPort),
      await tcpEchoes("127.0.0.3", bluePort),
      await tcpEchoes("127.0.0.2", bluePort),
    ], [true, false, true, false]);
  });
  assert.equal(await standard.stop(), 0);
  assert.equal(await blueOperator.stop(), 0);
});
