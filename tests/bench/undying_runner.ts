/**
 * Runs the UnDyingProxy forwarding engine alone for the benchmark, in its own process:
 * `deno run tests/bench/undying_runner.ts LISTEN_ADDRESS SPECS_JSON [WORKERS [UDP_ENGINE [TCP_ENGINE [UDP_BUSY_POLL_US]]]]`. Builds a `Supervisor`, applies
 * the specs, prints `ready` once every part listens, and closes on SIGTERM or SIGINT. Used until the
 * program (`main.ts --config`) is available.
 * @module
 */
import type { ForwarderSpec } from "../../lib/spec.ts";
import { Supervisor } from "../../lib/forward/supervisor.ts";
import type { ListenerState } from "../../lib/forward/state.ts";
import { UDP_ENGINE_CHOICES, type UdpEngineChoice } from "../../lib/forward/udp_engine_choice.ts";
import { TCP_ENGINE_CHOICES, type TcpEngineChoice } from "../../lib/forward/tcp_engine_choice.ts";

const STARTUP_TIMEOUT_MS = 10_000;

function listening(state: ListenerState | undefined): boolean {
  return state === undefined || state.phase === "listening";
}

async function run(
  listenAddress: string,
  specs: ForwarderSpec[],
  workers: number,
  udpEngine: UdpEngineChoice,
  tcpEngine: TcpEngineChoice,
  udpBusyPollUs: number,
): Promise<void> {
  const supervisor = new Supervisor({
    listenAddress,
    drainGraceMs: 0,
    workers,
    udpEngine,
    tcpEngine,
    udpBusyPollUs,
  });
  const stop = Promise.withResolvers<void>();
  const onSignal = () => stop.resolve();
  Deno.addSignalListener("SIGTERM", onSignal);
  Deno.addSignalListener("SIGINT", onSignal);
  try {
    supervisor.apply(specs);
    const deadline = Date.now() + STARTUP_TIMEOUT_MS;
    while (!supervisor.statuses().every((s) => listening(s.tcp) && listening(s.udp))) {
      if (Date.now() > deadline) {
        throw new Error(`Forwarders not listening: ${JSON.stringify(supervisor.statuses())}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    await Deno.stdout.write(new TextEncoder().encode("ready\n"));
    await stop.promise;
  } finally {
    Deno.removeSignalListener("SIGTERM", onSignal);
    Deno.removeSignalListener("SIGINT", onSignal);
    await supervisor.close({ graceMs: 0 });
  }
}

if (import.meta.main) {
  const [
    listenAddress,
    specsJson,
    workersArg = "1",
    udpEngine = "io_uring",
    tcpEngine = "splice",
    busyPollArg = "0",
  ] = Deno.args;
  const workers = Number(workersArg);
  const busyPollUs = Number(busyPollArg);
  if (
    listenAddress === undefined || specsJson === undefined || !Number.isInteger(workers) ||
    !Number.isInteger(busyPollUs) ||
    !(UDP_ENGINE_CHOICES as readonly string[]).includes(udpEngine) ||
    !(TCP_ENGINE_CHOICES as readonly string[]).includes(tcpEngine)
  ) {
    throw new TypeError(
      "Usage: undying_runner.ts LISTEN_ADDRESS SPECS_JSON " +
        "[WORKERS [UDP_ENGINE [TCP_ENGINE [UDP_BUSY_POLL_US]]]]",
    );
  }
  await run(
    listenAddress,
    JSON.parse(specsJson) as ForwarderSpec[],
    workers,
    udpEngine as UdpEngineChoice,
    tcpEngine as TcpEngineChoice,
    busyPollUs,
  );
}
