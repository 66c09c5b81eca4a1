/**
 * Log configuration: JSON lines (default) or human-readable text on stderr, for every
 * `["undying-proxy", ...]` logger. Only `main.ts` calls this; library code just calls `getLogger`.
 * @module
 */
import {
  configure,
  getJsonLinesFormatter,
  getTextFormatter,
  type LogLevel,
  type LogRecord,
  type TextFormatter,
} from "@logtape/logtape";
import type { LogLevelName } from "./cli.ts";

/** How to log. */
export interface LoggingOptions {
  /** Lowest level written. */
  readonly level: LogLevelName;
  /** `json`: one JSON object per line; `text`: for humans. */
  readonly format: "json" | "text";
  /** Error properties of records at this level or above keep their stack trace. */
  readonly stacktraceLevel: LogLevelName;
  /** Where lines go. @default stderr */
  readonly write?: (line: string) => void;
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
    ? getJsonLinesFormatter({ properties: "flatten" })
    : getTextFormatter();
  const write = options.write ?? writeStderr;
  const stackFrom = ORDER.indexOf(LEVELS[options.stacktraceLevel]);
  const sink = (record: LogRecord): void => {
    const keepStack = ORDER.indexOf(record.level) >= stackFrom;
    write(format(keepStack ? record : withoutStacks(record)));
  };
  await configure({
    reset: true,
    sinks: { main: sink },
    loggers: [
      { category: ["undying-proxy"], lowestLevel: LEVELS[options.level], sinks: ["main"] },
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: ["main"] },
    ],
  });
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

const encoder = new TextEncoder();

function writeStderr(line: string): void {
  // Synchronous so that lines stay ordered and the last ones are not lost when the process exits.
  const bytes = encoder.encode(line);
  let written = 0;
  while (written < bytes.length) written += Deno.stderr.writeSync(bytes.subarray(written));
}
