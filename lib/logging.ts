/**
 * Log configuration: JSON lines (default) or human-readable text on stderr, for every
 * `["undying-proxy", ...]` logger. Only `main.ts` calls this; library code just calls `getLogger`.
 * @module
 */
import {
  configure,
  getTextFormatter,
  type LogLevel,
  type LogRecord,
  type TextFormatter,
} from "@logtape/logtape";
import type { LogLevelName } from "./cli.ts";
import { ACCESS_LOG_CATEGORY } from "./forward/access_log.ts";
import { LineWriter } from "./log_writer.ts";

/** How to log. */
export interface LoggingOptions {
  /** Lowest level written. */
  readonly level: LogLevelName;
  /** `json`: one JSON object per line; `text`: for humans. */
  readonly format: "json" | "text";
  /** Error properties of records at this level or above keep their stack trace. */
  readonly stacktraceLevel: LogLevelName;
  /**
   * Where lines go, synchronously (tests). @default stderr: ordinary lines synchronously, access
   * records through a bounded asynchronous queue (see {@linkcode LineWriter})
   */
  readonly write?: (line: string) => void;
}

/** Characters of access records that may wait for stderr before further records are dropped. */
const MAX_PENDING_ACCESS_CHARS = 4 * 1024 * 1024;

/** The stderr writer of the process (created on first use). */
let stderrWriter: LineWriter | undefined;

function stderr(): LineWriter {
  return stderrWriter ??= new LineWriter(Deno.stderr, MAX_PENDING_ACCESS_CHARS);
}

/** Access records dropped so far because stderr did not keep up (or went away). */
export function droppedAccessRecords(): number {
  return stderrWriter?.dropped ?? 0;
}

/** Resolves once queued log lines are written (call before the process exits). */
export async function flushLogs(): Promise<void> {
  await stderrWriter?.flush();
}

const LEVELS: Record<LogLevelName, LogLevel> = {
  debug: "debug",
  info: "info",
  warn: "warning",
  error: "error",
  fatal: "fatal",
};
const ORDER: readonly LogLevel[] = ["trace", "debug", "info", "warning", "error", "fatal"];

/** Configures logtape for the whole process (replacing any earlier configuration). */
export async function setupLogging(options: LoggingOptions): Promise<void> {
  const format: TextFormatter = options.format === "json"
    ? formatJsonLine
    : getTextFormatter({ value: "bare" });
  const write = options.write ?? ((line: string) => stderr().writeNow(line));
  // Access records must never wait for stderr: queued, and dropped (counted) when it lags far behind.
  const writeRecord = options.write ?? ((line: string) => void stderr().writeLater(line));
  const stackFrom = ORDER.indexOf(LEVELS[options.stacktraceLevel]);
  const sink = (record: LogRecord): void => {
    const keepStack = ORDER.indexOf(record.level) >= stackFrom;
    write(format(keepStack ? record : withoutStacks(record)));
  };
  await configure({
    reset: true,
    sinks: { main: sink, access: (record: LogRecord) => writeRecord(format(record)) },
    loggers: [
      { category: ["undying-proxy"], lowestLevel: LEVELS[options.level], sinks: ["main"] },
      // Access records are turned on per object or by --access-log, whatever --log-level says.
      {
        category: [...ACCESS_LOG_CATEGORY],
        lowestLevel: "info",
        sinks: ["access"],
        parentSinks: "override",
      },
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: ["main"] },
    ],
  });
}

/**
 * One JSON object per line: `@timestamp`, `level`, `message` (strings embedded bare, unlike
 * logtape's formatter which quotes them), `logger`, and the record's properties at the top level.
 */
export function formatJsonLine(record: LogRecord): string {
  const message = record.message
    .map((part, index) => index % 2 === 0 || typeof part === "string" ? String(part) : render(part))
    .join("");
  const line: Record<string, unknown> = {
    "@timestamp": new Date(record.timestamp).toISOString(),
    level: record.level.toUpperCase(),
    message,
    logger: record.category.join("."),
  };
  // A property named like a fixed key never replaces it.
  for (const [key, value] of Object.entries(record.properties)) {
    if (!(key in line)) line[key] = value;
  }
  // Without a replacer JSON.stringify is several times faster; it is needed only for errors, bigints
  // and objects that may hold them.
  const plain = Object.values(record.properties).every((value) =>
    value === null || (typeof value !== "object" && typeof value !== "bigint")
  );
  return (plain ? JSON.stringify(line) : JSON.stringify(line, jsonValue)) + "\n";
}

function render(value: unknown): string {
  if (value instanceof Error) return value.message;
  return typeof value === "object" && value !== null
    ? JSON.stringify(value, jsonValue)
    : String(value);
}

function jsonValue(_key: string, value: unknown): unknown {
  if (value instanceof Error) {
    return { name: value.name, message: value.message, ...(value.stack && { stack: value.stack }) };
  }
  return typeof value === "bigint" ? value.toString() : value;
}

/** Errors as `{name, message}` (no stack): what records below the stack trace level carry. */
function withoutStacks(record: LogRecord): LogRecord {
  let changed = false;
  const properties: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(record.properties)) {
    if (value instanceof Error) {
      properties[key] = { name: value.name, message: value.message };
      changed = true;
    } else {
      properties[key] = value;
    }
  }
  return changed ? { ...record, properties } : record;
}
