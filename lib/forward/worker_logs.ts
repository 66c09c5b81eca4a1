/**
 * Log records of forwarding workers reach the main thread's sinks: logtape is configured per
 * thread, so a worker sends each record (access records and warnings alike) to the main thread,
 * which emits it under the same category, level and timestamp through its own configuration.
 * @module
 */

import { configure, getLogger, type LogLevel, type LogRecord } from "@logtape/logtape";

/** A log record as it crosses from a worker to the main thread (structured-cloneable). */
export interface WorkerLogRecord {
  readonly category: readonly string[];
  readonly level: LogLevel;
  readonly message: readonly unknown[];
  readonly rawMessage: string;
  readonly timestamp: number;
  readonly properties: Record<string, unknown>;
}

/** Worker side: every `["undying-proxy", ...]` record goes to `post` (the main thread filters). */
export async function forwardLogsTo(post: (record: WorkerLogRecord) => void): Promise<void> {
  await configure({
    reset: true,
    sinks: {
      parent: (record: LogRecord) =>
        post({
          category: record.category,
          level: record.level,
          message: record.message,
          rawMessage: typeof record.rawMessage === "string"
            ? record.rawMessage
            : record.rawMessage.join("{}"),
          timestamp: record.timestamp,
          properties: record.properties,
        }),
    },
    loggers: [
      { category: ["undying-proxy"], lowestLevel: "debug", sinks: ["parent"] },
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: [] },
    ],
  });
}

/** Main side: emits a worker's record as if it were logged here. */
export function emitWorkerLog(record: WorkerLogRecord): void {
  const { category, ...rest } = record;
  getLogger([...category]).emit(rest);
}
