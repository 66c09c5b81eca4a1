import assert from "node:assert/strict";
import {
  aggregate,
  formatNumber,
  renderHeadroom,
  renderMarkdown,
  renderSummary,
  type RunRecord,
} from "./report.ts";
import type { Scenario } from "./scenarios.ts";

const SCENARIO: Scenario = {
  id: "demo",
  title: "Demo throughput",
  udp: false,
  forwarderOnly: false,
  metrics: [
    { key: "rate", label: "rate", decimals: 1, compare: true, throughput: true },
    { key: "p50", label: "p50", decimals: 0, addedOverDirect: true },
  ],
  run: () => Promise.reject(new Error("not run in this test")),
};

function record(rep: number, peer: string, rate: number, p50: number): RunRecord {
  return { rep, scenario: "demo", peer, sample: { rate, p50 } };
}

const RECORDS: RunRecord[] = [
  record(1, "direct", 100, 10),
  record(1, "nginx", 40, 30),
  record(1, "undying-proxy", 20, 50),
  record(2, "direct", 50, 20),
  record(2, "nginx", 25, 40),
  record(2, "undying-proxy", 25, 45),
  record(3, "direct", 80, 10),
  record(3, "nginx", 40, 20),
  { rep: 3, scenario: "demo", peer: "undying-proxy", error: "crashed" },
  record(1, "undying-proxy-w2", 30, 40),
  record(2, "undying-proxy-w2", 30, 40),
  record(3, "undying-proxy-w2", 40, 30),
];

Deno.test("aggregate() takes medians of per-repetition ratios against direct and nginx", () => {
  const [summary] = aggregate(RECORDS, [SCENARIO], ["direct", "undying-proxy", "nginx"]);
  const undying = summary?.peers.find((p) => p.peer === "undying-proxy");
  assert.deepEqual(undying?.metrics["rate"]?.value, { median: 22.5, min: 20, max: 25, n: 2 });
  // rep 1: 20/100 and 20/40; rep 2: 25/50 and 25/25 (not the ratio of the medians)
  assert.deepEqual(undying?.metrics["rate"]?.vsDirect, { median: 0.35, min: 0.2, max: 0.5, n: 2 });
  assert.deepEqual(undying?.metrics["rate"]?.vsNginx, { median: 0.75, min: 0.5, max: 1, n: 2 });
  assert.deepEqual(undying?.metrics["p50"]?.overDirect, { median: 32.5, min: 25, max: 40, n: 2 });
  assert.deepEqual(undying?.errors, ["rep 3: crashed"]);
  // direct's median 80 over the best forwarder's median 40 (nginx)
  assert.equal(summary?.headroom, 2);
});

Deno.test("renderMarkdown() shows median (min–max), ratios, headroom and failures", () => {
  const summaries = aggregate(RECORDS, [SCENARIO], ["direct", "undying-proxy", "nginx"]);
  const markdown = renderMarkdown(summaries, [SCENARIO]);
  const lines = markdown.split("\n");
  assert.equal(lines[0], "### Demo throughput");
  assert.ok(lines.includes("| peer | rate | ×direct | ×nginx | p50 | + vs direct |"));
  assert.ok(lines.includes("| undying-proxy | 22.5 (20.0–25.0) | 0.35 | 0.75 | 48 (45–50) | 33 |"));
  assert.ok(lines.includes("| direct | 80.0 (50.0–100.0) | 1.00 | 2.00 | 10 (10–20) | 0 |"));
  assert.ok(lines.includes("Load generator headroom: direct = 2.0× the fastest forwarder."));
  assert.ok(lines.includes("- undying-proxy failed, rep 3: crashed"));
});

Deno.test("formatNumber() separates thousands and fixes decimals", () => {
  assert.equal(formatNumber(12345.678, 0), "12,346");
  assert.equal(formatNumber(0.5, 2), "0.50");
});

Deno.test("renderSummary() has a row per compared figure with every subject's ratios", () => {
  const peers = ["direct", "undying-proxy", "undying-proxy-w2", "nginx"];
  const summaries = aggregate(RECORDS, [SCENARIO], peers);
  assert.deepEqual(renderSummary(summaries, [SCENARIO], peers).split("\n"), [
    "| figure | direct | undying-proxy | undying-proxy-w2 | nginx | undying-proxy ×direct | " +
    "undying-proxy ×nginx | undying-proxy-w2 ×direct | undying-proxy-w2 ×nginx |",
    "|---|---|---|---|---|---|---|---|---|",
    // w2: 30/100, 30/50, 40/80 against direct; 30/40, 30/25, 40/40 against nginx
    "| demo rate | 80.0 | 22.5 | 30.0 | 40.0 | 0.35 | 0.75 | 0.50 | 1.00 |",
  ]);
});

Deno.test("renderHeadroom() gives the range and names scenarios where direct barely leads", () => {
  const peers = ["direct", "undying-proxy", "undying-proxy-w2", "nginx"];
  const summaries = aggregate(RECORDS, [SCENARIO], peers);
  // direct's median 80 over the fastest forwarder's median 40 (nginx; w2's median is 30)
  assert.equal(
    renderHeadroom(summaries),
    "Load generator headroom: direct ran 2.0–2.0× above the fastest forwarder in every " +
      "throughput scenario.",
  );
  const close = aggregate(
    [...RECORDS, record(4, "direct", 50, 10), record(5, "direct", 50, 10)],
    [SCENARIO],
    peers,
  );
  assert.equal(
    renderHeadroom(close),
    "Load generator headroom: direct ran 1.3–1.3× above the fastest forwarder in every " +
      "throughput scenario. Below 1.5× (the load generator may limit the forwarders): demo 1.3×.",
  );
  assert.match(renderHeadroom(aggregate(RECORDS, [SCENARIO], ["nginx"])), /not measured/);
});
