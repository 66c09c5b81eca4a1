import assert from "node:assert/strict";
import { SharedCounterBlock } from "./shared_counters.ts";

Deno.test("SharedCounterBlock sums each field over the writers' rows", () => {
  const block = new SharedCounterBlock(3, 4);
  block.row(0)[1] = 5;
  block.row(3)[1] = 2 ** 40;
  block.row(2)[0] = 1;
  const view = new SharedCounterBlock(3, 4, block.buffer); // as another thread sees it
  assert.equal(view.sum(1), 2 ** 40 + 5);
  assert.equal(view.sum(0), 1);
  assert.equal(view.sum(2), 0);
  assert.throws(() => new SharedCounterBlock(3, 5, block.buffer), RangeError);
});
