/**
 * Starting and stopping the forwarders under test (and the targets behind them). Every peer gets the
 * three forwards of {@linkcode ForwardPorts}; `direct` is the baseline without a forwarder.
 * @module
 */
import {
  type ForwardPorts,
  haproxyMaxConnections,
  LOOPBACK,
  type PeerPorts,
  renderHaproxyConfig,
  renderNginxConfig,
  renderUndyingConfig,
  socatCommands,
  undyingSpecs,
} from "./peer_configs.ts";
import { hardFileLimit, tcpListeners } from "./procfs.ts";
import type { ManagedProcess, ProcessGroup } from "./processes.ts";
import type { Tools } from "./toolchain.ts";
import type { ForwarderSpec } from "../../lib/spec.ts";

const READY_TIMEOUT_MS = 15_000;

/** A started peer. */
export interface RunningPeer {
  /** Where the load generators connect. */
  readonly listen: ForwardPorts;
  /** Root processes whose trees make up the forwarder (empty for `direct`). */
  readonly pids: readonly number[];
  stop(): Promise<void>;
}

/** What a peer needs to start. */
export interface PeerContext {
  readonly group: ProcessGroup;
  readonly tools: Tools;
  readonly targets: ForwardPorts;
  /** Scratch directory for config files and logs. */
  readonly workDir: string;
  /** Absolute path of the repository (for the UnDyingProxy program or runner). */
  readonly repoDir: string;
}

/** One forwarder under test. */
export interface Peer {
  readonly name: string;
  readonly udp: boolean;
  /** Which UnDyingProxy entry point is used, or the peer's own binary. */
  readonly describe: string;
  start(ctx: PeerContext): Promise<RunningPeer>;
}

/** A free port on the loopback address (bound and released; the kernel does not hand it out again
 * right away). */
export function freePort(transport: "tcp" | "udp"): number {
  if (transport === "tcp") {
    const listener = Deno.listen({ hostname: LOOPBACK, port: 0 });
    const { port } = listener.addr as Deno.NetAddr;
    listener.close();
    return port;
  }
  const socket = Deno.listenDatagram({ hostname: LOOPBACK, port: 0, transport: "udp" });
  const { port } = socket.addr as Deno.NetAddr;
  socket.close();
  return port;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Waits until `port` accepts TCP connections. */
export async function waitTcp(port: number, what: string): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    try {
      (await Deno.connect({ hostname: LOOPBACK, port })).close();
      return;
    } catch (error) {
      if (Date.now() > deadline) {
        throw new Error(`${what}: TCP port ${port} not accepting: ${error}`, { cause: error });
      }
      await sleep(50);
    }
  }
}

/** Waits until a datagram sent to `port` is echoed back. */
export async function waitUdp(port: number, what: string): Promise<void> {
  const socket = Deno.listenDatagram({ hostname: LOOPBACK, port: 0, transport: "udp" });
  const deadline = Date.now() + READY_TIMEOUT_MS;
  try {
    while (Date.now() < deadline) {
      await socket.send(new Uint8Array([1]), { hostname: LOOPBACK, port, transport: "udp" });
      let timer: ReturnType<typeof setTimeout> | undefined;
      const reply = await Promise.race([
        socket.receive(new Uint8Array(64)).then(() => true),
        new Promise<false>((resolve) => timer = setTimeout(() => resolve(false), 200)),
      ]);
      clearTimeout(timer);
      if (reply) return;
    }
    throw new Error(`${what}: UDP port ${port} does not echo`);
  } finally {
    socket.close(); // also settles a pending receive()
  }
}

/** Waits until every port has `count` listening sockets (one per thread, with SO_REUSEPORT). */
async function waitListeners(ports: readonly number[], count: number, what: string): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    const seen = ports.map(tcpListeners);
    if (seen.every((n) => n >= count)) return;
    if (Date.now() > deadline) {
      throw new Error(
        `${what}: ${seen.join(", ")} listeners on ports ${ports.join(", ")}, want ${count}`,
      );
    }
    await sleep(50);
  }
}

async function waitForwards(listen: ForwardPorts, udp: boolean, what: string): Promise<void> {
  await waitTcp(listen.bulk, what);
  await waitTcp(listen.echo, what);
  if (udp) await waitUdp(listen.udp, what);
}

function allocateListen(): ForwardPorts {
  return { bulk: freePort("tcp"), echo: freePort("tcp"), udp: freePort("udp") };
}

/** Starts processes, waits until they forward, and stops them all on failure. */
async function startProcesses(
  ctx: PeerContext,
  listen: ForwardPorts,
  udp: boolean,
  spawn: () => ManagedProcess[],
): Promise<RunningPeer> {
  const processes = spawn();
  const stop = async () => {
    await Promise.all(processes.map((p) => ctx.group.stop(p)));
  };
  try {
    await Promise.race([
      waitForwards(listen, udp, processes.map((p) => p.name).join("+")),
      ...processes.map(async (p) => {
        const status = await p.status;
        throw new Error(`${p.name} exited with code ${status.code}: ${p.stderrTail}`);
      }),
    ]);
  } catch (error) {
    await stop();
    throw error;
  }
  return { listen, pids: processes.map((p) => p.pid), stop };
}

/** The permission flags the program gets: the `compile` task of deno.json is the source of truth. */
export async function programPermissions(repoDir: string): Promise<string[]> {
  const config = JSON.parse(await Deno.readTextFile(`${repoDir}/deno.json`)) as {
    tasks?: Record<string, string>;
  };
  const flags = (config.tasks?.["compile"] ?? "").split(/\s+/).filter((f) =>
    f.startsWith("--allow-")
  );
  if (flags.length === 0) throw new Error(`No --allow-* flags in the compile task of deno.json`);
  return flags;
}

/** How to run UnDyingProxy: the program (`main.ts --config`), the engine runner, or whichever works. */
export type UndyingMode = "auto" | "program" | "runner";

/** Whether the program runs here: `main.ts --help` succeeds and offers `--config`. */
async function programWorks(repoDir: string, permissions: string[]): Promise<boolean> {
  try {
    const output = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--config",
        `${repoDir}/deno.json`,
        ...permissions,
        `${repoDir}/main.ts`,
        "--help",
      ],
      env: { DENO_NO_UPDATE_CHECK: "1" },
      stdout: "piped",
      stderr: "null",
      signal: AbortSignal.timeout(120_000),
    }).output();
    return output.success && new TextDecoder().decode(output.stdout).includes("--config");
  } catch {
    return false;
  }
}

/** How UnDyingProxy is started, resolved once for every variant. */
export interface UndyingEntry {
  /** The program (`main.ts --config`) rather than the engine runner. */
  readonly program: boolean;
  /** The program's permission flags (from the `compile` task). */
  readonly permissions: readonly string[];
}

/** Resolves `mode`: `auto` prefers the program and falls back to the engine runner. */
export async function resolveUndying(repoDir: string, mode: UndyingMode): Promise<UndyingEntry> {
  const permissions = await programPermissions(repoDir);
  const program = mode === "program" ||
    (mode === "auto" && await programWorks(repoDir, permissions));
  return { program, permissions };
}

/**
 * The engines an UnDyingProxy variant runs: "io_uring" and "batched" are native pairs
 * (`--udp-engine=io_uring` or `batched`, `--tcp-engine=splice`), "portable" the portable pair
 * (`--udp-engine=portable --tcp-engine=portable`).
 */
export type BenchUdpEngine = "io_uring" | "batched" | "portable";

/** The TCP engine that goes with `udpEngine` in a variant. */
function tcpEngineOf(udpEngine: BenchUdpEngine): "splice" | "portable" {
  return udpEngine === "portable" ? "portable" : "splice";
}

/**
 * Peer name of UnDyingProxy with `workers` forwarding threads and an engine pair: `undying-proxy`
 * (native: io_uring UDP, splice TCP; the default), `undying-proxy-w2`, `undying-proxy-batched`
 * (epoll UDP), `undying-proxy-portable`, `undying-proxy-portable-w2`.
 */
export function undyingName(workers: number, udpEngine: BenchUdpEngine = "io_uring"): string {
  return `undying-proxy${udpEngine === "io_uring" ? "" : `-${udpEngine}`}${
    workers === 1 ? "" : `-w${workers}`
  }`;
}

/** The busy-polling window of the `...-busy-poll` variant (`--udp-busy-poll`). */
export const BENCH_BUSY_POLL_US = 50;

/**
 * The UnDyingProxy peer with `workers` forwarding threads and `udpEngine` for UDP; with `accessLog`,
 * named `...-log`, every connection and session writes an access record (to the harness's stderr
 * pipe, as to a container log; UDP then runs on the portable engine, which writes them); with
 * `busyPoll`, named `...-busy-poll`, the UDP engine threads poll for
 * {@linkcode BENCH_BUSY_POLL_US} µs after traffic instead of sleeping.
 */
export function undyingPeer(
  entry: UndyingEntry,
  workers: number,
  udpEngine: BenchUdpEngine = "io_uring",
  options: { readonly accessLog?: boolean; readonly busyPoll?: boolean } = {},
): Peer {
  const udpThreads = udpEngine === "portable" ? 1 : workers;
  const tcpEngine = tcpEngineOf(udpEngine);
  const threads = workers === 1
    ? `1 thread, TCP ${tcpEngine}, UDP ${udpEngine}`
    : `--workers ${workers}: TCP ${tcpEngine} on ${workers} threads (SO_REUSEPORT), UDP ${udpEngine} on ${udpThreads}`;
  const accessLog = options.accessLog ?? false;
  const busyPollUs = options.busyPoll ? BENCH_BUSY_POLL_US : 0;
  const name = undyingName(workers, udpEngine) + (accessLog ? "-log" : "") +
    (busyPollUs > 0 ? "-busy-poll" : "");
  return {
    name,
    udp: true,
    describe: `${
      entry.program ? "main.ts --config" : "tests/bench/undying_runner.ts (engine only)"
    }, ${threads}${accessLog ? ", --access-log" : ""}${
      busyPollUs > 0 ? `, --udp-busy-poll=${busyPollUs}us` : ""
    }`,
    async start(ctx) {
      const listen = allocateListen();
      const specs = undyingSpecs({ listen, target: ctx.targets }).map((spec) =>
        accessLog && !entry.program ? withAccessLog(spec) : spec
      );
      const args = [
        "run",
        "--config",
        `${ctx.repoDir}/deno.json`,
        "--no-prompt",
        ...entry.permissions,
      ];
      if (entry.program) {
        const configFile = `${ctx.workDir}/${name}.yaml`;
        await Deno.writeTextFile(configFile, renderUndyingConfig(specs));
        args.push(
          `${ctx.repoDir}/main.ts`,
          `--config=${configFile}`,
          `--listen-address=${LOOPBACK}`,
          `--workers=${workers}`,
          `--udp-engine=${udpEngine}`,
          `--tcp-engine=${tcpEngine}`,
          "--drain-grace-period=0",
          ...(accessLog ? ["--access-log"] : []),
          `--udp-busy-poll=${busyPollUs}us`,
          "--metrics-bind-address=0",
          `--health-probe-bind-address=${LOOPBACK}:${freePort("tcp")}`,
        );
      } else {
        args.push(
          `${ctx.repoDir}/tests/bench/undying_runner.ts`,
          LOOPBACK,
          JSON.stringify(specs),
          String(workers),
          udpEngine,
          tcpEngine,
          String(busyPollUs),
        );
      }
      const running = await startProcesses(ctx, listen, true, () => [
        ctx.group.spawn(name, Deno.execPath(), args),
      ]);
      try {
        await waitListeners([listen.bulk, listen.echo], workers, name);
      } catch (error) {
        await running.stop();
        throw error;
      }
      return running;
    },
  };
}

/** `spec` with access records on for both parts (the runner has no flags). */
function withAccessLog(spec: ForwarderSpec): ForwarderSpec {
  return {
    name: spec.name,
    ...(spec.tcp && { tcp: { ...spec.tcp, accessLog: true } }),
    ...(spec.udp && { udp: { ...spec.udp, accessLog: true } }),
  };
}

/** The baseline: load generators talk to the targets themselves. */
export const directPeer: Peer = {
  name: "direct",
  udp: true,
  describe: "no forwarder",
  start(ctx) {
    return Promise.resolve({ listen: ctx.targets, pids: [], stop: () => Promise.resolve() });
  },
};

/** nginx stream module, one worker (`halfClose`: `proxy_half_close on`). */
function nginx(name: string, halfClose: boolean): Peer {
  return {
    name,
    udp: !halfClose,
    describe: `nginx stream, 1 worker, proxy_buffer_size 64k${
      halfClose ? ", proxy_half_close on" : ""
    }`,
    async start(ctx) {
      const listen = allocateListen();
      const dir = `${ctx.workDir}/${name}`;
      await Deno.mkdir(dir, { recursive: true });
      const ports: PeerPorts = { listen, target: ctx.targets };
      await Deno.writeTextFile(
        `${dir}/nginx.conf`,
        renderNginxConfig(ports, dir, ctx.tools.nginxStreamModule, { halfClose }),
      );
      const args = ["-p", dir, "-e", `${dir}/error.log`, "-c", `${dir}/nginx.conf`];
      return startProcesses(
        ctx,
        listen,
        true,
        () => [ctx.group.spawn("nginx", ctx.tools.nginx, args)],
      );
    },
  };
}

/** nginx stream module, one worker: the reference every ratio is taken against. */
export const nginxPeer: Peer = nginx("nginx", false);

/**
 * nginx with `proxy_half_close on` (TCP only): keeps a half-closed connection open as UnDyingProxy
 * does, which costs it a wake-up per connection too; the like-for-like latency comparison.
 */
export const nginxHalfClosePeer: Peer = nginx("nginx-half-close", true);

/** haproxy in TCP mode, one thread. */
export const haproxyPeer: Peer = {
  name: "haproxy",
  udp: false,
  describe: "haproxy mode tcp, nbthread 1, tune.bufsize 64k",
  async start(ctx) {
    const listen = allocateListen();
    const file = `${ctx.workDir}/haproxy.cfg`;
    await Deno.writeTextFile(
      file,
      renderHaproxyConfig(
        { listen, target: ctx.targets },
        haproxyMaxConnections(hardFileLimit()),
      ),
    );
    return startProcesses(ctx, listen, false, () => [
      ctx.group.spawn("haproxy", ctx.tools.haproxy, ["-db", "-f", file]),
    ]);
  },
};

/** socat, one process per forward, forking per connection/session. */
export const socatPeer: Peer = {
  name: "socat",
  udp: true,
  describe: "socat fork, -b 64k",
  start(ctx) {
    const listen = allocateListen();
    const commands = socatCommands({ listen, target: ctx.targets });
    return startProcesses(
      ctx,
      listen,
      true,
      () => commands.map((c) => ctx.group.spawn(c.name, ctx.tools.socat, c.args)),
    );
  },
};
