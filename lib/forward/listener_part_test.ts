import assert from "node:assert/strict";
import type { TcpSpec } from "../spec.ts";
import { ListenerPart, type RunningForwarder } from "./listener_part.ts";

/** A forwarder that records what the part asks of it (the unit under test is the part). */
function recordingForwarder() {
  const calls: string[] = [];
  const forwarder: RunningForwarder<TcpSpec> = {
    released: Promise.resolve(),
    update: (spec) => void calls.push(`update ${spec.targetPort}`),
    drain: (graceMs) => Promise.resolve(void calls.push(`drain ${graceMs}`)),
  };
  return { forwarder, calls };
}

const SPEC: TcpSpec = { listenPort: 1, targetHost: "127.0.0.1", targetPort: 2 };

function partOpening(open: () => Promise<RunningForwarder<TcpSpec>>) {
  const phases: string[] = [];
  const part: ListenerPart<TcpSpec> = new ListenerPart(SPEC, {
    forwarder: "test",
    protocol: "udp",
    open,
    onBindError: () => {},
    bindRetryInitialMs: 10,
    bindRetryMaxMs: 10,
    onChange: () => phases.push(part.state.phase),
  });
  return { part, phases };
}

Deno.test("ListenerPart with an asynchronous open: listening once it resolves, updates it got meanwhile", async () => {
  const { forwarder, calls } = recordingForwarder();
  const opened = Promise.withResolvers<RunningForwarder<TcpSpec>>();
  const { part, phases } = partOpening(() => opened.promise);
  part.start();
  await Promise.resolve();
  part.update({ ...SPEC, targetPort: 3 });
  assert.equal(part.state.phase, "pending");
  opened.resolve(forwarder);
  await opened.promise;
  await Promise.resolve();
  assert.equal(part.state.phase, "listening");
  assert.deepEqual(calls, ["update 3"]);
  assert.deepEqual(phases, ["listening"]);
  await part.stop(0).done;
});

Deno.test("ListenerPart stopped while an asynchronous open is in flight drains what it opens", async () => {
  const { forwarder, calls } = recordingForwarder();
  const opened = Promise.withResolvers<RunningForwarder<TcpSpec>>();
  const { part, phases } = partOpening(() => opened.promise);
  part.start();
  await Promise.resolve();
  const { released, done } = part.stop(50);
  opened.resolve(forwarder);
  await released;
  await done;
  assert.deepEqual(calls, ["drain 50"]);
  assert.deepEqual(phases, [], "no state reported after stop()");
});

Deno.test("ListenerPart retries an asynchronous open that rejects", async () => {
  const { forwarder } = recordingForwarder();
  let attempts = 0;
  const { part } = partOpening(() =>
    ++attempts === 1 ? Promise.reject(new Error("bind: busy")) : Promise.resolve(forwarder)
  );
  part.start();
  while (part.state.phase !== "listening") await new Promise((resolve) => setTimeout(resolve, 5));
  assert.equal(attempts, 2);
  await part.stop(0).done;
});
