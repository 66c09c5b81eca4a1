/**
 * `deno task soak`: runs the program from a config file for a while (default 10 minutes) under
 * mixed hostile load on loopback (TCP churn with held connections, a target that refuses, UDP
 * floods of maximal datagrams from new source ports, config rewrites, and an emptied file), and
 * reports memory, file descriptors, sockets, UDP buffers, event-loop lag and errors over time as a
 * table (stdout, dist/soak/soak.txt) and a plot (dist/soak/soak.svg).
 *
 *   deno task soak [--minutes=10] [--sample-seconds=10] [--nofile=1024]
 * @module
 */
import { parseArgs } from "node:util";
import { startTcpEcho } from "../_support/net_tcp.ts";
import { startUdpEcho, udpClient } from "../_support/net_udp.ts";
import { freePort, startProgram } from "../_support/program.ts";
import { tcpDocument, tempConfigFile, udpDocument } from "../faults/_config.ts";
import { type SoakSample, soakSvg, soakTable } from "./plot.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    "minutes": { type: "string", default: "10" },
    "sample-seconds": { type: "string", default: "10" },
    "nofile": { type: "string", default: "1024" },
  },
});
const durationMs = Number(values.minutes) * 60_000;
const sampleMs = Number(values["sample-seconds"]) * 1000;
const OUT = "dist/soak";

/** Columns of the report: scraped (or summed) from /metrics. */
const COLUMNS = [
  "rss_mb",
  "open_fds",
  "open_sockets",
  "udp_reserved_mb",
  "udp_sessions",
  "tcp_connections",
  "lag_ms",
  "errors",
  "kernel_drops",
] as const;

await using tcpEcho = startTcpEcho();
await using udpEcho = startUdpEcho();
const [webPort, refusedPort, udpPort] = [freePort(), freePort(), freePort()];
const documents = [
  tcpDocument("web", webPort, tcpEcho.port),
  tcpDocument("refused", refusedPort, freePort()),
  udpDocument("game", udpPort, udpEcho.port, 5),
];
await using config = await tempConfigFile(documents);
await using program = await startProgram(
  ["--config", config.path, "--drain-grace-period=2s"],
  { wrapper: ["prlimit", `--nofile=${values.nofile}:${values.nofile}`, "--"] },
);
await program.waitForLog("listening", (line) => line["forwarder"] === "default/game");

const started = Date.now();
const stop = AbortSignal.timeout(durationMs);
const samples: SoakSample[] = [];
const loads = [tcpChurn(stop), refusedBurst(stop), udpFlood(stop), configChurn(stop)];
while (!stop.aborted) {
  samples.push(await sample());
  print(
    soakTable(samples.slice(-1), COLUMNS).split("\n").slice(samples.length > 1 ? 1 : 0).join("\n"),
  );
  await new Promise((resolve) =>
    setTimeout(resolve, Math.max(1, Math.min(sampleMs, durationMs - (Date.now() - started))))
  );
}
await Promise.all(loads);
samples.push(await sample());
program.signal("SIGTERM");
const exitCode = await program.exited;

await Deno.mkdir(OUT, { recursive: true });
const table = soakTable(samples, COLUMNS);
await Deno.writeTextFile(`${OUT}/soak.txt`, `${table}\nexit code ${exitCode}\n`);
await Deno.writeTextFile(`${OUT}/soak.svg`, soakSvg(samples, COLUMNS));
print(`\n${table}\n\nexit code ${exitCode}; wrote ${OUT}/soak.txt and ${OUT}/soak.svg`);

async function sample(): Promise<SoakSample> {
  const { series } = await program.scrape();
  const sum = (prefix: string) =>
    [...series].filter(([key]) => key.startsWith(prefix)).reduce(
      (total, [, value]) => total + value,
      0,
    );
  const get = (name: string) => series.get(name) ?? 0;
  return {
    seconds: Math.round((Date.now() - started) / 1000),
    values: {
      rss_mb: Math.round(get("process_resident_memory_bytes") / 1e6),
      open_fds: get("process_open_fds"),
      open_sockets: get("undying_proxy_open_sockets"),
      udp_reserved_mb: Math.round(get("undying_proxy_udp_buffer_bytes_reserved") / 1e5) / 10,
      udp_sessions: sum("undying_proxy_udp_clients_connected"),
      tcp_connections: sum("undying_proxy_tcp_active_connections"),
      lag_ms: Math.round(get("undying_proxy_event_loop_lag_seconds") * 1000),
      errors: sum("undying_proxy_tcp_forwarding_errors_total") +
        sum("undying_proxy_udp_forwarding_errors_total"),
      kernel_drops: sum("undying_proxy_udp_kernel_dropped_datagrams_total"),
    },
  };
}

/** Opens batches of 50 connections, echoes through them, holds them a while, closes them. */
async function tcpChurn(signal: AbortSignal): Promise<void> {
  const data = new Uint8Array(16 * 1024);
  while (!signal.aborted) {
    const conns = await Promise.allSettled(
      Array.from({ length: 50 }, () => Deno.connect({ hostname: "127.0.0.1", port: webPort })),
    );
    await Promise.allSettled(conns.map(async (result) => {
      if (result.status !== "fulfilled") return;
      await result.value.write(data);
      await result.value.read(new Uint8Array(data.length));
    }));
    await pause(500, signal);
    for (const result of conns) if (result.status === "fulfilled") result.value.close();
  }
}

/** 100 connections at once to the forwarder whose target refuses, every 2 s. */
async function refusedBurst(signal: AbortSignal): Promise<void> {
  while (!signal.aborted) {
    const conns = await Promise.allSettled(
      Array.from({ length: 100 }, () => Deno.connect({ hostname: "127.0.0.1", port: refusedPort })),
    );
    for (const result of conns) if (result.status === "fulfilled") result.value.close();
    await pause(2000, signal);
  }
}

/** New source ports, each sending one maximal datagram (the echo answers in kind): ~200/s. */
async function udpFlood(signal: AbortSignal): Promise<void> {
  const datagram = new Uint8Array(65_507);
  while (!signal.aborted) {
    const clients = [udpClient(), udpClient()];
    await Promise.allSettled(clients.map((client) => client.send(datagram, udpPort)));
    for (const client of clients) client[Symbol.dispose]();
    await pause(10, signal);
  }
}

/** Every 5 s a rewrite (an added forwarder, or the same objects), every 30 s an emptied file. */
async function configChurn(signal: AbortSignal): Promise<void> {
  for (let round = 1; !signal.aborted; round++) {
    if (round % 6 === 0) await config.write([]);
    else if (round % 2 === 0) {
      await config.write([...documents, tcpDocument("extra", freePort(), tcpEcho.port)]);
    } else await config.write(documents);
    await pause(5000, signal);
  }
}

function print(text: string): void {
  Deno.stdout.writeSync(new TextEncoder().encode(`${text}\n`));
}

function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve();
    }, { once: true });
  });
}
