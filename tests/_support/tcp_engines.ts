/**
 * TCP forwarders on either engine for tests that prove both behave the same: the portable
 * {@linkcode TcpForwarder} on a `Deno.listen` socket, or a {@linkcode SpliceTcpForwarder} on
 * engine threads started for the test (stopped on dispose).
 * @module
 */

import type { TcpSpec } from "../../lib/spec.ts";
import type { ForwarderPolicyOptions } from "../../lib/forward/policy/forwarder_policy.ts";
import type { StopCause } from "../../lib/forward/access_log.ts";
import { newTcpCounters, type TcpCounters } from "../../lib/forward/state.ts";
import { TcpForwarder } from "../../lib/forward/tcp_forwarder.ts";
import { SharedTcpCounters } from "../../lib/forward/tcp_splice/shared_tcp_counters.ts";
import { startSpliceTcpEngine } from "../../lib/forward/tcp_splice/splice_engine.ts";
import { SpliceTcpForwarder } from "../../lib/forward/tcp_splice/splice_forwarder.ts";
import type { TcpEngineKind } from "../../lib/forward/tcp_engine_choice.ts";

/** Both engines, the portable one first. */
export const TCP_ENGINES: readonly TcpEngineKind[] = ["portable", "splice"];

/** Options of {@linkcode tcpForwarderTo}. */
export interface TcpFixtureOptions {
  readonly targetHost?: string;
  readonly dialTimeoutMs?: number;
  readonly idleTimeoutMs?: number;
  /** Address to listen on. @default "127.0.0.1" */
  readonly listenAddress?: string;
  /** Engine threads (splice engine). @default 1 */
  readonly threads?: number;
  /** Further spec fields (source ranges, limits, PROXY protocol, access log). */
  readonly spec?: Partial<TcpSpec>;
  /** Target rules, default source ranges and where verdicts go. */
  readonly policy?: ForwarderPolicyOptions;
  /** Forwarder name (`namespace/name`), for logs and access records. @default "test/tcp" */
  readonly name?: string;
  /** Access records unless the spec says otherwise. @default false */
  readonly accessLog?: boolean;
  /** Share of connections with an access record. @default 1 */
  readonly accessLogSampleRate?: number;
  /** Deadline for a client's PROXY header (with `spec.acceptProxyProtocol`). @default 5000 */
  readonly proxyHeaderTimeoutMs?: number;
}

/** What the engines have in common, as tests use it. */
export interface TestTcpForwarder {
  readonly port: number;
  readonly released: Promise<void>;
  update(spec: TcpSpec): void;
  drain(graceMs: number, cause?: StopCause): Promise<void>;
}

/** A forwarder (port chosen by the OS), drained at once on dispose. */
export interface TcpFixture extends AsyncDisposable {
  readonly forwarder: TestTcpForwarder;
  readonly counters: TcpCounters;
  /** A client connection to the forwarder. */
  connect(): Promise<Deno.TcpConn>;
}

/** A forwarder on `engine` to `targetPort`. */
export async function tcpForwarderTo(
  engine: TcpEngineKind,
  targetPort: number,
  options: TcpFixtureOptions = {},
): Promise<TcpFixture> {
  const spec: TcpSpec = {
    listenPort: 0,
    targetHost: options.targetHost ?? "127.0.0.1",
    targetPort,
    ...options.spec,
  };
  const name = options.name ?? "test/tcp";
  const records = {
    ...(options.accessLog !== undefined && { accessLog: options.accessLog }),
    ...(options.accessLogSampleRate !== undefined &&
      { accessLogSampleRate: options.accessLogSampleRate }),
    ...(options.proxyHeaderTimeoutMs !== undefined &&
      { proxyHeaderTimeoutMs: options.proxyHeaderTimeoutMs }),
  };
  const listenAddress = options.listenAddress ?? "127.0.0.1";
  const dialTimeoutMs = options.dialTimeoutMs ?? 5000;
  const idleTimeoutMs = options.idleTimeoutMs ?? 0;
  const connectTo = (port: number) => () =>
    Deno.connect({ hostname: listenAddress === "::" ? "::1" : listenAddress, port });
  if (engine === "portable") {
    const counters = newTcpCounters();
    const listener = Deno.listen({ hostname: listenAddress, port: 0 });
    const forwarder = new TcpForwarder(listener, {
      name,
      counters,
      spec,
      dialTimeoutMs,
      idleTimeoutMs,
      ...options.policy,
      ...records,
    });
    return {
      forwarder,
      counters,
      connect: connectTo(forwarder.port),
      [Symbol.asyncDispose]: () => forwarder.drain(0),
    };
  }
  const threads = options.threads ?? 1;
  const splice = await startSpliceTcpEngine(threads);
  const counters = new SharedTcpCounters(threads);
  let forwarder: SpliceTcpForwarder;
  try {
    forwarder = await SpliceTcpForwarder.open(splice, {
      name,
      counters,
      spec,
      listenAddress,
      dialTimeoutMs,
      idleTimeoutMs,
      ...options.policy,
      ...records,
    });
  } catch (error) {
    await splice.close();
    throw error;
  }
  return {
    forwarder,
    counters,
    connect: connectTo(forwarder.port),
    [Symbol.asyncDispose]: async () => {
      await forwarder.drain(0);
      await splice.close();
    },
  };
}
