import assert from "node:assert/strict";
import { ShutdownSignals } from "./shutdown.ts";
import { waitUntil } from "../tests/_support/wait.ts";

Deno.test("ShutdownSignals aborts on the first signal and escalates on the second", async () => {
  const second: Deno.Signal[] = [];
  using signals = new ShutdownSignals({
    signals: ["SIGUSR2"],
    onSecondSignal: (signal) => second.push(signal),
    repeatWindowMs: 50,
  });
  assert.equal(signals.signal.aborted, false);
  Deno.kill(Deno.pid, "SIGUSR2");
  await waitUntil("the first signal", () => signals.signal.aborted);
  assert.equal(signals.signal.reason, "SIGUSR2");
  assert.deepEqual(second, []);
  await new Promise((resolve) => setTimeout(resolve, 100));
  Deno.kill(Deno.pid, "SIGUSR2");
  await waitUntil("the second signal", () => second.length === 1);
  assert.deepEqual(second, ["SIGUSR2"]);
});

Deno.test("ShutdownSignals counts the same signal twice within the window once", async () => {
  const second: Deno.Signal[] = [];
  using signals = new ShutdownSignals({
    signals: ["SIGUSR2", "SIGUSR1"],
    onSecondSignal: (signal) => second.push(signal),
    repeatWindowMs: 60_000,
  });
  // One key press, delivered twice (by the terminal and again by `deno task`), the second after
  // the first was handled (two pending ones would merge in the kernel).
  Deno.kill(Deno.pid, "SIGUSR2");
  await waitUntil("the first signal", () => signals.signal.aborted);
  Deno.kill(Deno.pid, "SIGUSR2");
  await new Promise((resolve) => setTimeout(resolve, 100));
  assert.deepEqual(second, [], "the repeat is the same request");
  // Another signal is another request, window or not.
  Deno.kill(Deno.pid, "SIGUSR1");
  await waitUntil("the other signal", () => second.length === 1);
  assert.deepEqual(second, ["SIGUSR1"]);
});
