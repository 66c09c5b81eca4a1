import assert from "node:assert/strict";
import { abortableDelay } from "../util/abortable_delay.ts";
import { forEachLimit, Wake } from "./_wake.ts";

/** "settled" when `promise` settles within `ms`, else "pending" (the bound of every wait below). */
async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<string> {
  const timeout = new AbortController();
  const outcome = await Promise.race([
    promise.then(() => "settled"),
    abortableDelay(ms, timeout.signal).then(() => "pending"),
  ]);
  timeout.abort();
  return outcome;
}

Deno.test("Wake.wait() returns at once after a trigger, and on trigger while waiting", async () => {
  const wake = new Wake();
  const never = new AbortController();
  wake.trigger();
  assert.equal(await settlesWithin(wake.wait(60_000, never.signal), 1000), "settled");
  const waiting = wake.wait(60_000, never.signal);
  assert.equal(await settlesWithin(waiting, 20), "pending");
  wake.trigger();
  assert.equal(await settlesWithin(waiting, 1000), "settled");
});

Deno.test("Wake.wait() returns after the delay or when the signal aborts", async () => {
  const wake = new Wake();
  assert.equal(await settlesWithin(wake.wait(1, new AbortController().signal), 1000), "settled");
  const abort = new AbortController();
  const waiting = wake.wait(60_000, abort.signal);
  assert.equal(await settlesWithin(waiting, 20), "pending");
  abort.abort();
  assert.equal(await settlesWithin(waiting, 1000), "settled");
});

Deno.test("Wake.wait() consumes a trigger: the next wait waits again", async () => {
  const wake = new Wake();
  const abort = new AbortController();
  wake.trigger();
  await wake.wait(60_000, abort.signal);
  const waiting = wake.wait(60_000, abort.signal);
  assert.equal(await settlesWithin(waiting, 20), "pending");
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
