import assert from "node:assert/strict";
import { percentile, perCore, ratio, summarize } from "./stats.ts";

Deno.test("percentile() interpolates between closest ranks of unsorted values", () => {
  const values = [40, 10, 30, 20];
  assert.deepEqual(percentile(values, 0), 10);
  assert.deepEqual(percentile(values, 100), 40);
  assert.deepEqual(percentile(values, 50), 25);
  assert.ok(Math.abs(percentile(values, 99) - 39.7) < 1e-9);
  assert.deepEqual(values, [40, 10, 30, 20]); // input untouched
});

Deno.test("percentile() of one value is that value", () => {
  assert.deepEqual(percentile([7], 99), 7);
});

Deno.test("percentile() rejects no values and p outside 0–100", () => {
  assert.throws(() => percentile([], 50), { name: "RangeError", message: /no values/ });
  assert.throws(() => percentile([1], 101), { name: "RangeError", message: /101/ });
  assert.throws(() => percentile([1], Number.NaN), { name: "RangeError", message: /NaN/ });
});

Deno.test("summarize() gives median and range of the finite values only", () => {
  assert.deepEqual(summarize([3, undefined, 1, Number.NaN, 2, Infinity]), {
    median: 2,
    min: 1,
    max: 3,
    n: 3,
  });
  assert.deepEqual(summarize([5, 1]), { median: 3, min: 1, max: 5, n: 2 });
});

Deno.test("summarize() is undefined when nothing was measured", () => {
  assert.deepEqual(summarize([undefined, Number.NaN]), undefined);
  assert.deepEqual(summarize([]), undefined);
});

Deno.test("ratio() is undefined for a missing value or a zero base", () => {
  assert.deepEqual(ratio(3, 4), 0.75);
  assert.deepEqual(ratio(undefined, 4), undefined);
  assert.deepEqual(ratio(3, undefined), undefined);
  assert.deepEqual(ratio(3, 0), undefined);
});

Deno.test("perCore() divides by the cores used", () => {
  assert.deepEqual(perCore(10, 50), 20);
  assert.deepEqual(perCore(10, 200), 5);
  assert.deepEqual(perCore(10, 0), undefined);
  assert.deepEqual(perCore(10, undefined), undefined);
  assert.deepEqual(perCore(undefined, 50), undefined);
});
