/**
 * Extra forwarding threads (`SupervisorOptions.workers`): Web Workers that each run the TCP part of
 * the desired set on `reusePort` listeners (the kernel spreads new connections over the threads by
 * hash). UDP is not theirs: the batched UDP engine runs its own threads (`udp_batched/`), and the
 * portable one stays on the main thread, since Deno cannot share a UDP port between sockets
 * (`Deno.listenDatagram({ reuseAddress })` sets SO_REUSEADDR only, so the last socket bound gets every
 * datagram). Workers report their counters every second; the supervisor adds them up on scrape.
 * @module
 */

import { getLogger } from "@logtape/logtape";
import { SystemWorker, systemWorker } from "../ffi/system_worker_client.ts";
import type { ForwarderSpec } from "../spec.ts";
import { newTcpCounters, TCP_ERROR_TYPES, TCP_REJECT_REASONS, type TcpCounters } from "./state.ts";
import type { SupervisorOptions } from "./supervisor_options.ts";
import { emitWorkerLog } from "./worker_logs.ts";
import type { FromWorker, ToWorker, WorkerTcpCounters } from "./worker_messages.ts";

const log = getLogger(["undying-proxy", "supervisor"]);

const INHERIT_ALL = {
  env: "inherit",
  import: "inherit",
  net: "inherit",
  read: "inherit",
  run: "inherit",
  sys: "inherit",
  write: "inherit",
} as const;

interface Thread {
  /** 1-based, for logs (the main thread is forwarding thread 0). */
  readonly index: number;
  readonly worker: Worker;
  /** Latest counters by forwarder name. */
  counters: Map<string, WorkerTcpCounters>;
  /** Connections the worker cut at the end of a drain grace period (reported when closed). */
  forcedCloses: number;
  /** Parts reported failed, as `name/protocol`, to log each failure once. */
  failed: Set<string>;
  readonly closed: PromiseWithResolvers<void>;
}

/** A fixed set of forwarding workers mirroring the main thread's TCP forwarders. */
export class ForwardWorkers {
  readonly #threads: Thread[] = [];

  /** Starts `count` workers; `options` as given to the main supervisor. */
  constructor(count: number, options: SupervisorOptions) {
    // From source the worker is this directory's .ts module; in the bundle the compile task builds,
    // it is the separately bundled dist/forward_worker.js next to the program's bundle.
    const url = new URL(
      import.meta.url.endsWith(".ts") ? "./forward_worker.ts" : "./forward_worker.js",
      import.meta.url,
    );
    for (let index = 0; index < count; index++) {
      const thread: Thread = {
        index: index + 1,
        worker: new Worker(url, {
          type: "module",
          name: `forward-${index + 1}`,
          // Everything this thread may do, except FFI: only the UDP engine threads hold that.
          deno: { permissions: { ...INHERIT_ALL, ffi: false } },
        }),
        counters: new Map(),
        forcedCloses: 0,
        failed: new Set(),
        closed: Promise.withResolvers(),
      };
      thread.worker.onmessage = (event: MessageEvent<FromWorker>) => this.#receive(thread, event);
      thread.worker.onerror = (event) => {
        event.preventDefault();
        log.error("Forwarding worker {index} failed: {error}", {
          index: index + 1,
          error: event.message,
        });
        thread.closed.resolve();
      };
      // Resets of this thread's connections go through the system worker (it holds FFI; this
      // thread does not), on a channel of its own.
      const system = systemWorker();
      const systemPort = system instanceof SystemWorker ? system.channel() : undefined;
      if (systemPort === undefined) this.#post(thread, { kind: "start", options });
      else thread.worker.postMessage({ kind: "start", options, systemPort }, [systemPort]);
      this.#threads.push(thread);
    }
  }

  /** Sends the TCP parts of the desired set to every worker. */
  apply(desired: readonly ForwarderSpec[]): void {
    const tcpOnly = desired.flatMap((spec) => spec.tcp ? [{ name: spec.name, tcp: spec.tcp }] : []);
    for (const thread of this.#threads) this.#post(thread, { kind: "apply", desired: tcpOnly });
  }

  /** Adds the workers' latest TCP counters of forwarder `name` to `total`. */
  addTcpCounters(name: string, total: TcpCounters): void {
    for (const thread of this.#threads) {
      const counters = thread.counters.get(name)?.tcp;
      if (counters !== undefined) addInto(total, counters);
    }
  }

  /** Connections the workers cut at the end of a drain grace period, as reported when closed. */
  get forcedCloses(): number {
    return this.#threads.reduce((sum, thread) => sum + thread.forcedCloses, 0);
  }

  /** Drains every worker (`graceMs` as for the main thread), then ends them. */
  async close(graceMs: number): Promise<void> {
    for (const thread of this.#threads) this.#post(thread, { kind: "close", graceMs });
    await Promise.all(this.#threads.map((thread) => thread.closed.promise));
    for (const thread of this.#threads) thread.worker.terminate();
  }

  #post(thread: Thread, message: ToWorker): void {
    thread.worker.postMessage(message);
  }

  #receive(thread: Thread, event: MessageEvent<FromWorker>): void {
    const message = event.data;
    if (message.kind === "statuses") {
      this.#logFailures(thread, message.statuses);
      return;
    }
    if (message.kind === "log") {
      emitWorkerLog(message.record);
      return;
    }
    thread.counters = new Map(message.counters.map((entry) => [entry.name, entry]));
    if (message.kind === "closed") {
      thread.forcedCloses = message.forcedCloses;
      thread.closed.resolve();
    }
  }

  #logFailures(
    thread: Thread,
    statuses: Extract<FromWorker, { kind: "statuses" }>["statuses"],
  ): void {
    const failed = new Set<string>();
    for (const status of statuses) {
      const state = status.tcp;
      if (state?.phase !== "failed") continue;
      const key = `${status.name}/tcp`;
      failed.add(key);
      if (!thread.failed.has(key)) {
        log.warn("Worker {worker} cannot listen on TCP for {forwarder}: {reason}", {
          worker: thread.index,
          forwarder: status.name,
          reason: state.reason,
        });
      }
    }
    thread.failed = failed;
  }
}

/** `total += add`, field by field. */
function addInto(total: TcpCounters, add: TcpCounters): void {
  total.bytesClientToTarget += add.bytesClientToTarget;
  total.bytesTargetToClient += add.bytesTargetToClient;
  total.activeConnections += add.activeConnections;
  total.connectionsTotal += add.connectionsTotal;
  for (const type of TCP_ERROR_TYPES) total.errors[type] += add.errors[type];
  for (const reason of TCP_REJECT_REASONS) total.rejected[reason] += add.rejected[reason];
}

/** A copy of `counters` (to add worker counters to, without touching the live object). */
export function copyTcpCounters(counters: TcpCounters): TcpCounters {
  const copy = newTcpCounters();
  addInto(copy, counters);
  return copy;
}
