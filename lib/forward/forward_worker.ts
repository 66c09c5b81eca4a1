/**
 * Entry point of a forwarding Web Worker (see {@linkcode ForwardWorkers}): runs its own
 * {@linkcode Supervisor} for the TCP parts of the desired set, on listeners bound with `reusePort`
 * so the kernel spreads new connections over every thread; reports its counters periodically and
 * its statuses on change.
 * @module
 */

/// <reference lib="deno.worker" />

import { installSystemChannel } from "../ffi/system_worker_client.ts";
import type { ForwarderCounters, TcpCounters } from "./state.ts";
import { Supervisor } from "./supervisor.ts";
import { forwardLogsTo } from "./worker_logs.ts";
import type { FromWorker, ToWorker } from "./worker_messages.ts";

/** How often counters go to the main thread (a scrape sees them at most this old). */
const COUNTERS_INTERVAL_MS = 1000;

let supervisor: Supervisor | undefined;
let timer: ReturnType<typeof setInterval> | undefined;
/** Logging set up by "start"; later messages wait for it, in order. */
let logging: Promise<void> = Promise.resolve();

function post(message: FromWorker): void {
  self.postMessage(message);
}

function tcpCounters(): Array<{ name: string; tcp: TcpCounters }> {
  const result: Array<{ name: string; tcp: TcpCounters }> = [];
  for (const counters of supervisor?.counters() ?? ([] as ForwarderCounters[])) {
    if (counters.tcp) result.push({ name: counters.name, tcp: counters.tcp });
  }
  return result;
}

self.onmessage = async (event: MessageEvent<ToWorker>) => {
  const message = event.data;
  switch (message.kind) {
    case "start": {
      if (message.systemPort !== undefined) installSystemChannel(message.systemPort);
      logging = forwardLogsTo((record) => post({ kind: "log", record }));
      await logging;
      supervisor = new Supervisor({
        ...message.options,
        workers: 1,
        tcpReusePort: true,
        udpEngine: "portable", // this thread gets TCP parts only
        tcpEngine: "portable", // workers exist for the portable TCP engine only
      });
      supervisor.onChange(() => post({ kind: "statuses", statuses: supervisor!.statuses() }));
      timer = setInterval(
        () => post({ kind: "counters", counters: tcpCounters() }),
        COUNTERS_INTERVAL_MS,
      );
      break;
    }
    case "apply":
      await logging; // resumes after "start" resumed (FIFO), so the supervisor exists
      supervisor?.apply(message.desired);
      break;
    case "close": {
      await logging;
      clearInterval(timer);
      await supervisor?.close({ graceMs: message.graceMs });
      post({
        kind: "closed",
        counters: tcpCounters(),
        forcedCloses: supervisor?.forcedCloses ?? 0,
      });
      break;
    }
  }
};
