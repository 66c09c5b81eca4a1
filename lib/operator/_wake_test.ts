import assert from "node:assert/strict";
import { forEachLimit, Wake } from "./_wake.ts";

Deno.test("Wake.wait() returns at once after a trigger, and on trigger while waiting", async () => {
  const wake = new Wake();
  const never = new AbortController().signal;
  wake.trigger();
  await wake.wait(60_000, never);
  const waiting = wake.wait(60_000, never);
  wake.trigger();
  await waiting;
});

Deno.test("Wake.wait() returns after the delay or when the signal aborts", async () => {
  const wake = new Wake();
  await wake.wait(1, new AbortController().signal);
  const abort = new AbortController();
  const waiting = wake.wait(60_000, abort.signal);
  abort.abort();
  await waiting;
});

Deno.test("forEachLimit() visits every item with bounded concurrency", async () => {
  let running = 0;
  let peak = 0;
  const seen: number[] = [];
  await forEachLimit([1, 2, 3, 4, 5, 6, 7], 3, async (item) => {
    running++;
    peak = Math.max(peak, running);
    await new Promise((resolve) => setTimeout(resolve, 1));
    seen.push(item);
    running--;
  });
  assert.deepEqual(seen.sort(), [1, 2, 3, 4, 5, 6, 7]);
  assert.ok(peak <= 3 && peak > 1, `peak ${peak}`);
  await forEachLimit([], 3, () => Promise.reject(new Error("never called")));
});
