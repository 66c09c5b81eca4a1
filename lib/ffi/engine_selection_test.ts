import assert from "node:assert/strict";
import { type EngineChoice, startNativeEngine } from "./engine_selection.ts";

/** A native engine whose self-test passes or fails; counts starts and closes. */
function starter(choice: EngineChoice, selfTestPasses: boolean) {
  const calls = { started: 0, closed: 0 };
  return {
    calls,
    starter: {
      name: "test",
      choice,
      start: () => Promise.resolve(++calls.started),
      selfTest: () => selfTestPasses ? Promise.resolve() : Promise.reject(new Error("bad layout")),
      close: () => Promise.resolve(void calls.closed++),
    },
  };
}

Deno.test("startNativeEngine(): auto uses a native engine that passes its self-test", async () => {
  const { starter: s } = starter("auto", true);
  assert.equal(await startNativeEngine(s), 1);
});

Deno.test("startNativeEngine(): auto falls back (undefined) when the self-test fails, and closes it", async () => {
  const { starter: s, calls } = starter("auto", false);
  assert.equal(await startNativeEngine(s), undefined);
  assert.deepEqual(calls, { started: 1, closed: 1 });
});

Deno.test("startNativeEngine(): native insists, naming the reason", async () => {
  const { starter: s } = starter("native", false);
  await assert.rejects(startNativeEngine(s), /The test engine cannot run: bad layout/);
});

Deno.test("startNativeEngine(): portable never starts the native engine", async () => {
  const { starter: s, calls } = starter("portable", true);
  assert.equal(await startNativeEngine(s), undefined);
  assert.equal(calls.started, 0);
});
