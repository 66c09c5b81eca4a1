import assert from "node:assert/strict";
import { waitUntil } from "../../tests/_support/wait.ts";
import { DialDeadlines } from "./dial_deadlines.ts";

Deno.test("DialDeadlines shares a signal within a window and aborts it after the timeout", async () => {
  const deadlines = new DialDeadlines(1000);
  const first = deadlines.signal();
  assert.equal(deadlines.signal(), first, "dials in the same window share a signal");
  assert.equal(first.aborted, false);
  await waitUntil("the window's deadline", () => first.aborted);
  const next = deadlines.signal();
  assert.notEqual(next, first);
  assert.equal(next.aborted, false);
  deadlines.abortAll();
  assert.equal(next.aborted, true, "abortAll() ends every dial and clears the timers");
});
