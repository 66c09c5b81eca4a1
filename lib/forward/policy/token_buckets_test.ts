import assert from "node:assert/strict";
import { TokenBuckets } from "./token_buckets.ts";

Deno.test("TokenBuckets: a key takes its burst at once, then the rate; keys are independent", () => {
  const buckets = new TokenBuckets(2, 3);
  assert.deepEqual([1, 2, 3, 4].map(() => buckets.take("a", 0)), [true, true, true, false]);
  assert.ok(buckets.take("b", 0), "another key has its own bucket");
  assert.ok(!buckets.take("a", 499), "less than one token back after 499 ms at 2/s");
  assert.ok(buckets.take("a", 500));
  assert.ok(!buckets.take("a", 500));
  assert.deepEqual([1, 2, 3, 4].map(() => buckets.take("a", 60_000)), [true, true, true, false]);
});

Deno.test("TokenBuckets: refilled buckets are forgotten, so memory follows recent keys only", () => {
  const buckets = new TokenBuckets(10, 1);
  for (let i = 0; i < 500; i++) buckets.take(`10.0.${i >> 8}.${i & 255}`, 0);
  assert.equal(buckets.size, 500);
  buckets.take("late", 1000);
  assert.equal(buckets.size, 1, "only the key taken after the sweep is left");
  assert.throws(() => new TokenBuckets(0, 1), /ratePerSecond must be > 0/);
  assert.throws(() => new TokenBuckets(1, 0), /burst must be >= 1/);
});
