import assert from "node:assert/strict";
import { proxy } from "../../tests/_support/proxy_fixture.ts";
import { buildEvent, EventDeduper } from "./events.ts";

Deno.test("EventDeduper.admit() records an identical event once per window", () => {
  let now = 0;
  const deduper = new EventDeduper({ windowMs: 1000, now: () => now });
  assert.equal(deduper.admit("a"), true);
  assert.equal(deduper.admit("a"), false);
  assert.equal(deduper.admit("b"), true);
  now = 999;
  assert.equal(deduper.admit("a"), false);
  now = 1000;
  assert.equal(deduper.admit("a"), true);
});

Deno.test("EventDeduper.admit() bounds the rate with a token bucket", () => {
  let now = 0;
  const deduper = new EventDeduper({ burst: 3, perSecond: 2, now: () => now });
  const admitted = ["a", "b", "c", "d"].map((k) => deduper.admit(k));
  assert.deepEqual(admitted, [true, true, true, false]);
  now = 500;
  assert.deepEqual([deduper.admit("d"), deduper.admit("e")], [true, false]);
});

Deno.test("EventDeduper rejects options that would never admit anything", () => {
  assert.throws(() => new EventDeduper({ burst: 0 }), RangeError);
  assert.throws(() => new EventDeduper({ perSecond: 0 }), RangeError);
});

Deno.test("buildEvent({  }) names the object, the replica and clips long messages", () => {
  const subject = proxy("game").build();
  const event = buildEvent({
    subject,
    note: { type: "Warning", reason: "BindFailed", message: "x".repeat(2000) },
    replica: "replica-1",
    now: new Date("2026-05-01T00:00:00Z"),
    suffix: "abc",
  });
  assert.equal(event.metadata?.name, "game.abc");
  assert.equal(event.metadata?.namespace, "proxy");
  assert.deepEqual(event.involvedObject, {
    apiVersion: "proxy.sfact.io/v1alpha1",
    kind: "UnDyingProxy",
    name: "game",
    namespace: "proxy",
    uid: "uid-proxy-game",
    resourceVersion: "1",
  });
  assert.equal(event.message?.length, 1024);
  assert.deepEqual(event.source, { component: "undying-proxy", host: "replica-1" });
  assert.equal(event.reportingInstance, "replica-1");
  assert.equal(event.firstTimestamp, "2026-05-01T00:00:00.000Z");
});
