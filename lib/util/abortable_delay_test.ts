import assert from "node:assert/strict";
import { abortableDelay, sleep } from "./abortable_delay.ts";

Deno.test("abortableDelay() resolves early on abort and leaves no timer", async () => {
  const controller = new AbortController();
  const started = performance.now();
  const pending = abortableDelay(60_000, controller.signal);
  controller.abort(new Error("stop"));
  await pending;
  await abortableDelay(60_000, controller.signal);
  assert.ok(performance.now() - started < 1000);
  await abortableDelay(1);
});

Deno.test("sleep() rejects with the abort reason and leaves no timer", async () => {
  const controller = new AbortController();
  const pending = sleep(60_000, controller.signal);
  controller.abort(new Error("stop"));
  await assert.rejects(pending, /stop/);
  await assert.rejects(sleep(1, controller.signal), /stop/);
  await sleep(1);
});
