/**
 * End to end: a replica that stops takes its status entry out and leaves a summary of the replicas
 * left, so that `kubectl get undp` never claims a listener that does not exist: with one replica
 * left it says 1/1, with none Ready is False (NoReplicaListening), also when the last two stop at
 * the same time.
 */
import assert from "node:assert/strict";
import type { UnDyingProxy } from "../k8s/undying_proxy_types.ts";
import { type ControlPlane, integrationTest } from "./_support/control_plane.ts";
import { startTcpEcho } from "./_support/net_tcp.ts";
import {
  applySample,
  explainFailure,
  getProxy,
  nextFreePort,
  NO_MANAGED_SERVICES,
  operatorKubeconfig,
  type OperatorProcess,
  readyCondition,
  startOperator,
  tcpEchoes,
  waitForProxy,
  waitReady,
} from "./_support/operator.ts";

/** `READY LISTENING REASON` of the object, as `kubectl get undp -o wide` prints them. */
async function printed(cp: ControlPlane, ns: string, name: string): Promise<string> {
  const table = await cp.kubectlOk(["get", "undp", name, "-n", ns, "-o", "wide"]);
  const [header = "", row = ""] = table.trim().split("\n");
  const column = (title: string) => {
    const start = header.indexOf(title);
    return row.slice(start).trim().split(/\s+/)[0];
  };
  return ["READY", "LISTENING", "REASON"].map(column).join(" ");
}

/** The status fields that claim listeners: entries, `listening`, Ready and its reason. */
function claims(object: UnDyingProxy | undefined) {
  const ready = object && readyCondition(object);
  return {
    replicas: (object?.status?.replicas ?? []).map((r) => r.name).sort(),
    listening: object?.status?.listening,
    ready: ready?.status,
    reason: ready?.reason,
  };
}

integrationTest(
  "operator: replicas that stop withdraw their entries; with none left Ready is False, 0/0",
  async (cp) => {
    const ns = await cp.createNamespace("op-shutdown");
    const kubeconfig = await operatorKubeconfig(cp, ns);
    await using target = startTcpEcho();
    const port = nextFreePort();
    await applySample(cp, ns, "tcp.yaml", {
      name: "shared",
      tcp: { listenPort: port, targetPort: target.port },
    });
    const start = (replica: string, listenAddress: string) =>
      startOperator({
        kubeconfig,
        namespace: ns,
        replica,
        listenAddress,
        args: NO_MANAGED_SERVICES,
      });
    const bothListening = async (a: OperatorProcess, b: OperatorProcess) => {
      await waitReady(a);
      await waitReady(b);
      await waitForProxy(
        cp,
        ns,
        "shared",
        "both replicas listening",
        (o) => o.status?.listening === "2/2" && readyCondition(o)?.status === "True",
      );
    };

    // One of two stops: the object says at once what is left, 1/1 from the other replica.
    {
      await using a = await start("replica-a", "127.0.0.2");
      await using b = await start("replica-b", "127.0.0.3");
      await explainFailure([a, b], async () => {
        await bothListening(a, b);
        assert.equal(await a.stop(), 0);
        assert.deepEqual(claims(await getProxy(cp, ns, "shared")), {
          replicas: ["replica-b"],
          listening: "1/1",
          ready: "True",
          reason: "Listening",
        });
        assert.ok(await tcpEchoes("127.0.0.3", port));

        // The last one stops: nothing listens, and the object says so.
        assert.equal(await b.stop(), 0);
        assert.equal(await tcpEchoes("127.0.0.3", port), false, "the port refuses connections");
        const object = await getProxy(cp, ns, "shared");
        assert.deepEqual(claims(object), {
          replicas: [],
          listening: "0/0",
          ready: "False",
          reason: "NoReplicaListening",
        });
        assert.equal(object?.status?.ready, false);
        assert.match(
          readyCondition(object!)?.message ?? "",
          /no operator replica is listening: the last one, replica-b, stopped/,
        );
        assert.equal(await printed(cp, ns, "shared"), "False 0/0 NoReplicaListening");
      });
    }

    // Back, then both stop at the same moment (a rollout, a node drain): still nothing claimed.
    {
      await using a = await start("replica-a", "127.0.0.2");
      await using b = await start("replica-b", "127.0.0.3");
      await explainFailure([a, b], async () => {
        await bothListening(a, b);
        assert.deepEqual(await Promise.all([a.stop(), b.stop()]), [0, 0]);
        assert.deepEqual(claims(await getProxy(cp, ns, "shared")), {
          replicas: [],
          listening: "0/0",
          ready: "False",
          reason: "NoReplicaListening",
        });
      });
    }
  },
);
