import assert from "node:assert/strict";
import { backoffDelayMs } from "./backoff.ts";

Deno.test("backoffDelayMs() doubles from the initial delay up to the cap", () => {
  const noJitter = () => 0.5;
  assert.deepEqual(
    [0, 1, 2, 3, 4, 5, 6, 100].map((attempt) => backoffDelayMs(attempt, 500, 30_000, noJitter)),
    [500, 1000, 2000, 4000, 8000, 16_000, 30_000, 30_000],
  );
});

Deno.test("backoffDelayMs() jitters by at most 20% and never exceeds the cap", () => {
  assert.equal(backoffDelayMs(0, 1000, 30_000, () => 0), 800);
  assert.equal(backoffDelayMs(0, 1000, 30_000, () => 1), 1200);
  assert.equal(backoffDelayMs(10, 1000, 30_000, () => 1), 30_000);
});
