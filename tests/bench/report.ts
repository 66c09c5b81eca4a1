/**
 * Turns the samples of all repetitions into summaries (medians, ranges, ratios against direct and
 * nginx from the same repetition) and renders them as markdown.
 * @module
 */
import type { Sample, Scenario } from "./scenarios.ts";
import { ratio, summarize, type Summary } from "./stats.ts";

/** The baselines every figure is compared with. */
export const DIRECT = "direct";
/** The forwarder every figure is compared with. */
export const NGINX = "nginx";
/** Peers whose names start with this are the subjects: the summary shows their ratios. */
export const SUBJECT_PREFIX = "undying-proxy";
/** Headroom below this (direct over the fastest forwarder) means the load generator may limit. */
export const MIN_HEADROOM = 1.5;

/** One scenario run for one peer in one repetition. */
export interface RunRecord {
  readonly rep: number;
  readonly scenario: string;
  readonly peer: string;
  readonly sample?: Sample;
  readonly error?: string;
}

/** One figure of one peer over all repetitions. */
export interface MetricSummary {
  readonly value?: Summary;
  /** Median (and range) of the per-repetition ratios against direct. */
  readonly vsDirect?: Summary;
  readonly vsNginx?: Summary;
  /** Per-repetition `value − direct`. */
  readonly overDirect?: Summary;
}

/** One peer in one scenario. */
export interface PeerSummary {
  readonly peer: string;
  readonly metrics: Readonly<Record<string, MetricSummary>>;
  readonly errors: readonly string[];
}

/** One scenario over all peers. */
export interface ScenarioSummary {
  readonly id: string;
  readonly title: string;
  readonly peers: readonly PeerSummary[];
  /** Direct's median of the throughput figure divided by the best forwarder's. */
  readonly headroom?: number;
}

function lookup(records: readonly RunRecord[]) {
  const index = new Map<string, Sample>();
  for (const r of records) if (r.sample) index.set(`${r.rep}/${r.scenario}/${r.peer}`, r.sample);
  return (rep: number, scenario: string, peer: string) => index.get(`${rep}/${scenario}/${peer}`);
}

/** Summaries of every scenario for the given peers (in their order). */
export function aggregate(
  records: readonly RunRecord[],
  scenarios: readonly Scenario[],
  peers: readonly string[],
): ScenarioSummary[] {
  const sampleOf = lookup(records);
  const reps = [...new Set(records.map((r) => r.rep))];
  return scenarios.map((scenario) => {
    const peerSummaries = peers.map((peer): PeerSummary => {
      const metrics: Record<string, MetricSummary> = {};
      for (const { key } of scenario.metrics) {
        const per = (base: string, combine: (v?: number, b?: number) => number | undefined) =>
          summarize(reps.map((rep) => {
            const value = sampleOf(rep, scenario.id, peer)?.[key];
            return combine(value, sampleOf(rep, scenario.id, base)?.[key]);
          }));
        const value = summarize(reps.map((rep) => sampleOf(rep, scenario.id, peer)?.[key]));
        const entry: Record<string, Summary | undefined> = {
          value,
          vsDirect: per(DIRECT, ratio),
          vsNginx: per(NGINX, ratio),
          overDirect: per(DIRECT, (v, b) => v === undefined || b === undefined ? undefined : v - b),
        };
        metrics[key] = Object.fromEntries(
          Object.entries(entry).filter(([, s]) => s !== undefined),
        ) as MetricSummary;
      }
      const errors = records.filter((r) =>
        r.scenario === scenario.id && r.peer === peer && r.error !== undefined
      ).map((r) => `rep ${r.rep}: ${r.error}`);
      return { peer, metrics, errors };
    });
    const throughput = scenario.metrics.find((m) => m.throughput)?.key;
    const medianOf = (p: PeerSummary) =>
      throughput === undefined ? undefined : p.metrics[throughput]?.value?.median;
    const direct = peerSummaries.find((p) => p.peer === DIRECT);
    const best = Math.max(
      ...peerSummaries.filter((p) => p.peer !== DIRECT).map((p) => medianOf(p) ?? 0),
    );
    const headroom = direct === undefined ? undefined : ratio(medianOf(direct), best || undefined);
    return {
      id: scenario.id,
      title: scenario.title,
      peers: peerSummaries,
      ...(headroom === undefined ? {} : { headroom }),
    };
  });
}

/** `1234.5` → `1,235` (with `decimals` 0); thousands separated for readability. */
export function formatNumber(value: number, decimals: number): string {
  return value.toLocaleString("en-US", {
    minimumFractionDigits: decimals,
    maximumFractionDigits: decimals,
  });
}

function cell(summary: Summary | undefined, decimals: number, range: boolean): string {
  if (summary === undefined) return "–";
  const median = formatNumber(summary.median, decimals);
  if (!range || summary.n < 2) return median;
  return `${median} (${formatNumber(summary.min, decimals)}–${
    formatNumber(summary.max, decimals)
  })`;
}

/** Markdown: one table per scenario, rows = peers, each figure as median (min–max) and ratios. */
export function renderMarkdown(
  summaries: readonly ScenarioSummary[],
  scenarios: readonly Scenario[],
): string {
  const out: string[] = [];
  for (const summary of summaries) {
    const scenario = scenarios.find((s) => s.id === summary.id);
    if (scenario === undefined || summary.peers.every((p) => Object.keys(p.metrics).length === 0)) {
      continue;
    }
    const header = ["peer"];
    const columns: ((p: PeerSummary) => string)[] = [(p) => p.peer];
    for (const metric of scenario.metrics) {
      const of = (p: PeerSummary) => p.metrics[metric.key];
      header.push(metric.label);
      columns.push((p) => cell(of(p)?.value, metric.decimals, true));
      if (metric.addedOverDirect) {
        header.push("+ vs direct");
        columns.push((p) => cell(of(p)?.overDirect, metric.decimals, false));
      }
      if (!metric.compare) continue;
      if (summary.peers.some((p) => p.peer !== DIRECT && of(p)?.vsDirect !== undefined)) {
        header.push("×direct");
        columns.push((p) => cell(of(p)?.vsDirect, 2, false));
      }
      header.push("×nginx");
      columns.push((p) => cell(of(p)?.vsNginx, 2, false));
    }
    out.push(`### ${summary.title}`, "");
    out.push(`| ${header.join(" | ")} |`, `|${header.map(() => "---").join("|")}|`);
    const shown = summary.peers.filter((p) =>
      Object.values(p.metrics).some((m) => m.value !== undefined) || p.errors.length > 0
    );
    for (const peer of shown) out.push(`| ${columns.map((c) => c(peer)).join(" | ")} |`);
    out.push("");
    if (summary.headroom !== undefined) {
      out.push(
        `Load generator headroom: direct = ${summary.headroom.toFixed(1)}× the fastest forwarder.`,
      );
      out.push("");
    }
    for (const peer of shown) {
      for (const error of peer.errors) out.push(`- ${peer.peer} failed, ${error}`);
    }
    if (shown.some((p) => p.errors.length > 0)) out.push("");
  }
  return out.join("\n");
}

/**
 * One compact table: a row per compared figure of every scenario, the median of each peer, and each
 * subject's (UnDyingProxy variant's) ratios against direct and nginx.
 */
export function renderSummary(
  summaries: readonly ScenarioSummary[],
  scenarios: readonly Scenario[],
  peers: readonly string[],
): string {
  const subjects = peers.filter((p) => p.startsWith(SUBJECT_PREFIX));
  const header = [
    "figure",
    ...peers,
    ...subjects.flatMap((s) => [`${s} ×direct`, `${s} ×nginx`]),
  ];
  const out = [`| ${header.join(" | ")} |`, `|${header.map(() => "---").join("|")}|`];
  for (const summary of summaries) {
    const scenario = scenarios.find((s) => s.id === summary.id);
    for (const metric of scenario?.metrics.filter((m) => m.compare) ?? []) {
      const of = (peer: string) => summary.peers.find((p) => p.peer === peer)?.metrics[metric.key];
      if (peers.every((peer) => of(peer)?.value === undefined)) continue;
      const cells = peers.map((peer) => cell(of(peer)?.value, metric.decimals, false));
      for (const subject of subjects) {
        cells.push(cell(of(subject)?.vsDirect, 2, false), cell(of(subject)?.vsNginx, 2, false));
      }
      out.push(`| ${summary.id} ${metric.label} | ${cells.join(" | ")} |`);
    }
  }
  return out.join("\n");
}

/**
 * One line on the load generators: the range of direct's lead over the fastest forwarder across the
 * throughput scenarios, naming every scenario where it is below {@linkcode MIN_HEADROOM}.
 */
export function renderHeadroom(summaries: readonly ScenarioSummary[]): string {
  const measured = summaries.filter((s) => s.headroom !== undefined);
  if (measured.length === 0) return "Load generator headroom: not measured (no direct run).";
  const values = measured.map((s) => s.headroom ?? 0);
  const line = `Load generator headroom: direct ran ${Math.min(...values).toFixed(1)}–` +
    `${Math.max(...values).toFixed(1)}× above the fastest forwarder in every throughput scenario.`;
  const low = measured.filter((s) => (s.headroom ?? 0) < MIN_HEADROOM);
  if (low.length === 0) return line;
  return `${line} Below ${MIN_HEADROOM}× (the load generator may limit the forwarders): ` +
    `${low.map((s) => `${s.id} ${(s.headroom ?? 0).toFixed(1)}×`).join(", ")}.`;
}
