import assert from "node:assert/strict";
import { type LineSink, LineWriter } from "./log_writer.ts";

/**
 * A sink that records what it got and whose asynchronous writes wait for `release()`: a reader that
 * stopped reading, which a test cannot make a real stderr do on demand.
 */
function stallingSink() {
  const chunks: string[] = [];
  const decoder = new TextDecoder();
  let gate = Promise.withResolvers<void>();
  let asyncWrites = 0;
  const sink: LineSink = {
    writeSync(bytes) {
      chunks.push(`sync:${decoder.decode(bytes)}`);
      return bytes.length;
    },
    async write(bytes) {
      asyncWrites++;
      await gate.promise;
      chunks.push(`async:${decoder.decode(bytes)}`);
      return bytes.length;
    },
  };
  return {
    sink,
    chunks,
    get asyncWrites() {
      return asyncWrites;
    },
    release() {
      gate.resolve();
      gate = Promise.withResolvers();
    },
  };
}

Deno.test("LineWriter writes at once when idle and batches later lines into one write", async () => {
  const fake = stallingSink();
  const writer = new LineWriter(fake.sink, 1000);
  writer.writeNow("a\n");
  assert.deepEqual(fake.chunks, ["sync:a\n"], "written before returning");
  assert.ok(writer.writeLater("b\n"));
  assert.ok(writer.writeLater("c\n"));
  assert.deepEqual(fake.chunks, ["sync:a\n"], "nothing written yet");
  fake.release();
  const flushed = writer.flush();
  await new Promise((resolve) => setTimeout(resolve, 5));
  fake.release();
  await flushed;
  assert.deepEqual(fake.chunks, ["sync:a\n", "async:b\nc\n"]);
  assert.equal(fake.asyncWrites, 1);
});

Deno.test("LineWriter drops (and counts) later lines beyond the bound while the sink is stuck, and keeps order", async () => {
  const fake = stallingSink();
  const writer = new LineWriter(fake.sink, 10);
  assert.ok(writer.writeLater("12345\n"));
  await new Promise((resolve) => setTimeout(resolve, 5)); // the batch is in flight, stuck
  assert.equal(fake.asyncWrites, 1);
  assert.ok(writer.writeLater("678\n"));
  assert.equal(writer.writeLater("9abc\n"), false, "beyond 10 pending characters");
  writer.writeNow("warn\n"); // queued behind, never dropped, never interleaved
  assert.equal(writer.dropped, 1);
  assert.deepEqual(fake.chunks, []);
  for (let i = 0; i < 5 && fake.chunks.length < 2; i++) {
    fake.release();
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  await writer.flush();
  assert.deepEqual(fake.chunks, ["async:12345\n", "async:678\nwarn\n"]);
  writer.writeNow("idle again\n");
  assert.equal(fake.chunks.at(-1), "sync:idle again\n");
});

Deno.test("LineWriter gives up on a failing sink, counting what was lost", async () => {
  const writer = new LineWriter({
    writeSync: (bytes) => bytes.length,
    write: () => Promise.reject(new Deno.errors.BrokenPipe("closed")),
  }, 1000);
  writer.writeLater("a\n");
  writer.writeLater("b\n");
  await writer.flush();
  assert.equal(writer.dropped, 2);
  assert.ok(writer.writeLater("c\n"), "accepts lines again");
  await writer.flush();
  assert.equal(writer.dropped, 3);
});
