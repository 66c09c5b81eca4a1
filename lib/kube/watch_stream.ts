/**
 * Decoding of a watch response body: UTF-8 text, split into lines (a line may arrive in several
 * chunks, and a chunk may hold several lines), each line one JSON watch event. `ERROR` events become
 * thrown {@linkcode ApiError}s; a silent stream is given up after an idle timeout.
 *
 * @module
 */
import { ApiError, isStatus } from "./api_error.ts";
import type { KubeObject } from "./resources.ts";
import { errorMessage } from "../util/error_message.ts";

/** One event of a watch stream. */
export type WatchEvent<T extends KubeObject> =
  | { type: "ADDED" | "MODIFIED" | "DELETED"; object: T }
  | { type: "BOOKMARK"; object: KubeObject };

/** Options of {@linkcode readWatchEvents}. */
export interface ReadWatchOptions<T> {
  /** HTTP method, for error messages. */
  method: string;
  /** Request path, for error messages. */
  path: string;
  /** Checks and completes each object where it enters. */
  decode: (value: unknown) => T;
  /** Give up (throw an `ApiError` of kind `Timeout`) after this long without any data. */
  idleTimeoutMs?: number;
  /** The signal that aborts the request; its reason is rethrown as is. */
  signal?: AbortSignal;
}

const MAX_SHOWN_CHARS = 256;

/** A stream that splits text into lines (without the line breaks), skipping empty lines. */
export function lineSplitter(): TransformStream<string, string> {
  let rest = "";
  return new TransformStream({
    transform(chunk, controller) {
      const parts = (rest + chunk).split("\n");
      rest = parts.pop() ?? "";
      for (const line of parts) if (line.trim() !== "") controller.enqueue(line);
    },
    flush(controller) {
      if (rest.trim() !== "") controller.enqueue(rest);
    },
  });
}

/**
 * Yields the events of a watch body until the server ends it.
 * @throws {ApiError} for an `ERROR` event (e.g. kind `Gone` for 410), a malformed line, or an idle
 * stream.
 */
export async function* readWatchEvents<T extends KubeObject>(
  body: ReadableStream<Uint8Array>,
  options: ReadWatchOptions<T>,
): AsyncGenerator<WatchEvent<T>> {
  const reader = body.pipeThrough(new TextDecoderStream()).pipeThrough(lineSplitter())
    .getReader();
  try {
    while (true) {
      const result = await readWithin(reader, options);
      if (result.done) return;
      yield parseEvent(result.value, options);
    }
  } finally {
    await reader.cancel().catch(() => {});
  }
}

async function readWithin<T>(
  reader: ReadableStreamDefaultReader<string>,
  options: ReadWatchOptions<T>,
): Promise<ReadableStreamReadResult<string>> {
  try {
    return await readOrIdle(reader, options);
  } catch (error) {
    if (error instanceof ApiError) throw error;
    if (options.signal?.aborted) throw options.signal.reason;
    throw new ApiError({
      status: 0,
      kind: "Network",
      method: options.method,
      path: options.path,
      text: `watch stream broke: ${errorMessage(error)}`,
    }, { cause: error });
  }
}

async function readOrIdle<T>(
  reader: ReadableStreamDefaultReader<string>,
  options: ReadWatchOptions<T>,
): Promise<ReadableStreamReadResult<string>> {
  const idleMs = options.idleTimeoutMs;
  if (idleMs === undefined) return await reader.read();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const idle = new Promise<"idle">((resolve) => timer = setTimeout(() => resolve("idle"), idleMs));
  try {
    const result = await Promise.race([reader.read(), idle]);
    if (result !== "idle") return result;
  } finally {
    clearTimeout(timer);
  }
  throw new ApiError({
    status: 0,
    kind: "Timeout",
    method: options.method,
    path: options.path,
    text: `watch stream sent nothing for ${idleMs} ms`,
  });
}

function parseEvent<T extends KubeObject>(
  line: string,
  options: ReadWatchOptions<T>,
): WatchEvent<T> {
  let event: { type?: unknown; object?: unknown };
  try {
    event = JSON.parse(line);
  } catch (error) {
    throw malformed(line, options, error);
  }
  switch (event?.type) {
    case "ADDED":
    case "MODIFIED":
    case "DELETED":
      return { type: event.type, object: options.decode(event.object) };
    case "BOOKMARK":
      return { type: "BOOKMARK", object: (event.object ?? {}) as KubeObject };
    case "ERROR":
      if (isStatus(event.object)) {
        throw new ApiError({
          status: event.object.code ?? 500,
          method: options.method,
          path: options.path,
          body: event.object,
        });
      }
  }
  throw malformed(line, options);
}

function malformed(line: string, options: { method: string; path: string }, cause?: unknown) {
  return new ApiError({
    status: 0,
    kind: "Unknown",
    method: options.method,
    path: options.path,
    text: `malformed watch event: ${line.slice(0, MAX_SHOWN_CHARS)}`,
  }, { cause });
}
