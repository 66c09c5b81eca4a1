import assert from "node:assert/strict";
import type { ForwarderStatus } from "./forward/state.ts";
import { probeHandler, Readiness } from "./probes.ts";

Deno.test("Readiness waits for the initial state and pending listeners, and ends at shutdown", () => {
  const statuses: ForwarderStatus[] = [{ name: "a", tcp: { phase: "pending" } }];
  const readiness = new Readiness(() => statuses);
  assert.deepEqual(readiness.check(), {
    ready: false,
    reason: "initial configuration not applied yet",
  });
  readiness.markApplied();
  assert.deepEqual(readiness.check(), { ready: false, reason: "1 listener(s) pending: a (tcp)" });
  statuses[0] = { name: "a", tcp: { phase: "listening", port: 1 } };
  statuses.push({ name: "b", udp: { phase: "failed", reason: "in use", retryInMs: 1 } });
  statuses.push({ name: "c", udp: { phase: "conflict", holder: "b", port: 1 } });
  assert.deepEqual(readiness.check(), { ready: true }, "failed and conflicting parts do not block");
  readiness.markShuttingDown();
  assert.deepEqual(readiness.check(), { ready: false, reason: "shutting down" });
});

Deno.test("Readiness.becameReady() is true once, the first time the program is ready", () => {
  const statuses: ForwarderStatus[] = [{ name: "a", tcp: { phase: "pending" } }];
  const readiness = new Readiness(() => statuses);
  readiness.markApplied();
  assert.equal(readiness.becameReady(), false, "a listener is pending");
  statuses[0] = { name: "a", tcp: { phase: "listening", port: 1 } };
  assert.equal(readiness.becameReady(), true);
  assert.equal(readiness.becameReady(), false, "only once");
  statuses[0] = { name: "a", tcp: { phase: "pending" } };
  readiness.check();
  statuses[0] = { name: "a", tcp: { phase: "listening", port: 1 } };
  assert.equal(readiness.becameReady(), false, "not again after a dip");
});

Deno.test("probeHandler() answers /healthz always and /readyz with 200 or 503 and the reason", async () => {
  const readiness = new Readiness(() => []);
  const handle = probeHandler(readiness);
  const get = async (path: string) => {
    const response = handle(new Request(`http://x${path}`));
    return [response.status, await response.text()] as const;
  };
  assert.deepEqual(await get("/healthz"), [200, "ok\n"]);
  assert.deepEqual(await get("/readyz"), [
    503,
    "not ready: initial configuration not applied yet\n",
  ]);
  readiness.markApplied();
  assert.deepEqual(await get("/readyz?verbose"), [200, "ok\n"]);
  assert.deepEqual(await get("/nope"), [404, "not found\n"]);
});
