// A watch stream that stays silent without being closed is a fault a real API server cannot be made
// to produce; every other Reflector behaviour is tested against a real one in tests/kube_watch_test.ts.
import assert from "node:assert/strict";
import { json, startFaultServer } from "../../tests/_support/fault_server.ts";
import { ApiError } from "./api_error.ts";
import { KubeClient } from "./client.ts";
import { SERVICES } from "./resources.ts";
import { Reflector, type ReflectorEvent } from "./reflector.ts";

Deno.test("Reflector abandons a silent watch after timeout + margin and resumes from its resourceVersion", async () => {
  let watches = 0;
  await using server = startFaultServer((request, _index, self) => {
    const url = new URL(request.url);
    if (url.searchParams.get("watch") !== "true") {
      return json({ kind: "ServiceList", metadata: { resourceVersion: "7" }, items: [] });
    }
    watches++;
    if (watches === 1) return new Response(self.stalledBody()); // headers, then silence
    const late = { metadata: { name: "late", namespace: "n", resourceVersion: "8" } };
    return new Response(self.stalledBody([JSON.stringify({ type: "ADDED", object: late })]));
  });
  using client = new KubeClient(server.config);
  const reflector = new Reflector(client, SERVICES, {
    watchTimeoutSeconds: 1,
    livenessMarginMs: 200,
    backoff: { initialMs: 10, maxMs: 20 },
  });
  const controller = new AbortController();
  const seen: ReflectorEvent[] = [];
  for await (const event of reflector.run(controller.signal)) {
    seen.push(event);
    if (event.type === "changed") controller.abort();
  }
  assert.deepEqual(seen.map((e) => e.type), ["synced", "error", "changed"]);
  const error = seen[1]?.type === "error" ? seen[1].error : undefined;
  assert.ok(error instanceof ApiError && error.kind === "Timeout", String(error));
  assert.equal(reflector.store.get("n/late")?.metadata?.resourceVersion, "8");
  const watchRequests = server.requests.filter((r) => r.url.searchParams.get("watch") === "true");
  assert.deepEqual(watchRequests.map((r) => r.url.searchParams.get("resourceVersion")), ["7", "7"]);
  assert.equal(watchRequests[0]?.url.searchParams.get("timeoutSeconds"), "1");
  assert.equal(watchRequests[0]?.url.searchParams.get("allowWatchBookmarks"), "true");
  assert.ok(reflector.isSynced());
});

Deno.test("Reflector backs off when watches end at once without an event, instead of spinning", async () => {
  const controller = new AbortController();
  let watches = 0;
  await using server = startFaultServer((request) => {
    const url = new URL(request.url);
    if (url.searchParams.get("watch") !== "true") {
      return json({ kind: "ServiceList", metadata: { resourceVersion: "7" }, items: [] });
    }
    // Without the guard the reflector would loop on these silently: stop it so the test fails.
    if (++watches > 50) controller.abort();
    return new Response(""); // what a misbehaving proxy does: 200, then nothing
  });
  using client = new KubeClient(server.config);
  const reflector = new Reflector(client, SERVICES, {
    watchTimeoutSeconds: 60,
    backoff: { initialMs: 10, maxMs: 20 },
  });
  const seen: ReflectorEvent[] = [];
  for await (const event of reflector.run(controller.signal)) {
    seen.push(event);
    if (seen.length === 3) controller.abort();
  }
  assert.deepEqual(seen.map((e) => e.type), ["synced", "error", "error"]);
  const error = seen[1]?.type === "error" ? seen[1].error : undefined;
  assert.match(
    String(error),
    /services watch ended without an event after \d+ ms, long before its 60 s/,
  );
  assert.equal(watches, 2, "one watch per backoff step, not a tight loop");
  assert.ok(reflector.isSynced(), "the store stays valid");
});
