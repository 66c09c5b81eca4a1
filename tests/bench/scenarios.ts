/**
 * The measurements. Each scenario runs a load generator against one started peer and returns a
 * sample: named figures of one repetition (`undefined` when not applicable, e.g. CPU of `direct`).
 * @module
 */
import { UDP_TIMEOUT_SECONDS } from "./peer_configs.ts";
import { canPin, forwarderCpu, pinTree, unpinTree } from "./cpu_pinning.ts";
import { cpuSeconds, memoryKiB, treeMemory } from "./procfs.ts";
import type { RunningPeer } from "./peers.ts";
import type { ProcessGroup } from "./processes.ts";
import { percentile, perCore } from "./stats.ts";
import type { Targets } from "./targets.ts";
import type { Tools } from "./toolchain.ts";

/** Figures of one scenario run, by metric key. */
export type Sample = Record<string, number | undefined>;

/** Lengths and counts of the measurements (the `--quick` and full modes differ only here). */
export interface Budget {
  /** iperf3 measured seconds, after `bulkOmitSeconds` of warm-up (iperf3 `-O`, not counted). */
  readonly bulkSeconds: number;
  readonly bulkOmitSeconds: number;
  readonly rateSeconds: number;
  readonly latencyConnections: number;
  readonly udpSeconds: number;
  /** Load before the measured `udpSeconds` (JIT tiers of a fresh forwarder; not counted). */
  readonly udpWarmupSeconds: number;
  readonly udpLatencyDatagrams: number;
  /** Round trips before the timed ones (JIT tiers and caches of a fresh forwarder warm up). */
  readonly udpLatencyWarmup: number;
  /** Idle TCP connections and UDP sessions held for the memory figures. */
  readonly holdCount: number;
}

/** What a scenario run gets. */
export interface RunContext {
  readonly group: ProcessGroup;
  readonly tools: Tools;
  readonly targets: Targets;
  readonly peer: RunningPeer;
  readonly budget: Budget;
}

/** How a figure is shown and compared. */
export interface Metric {
  readonly key: string;
  readonly label: string;
  readonly decimals: number;
  /** Show ratios against direct and nginx for this figure. */
  readonly compare?: boolean;
  /** Also show `value − direct` (added latency). */
  readonly addedOverDirect?: boolean;
  /** A throughput figure: direct must run far above every forwarder (load generator headroom). */
  readonly throughput?: boolean;
}

/** One measurement. */
export interface Scenario {
  readonly id: string;
  readonly title: string;
  readonly udp: boolean;
  /** Only meaningful with a forwarder process (memory). */
  readonly forwarderOnly: boolean;
  readonly metrics: readonly Metric[];
  run(ctx: RunContext): Promise<Sample>;
}

const CPU: Metric = { key: "cpuPct", label: "fwd CPU %", decimals: 0 };
/** Window of UDP datagrams in flight for the packets-per-second runs. */
const UDP_WINDOW = 64;
/** Bytes of the TCP short-connection echo. */
const ECHO_BYTES = 64;

/** Runs a load generator to completion and parses its JSON output. */
async function loadClient(
  ctx: RunContext,
  args: string[],
  timeoutMs: number,
  cpus?: string,
): Promise<unknown> {
  const process = cpus === undefined
    ? ctx.group.spawn("load_client", ctx.tools.loadClient, args, { stdout: true })
    : ctx.group.spawn("load_client", "taskset", ["-c", cpus, ctx.tools.loadClient, ...args], {
      stdout: true,
    });
  try {
    const { stdout, status } = await process.readAll(timeoutMs);
    if (!status.success) {
      throw new Error(`load_client ${args.join(" ")}: code ${status.code}: ${process.stderrTail}`);
    }
    return JSON.parse(stdout);
  } finally {
    await ctx.group.stop(process);
  }
}

/** Runs `work` and adds the forwarder's CPU use over that time, in percent of one core. */
async function withCpu(
  peer: RunningPeer,
  work: () => Promise<Sample>,
): Promise<Sample> {
  if (peer.pids.length === 0) return { ...(await work()), cpuPct: undefined };
  const cpuBefore = cpuSeconds(peer.pids);
  const start = performance.now();
  const sample = await work();
  const wallSeconds = (performance.now() - start) / 1000;
  return { ...sample, cpuPct: ((cpuSeconds(peer.pids) - cpuBefore) / wallSeconds) * 100 };
}

/** Received bits per second from `iperf3 -J` output, or why there is none. */
export function iperfBitsPerSecond(json: string): number | string {
  try {
    const report = JSON.parse(json) as {
      error?: string;
      end?: { sum_received?: { bits_per_second?: number } };
    };
    return report.error ?? report.end?.sum_received?.bits_per_second ?? "no sum_received";
  } catch (error) {
    return `unreadable output (${error})`;
  }
}

function bulk(streams: number): Scenario {
  return {
    id: `tcp-bulk-${streams}`,
    title: `TCP bulk throughput, ${streams} stream${streams > 1 ? "s" : ""} (iperf3), Gbit/s`,
    udp: false,
    forwarderOnly: false,
    metrics: [
      { key: "gbps", label: "Gbit/s", decimals: 2, compare: true, throughput: true },
      CPU,
      { key: "gbpsPerCore", label: "Gbit/s per fwd core", decimals: 2, compare: true },
    ],
    async run(ctx) {
      const args = ["-c", "127.0.0.1", "-p", String(ctx.peer.listen.bulk), "-J"];
      const { bulkSeconds, bulkOmitSeconds } = ctx.budget;
      args.push("-t", String(bulkSeconds + bulkOmitSeconds), "-O", String(bulkOmitSeconds));
      args.push("-P", String(streams));
      const sample = await withCpu(ctx.peer, async () => {
        const process = ctx.group.spawn("iperf3", ctx.tools.iperf3, args, { stdout: true });
        try {
          const { stdout } = await process.readAll((bulkSeconds + bulkOmitSeconds + 15) * 1000);
          const bps = iperfBitsPerSecond(stdout);
          if (typeof bps === "string") {
            await ctx.targets.restartIperf(); // a failed test can leave the server busy
            throw new Error(`iperf3 failed: ${bps} ${process.stderrTail}`);
          }
          return { gbps: bps / 1e9 };
        } finally {
          await ctx.group.stop(process);
        }
      });
      return { ...sample, gbpsPerCore: perCore(sample["gbps"], sample["cpuPct"]) };
    },
  };
}

interface RateResult {
  done: number;
  errors: number;
  elapsedNs: number;
  latUs: number[];
}

async function tcpRate(ctx: RunContext, concurrency: number, conns: number, seconds: number) {
  const args = [
    "tcp-rate",
    String(ctx.peer.listen.echo),
    String(conns),
    String(concurrency),
    String(seconds),
    String(ECHO_BYTES),
  ];
  const result = await loadClient(ctx, args, (seconds + 15) * 1000) as RateResult;
  if (result.done === 0) throw new Error(`no connection completed (${result.errors} errors)`);
  return {
    connPerSec: result.done / (result.elapsedNs / 1e9),
    p50Us: percentile(result.latUs, 50),
    p99Us: percentile(result.latUs, 99),
    errors: result.errors,
  };
}

const connectionRate: Scenario = {
  id: "tcp-rate",
  title: `TCP short connections (connect, ${ECHO_BYTES} B echo, close), concurrency 50`,
  udp: false,
  forwarderOnly: false,
  metrics: [
    { key: "connPerSec", label: "conn/s", decimals: 0, compare: true, throughput: true },
    { key: "p50Us", label: "p50 µs", decimals: 0, compare: true },
    { key: "p99Us", label: "p99 µs", decimals: 0 },
    CPU,
    { key: "connPerCore", label: "conn/s per fwd core", decimals: 0, compare: true },
    { key: "errors", label: "errors", decimals: 0 },
  ],
  async run(ctx) {
    const seconds = ctx.budget.rateSeconds;
    const sample = await withCpu(ctx.peer, () => tcpRate(ctx, 50, 1_000_000, seconds));
    return { ...sample, connPerCore: perCore(sample["connPerSec"], sample["cpuPct"]) };
  },
};

const connectLatency: Scenario = {
  id: "tcp-latency",
  title: `TCP connect + ${ECHO_BYTES} B echo + close latency, concurrency 1`,
  udp: false,
  forwarderOnly: false,
  metrics: [
    { key: "p50Us", label: "p50 µs", decimals: 0, compare: true, addedOverDirect: true },
    { key: "p99Us", label: "p99 µs", decimals: 0, compare: true },
    { key: "errors", label: "errors", decimals: 0 },
  ],
  run(ctx) {
    return tcpRate(ctx, 1, ctx.budget.latencyConnections, 30);
  },
};

interface RrResult {
  sessions: number;
  warm: number;
  received: number;
  lost: number;
  elapsedNs: number;
}

function udpPackets(bytes: number, sessions: number): Scenario {
  return {
    id: `udp-pps-${bytes}-${sessions}`,
    title: `UDP request/response, ${bytes} B, ${sessions} session${
      sessions > 1 ? "s" : ""
    }, ${UDP_WINDOW} in flight, packets/s (after a warm-up)`,
    udp: true,
    forwarderOnly: false,
    metrics: [
      { key: "pps", label: "packets/s", decimals: 0, compare: true, throughput: true },
      CPU,
      { key: "ppsPerCore", label: "packets/s per fwd core", decimals: 0, compare: true },
      { key: "lost", label: "lost", decimals: 0 },
      { key: "unanswered", label: "sessions unanswered at start", decimals: 0 },
    ],
    async run(ctx) {
      const { udpSeconds: seconds, udpWarmupSeconds: warmup } = ctx.budget;
      const args = [
        "udp-rr",
        String(ctx.peer.listen.udp),
        String(sessions),
        String(bytes),
        String(UDP_WINDOW),
        String(seconds),
        String(warmup),
      ];
      const process = ctx.group.spawn("load_client", ctx.tools.loadClient, args, { stdout: true });
      try {
        const timeoutMs = (warmup + seconds + 30) * 1000;
        const line = warmup > 0 ? await process.readLine(timeoutMs) : "measuring";
        if (line !== "measuring") throw new Error(`load_client ${args.join(" ")}: said "${line}"`);
        // The forwarder's CPU over the measured seconds only ("measuring" starts them).
        const sample = await withCpu(ctx.peer, async () => {
          const { stdout, status } = await process.readAll(timeoutMs);
          if (!status.success) {
            throw new Error(`load_client ${args.join(" ")}: code ${status.code}`);
          }
          const result = JSON.parse(stdout) as RrResult;
          if (result.warm === 0) throw new Error(`none of ${sessions} UDP sessions answered`);
          return {
            pps: result.received / (result.elapsedNs / 1e9),
            lost: result.lost,
            unanswered: sessions - result.warm,
          };
        });
        return { ...sample, ppsPerCore: perCore(sample["pps"], sample["cpuPct"]) };
      } finally {
        await ctx.group.stop(process);
      }
    },
  };
}

function udpRoundTrip(bytes: number): Scenario {
  return {
    id: `udp-rtt-${bytes}`,
    title: `UDP round trip, ${bytes} B, 1 datagram in flight (after a warm-up; forwarder pinned ` +
      `to the last CPU, load generator and echo server to CPU 0)`,
    udp: true,
    forwarderOnly: false,
    metrics: [
      { key: "p50Us", label: "p50 µs", decimals: 1, compare: true, addedOverDirect: true },
      { key: "p99Us", label: "p99 µs", decimals: 1, compare: true },
      { key: "lost", label: "lost", decimals: 0 },
    ],
    async run(ctx) {
      const { udpLatencyDatagrams: count, udpLatencyWarmup: warmup } = ctx.budget;
      const args = ["udp-lat", String(ctx.peer.listen.udp), String(bytes), String(count)];
      args.push(String(warmup));
      const pinned = canPin();
      const echo = [ctx.targets.udpEchoPid];
      if (pinned) {
        await pinTree(ctx.peer.pids, String(forwarderCpu()));
        await pinTree(echo, "0");
      }
      let result: { received: number; lost: number; latUs: number[] };
      try {
        result = await loadClient(ctx, args, 60_000, pinned ? "0" : undefined) as typeof result;
      } finally {
        if (pinned) await unpinTree(echo);
      }
      if (result.received === 0) throw new Error("no UDP reply");
      return {
        p50Us: percentile(result.latUs, 50),
        p99Us: percentile(result.latUs, 99),
        lost: result.lost,
      };
    },
  };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Time for memory figures to settle after a change of load. */
const SETTLE_MS = 500;
/** After the UDP holder closes: its sessions idle out on every peer (plus a sweep's slack). */
const UDP_EXPIRY_WAIT_MS = UDP_TIMEOUT_SECONDS * 1000 + 2000;

function memory(transport: "tcp" | "udp"): Scenario {
  const unit = transport === "tcp" ? "connection" : "session";
  const after = transport === "tcp" ? "after close" : "after sessions expire";
  return {
    id: `mem-${transport}`,
    title: `Memory: idle, holding ${transport.toUpperCase()} ${unit}s, ${after} ` +
      `(RSS; PSS sum for multi-process peers)`,
    udp: transport === "udp",
    forwarderOnly: true,
    metrics: [
      { key: "idleMiB", label: "idle MiB", decimals: 1, compare: true },
      { key: "loadedMiB", label: `MiB with ${unit}s`, decimals: 1 },
      { key: "kibPerItem", label: `KiB per ${unit}`, decimals: 1, compare: true },
      { key: "held", label: `${unit}s held`, decimals: 0 },
      { key: "afterCloseMiB", label: `MiB ${after}`, decimals: 1, compare: true },
    ],
    async run(ctx) {
      const count = ctx.budget.holdCount;
      const mib = () => memoryKiB(treeMemory(ctx.peer.pids)) / 1024;
      await sleep(SETTLE_MS);
      const idleMiB = mib();
      const port = transport === "tcp" ? ctx.peer.listen.echo : ctx.peer.listen.udp;
      const args = [`${transport}-hold`, String(port), String(count)];
      const holder = ctx.group.spawn("load_client", ctx.tools.loadClient, args, {
        stdin: true,
        stdout: true,
      });
      try {
        const ready = await holder.readLine(60_000);
        const held = Number(ready.split(" ")[1]);
        if (!(held > 0)) throw new Error(`holding ${count} ${unit}s: ${ready}`);
        await sleep(SETTLE_MS);
        const loadedMiB = mib();
        await holder.writeLine("close");
        await holder.readLine(30_000);
        await sleep(transport === "tcp" ? 2 * SETTLE_MS : UDP_EXPIRY_WAIT_MS);
        return {
          idleMiB,
          loadedMiB,
          held,
          kibPerItem: ((loadedMiB - idleMiB) * 1024) / held,
          afterCloseMiB: mib(),
        };
      } finally {
        await ctx.group.stop(holder);
      }
    },
  };
}

/** Every scenario, in run order. */
export const SCENARIOS: readonly Scenario[] = [
  bulk(1),
  bulk(8),
  connectionRate,
  connectLatency,
  ...[64, 1200].flatMap((bytes) => [1, 100, 1000].map((sessions) => udpPackets(bytes, sessions))),
  udpRoundTrip(64),
  udpRoundTrip(1200),
  memory("tcp"),
  memory("udp"),
];
