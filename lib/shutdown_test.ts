import assert from "node:assert/strict";
import { ShutdownSignals } from "./shutdown.ts";
import { waitFor } from "../tests/_support/net_wait.ts";

Deno.test("ShutdownSignals aborts on the first signal and escalates on the second", async () => {
  const second: Deno.Signal[] = [];
  using signals = new ShutdownSignals({
    signals: ["SIGUSR2"],
    onSecondSignal: (signal) => second.push(signal),
  });
  assert.equal(signals.signal.aborted, false);
  Deno.kill(Deno.pid, "SIGUSR2");
  await waitFor(() => signals.signal.aborted, { message: "the first signal" });
  assert.equal(signals.signal.reason, "SIGUSR2");
  assert.deepEqual(second, []);
  Deno.kill(Deno.pid, "SIGUSR2");
  await waitFor(() => second.length === 1, { message: "the second signal" });
  assert.deepEqual(second, ["SIGUSR2"]);
});
