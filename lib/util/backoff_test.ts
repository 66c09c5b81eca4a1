import assert from "node:assert/strict";
import { Backoff } from "./backoff.ts";

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

Deno.test("Backoff.next() with symmetric jitter moves each step by at most 20%, never past maxMs", () => {
  const at = (random: number) =>
    new Backoff({ initialMs: 1000, maxMs: 30_000, jitter: [0.8, 1.2], random: () => random });
  const middle = at(0.5);
  assert.deepEqual(
    Array.from({ length: 8 }, () => middle.next()),
    [1000, 2000, 4000, 8000, 16_000, 30_000, 30_000, 30_000],
  );
  assert.equal(at(0).next(), 800);
  assert.equal(at(1).next(), 1200);
  const top = at(1);
  assert.deepEqual(Array.from({ length: 6 }, () => top.next()).slice(-1), [30_000]);
});

Deno.test("Backoff() refuses inconsistent options", () => {
  assert.throws(() => new Backoff({ initialMs: 10, maxMs: 5 }), /initialMs 10, maxMs 5/);
  assert.throws(() => new Backoff({ jitter: [1, 0.5] }), /jitter \[1, 0.5\]/);
});
