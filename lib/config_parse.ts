/**
 * Parses a config file in a short-lived Web Worker: YAML parsing of a file up to
 * `--config-max-bytes` takes hundreds of milliseconds, which on the main thread would stall every
 * forwarder for as long.
 * @module
 */
import { ConfigError, type ConfigProblem } from "./file_source.ts";
import type { ForwarderSpec } from "./spec.ts";

/** Main thread → parse worker. */
export interface ParseRequest {
  readonly path: string;
  readonly text: string;
}

/** Parse worker → main thread. */
export type ParseReply =
  | { readonly kind: "specs"; readonly specs: ForwarderSpec[] }
  | { readonly kind: "invalid"; readonly problems: readonly ConfigProblem[] }
  | { readonly kind: "failed"; readonly message: string };

/** Longest a parse may take before the worker is ended and the file rejected. */
const PARSE_TIMEOUT_MS = 30_000;

/**
 * `parseConfig(path, text)`, run in a worker thread: the same specs, or the same {@linkcode ConfigError}.
 * @throws {ConfigError} for an invalid file, and when the worker cannot run or parse in time.
 */
export function parseConfigOffThread(path: string, text: string): Promise<ForwarderSpec[]> {
  // From source the worker is this directory's .ts module; in the bundle the compile task builds,
  // it is the separately bundled dist/config_parse_worker.js next to the program's bundle.
  const url = new URL(
    import.meta.url.endsWith(".ts") ? "./config_parse_worker.ts" : "./config_parse_worker.js",
    import.meta.url,
  );
  const worker = new Worker(url, { type: "module", name: "config-parse" });
  const { promise, resolve, reject } = Promise.withResolvers<ForwarderSpec[]>();
  const fail = (reason: string) =>
    reject(new ConfigError(path, [{ document: 0, field: "(file)", reason }]));
  const timer = setTimeout(
    () => fail(`parsing took longer than ${PARSE_TIMEOUT_MS} ms`),
    PARSE_TIMEOUT_MS,
  );
  worker.onmessage = (event: MessageEvent<ParseReply>) => {
    const reply = event.data;
    if (reply.kind === "specs") resolve(reply.specs);
    else if (reply.kind === "invalid") reject(new ConfigError(path, reply.problems));
    else fail(`cannot be parsed: ${reply.message}`);
  };
  worker.onerror = (event) => {
    event.preventDefault();
    fail(`cannot be parsed: the parse worker failed: ${event.message}`);
  };
  worker.postMessage({ path, text } satisfies ParseRequest);
  return promise.finally(() => {
    clearTimeout(timer);
    worker.terminate();
  });
}
