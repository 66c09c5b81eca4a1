import assert from "node:assert/strict";
import { proxy } from "../../tests/_support/proxy_fixture.ts";
import { desiredFromProxies } from "./desired_from_proxies.ts";
import { serviceNamespace, targetNamespaceProblems } from "./target_namespaces.ts";
import { statusSummary } from "./status.ts";

Deno.test("serviceNamespace() reads NAME.NAMESPACE.svc names, with or without the cluster domain", () => {
  assert.equal(serviceNamespace("db.data.svc"), "data");
  assert.equal(serviceNamespace("db.Data.svc.cluster.local."), "data");
  assert.equal(serviceNamespace("x.y.db.data.svc.cluster.local"), "data");
  assert.equal(serviceNamespace("db"), undefined);
  assert.equal(serviceNamespace("svc.example.com"), undefined);
  assert.equal(serviceNamespace("10.0.0.1"), undefined);
});

Deno.test("targetNamespaceProblems() allows the own namespace and the listed ones", () => {
  const spec = {
    name: "games/a",
    tcp: { listenPort: 1, targetPort: 2, targetHost: "db.data.svc.cluster.local" },
    udp: {
      listenPort: 1,
      targetPort: 2,
      targetHost: "dns.games.svc",
      readTimeoutSeconds: 30,
      writeTimeoutSeconds: 5,
    },
  };
  assert.deepEqual(targetNamespaceProblems(spec, "games", ["data"]), []);
  assert.deepEqual(targetNamespaceProblems(spec, "games", "*"), []);
  assert.deepEqual(targetNamespaceProblems(spec, "games", []), [{
    field: "spec.tcp.targetHost",
    value: "db.data.svc.cluster.local",
    reason: 'targets a Service of namespace "data"; allowed are the object\'s own namespace ' +
      '"games" (--allowed-target-namespaces)',
    forbidden: true,
  }]);
});

Deno.test("desiredFromProxies() leaves objects targeting other namespaces out, as TargetForbidden", () => {
  const objects = [
    proxy("own", "games").tcp(7000, 80, "web.games.svc").build(),
    proxy("other", "games").tcp(7001, 80, "db.kube-system.svc.cluster.local").build(),
    proxy("listed", "games").tcp(7002, 80, "db.data.svc").build(),
  ];
  const desired = desiredFromProxies(objects, "", { allowedTargetNamespaces: ["data"] });
  assert.deepEqual(desired.specs.map((s) => s.name), ["games/listed", "games/own"]);
  assert.equal(desired.invalid[0]?.name, "games/other");
  const problems = desired.invalid[0]?.problems ?? [];
  const summary = statusSummary({
    generation: 1,
    spec: { problems },
    deleting: false,
    entries: [],
    now: new Date(),
  });
  assert.equal(summary.conditions[0]?.reason, "TargetForbidden");
  assert.match(summary.conditions[0]?.message ?? "", /namespace "kube-system"/);
  assert.equal(desiredFromProxies(objects, "").specs.length, 3, "no restriction by default");
});
