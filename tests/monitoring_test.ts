/**
 * The shipped monitoring: the Prometheus alert rules (`promtool check rules`, `promtool test
 * rules`, the chart's PrometheusRule), the Grafana dashboard (importable JSON, the chart's
 * ConfigMap for the sidecar), and every metric name they use served by the real program.
 */

import assert from "node:assert/strict";
import { dump, load } from "js-yaml";
import { integrationTest } from "./_support/control_plane.ts";
import { chartDir, helmTest } from "./_support/helm.ts";
import { findManifest, parseManifests, repoRoot } from "./_support/kustomize.ts";
import {
  NO_MANAGED_SERVICES,
  operatorKubeconfig,
  startOperator,
  waitReady,
} from "./_support/operator.ts";
import { type Exposition, freePort, startProgram } from "./_support/program.ts";
import { waitUntil } from "./_support/wait.ts";

const RULES_FILE = `${chartDir}/files/prometheus-rules.yaml`;
const RULES_TEST = `${repoRoot}tests/monitoring/prometheus_rules_test.yaml`;
const DASHBOARD_FILE = `${chartDir}/files/grafana-dashboard.json`;

/** Metrics only the operator mode serves samples of (file mode prints their TYPE line only). */
const OPERATOR_MODE_ONLY = ["undying_proxy_operator_errors_total"];

interface Rule {
  alert?: string;
  record?: string;
  expr: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
interface RuleGroups {
  groups: { name: string; rules: Rule[] }[];
}
interface Panel {
  id: number;
  type: string;
  title: string;
  datasource?: { uid: string };
  gridPos: { x: number; y: number; w: number; h: number };
  targets?: { expr: string; refId: string }[];
}
interface Dashboard {
  uid: string;
  title: string;
  panels: Panel[];
  templating: { list: { name: string; type: string; query: string | { query: string } }[] };
}

async function rules(): Promise<Rule[]> {
  const file = load(await Deno.readTextFile(RULES_FILE)) as RuleGroups;
  return file.groups.flatMap((group) => group.rules);
}

async function dashboard(): Promise<Dashboard> {
  return JSON.parse(await Deno.readTextFile(DASHBOARD_FILE)) as Dashboard;
}

/** Every PromQL expression of the dashboard: panel targets and template variable queries. */
function dashboardExpressions(board: Dashboard): string[] {
  const targets = board.panels.flatMap((panel) => panel.targets ?? []).map((t) => t.expr);
  const variables = board.templating.list.filter((v) => v.type === "query").map((v) =>
    typeof v.query === "string" ? v.query : v.query.query
  ).map((query) => query.replace(/^label_values\((.*), *\w+\)$/, "$1"));
  return [...targets, ...variables];
}

/**
 * Metric names in a PromQL expression: what is left after removing strings, label matchers,
 * ranges, grouping clauses, functions, keywords and numbers.
 */
function metricNames(expr: string): string[] {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, " ")
    .replace(/\{[^}]*\}/g, " ")
    .replace(/\[[^\]]*\]/g, " ")
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, " ");
  const keywords = new Set(["and", "or", "unless", "bool", "offset", "by", "without"]);
  const names = [...stripped.matchAll(/(?<![\w:.])([A-Za-z_:][\w:]*)(\s*\()?/g)]
    .filter((match) => match[2] === undefined && !keywords.has(match[1] ?? ""))
    .map((match) => match[1] ?? "");
  return [...new Set(names)];
}

/** Every metric name used by the rules and the dashboard. */
async function usedMetricNames(): Promise<string[]> {
  const expressions = [
    ...(await rules()).map((rule) => rule.expr),
    ...dashboardExpressions(await dashboard()),
  ];
  return [...new Set(expressions.flatMap(metricNames))].sort();
}

/** Runs a program (promtool) and returns exit code and output. */
async function run(command: string, args: string[]): Promise<{ code: number; output: string }> {
  const result = await new Deno.Command(command, { args, stdout: "piped", stderr: "piped" })
    .output();
  const decoder = new TextDecoder();
  return {
    code: result.code,
    output: decoder.decode(result.stdout) + decoder.decode(result.stderr),
  };
}

/** promtool from Debian's `prometheus` package (.ci/run installs it); fails the test without. */
async function promtool(args: string[]): Promise<string> {
  let result;
  try {
    result = await run("promtool", args);
  } catch (error) {
    throw new Error(`promtool is needed (apt-get install prometheus): ${error}`);
  }
  assert.equal(result.code, 0, `promtool ${args.join(" ")}:\n${result.output}`);
  return result.output;
}

Deno.test("metricNames finds metrics, not functions, labels, keywords or variables", () => {
  assert.deepEqual(
    metricNames(
      'sum by (namespace, type) (rate(undying_proxy_a_total{type=~"Dial.*"}[$__rate_interval]))' +
        " or on (x) undying_proxy_b == bool 0 and absent(up offset 5m)",
    ),
    ["undying_proxy_a_total", "undying_proxy_b", "up"],
  );
});

Deno.test("promtool check rules accepts the rules file", async () => {
  const output = await promtool(["check", "rules", RULES_FILE]);
  assert.match(output, new RegExp(`SUCCESS: ${(await rules()).length} rules found`));
});

Deno.test("promtool test rules: every alert fires on trouble and stays quiet otherwise", async () => {
  const output = await promtool(["test", "rules", RULES_TEST]);
  assert.match(output, /SUCCESS/);
  // Every alert has a test where it fires, with its labels and annotations spelled out.
  const tests = load(await Deno.readTextFile(RULES_TEST)) as {
    tests: { alert_rule_test: { alertname: string; exp_alerts: unknown[] }[] }[];
  };
  const fired = new Set(
    tests.tests.flatMap((t) => t.alert_rule_test).filter((t) => t.exp_alerts.length > 0)
      .map((t) => t.alertname),
  );
  const alerts = (await rules()).map((rule) => rule.alert);
  assert.deepEqual(alerts.filter((name) => !fired.has(name ?? "")), []);
  assert.deepEqual(alerts.toSorted(), [
    "UnDyingProxyConfigReloadFailed",
    "UnDyingProxyForwarderNotListening",
    "UnDyingProxyNoReplicaReady",
    "UnDyingProxyOperatorErrors",
    "UnDyingProxyPortConflict",
    "UnDyingProxyTCPDialFailures",
    "UnDyingProxyUDPDatagramsDropped",
    "UnDyingProxyUDPDialFailures",
    "UnDyingProxyUDPSessionLimitReached",
  ]);
  for (const rule of await rules()) {
    assert.ok(rule.labels?.["severity"], `${rule.alert} has a severity`);
    assert.ok(rule.annotations?.["summary"] && rule.annotations["description"], `${rule.alert}`);
  }
});

Deno.test("the dashboard is importable Grafana JSON with a panel for each thing to watch", async () => {
  const board = await dashboard();
  assert.equal(board.uid, "undying-proxy");
  const variables = board.templating.list.map((v) => [v.name, v.type]);
  assert.deepEqual(variables, [
    ["datasource", "datasource"],
    ["namespace", "query"],
    ["forwarder", "query"],
  ]);
  const ids = board.panels.map((panel) => panel.id);
  assert.equal(new Set(ids).size, ids.length, "panel ids are unique");
  for (const panel of board.panels) {
    assert.ok(panel.gridPos.x + panel.gridPos.w <= 24, `${panel.title} fits the grid`);
    if (panel.type === "row") continue;
    assert.equal(panel.datasource?.uid, "${datasource}", `${panel.title} uses the variable`);
    assert.ok(panel.targets?.length, `${panel.title} has queries`);
    for (const target of panel.targets ?? []) assert.ok(target.expr.trim(), panel.title);
  }
  const used = new Set(dashboardExpressions(board).flatMap(metricNames));
  for (
    const metric of [
      "undying_proxy_forwarder_state", // forwarders by state, replicas listening per object
      "undying_proxy_tcp_active_connections",
      "undying_proxy_udp_clients_connected",
      "undying_proxy_tcp_from_clients_to_target_bytes_total",
      "undying_proxy_tcp_from_target_to_clients_bytes_total",
      "undying_proxy_udp_from_clients_to_target_bytes_total",
      "undying_proxy_udp_from_target_to_clients_bytes_total",
      "undying_proxy_udp_from_clients_to_target_datagrams_total",
      "undying_proxy_udp_from_target_to_clients_datagrams_total",
      "undying_proxy_tcp_forwarding_errors_total",
      "undying_proxy_udp_forwarding_errors_total",
      "undying_proxy_udp_dropped_datagrams_total",
      "undying_proxy_config_reloads_total",
      "undying_proxy_operator_errors_total",
    ]
  ) assert.ok(used.has(metric), `the dashboard shows ${metric}`);
  const titles = board.panels.map((panel) => panel.title);
  assert.ok(titles.includes("Replicas listening per object"));
  assert.ok(titles.some((title) => /^Dial failures/.test(title)));
});

Deno.test("every dashboard query parses with Prometheus's own parser (promtool check rules)", async () => {
  // Grafana's variables, as Grafana fills them in before sending a query.
  const concrete = (expr: string) =>
    expr.replaceAll("$__rate_interval", "1m").replace(/\$(namespace|forwarder)\b/g, ".*");
  const board = await dashboard();
  const records = dashboardExpressions(board).map((expr, i) => ({
    record: `dashboard:query_${i}`,
    expr: concrete(expr),
  }));
  const file = await Deno.makeTempFile({ suffix: ".yaml" });
  try {
    await Deno.writeTextFile(file, dump({ groups: [{ name: "dashboard", rules: records }] }));
    const output = await promtool(["check", "rules", file]);
    assert.match(output, new RegExp(`SUCCESS: ${records.length} rules found`));
  } finally {
    await Deno.remove(file);
  }
});

helmTest(
  "the chart's PrometheusRule and dashboard ConfigMap hold the shipped files",
  async (helm) => {
    const objects = parseManifests(
      await helm.template({
        values: { prometheusRule: { enabled: true }, grafanaDashboard: { enabled: true } },
      }),
    );
    const rule = findManifest<{ spec: RuleGroups }>(objects, "PrometheusRule", "undying-proxy");
    assert.deepEqual(rule.spec, load(await Deno.readTextFile(RULES_FILE)));
    // promtool checks the PrometheusRule's spec as a rules file too.
    const file = await Deno.makeTempFile({ suffix: ".yaml" });
    try {
      await Deno.writeTextFile(file, dump(rule.spec));
      await promtool(["check", "rules", file]);
    } finally {
      await Deno.remove(file);
    }
    const configMap = findManifest<
      { metadata: { labels: Record<string, string> }; data: Record<string, string> }
    >(objects, "ConfigMap", "undying-proxy-dashboard");
    assert.equal(configMap.metadata.labels["grafana_dashboard"], "1", "the sidecar's label");
    assert.deepEqual(JSON.parse(configMap.data["undying-proxy.json"] ?? ""), await dashboard());
    const off = parseManifests(await helm.template());
    assert.ok(!off.some((o) => ["PrometheusRule", "ConfigMap"].includes(o.kind)), "off by default");
  },
);

/** Metric names with at least one sample in a scrape. */
function sampled(exposition: Exposition): Set<string> {
  return new Set([...exposition.series.keys()].map((key) => key.replace(/\{.*$/, "")));
}

Deno.test("every metric the rules and the dashboard use is served by the program in file mode", async () => {
  const used = await usedMetricNames();
  assert.deepEqual(used.filter((name) => !name.startsWith("undying_proxy_")), [], "own only");
  const dir = await Deno.makeTempDir({ prefix: "monitoring_test_" });
  try {
    const [tcpPort, udpPort] = [freePort(), freePort()];
    const config = [
      {
        name: "web",
        spec: { tcp: { listenPort: tcpPort, targetPort: 9, targetHost: "127.0.0.1" } },
      },
      {
        name: "dns",
        spec: { udp: { listenPort: udpPort, targetPort: 9, targetHost: "127.0.0.1" } },
      },
    ].map(({ name, spec }) =>
      dump({
        apiVersion: "proxy.sfact.io/v1alpha1",
        kind: "UnDyingProxy",
        metadata: { name },
        spec,
      })
    ).join("---\n");
    await Deno.writeTextFile(`${dir}/proxies.yaml`, config);
    await using program = await startProgram([`--config=${dir}/proxies.yaml`]);
    let exposition: Exposition = { series: new Map(), types: new Map() };
    await waitUntil("both forwarders in /metrics", async () => {
      exposition = await program.scrape();
      return sampled(exposition).has("undying_proxy_udp_clients_connected") &&
        sampled(exposition).has("undying_proxy_tcp_active_connections");
    }, { timeoutMs: 30_000 });
    const withSamples = sampled(exposition);
    assert.deepEqual(
      used.filter((name) => !withSamples.has(name) && !OPERATOR_MODE_ONLY.includes(name)),
      [],
      "used but without samples in file mode",
    );
    for (const name of OPERATOR_MODE_ONLY) {
      assert.ok(exposition.types.has(name), `${name} is registered (samples in operator mode)`);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

integrationTest(
  "the operator-mode metrics the rules and the dashboard use are served in operator mode",
  async (cp) => {
    const used = await usedMetricNames();
    const ns = await cp.createNamespace("monitoring");
    const kubeconfig = await operatorKubeconfig(cp, ns);
    await using operator = await startOperator({
      kubeconfig,
      namespace: ns,
      replica: "op-a",
      args: NO_MANAGED_SERVICES,
    });
    await waitReady(operator);
    const withSamples = sampled(await operator.metrics());
    for (const name of OPERATOR_MODE_ONLY) {
      assert.ok(used.includes(name), `${name} is used`);
      assert.ok(withSamples.has(name), `${name} has samples in operator mode`);
    }
  },
);
