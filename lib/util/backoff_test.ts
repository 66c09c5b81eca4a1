import assert from "node:assert/strict";
import { Backoff, sleep } from "./backoff.ts";

Deno.test("Backoff.next() doubles up to maxMs with jitter between half and full step", () => {
  const low = new Backoff({ initialMs: 100, maxMs: 1000, random: () => 0 });
  assert.deepEqual([1, 2, 3, 4, 5, 6].map(() => low.next()), [50, 100, 200, 400, 500, 500]);
  const high = new Backoff({ initialMs: 100, maxMs: 1000, random: () => 0.999999 });
  assert.deepEqual([1, 2, 3, 4, 5].map(() => high.next()), [100, 200, 400, 800, 1000]);
});

Deno.test("Backoff.next() starts over after resetAfterMs without failures, or after reset()", () => {
  let now = 0;
  const backoff = new Backoff({
    initialMs: 100,
    maxMs: 1000,
    resetAfterMs: 5000,
    random: () => 0.999999,
    now: () => now,
  });
  backoff.next();
  now = 1000;
  assert.equal(backoff.next(), 200);
  now = 7000;
  assert.equal(backoff.next(), 100);
  backoff.next();
  backoff.reset();
  assert.equal(backoff.next(), 100);
});

Deno.test("Backoff() refuses inconsistent options", () => {
  assert.throws(() => new Backoff({ initialMs: 10, maxMs: 5 }), /initialMs 10, maxMs 5/);
});

Deno.test("sleep() rejects with the abort reason and leaves no timer", async () => {
  const controller = new AbortController();
  const pending = sleep(60_000, controller.signal);
  controller.abort(new Error("stop"));
  await assert.rejects(pending, /stop/);
  await assert.rejects(sleep(1, controller.signal), /stop/);
  await sleep(1);
});
