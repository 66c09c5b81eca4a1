import assert from "node:assert/strict";
import { parseConfigMapRef, parseStreamServices } from "./stream_services.ts";

Deno.test("ingress-nginx's documented examples parse as it reads them", () => {
  const tcp = parseStreamServices({ "9000": "default/example-go:8080" }, "TCP");
  assert.deepEqual(tcp.problems, []);
  assert.deepEqual(tcp.services, [{
    protocol: "TCP",
    externalPort: 9000,
    namespace: "default",
    service: "example-go",
    servicePort: 8080,
    decodeProxy: false,
    encodeProxy: false,
    key: "9000",
    value: "default/example-go:8080",
  }]);
  const udp = parseStreamServices({ "53": "kube-system/kube-dns:53" }, "UDP");
  assert.deepEqual(udp.services.map((s) => [s.externalPort, s.namespace, s.service]), [
    [53, "kube-system", "kube-dns"],
  ]);
});

Deno.test("PROXY suffixes: the first decodes, the second encodes, any letter case, TCP only", () => {
  const { services, problems } = parseStreamServices({
    "1001": "ns/svc:80:PROXY",
    "1002": "ns/svc:80:PROXY:PROXY",
    "1003": "ns/svc:80::PROXY",
    "1004": "ns/svc:80:proxy:Proxy",
    "1005": "ns/svc:http",
  }, "TCP");
  assert.deepEqual(problems, []);
  assert.deepEqual(services.map((s) => [s.externalPort, s.decodeProxy, s.encodeProxy]), [
    [1001, true, false],
    [1002, true, true],
    [1003, false, true],
    [1004, true, true],
    [1005, false, false],
  ]);
  assert.equal(services[4]!.servicePort, "http");
  const udp = parseStreamServices({ "53": "ns/dns:53:PROXY" }, "UDP");
  assert.deepEqual(udp.services.map((s) => [s.decodeProxy, s.encodeProxy]), [[false, false]]);
  assert.match(udp.services[0]!.note ?? "", /ignored for UDP/);
});

Deno.test("entries it cannot use are problems naming key, value and why; the rest are used", () => {
  const data = {
    "abc": "ns/svc:80",
    "0": "ns/svc:80",
    "65536": "ns/svc:80",
    "2001": "ns/svc",
    "2002": "svc:80",
    "2003": "a/b/c:80",
    "2004": "ns/svc:",
    "2005": "ns/svc:a-very-long-port-name",
    "2006": "ns/svc:80:FOO",
    "2007": "NS/svc:80",
    "2008": "ns/9svc:80",
    "2009": "ns/svc:80:PROXY:PROXY:PROXY",
    "3000": "ns/good:80",
  };
  const { services, problems } = parseStreamServices(data, "TCP");
  assert.deepEqual(services.map((s) => s.key), ["3000"]);
  const reasons = Object.fromEntries(problems.map((p) => [p.key, p.reason]));
  assert.equal(problems.length, 12);
  for (const p of problems) assert.equal(p.value, data[p.key as keyof typeof data]);
  assert.match(reasons["abc"]!, /external port/);
  assert.match(reasons["0"]!, /1 to 65535/);
  assert.match(reasons["65536"]!, /1 to 65535/);
  assert.match(reasons["2001"]!, /namespace\/service:port/);
  assert.match(reasons["2002"]!, /"svc" is not "namespace\/service"/);
  assert.match(reasons["2003"]!, /not "namespace\/service"/);
  assert.match(reasons["2004"]!, /service port ""/);
  assert.match(reasons["2005"]!, /neither a port number/);
  assert.match(reasons["2006"]!, /":FOO"/);
  assert.match(reasons["2007"]!, /namespace "NS"/);
  assert.match(reasons["2008"]!, /service "9svc"/);
  assert.match(reasons["2009"]!, /PROXY/);
});

Deno.test("entries come sorted by external port; no data is no entries", () => {
  const { services } = parseStreamServices({ "30": "a/b:1", "4": "a/b:1", "200": "a/b:1" }, "TCP");
  assert.deepEqual(services.map((s) => s.externalPort), [4, 30, 200]);
  assert.deepEqual(parseStreamServices(undefined, "UDP"), { services: [], problems: [] });
});

Deno.test("ConfigMap flag values are NAMESPACE/NAME", () => {
  assert.deepEqual(parseConfigMapRef("ingress-nginx/tcp-services"), {
    namespace: "ingress-nginx",
    name: "tcp-services",
  });
  for (const bad of ["tcp-services", "a/b/c", "/x", "x/", "Ns/x"]) {
    assert.equal(typeof parseConfigMapRef(bad), "string", bad);
  }
});
