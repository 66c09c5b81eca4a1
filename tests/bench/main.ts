/**
 * `deno task bench`: compares UnDyingProxy with direct (no forwarder), nginx stream, haproxy and socat
 * on loopback. Installs what is missing, starts every peer fresh for every scenario run, repeats, and
 * prints markdown tables (medians, min–max, ratios against direct and nginx of the same repetition)
 * plus a JSON file with every sample.
 * @module
 */
import { parseArgs } from "node:util";
import {
  BENCH_BUSY_POLL_US,
  directPeer,
  haproxyPeer,
  nginxHalfClosePeer,
  nginxPeer,
  type Peer,
  type PeerContext,
  resolveUndying,
  socatPeer,
  undyingPeer,
} from "./peers.ts";
import { ProcessGroup } from "./processes.ts";
import {
  aggregate,
  DIRECT,
  NGINX,
  renderHeadroom,
  renderMarkdown,
  renderSummary,
  type RunRecord,
} from "./report.ts";
import { type Budget, type Scenario, SCENARIOS } from "./scenarios.ts";
import { Targets } from "./targets.ts";
import { prepareTools, toolVersions } from "./toolchain.ts";
import { errorMessage } from "../../lib/util/error_message.ts";

/** Forwarding threads of the scaling variant `undying-proxy-w2` (`--workers`). */
const SCALE_WORKERS = 2;

const USAGE = `Usage: deno task bench [options]

  --quick          smoke run: 1 repetition, short measurements (< 2 minutes)
  --reps N         repetitions (default 4, about 15–20 minutes; 1 with --quick)
  --filter LIST    comma-separated peer names and/or scenario id parts, e.g. "undying,udp-pps"
                   (a peer name part selects every peer containing it, a full name only that
                   peer; direct and nginx always run: every figure is a ratio against them)
  --json PATH      where to write the JSON results (default dist/bench/results.json)
  --cache-dir DIR  compiled load generators (default ~/.cache/undying-proxy/bench)
  --undying MODE   program (main.ts --config), runner (engine only, tests/bench/undying_runner.ts)
                   or auto: the program when it runs, else the runner (default auto)
  --help           this text

Peers: direct, undying-proxy (native engines: io_uring UDP, splice TCP), undying-proxy-w${SCALE_WORKERS}
(--workers ${SCALE_WORKERS}), undying-proxy-batched (epoll UDP), undying-proxy-portable, undying-proxy-portable-w${SCALE_WORKERS} (--udp-engine=portable
--tcp-engine=portable), undying-proxy-portable-log (--access-log),
undying-proxy-busy-poll (--udp-busy-poll=${BENCH_BUSY_POLL_US}us), nginx, haproxy, socat.
Scenarios: ${SCENARIOS.map((s) => s.id).join(", ")}.
`;

const FULL: Budget = {
  bulkSeconds: 3,
  bulkOmitSeconds: 1,
  rateSeconds: 3,
  latencyConnections: 2000,
  udpSeconds: 2,
  udpWarmupSeconds: 1,
  udpLatencyDatagrams: 10000,
  udpLatencyWarmup: 10000,
  holdCount: 1000,
};
const QUICK: Budget = {
  bulkSeconds: 1,
  bulkOmitSeconds: 0,
  rateSeconds: 1,
  latencyConnections: 500,
  udpSeconds: 0.5,
  udpWarmupSeconds: 0.25,
  udpLatencyDatagrams: 1000,
  udpLatencyWarmup: 1000,
  holdCount: 1000,
};

const encoder = new TextEncoder();
function log(line: string): void {
  Deno.stderr.writeSync(encoder.encode(`[bench] ${line}\n`));
}

function fail(message: string): never {
  Deno.stderr.writeSync(encoder.encode(`bench: ${message}\n\n${USAGE}`));
  Deno.exit(2);
}

/**
 * Splits `--filter` terms into peers and scenario-id parts: a full peer name selects that peer, a
 * part of one every peer containing it. Unknown terms are an error.
 */
export function applyFilter(
  filter: string,
  peers: readonly Peer[],
  scenarios: readonly Scenario[],
): { peers: Peer[]; scenarios: Scenario[] } {
  const terms = filter.split(",").map((t) => t.trim()).filter((t) => t !== "");
  const selects = (term: string, peer: Peer) =>
    peers.some((p) => p.name === term) ? peer.name === term : peer.name.includes(term);
  const peerTerms = terms.filter((t) => peers.some((p) => selects(t, p)));
  const scenarioTerms = terms.filter((t) => scenarios.some((s) => s.id.includes(t)));
  const unknown = terms.filter((t) => !peerTerms.includes(t) && !scenarioTerms.includes(t));
  if (unknown.length > 0) {
    throw new RangeError(`--filter: "${unknown.join(",")}" matches no peer and no scenario`);
  }
  return {
    peers: peerTerms.length === 0
      ? [...peers]
      : peers.filter((p) =>
        p.name === DIRECT || p.name === NGINX || peerTerms.some((t) => selects(t, p))
      ),
    scenarios: scenarioTerms.length === 0
      ? [...scenarios]
      : scenarios.filter((s) => scenarioTerms.some((t) => s.id.includes(t))),
  };
}

function cacheDir(flag: string | undefined): string {
  if (flag) return flag;
  const base = Deno.env.get("XDG_CACHE_HOME") ?? `${Deno.env.get("HOME") ?? "/tmp"}/.cache`;
  return `${base}/undying-proxy/bench`;
}

function loadAverage(): string {
  return Deno.loadavg().map((l) => l.toFixed(2)).join(" ");
}

async function machine(loadAtStart: string): Promise<Record<string, string | number>> {
  const cpuinfo = await Deno.readTextFile("/proc/cpuinfo");
  return {
    cpu: cpuinfo.match(/^model name\s*:\s*(.+)$/m)?.[1] ?? "unknown",
    cores: navigator.hardwareConcurrency,
    kernel: Deno.osRelease(),
    memoryGiB: Math.round(Deno.systemMemoryInfo().total / 2 ** 30),
    loadAverageAtStart: loadAtStart,
    loadAverageAtEnd: loadAverage(),
  };
}

async function runOne(
  group: ProcessGroup,
  ctx: PeerContext,
  targets: Targets,
  peer: Peer,
  scenario: Scenario,
  budget: Budget,
  rep: number,
): Promise<RunRecord> {
  const base = { rep, scenario: scenario.id, peer: peer.name };
  let running;
  try {
    running = await peer.start(ctx);
    const sample = await scenario.run({ group, tools: ctx.tools, targets, peer: running, budget });
    return { ...base, sample };
  } catch (error) {
    const message = errorMessage(error);
    log(`  ${peer.name} ${scenario.id} failed: ${message}`);
    return { ...base, error: message.slice(0, 500) };
  } finally {
    await running?.stop();
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      quick: { type: "boolean", default: false },
      reps: { type: "string" },
      filter: { type: "string", default: "" },
      json: { type: "string", default: "dist/bench/results.json" },
      "cache-dir": { type: "string" },
      undying: { type: "string", default: "auto" },
      help: { type: "boolean", default: false },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.help) {
    Deno.stdout.writeSync(encoder.encode(USAGE));
    return;
  }
  const reps = values.reps === undefined ? (values.quick ? 1 : 4) : Number(values.reps);
  if (!Number.isInteger(reps) || reps < 1 || reps > 50) {
    fail(`--reps: "${values.reps}" is not an integer within 1–50`);
  }
  const budget = values.quick ? QUICK : FULL;
  const repoDir = new URL("../..", import.meta.url).pathname.replace(/\/$/, "");
  const mode = values.undying;
  if (mode !== "auto" && mode !== "program" && mode !== "runner") {
    fail(`--undying: "${mode}" is not one of auto, program, runner`);
  }
  const undying = await resolveUndying(repoDir, mode);
  const allPeers = [
    directPeer,
    undyingPeer(undying, 1),
    undyingPeer(undying, SCALE_WORKERS),
    undyingPeer(undying, 1, "batched"),
    undyingPeer(undying, 1, "portable"),
    undyingPeer(undying, SCALE_WORKERS, "portable"),
    undyingPeer(undying, 1, "portable", { accessLog: true }),
    undyingPeer(undying, 1, "io_uring", { busyPoll: true }),
    nginxPeer,
    nginxHalfClosePeer,
    haproxyPeer,
    socatPeer,
  ];
  let selection;
  try {
    selection = applyFilter(values.filter, allPeers, SCENARIOS);
  } catch (error) {
    fail(errorMessage(error));
  }

  const cache = cacheDir(values["cache-dir"]);
  const tools = await prepareTools(cache, log);
  const group = new ProcessGroup();
  const workDir = await Deno.makeTempDir({ prefix: "undying-bench-" });
  let interrupted = false;
  const onSignal = async () => {
    interrupted = true;
    log("interrupted: stopping every process");
    await group.close();
    await Deno.remove(workDir, { recursive: true }).catch(() => {});
    Deno.exit(130);
  };
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
  const started = new Date();
  const loadAtStart = loadAverage();
  const records: RunRecord[] = [];
  try {
    const targets = await Targets.start(group, tools);
    const ctx: PeerContext = { group, tools, targets: targets.ports, workDir, repoDir };
    for (let rep = 1; rep <= reps; rep++) {
      for (const scenario of selection.scenarios) {
        if (interrupted) break;
        const times: string[] = [];
        for (const peer of selection.peers) {
          if (interrupted) break;
          if (scenario.udp && !peer.udp) continue;
          if (scenario.forwarderOnly && peer.name === DIRECT) continue;
          const startMs = performance.now();
          records.push(await runOne(group, ctx, targets, peer, scenario, budget, rep));
          times.push(`${peer.name} ${((performance.now() - startMs) / 1000).toFixed(1)} s`);
        }
        log(`rep ${rep}/${reps} ${scenario.id}: ${times.join(", ")}`);
      }
    }
    await targets.stop();
  } finally {
    await group.close();
    Deno.removeSignalListener("SIGINT", onSignal);
    Deno.removeSignalListener("SIGTERM", onSignal);
    await Deno.remove(workDir, { recursive: true }).catch(() => {});
  }

  const peerNames = selection.peers.map((p) => p.name);
  const summaries = aggregate(records, selection.scenarios, peerNames);
  const minutes = ((Date.now() - started.getTime()) / 60_000).toFixed(1);
  const info = {
    date: started.toISOString(),
    machine: await machine(loadAtStart),
    versions: await toolVersions(tools),
    options: { quick: values.quick, reps, filter: values.filter, budget },
    peers: selection.peers.map((p) => ({ name: p.name, describe: p.describe })),
  };
  const markdown = [
    `Run ${info.date.slice(0, 16).replace("T", " ")} UTC, ${minutes} min, ${reps} repetition(s)` +
    `${values.quick ? " (quick)" : ""}; ${info.machine["cpu"]}, ${info.machine["cores"]} cores; ` +
    Object.entries(info.versions).map(([k, v]) => `${k} ${v.replace(/^\D*/, "")}`).join(", ") +
    `; load average ${loadAtStart} at start, ${info.machine["loadAverageAtEnd"]} at end.`,
    `Peers: ${info.peers.map((p) => `${p.name} (${p.describe})`).join("; ")}.`,
    "Cells: median (min–max) over repetitions; ×direct / ×nginx = median of per-repetition ratios.",
    "",
    "### Summary (medians)",
    "",
    renderSummary(summaries, selection.scenarios, peerNames),
    "",
    renderHeadroom(summaries),
    "",
    renderMarkdown(summaries, selection.scenarios),
  ].join("\n");
  Deno.stdout.writeSync(encoder.encode(markdown + "\n"));
  const jsonPath = values.json;
  await Deno.mkdir(jsonPath.replace(/\/[^/]*$/, "") || ".", { recursive: true });
  await Deno.writeTextFile(jsonPath, JSON.stringify({ ...info, records, summaries }, null, 2));
  log(`results written to ${jsonPath}`);
}

if (import.meta.main) await main();
