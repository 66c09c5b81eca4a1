import assert from "node:assert/strict";
import type { ServicePort } from "kubernetes-types/core/v1.d.ts";
import type { ForwarderSpec } from "../spec.ts";
import {
  formatOwnedPorts,
  parseOwnedPorts,
  planServicePorts,
  servicePortName,
  wantedServicePorts,
} from "./service_port_plan.ts";

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

function tcp(name: string, listenPort: number): ForwarderSpec {
  return { name, tcp: { listenPort, targetPort: 80, targetHost: "t" } };
}

function both(name: string, listenPort: number): ForwarderSpec {
  return {
    name,
    tcp: { listenPort, targetPort: 80, targetHost: "t" },
    udp: {
      listenPort,
      targetPort: 80,
      targetHost: "t",
      readTimeoutSeconds: 30,
      writeTimeoutSeconds: 5,
    },
  };
}

const PLACEHOLDER: ServicePort = {
  name: "any-port",
  port: 1234,
  targetPort: 1234,
  protocol: "TCP",
};

Deno.test("servicePortName() is the bare object name (the Go operator's), prefixed only when one Service holds both protocols", () => {
  assert.equal(
    servicePortName("TCP", {
      namespace: "proxy",
      name: "game",
      operatorNamespace: "proxy",
      prefixed: false,
    }),
    "game",
  );
  assert.equal(
    servicePortName("UDP", {
      namespace: "proxy",
      name: "game",
      operatorNamespace: "proxy",
      prefixed: false,
    }),
    "game",
  );
  assert.equal(
    servicePortName("TCP", {
      namespace: "proxy",
      name: "game",
      operatorNamespace: "proxy",
      prefixed: true,
    }),
    "tcp-game",
  );
  assert.equal(
    servicePortName("UDP", {
      namespace: "proxy",
      name: "game",
      operatorNamespace: "proxy",
      prefixed: true,
    }),
    "udp-game",
  );
});

Deno.test("servicePortName() hashes names that would be too long or invalid, deterministically", () => {
  const long = "a".repeat(63);
  const name = servicePortName("TCP", {
    namespace: "proxy",
    name: long,
    operatorNamespace: "proxy",
    prefixed: true,
  });
  assert.ok(name.length <= 63 && DNS_LABEL.test(name), name);
  assert.equal(
    name,
    servicePortName("TCP", {
      namespace: "proxy",
      name: long,
      operatorNamespace: "proxy",
      prefixed: true,
    }),
  );
  assert.notEqual(
    name,
    servicePortName("TCP", {
      namespace: "proxy",
      name: "a".repeat(62),
      operatorNamespace: "proxy",
      prefixed: true,
    }),
  );
  const dotted = servicePortName("UDP", {
    namespace: "proxy",
    name: "game.eu",
    operatorNamespace: "proxy",
    prefixed: true,
  });
  assert.ok(DNS_LABEL.test(dotted) && dotted.startsWith("udp-game-eu-"), dotted);
  const bare = servicePortName("UDP", {
    namespace: "proxy",
    name: "game.eu",
    operatorNamespace: "proxy",
    prefixed: false,
  });
  assert.ok(DNS_LABEL.test(bare) && bare.startsWith("game-eu-"), bare);
});

Deno.test("servicePortName() keeps objects of other namespaces apart even when the text collides", () => {
  for (const prefixed of [true, false]) {
    const a = servicePortName("TCP", {
      namespace: "a-b",
      name: "c",
      operatorNamespace: "proxy",
      prefixed,
    });
    const b = servicePortName("TCP", {
      namespace: "a",
      name: "b-c",
      operatorNamespace: "proxy",
      prefixed,
    });
    assert.notEqual(a, b);
    for (const n of [a, b]) assert.ok(DNS_LABEL.test(n) && n.length <= 63, n);
    const huge = servicePortName("TCP", {
      namespace: "n".repeat(63),
      name: "m".repeat(63),
      operatorNamespace: "proxy",
      prefixed,
    });
    assert.ok(DNS_LABEL.test(huge) && huge.length <= 63, huge);
  }
});

Deno.test("wantedServicePorts() gives a contested protocol+port to the first forwarder only", () => {
  const wanted = wantedServicePorts(
    [tcp("proxy/old", 7000), tcp("proxy/new", 7000), both("proxy/dual", 7001)],
    ["TCP", "UDP"],
    "proxy",
  );
  assert.deepEqual(wanted.map((w) => [w.name, w.port, w.protocol, w.owner]), [
    ["tcp-old", 7000, "TCP", "proxy/old"],
    ["tcp-dual", 7001, "TCP", "proxy/dual"],
    ["udp-dual", 7001, "UDP", "proxy/dual"],
  ]);
  assert.deepEqual(wantedServicePorts([both("p/x", 1)], ["UDP"], "p").map((w) => w.protocol), [
    "UDP",
  ]);
});

Deno.test("planServicePorts() appends new ports after foreign ones and records ownership", () => {
  const wanted = wantedServicePorts([both("proxy/game", 7000)], ["TCP", "UDP"], "proxy");
  const plan = planServicePorts([PLACEHOLDER], new Set(), wanted);
  assert.equal(plan.changed, true);
  assert.deepEqual(plan.ports, [
    PLACEHOLDER,
    { name: "tcp-game", port: 7000, targetPort: 7000, protocol: "TCP" },
    { name: "udp-game", port: 7000, targetPort: 7000, protocol: "UDP" },
  ]);
  assert.deepEqual(plan.owned, ["tcp-game", "udp-game"]);
  assert.deepEqual(plan.added.map((w) => w.name), ["tcp-game", "udp-game"]);
  assert.deepEqual(plan.removed, []);
});

Deno.test("planServicePorts() changes nothing when the Service already matches", () => {
  const wanted = wantedServicePorts([tcp("proxy/game", 7000)], ["TCP"], "proxy");
  const current: ServicePort[] = [
    PLACEHOLDER,
    { name: "game", port: 7000, targetPort: 7000, protocol: "TCP", nodePort: 31000 },
  ];
  const plan = planServicePorts(current, new Set(["game"]), wanted);
  assert.equal(plan.changed, false);
  assert.equal(plan.ports[1], current[1]);
});

Deno.test("planServicePorts() repairs an edited port in place and keeps its nodePort", () => {
  const wanted = wantedServicePorts([tcp("proxy/game", 7000)], ["TCP"], "proxy");
  const edited: ServicePort[] = [
    { name: "game", port: 7000, targetPort: 9999, protocol: "TCP", nodePort: 31000 },
    PLACEHOLDER,
  ];
  const plan = planServicePorts(edited, new Set(["game"]), wanted);
  assert.equal(plan.changed, true);
  assert.deepEqual(plan.ports, [
    { name: "game", port: 7000, targetPort: 7000, protocol: "TCP", nodePort: 31000 },
    PLACEHOLDER,
  ]);
  const moved = planServicePorts(
    edited,
    new Set(["game"]),
    wantedServicePorts([tcp("proxy/game", 7002)], ["TCP"], "proxy"),
  );
  assert.deepEqual(moved.ports[0], {
    name: "game",
    port: 7002,
    targetPort: 7002,
    protocol: "TCP",
  });
});

Deno.test("planServicePorts() re-adds an owned port removed by hand", () => {
  const wanted = wantedServicePorts([tcp("proxy/game", 7000)], ["TCP"], "proxy");
  const plan = planServicePorts([PLACEHOLDER], new Set(["game"]), wanted);
  assert.equal(plan.changed, true);
  assert.deepEqual(plan.added.map((w) => w.name), ["game"]);
});

Deno.test("planServicePorts() removes owned ports of vanished objects and leaves foreign ones", () => {
  const current: ServicePort[] = [
    { name: "gone", port: 7005, targetPort: 7005, protocol: "TCP" },
    PLACEHOLDER,
    { name: "hand-made", port: 9000, targetPort: 9000, protocol: "TCP" },
  ];
  const plan = planServicePorts(current, new Set(["gone"]), []);
  assert.equal(plan.changed, true);
  assert.deepEqual(plan.ports, [PLACEHOLDER, current[2]]);
  assert.deepEqual(plan.removed, [current[0]]);
  assert.deepEqual(plan.owned, []);
});

Deno.test("planServicePorts() reports a wanted port held by a foreign port as blocked", () => {
  const wanted = wantedServicePorts(
    [tcp("proxy/clash", 1234), tcp("proxy/fine", 7000)],
    ["TCP"],
    "proxy",
  );
  const plan = planServicePorts([PLACEHOLDER], new Set(), wanted);
  assert.deepEqual(plan.blocked.map((b) => b.wanted.owner), ["proxy/clash"]);
  assert.match(plan.blocked[0]?.reason ?? "", /TCP port 1234/);
  assert.deepEqual(plan.ports.map((p) => p.name), ["any-port", "fine"]);
  const byName = planServicePorts(
    [{ name: "fine", port: 1, protocol: "UDP" }], // TCP would be a Go operator port: adopted,
    new Set(),
    wanted.slice(1),
  );
  assert.match(byName.blocked[0]?.reason ?? "", /name "fine"/);
  assert.equal(byName.changed, false);
});

Deno.test("planServicePorts() adopts a port the Go operator named after the object, as it is", () => {
  const wanted = wantedServicePorts([tcp("proxy/game", 7000)], ["TCP"], "proxy");
  const legacy: ServicePort = {
    name: "game",
    port: 7000,
    targetPort: 7000,
    protocol: "TCP",
    nodePort: 30700,
  };
  const plan = planServicePorts([PLACEHOLDER, legacy], new Set(), wanted);
  assert.equal(plan.ports[1], legacy, "the same port object: untouched");
  assert.deepEqual(plan.owned, ["game"]);
  assert.equal(plan.changed, true, "the ownership annotation is written");
  assert.deepEqual(plan.blocked, []);
  const otherProtocol = planServicePorts(
    [{ ...legacy, protocol: "UDP" }],
    new Set(),
    wanted,
  );
  assert.match(otherProtocol.blocked[0]?.reason ?? "", /name "game"/, "a UDP port is foreign");
});

Deno.test("planServicePorts() renames a Go operator's port where one Service holds both protocols", () => {
  const wanted = wantedServicePorts([tcp("proxy/game", 7000)], ["TCP", "UDP"], "proxy");
  const legacy: ServicePort = { name: "game", port: 7000, targetPort: 7000, protocol: "TCP" };
  const plan = planServicePorts([PLACEHOLDER, legacy], new Set(), wanted);
  assert.deepEqual(plan.ports, [PLACEHOLDER, {
    name: "tcp-game",
    port: 7000,
    targetPort: 7000,
    protocol: "TCP",
  }]);
  assert.deepEqual(plan.blocked, []);
});

Deno.test("planServicePorts() renames owned ports of the other layout in place, keeping the nodePort", () => {
  // Written by an earlier version (prefixed names in a one-protocol Service): renamed back.
  const wanted = wantedServicePorts([tcp("proxy/game", 7000)], ["TCP"], "proxy");
  const old: ServicePort = {
    name: "tcp-game",
    port: 7000,
    targetPort: 7000,
    protocol: "TCP",
    nodePort: 30700,
  };
  const plan = planServicePorts([PLACEHOLDER, old], new Set(["tcp-game"]), wanted);
  assert.deepEqual(plan.ports, [PLACEHOLDER, { ...old, name: "game" }]);
  assert.deepEqual(plan.owned, ["game"]);
  assert.deepEqual(plan.removed, []);
  assert.deepEqual(plan.added, []);
});

Deno.test("parseOwnedPorts() and formatOwnedPorts() round-trip sorted names", () => {
  assert.equal(formatOwnedPorts(["udp-b", "tcp-a", "tcp-a"]), "tcp-a,udp-b");
  assert.deepEqual([...parseOwnedPorts(" tcp-a, ,udp-b")], ["tcp-a", "udp-b"]);
  assert.deepEqual([...parseOwnedPorts(undefined)], []);
});
