import assert from "node:assert/strict";
import { applyFilter } from "./main.ts";
import { directPeer, haproxyPeer, nginxPeer, socatPeer, undyingPeer } from "./peers.ts";
import { SCENARIOS } from "./scenarios.ts";

const ENTRY = { program: true, permissions: ["--allow-net"] };
const PEERS = [
  directPeer,
  undyingPeer(ENTRY, 1),
  undyingPeer(ENTRY, 2),
  undyingPeer(ENTRY, 1, "portable"),
  nginxPeer,
  haproxyPeer,
  socatPeer,
];

Deno.test("applyFilter() keeps direct and nginx when selecting peers", () => {
  const { peers, scenarios } = applyFilter("socat", PEERS, SCENARIOS);
  assert.deepEqual(peers.map((p) => p.name), ["direct", "nginx", "socat"]);
  assert.equal(scenarios.length, SCENARIOS.length);
});

Deno.test("applyFilter() selects scenarios by id part and peers by name together", () => {
  const { peers, scenarios } = applyFilter("udp-pps-64, haproxy", PEERS, SCENARIOS);
  assert.deepEqual(peers.map((p) => p.name), ["direct", "nginx", "haproxy"]);
  assert.deepEqual(scenarios.map((s) => s.id), [
    "udp-pps-64-1",
    "udp-pps-64-100",
    "udp-pps-64-1000",
  ]);
});

Deno.test("applyFilter() selects one UnDyingProxy variant by full name, both by a name part", () => {
  const names = (filter: string) => applyFilter(filter, PEERS, SCENARIOS).peers.map((p) => p.name);
  assert.deepEqual(names("undying-proxy"), ["direct", "undying-proxy", "nginx"]);
  assert.deepEqual(names("undying-proxy-w2"), ["direct", "undying-proxy-w2", "nginx"]);
  assert.deepEqual(names("undying-proxy-portable"), ["direct", "undying-proxy-portable", "nginx"]);
  assert.deepEqual(names("undying"), [
    "direct",
    "undying-proxy",
    "undying-proxy-w2",
    "undying-proxy-portable",
    "nginx",
  ]);
});

Deno.test("applyFilter() with no terms keeps everything", () => {
  const { peers, scenarios } = applyFilter("", PEERS, SCENARIOS);
  assert.equal(peers.length, PEERS.length);
  assert.equal(scenarios.length, SCENARIOS.length);
});

Deno.test("applyFilter() names a term that matches nothing", () => {
  assert.throws(() => applyFilter("tcp-bulk,envoy", PEERS, SCENARIOS), {
    name: "RangeError",
    message: /"envoy" matches no peer and no scenario/,
  });
});
