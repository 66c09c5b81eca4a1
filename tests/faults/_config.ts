/**
 * Shared helpers of the fault suite: UnDyingProxy documents and the ConfigError of a text.
 * @module
 */
import assert from "node:assert/strict";
import {
  ConfigError,
  FileSource,
  type FileSourceOptions,
  parseConfig,
} from "../../lib/file_source.ts";
import type { ForwarderSpec } from "../../lib/spec.ts";

/** One UnDyingProxy document (YAML) with a raw `spec` body, e.g. `tcp: {listenPort: 1, ...}`. */
export function proxyDocument(name: string, spec: string): string {
  return `apiVersion: proxy.sfact.io/v1alpha1
kind: UnDyingProxy
metadata: { name: ${name} }
spec: { ${spec} }
`;
}

/** A TCP forwarder document to 127.0.0.1. */
export function tcpDocument(name: string, listenPort: number, targetPort: number): string {
  return proxyDocument(
    name,
    `tcp: { listenPort: ${listenPort}, targetPort: ${targetPort}, targetHost: 127.0.0.1 }`,
  );
}

/** The ConfigError `parseConfig()` throws for `text` (fails the test when it accepts it). */
export function configError(text: string): ConfigError {
  try {
    parseConfig("c.yaml", text);
  } catch (error) {
    assert.ok(error instanceof ConfigError, String(error));
    return error;
  }
  return assert.fail("accepted");
}

/** What a running FileSource applied and reported. */
export interface Watched {
  readonly applied: (readonly ForwarderSpec[])[];
  readonly loads: string[];
  /** Times the watch was lost and set up again. */
  readonly watchLost: () => number;
}

/** Runs a FileSource on `path` (short debounce and checks) while `fn` runs. */
export async function watchingFile(
  path: string,
  options: FileSourceOptions,
  fn: (watched: Watched) => Promise<void>,
): Promise<void> {
  const applied: (readonly ForwarderSpec[])[] = [];
  const loads: string[] = [];
  let lost = 0;
  const source = await FileSource.open(path, {
    debounceMs: 50,
    watchCheckMs: 50,
    ...options,
    onLoad: (result) => loads.push(result),
    onWatchLost: () => lost++,
  });
  const stop = new AbortController();
  const done = source.run((desired) => applied.push(desired), stop.signal);
  try {
    await fn({ applied, loads, watchLost: () => lost });
  } finally {
    stop.abort();
    await done;
  }
}

/** A temporary directory for the duration of `fn`. */
export async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "faults_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** A UDP forwarder document to 127.0.0.1 with a short session timeout. */
export function udpDocument(
  name: string,
  listenPort: number,
  targetPort: number,
  readTimeoutSeconds = 2,
): string {
  return proxyDocument(
    name,
    `udp: { listenPort: ${listenPort}, targetPort: ${targetPort}, targetHost: 127.0.0.1, ` +
      `readTimeoutSeconds: ${readTimeoutSeconds} }`,
  );
}

/** A temporary config file; removed on dispose. */
export interface TempConfigFile extends AsyncDisposable {
  readonly path: string;
  /** Replaces the file's documents. */
  write(documents: readonly string[]): Promise<void>;
}

/** A temporary config file holding `documents`. */
export async function tempConfigFile(documents: readonly string[]): Promise<TempConfigFile> {
  const dir = await Deno.makeTempDir({ prefix: "faults_" });
  const path = `${dir}/proxies.yaml`;
  await Deno.writeTextFile(path, documents.join("---\n"));
  return {
    path,
    write: (next: readonly string[]) => Deno.writeTextFile(path, next.join("---\n")),
    [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }),
  };
}
