/**
 * UDP forwarders on every engine for tests that prove they behave the same: the portable
 * {@linkcode UdpForwarder} on a `Deno.listenDatagram` socket, or a {@linkcode BatchedUdpForwarder}
 * on engine threads started for the test (stopped on dispose), with epoll or with io_uring.
 * @module
 */

import type { UdpSpec } from "../../lib/spec.ts";
import type { ForwarderPolicyOptions } from "../../lib/forward/policy/forwarder_policy.ts";
import { Budget } from "../../lib/forward/budget.ts";
import { newUdpCounters, type UdpCounters } from "../../lib/forward/state.ts";
import {
  enableIoUring,
  setBusyPoll,
  startBatchedUdpEngine,
} from "../../lib/forward/udp_batched/batched_engine.ts";
import { BatchedUdpForwarder } from "../../lib/forward/udp_batched/batched_forwarder.ts";
import { SharedUdpCounters } from "../../lib/forward/udp_batched/shared_udp_counters.ts";
import { UdpForwarder } from "../../lib/forward/udp_forwarder.ts";
import type { UdpEngineKind } from "../../lib/forward/udp_engine_choice.ts";

/** Every engine, the portable one first ("io_uring": the batched engine with io_uring). */
export const UDP_ENGINES: readonly UdpEngineKind[] = ["portable", "batched", "io_uring"];

/** Options of {@linkcode udpForwarderTo}. */
export interface UdpFixtureOptions {
  readonly targetHost?: string;
  readonly maxSessions?: number;
  readonly bufferBytes?: number;
  readonly readTimeoutSeconds?: number;
  readonly writeTimeoutSeconds?: number;
  /** Sockets budget (one per session). @default unlimited */
  readonly sockets?: Budget;
  /** Session memory budget. @default unlimited */
  readonly bufferBudget?: Budget;
  /** Engine threads (batched engine). @default 1 */
  readonly threads?: number;
  /** Busy-polling window of the engine threads (batched engine), in microseconds. @default 0 */
  readonly busyPollUs?: number;
  /** Portable engine only: the listening socket. @default a fresh one on 127.0.0.1 */
  readonly socket?: Deno.DatagramConn;
  /** Portable engine only: see `UdpForwarderOptions.openUpstream`. */
  readonly openUpstream?: (hostname: string) => Deno.DatagramConn;
  /** Further spec fields (source ranges, limits, PROXY protocol). */
  readonly spec?: Partial<UdpSpec>;
  /** Target rules, default source ranges and where verdicts go. */
  readonly policy?: ForwarderPolicyOptions;
  /** Address the forwarder binds. @default "127.0.0.1" */
  readonly listen?: string;
  /** Forwarder name (`namespace/name`), for logs and access records. @default "test/udp" */
  readonly name?: string;
}

/** What the engines have in common, as tests use it. */
export interface TestUdpForwarder {
  readonly port: number;
  update(spec: UdpSpec): void;
  drain(graceMs: number): Promise<void>;
}

/** A forwarder on 127.0.0.1 (port chosen by the OS), drained at once on dispose. */
export interface UdpFixture extends AsyncDisposable {
  readonly forwarder: TestUdpForwarder;
  readonly counters: UdpCounters;
  readonly spec: UdpSpec;
  /**
   * Lets `ms` pass for the session timeouts: the portable engine runs on a hand-moved clock (no
   * real wait); the batched engine keeps time in its own threads, so there it is a real wait.
   */
  advance(ms: number): Promise<void>;
}

/** The portable forwarder's clock: time moves only when a test moves it. */
class ManualClock {
  ms = 1_000_000;
  readonly now = (): number => this.ms;
}

/** A forwarder on `engine` from 127.0.0.1 to `targetPort`. */
export async function udpForwarderTo(
  engine: UdpEngineKind,
  targetPort: number,
  options: UdpFixtureOptions = {},
): Promise<UdpFixture> {
  const spec: UdpSpec = {
    listenPort: 0,
    targetHost: options.targetHost ?? "127.0.0.1",
    targetPort,
    readTimeoutSeconds: options.readTimeoutSeconds ?? 30,
    writeTimeoutSeconds: options.writeTimeoutSeconds ?? 5,
    ...options.spec,
  };
  const listen = options.listen ?? "127.0.0.1";
  const maxSessions = options.maxSessions ?? 100;
  const bufferBytes = options.bufferBytes ?? 65_535;
  if (engine === "portable") {
    const counters = newUdpCounters();
    const socket = options.socket ??
      Deno.listenDatagram({ transport: "udp", hostname: listen, port: 0 });
    const clock = new ManualClock();
    const forwarder = new UdpForwarder(socket, {
      name: options.name ?? "test/udp",
      counters,
      spec,
      maxSessions,
      bufferBytes,
      ...(options.sockets && { sockets: options.sockets }),
      ...(options.bufferBudget && { bufferBudget: options.bufferBudget }),
      ...(options.openUpstream && { openUpstream: options.openUpstream }),
      ...options.policy,
      now: clock.now,
    });
    return {
      forwarder,
      counters,
      spec,
      advance: (ms) => {
        clock.ms += ms;
        return Promise.resolve();
      },
      [Symbol.asyncDispose]: () => forwarder.drain(0),
    };
  }
  if (options.socket !== undefined || options.openUpstream !== undefined) {
    throw new TypeError("socket and openUpstream are portable-engine fault injections");
  }
  const threads = options.threads ?? 1;
  const batched = await startBatchedUdpEngine(threads);
  const counters = new SharedUdpCounters(threads);
  let forwarder: BatchedUdpForwarder;
  try {
    if (options.busyPollUs !== undefined) await setBusyPoll(batched, options.busyPollUs);
    if (engine === "io_uring") {
      const refused = await enableIoUring(batched);
      if (refused !== undefined) throw new Error(`io_uring refused: ${refused}`);
    }
    forwarder = await BatchedUdpForwarder.open(batched, {
      name: options.name ?? "test/udp",
      counters,
      spec,
      listenAddress: listen,
      maxSessions,
      bufferBytes,
      sockets: options.sockets ?? new Budget(Infinity),
      sessionBytes: options.bufferBudget ?? new Budget(Infinity),
      ...options.policy,
    });
  } catch (error) {
    await batched.close();
    throw error;
  }
  return {
    forwarder,
    counters,
    spec,
    advance: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
    [Symbol.asyncDispose]: async () => {
      await forwarder.drain(0);
      await batched.close();
    },
  };
}
