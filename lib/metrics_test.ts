import assert from "node:assert/strict";
import {
  type ForwarderCounters,
  type ForwarderStatus,
  newTcpCounters,
  newUdpCounters,
} from "./forward/state.ts";
import { forwarderLabels, ProgramMetrics } from "./metrics.ts";
import { parseExposition } from "../tests/_support/program.ts";

async function scrape(metrics: ProgramMetrics) {
  const response = await metrics.handle(new Request("http://x/metrics"));
  assert.equal(response.status, 200);
  assert.match(response.headers.get("content-type") ?? "", /^text\/plain/);
  return parseExposition(await response.text());
}

function fixture() {
  const tcp = newTcpCounters();
  Object.assign(tcp, { bytesClientToTarget: 10, bytesTargetToClient: 20, activeConnections: 1 });
  tcp.connectionsTotal = 3;
  tcp.errors.DialServerTarget = 2;
  const udp = newUdpCounters();
  Object.assign(udp, { bytesClientToTarget: 5, activeSessions: 4, droppedDatagrams: 7 });
  udp.errors.WriteToTarget = 1;
  const counters: ForwarderCounters[] = [{ name: "ns/a", tcp }, { name: "b", udp }];
  const statuses: ForwarderStatus[] = [
    { name: "ns/a", tcp: { phase: "listening", port: 80 } },
    { name: "b", udp: { phase: "failed", reason: "Address in use", retryInMs: 500 } },
  ];
  const view = { counters: () => counters, statuses: () => statuses };
  return { counters, statuses, view };
}

Deno.test("ProgramMetrics exports the Go operator's metrics with their names, types and labels", async () => {
  const { view } = fixture();
  const { series, types } = await scrape(new ProgramMetrics(view, { version: "9.9.9" }));
  const expected: [string, string, number][] = [
    ["undying_proxy_tcp_forwarders", "gauge", 1],
    ["undying_proxy_udp_forwarders", "gauge", 0],
    [
      'undying_proxy_tcp_from_clients_to_target_bytes_total{forwarder="a",namespace="ns"}',
      "counter",
      10,
    ],
    [
      'undying_proxy_tcp_from_target_to_clients_bytes_total{forwarder="a",namespace="ns"}',
      "counter",
      20,
    ],
    // The Go operator's error counters: `type` only, every type present.
    ['undying_proxy_tcp_forwarding_errors_total{type="DialServerTarget"}', "counter", 2],
    ['undying_proxy_tcp_forwarding_errors_total{type="Accept"}', "counter", 0],
    [
      'undying_proxy_tcp_forwarder_errors_total{forwarder="a",namespace="ns",type="DialServerTarget"}',
      "counter",
      2,
    ],
    ['undying_proxy_udp_clients_connected{forwarder="b",namespace=""}', "gauge", 4],
    [
      'undying_proxy_udp_from_clients_to_target_bytes_total{forwarder="b",namespace=""}',
      "counter",
      5,
    ],
    [
      'undying_proxy_udp_from_target_to_clients_bytes_total{forwarder="b",namespace=""}',
      "counter",
      0,
    ],
    ['undying_proxy_udp_forwarding_errors_total{type="WriteToTarget"}', "counter", 1],
    // Go's deadline types: never counted here, present so that queries naming them keep working.
    [
      'undying_proxy_udp_forwarding_errors_total{type="SetWriteDeadlineClientToTarget"}',
      "counter",
      0,
    ],
    [
      'undying_proxy_udp_forwarding_errors_total{type="SetReadDeadlineTargetToClient"}',
      "counter",
      0,
    ],
    [
      'undying_proxy_udp_forwarding_errors_total{type="SetWriteDeadlineTargetToClient"}',
      "counter",
      0,
    ],
    [
      'undying_proxy_udp_forwarder_errors_total{forwarder="b",namespace="",type="WriteToTarget"}',
      "counter",
      1,
    ],
    ['undying_proxy_tcp_active_connections{forwarder="a",namespace="ns"}', "gauge", 1],
    ['undying_proxy_tcp_connections_total{forwarder="a",namespace="ns"}', "counter", 3],
    ['undying_proxy_udp_dropped_datagrams_total{forwarder="b",namespace=""}', "counter", 7],
    ['undying_proxy_udp_truncated_datagrams_total{forwarder="b",namespace=""}', "counter", 0],
    ['undying_proxy_udp_segmented_datagrams_total{forwarder="b",namespace=""}', "counter", 0],
    [
      'undying_proxy_forwarder_state{forwarder="b",namespace="",protocol="udp",state="failed"}',
      "gauge",
      1,
    ],
    [
      'undying_proxy_forwarder_state{forwarder="b",namespace="",protocol="udp",state="listening"}',
      "gauge",
      0,
    ],
    ['undying_proxy_build_info{version="9.9.9"}', "gauge", 1],
    ['undying_proxy_config_reloads_total{result="failure"}', "counter", 0],
    ["undying_proxy_shutting_down", "gauge", 0],
  ];
  for (const [key, type, value] of expected) {
    assert.equal(series.get(key), value, key);
    assert.equal(types.get(key.replace(/\{.*/, "")), type, `type of ${key}`);
  }
  assert.equal(types.get("undying_proxy_operator_errors_total"), "counter");
  for (const name of ["tcp", "udp"].map((p) => `undying_proxy_${p}_forwarding_errors_total`)) {
    const labelSets = [...series.keys()].filter((k) => k.startsWith(`${name}{`));
    assert.ok(
      labelSets.every((k) => /^[a-z_]+\{type="[A-Za-z]+"\}$/.test(k)),
      `${name}: type only`,
    );
  }
  // A part absent from a forwarder has no series: "a" has no UDP part.
  assert.ok(
    ![...series.keys()].some((key) => key.startsWith("undying_proxy_udp") && key.includes('"a"')),
  );
});

Deno.test("ProgramMetrics reads live values on every scrape and drops removed forwarders", async () => {
  const { counters, statuses, view } = fixture();
  const metrics = new ProgramMetrics(view, { version: "1" });
  const key = 'undying_proxy_tcp_from_clients_to_target_bytes_total{forwarder="a",namespace="ns"}';
  const tcp = counters[0]?.tcp;
  assert.ok(tcp);
  tcp.bytesClientToTarget += 1000;
  assert.equal((await scrape(metrics)).series.get(key), 1010);
  counters.splice(0, 1);
  statuses.splice(0, 1);
  const { series } = await scrape(metrics);
  assert.ok(![...series.keys()].some((k) => k.includes('forwarder="a"')), "series of a are gone");
  assert.equal(series.get("undying_proxy_tcp_forwarders"), 0);
});

Deno.test("the Go error counters never go down when forwarders go or restart", async () => {
  const { counters, view } = fixture();
  const metrics = new ProgramMetrics(view, { version: "1" });
  const key = 'undying_proxy_tcp_forwarding_errors_total{type="DialServerTarget"}';
  const second = newTcpCounters();
  second.errors.DialServerTarget = 5;
  counters.push({ name: "ns/c", tcp: second });
  assert.equal((await scrape(metrics)).series.get(key), 7);
  counters.splice(0, 1); // "a" (2 errors) is removed
  assert.equal((await scrape(metrics)).series.get(key), 7);
  counters.splice(counters.findIndex((c) => c.name === "ns/c"), 1, {
    name: "ns/c",
    tcp: Object.assign(newTcpCounters(), { errors: { ...second.errors, DialServerTarget: 1 } }),
  }); // "c" restarted from 0 and counted 1 since
  assert.equal((await scrape(metrics)).series.get(key), 8);
  assert.equal(
    (await scrape(metrics)).series.get(
      'undying_proxy_tcp_forwarder_errors_total{forwarder="c",namespace="ns",type="DialServerTarget"}',
    ),
    1,
    "the per-object counter shows the live forwarder",
  );
});

Deno.test("ProgramMetrics counts config reloads, operator errors and shutdown", async () => {
  const metrics = new ProgramMetrics({ counters: () => [], statuses: () => [] }, { version: "1" });
  metrics.recordReload("success");
  metrics.recordReload("failure");
  metrics.operatorErrors.inc({ type: "FailedFetch" });
  metrics.shuttingDown.set(1);
  const { series } = await scrape(metrics);
  assert.equal(series.get('undying_proxy_config_reloads_total{result="success"}'), 1);
  assert.equal(series.get('undying_proxy_config_reloads_total{result="failure"}'), 1);
  assert.equal(series.get("undying_proxy_config_last_reload_successful"), 0);
  assert.equal(series.get('undying_proxy_operator_errors_total{type="FailedFetch"}'), 1);
  assert.equal(series.get("undying_proxy_shutting_down"), 1);
  const notFound = await metrics.handle(new Request("http://x/other"));
  assert.equal(notFound.status, 404);
  await notFound.body?.cancel();
});

Deno.test("forwarderLabels() splits namespace/name and keeps a bare name", () => {
  assert.deepEqual(forwarderLabels("games/mc"), { forwarder: "mc", namespace: "games" });
  assert.deepEqual(forwarderLabels("mc"), { forwarder: "mc", namespace: "" });
});
