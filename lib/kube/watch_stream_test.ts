import assert from "node:assert/strict";
import { ApiError } from "./api_error.ts";
import { decodeObject } from "./client.ts";
import { SERVICES } from "./resources.ts";
import { lineSplitter, readWatchEvents, type WatchEvent } from "./watch_stream.ts";

function streamOf(chunks: string[], keepOpen = false): ReadableStream<Uint8Array> {
  const encoder = new TextEncoder();
  return new ReadableStream({
    start(controller) {
      for (const chunk of chunks) controller.enqueue(encoder.encode(chunk));
      if (!keepOpen) controller.close();
    },
  });
}

const options = {
  method: "GET",
  path: "/api/v1/services",
  decode: (v: unknown) => decodeObject(SERVICES, v),
};

async function collect<T>(iterable: AsyncIterable<T>): Promise<T[]> {
  const items: T[] = [];
  for await (const item of iterable) items.push(item);
  return items;
}

Deno.test("lineSplitter() joins lines split across chunks and splits chunks holding several lines", async () => {
  const lines = await collect(
    ReadableStream.from(['{"a":', '1}\n{"b"', ":2}\n\n", '{"c":3}\n{"d"', ":4}"]).pipeThrough(
      lineSplitter(),
    ),
  );
  assert.deepEqual(lines, ['{"a":1}', '{"b":2}', '{"c":3}', '{"d":4}']);
});

Deno.test("readWatchEvents() decodes events split mid-character and fills in kind", async () => {
  const event = JSON.stringify({
    type: "ADDED",
    object: { metadata: { name: "é", resourceVersion: "5" } },
  });
  const bytes = new TextEncoder().encode(
    event + "\n" +
      JSON.stringify({ type: "BOOKMARK", object: { metadata: { resourceVersion: "9" } } }) + "\n",
  );
  const split = event.indexOf("é") + 1; // inside the two UTF-8 bytes of "é"
  const body = ReadableStream.from([bytes.slice(0, split), bytes.slice(split)]);
  const events: WatchEvent<{ metadata?: { name?: string } }>[] = await collect(
    readWatchEvents(body, options),
  );
  assert.equal(events.length, 2);
  assert.equal(events[0]?.type, "ADDED");
  assert.equal(events[0]?.object.metadata?.name, "é");
  assert.equal((events[0]?.object as { kind?: string }).kind, "Service");
  assert.equal(events[1]?.type, "BOOKMARK");
});

Deno.test("readWatchEvents() throws an ERROR event as an ApiError (410 is Gone)", async () => {
  const status = {
    kind: "Status",
    apiVersion: "v1",
    status: "Failure",
    reason: "Expired",
    code: 410,
    message: "too old resource version: 1 (20)",
  };
  const body = streamOf([JSON.stringify({ type: "ERROR", object: status }) + "\n"]);
  await assert.rejects(collect(readWatchEvents(body, options)), (error: unknown) => {
    assert.ok(error instanceof ApiError);
    assert.equal(error.kind, "Gone");
    assert.equal(error.status, 410);
    assert.match(error.message, /too old resource version/);
    return true;
  });
});

Deno.test("readWatchEvents() reports a malformed line with its start", async () => {
  const body = streamOf(["<html>proxy error</html>\n"]);
  await assert.rejects(
    collect(readWatchEvents(body, options)),
    /malformed watch event: <html>proxy error/,
  );
});

Deno.test("readWatchEvents() gives up on a silent stream after idleTimeoutMs", async () => {
  const body = streamOf([], true);
  await assert.rejects(
    collect(readWatchEvents(body, { ...options, idleTimeoutMs: 50 })),
    (error: unknown) =>
      error instanceof ApiError && error.kind === "Timeout" &&
      /sent nothing for 50 ms/.test(error.message),
  );
});
