import assert from "node:assert/strict";
import { ShutdownSignals } from "./shutdown.ts";
import { waitUntil } from "../tests/_support/wait.ts";

Deno.test("ShutdownSignals aborts on the first signal and escalates on the second", async () => {
  const second: Deno.Signal[] = [];
  using signals = new ShutdownSignals({
    signals: ["SIGUSR2"],
    onSecondSignal: (signal) => second.push(signal),
  });
  assert.equal(signals.signal.aborted, false);
  Deno.kill(Deno.pid, "SIGUSR2");
  await waitUntil("the first signal", () => signals.signal.aborted);
  assert.equal(signals.signal.reason, "SIGUSR2");
  assert.deepEqual(second, []);
  Deno.kill(Deno.pid, "SIGUSR2");
  await waitUntil("the second signal", () => second.length === 1);
  assert.deepEqual(second, ["SIGUSR2"]);
});
