import assert from "node:assert/strict";
import { convertStreamServices, objectName } from "./convert.ts";

const DOMAIN = "cluster.local";

Deno.test("the documented examples convert to one object each, targeting the Service's DNS name", () => {
  const { objects, problems, notes } = convertStreamServices({
    tcp: { "9000": "default/example-go:8080" },
    udp: { "53": "kube-system/kube-dns:53" },
    clusterDomain: DOMAIN,
  });
  assert.deepEqual(problems, []);
  assert.deepEqual(notes, []);
  assert.deepEqual(objects, [
    {
      apiVersion: "proxy.sfact.io/v1alpha1",
      kind: "UnDyingProxy",
      metadata: { name: "udp-53-kube-dns" },
      spec: {
        udp: {
          listenPort: 53,
          targetHost: "kube-dns.kube-system.svc.cluster.local",
          targetPort: 53,
        },
      },
    },
    {
      apiVersion: "proxy.sfact.io/v1alpha1",
      kind: "UnDyingProxy",
      metadata: { name: "tcp-9000-example-go" },
      spec: {
        tcp: {
          listenPort: 9000,
          targetHost: "example-go.default.svc.cluster.local",
          targetPort: 8080,
        },
      },
    },
  ]);
});

Deno.test("TCP and UDP merge into one object where port and target agree, else stay apart", () => {
  const { objects } = convertStreamServices({
    tcp: { "53": "kube-system/kube-dns:53", "7777": "games/a:7777" },
    udp: { "53": "kube-system/kube-dns:53", "7777": "games/b:7777" },
    namespace: "undying-proxy",
    clusterDomain: "corp.example",
  });
  assert.deepEqual(objects.map((o) => [o.metadata.name, Object.keys(o.spec).sort()]), [
    ["tcp-udp-53-kube-dns", ["tcp", "udp"]],
    ["tcp-7777-a", ["tcp"]],
    ["udp-7777-b", ["udp"]],
  ]);
  assert.ok(objects.every((o) => o.metadata.namespace === "undying-proxy"));
  assert.equal(objects[0]!.spec.tcp!.targetHost, "kube-dns.kube-system.svc.corp.example");
});

Deno.test("named ports are looked up in the given Services, by name and protocol", () => {
  const services = [{
    metadata: { name: "db", namespace: "data" },
    spec: {
      ports: [
        { name: "pg", port: 5432, protocol: "TCP" },
        { name: "pg", port: 6000, protocol: "UDP" },
      ],
    },
  }];
  const ok = convertStreamServices({
    tcp: { "5432": "data/db:pg" },
    services,
    clusterDomain: DOMAIN,
  });
  assert.deepEqual(ok.problems, []);
  assert.equal(ok.objects[0]!.spec.tcp!.targetPort, 5432);
  const missing = convertStreamServices({
    tcp: { "5433": "data/db:nope", "5434": "data/other:pg" },
    services,
    clusterDomain: DOMAIN,
  });
  assert.deepEqual(missing.objects, []);
  assert.match(missing.problems[0]!.reason, /no TCP port named "nope" \(TCP ports: pg\)/);
  assert.match(missing.problems[1]!.reason, /pass the Service data\/other with --services/);
});

Deno.test("names are DNS labels of at most 63 characters", () => {
  const name = objectName(["TCP", "UDP"], 65535, "s".repeat(63));
  assert.equal(name.length, 63);
  assert.match(name, /^tcp-udp-65535-s+$/);
  assert.equal(objectName(["TCP"], 1, `${"x".repeat(56)}-y`), `tcp-1-${"x".repeat(56)}`);
});

Deno.test("a PROXY suffix becomes the PROXY protocol fields", () => {
  const { objects, problems } = convertStreamServices({
    tcp: { "25": "mail/smtp:25:PROXY:PROXY" },
    clusterDomain: DOMAIN,
  });
  assert.deepEqual(problems, []);
  assert.equal(objects.length, 1);
  assert.equal(objects[0]!.spec.tcp!.acceptProxyProtocol, true);
  assert.equal(objects[0]!.spec.tcp!.proxyProtocol, "v1");
});
