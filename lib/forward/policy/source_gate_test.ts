import assert from "node:assert/strict";
import { SourceGate } from "./source_gate.ts";

Deno.test("SourceGate: sources outside sourceRanges are turned away, IPv4-mapped or not", () => {
  const gate = new SourceGate({ sourceRanges: ["127.0.0.2", "fd00::/8"] });
  assert.equal(gate.admit("127.0.0.2", 0), undefined);
  assert.equal(gate.admit("::ffff:127.0.0.2", 0), undefined);
  assert.equal(gate.admit("fd00::7", 0), undefined);
  assert.equal(gate.admit("127.0.0.3", 0), "SourceNotAllowed");
  assert.equal(gate.admit("::1", 0), "SourceNotAllowed");
  assert.equal(gate.admit("not-an-address", 0), "SourceNotAllowed");
  assert.equal(gate.active, 3, "only admitted clients count");
});

Deno.test("SourceGate: without rules everyone is admitted and counted", () => {
  const gate = new SourceGate({});
  for (let i = 0; i < 100; i++) assert.equal(gate.admit("127.0.0.2", 0), undefined);
  assert.equal(gate.active, 100);
  gate.release("127.0.0.2");
  assert.equal(gate.active, 99);
});

Deno.test("SourceGate: maxActive and maxActivePerSource free up on release", () => {
  const gate = new SourceGate({ maxActive: 3, maxActivePerSource: 2 });
  assert.equal(gate.admit("127.0.0.2", 0), undefined);
  assert.equal(gate.admit("127.0.0.2", 0), undefined);
  assert.equal(gate.admit("127.0.0.2", 0), "ActivePerSource");
  assert.equal(gate.activeOf("127.0.0.2"), 2);
  assert.equal(gate.admit("127.0.0.3", 0), undefined);
  assert.equal(gate.admit("127.0.0.4", 0), "Active");
  gate.release("127.0.0.2");
  assert.equal(gate.admit("127.0.0.4", 0), undefined);
  gate.release("127.0.0.2");
  assert.equal(gate.activeOf("127.0.0.2"), 0);
  assert.equal(gate.admit("127.0.0.2", 0), undefined);
  assert.equal(gate.admit("127.0.0.5", 0), "Active");
});

Deno.test("SourceGate: the per-source rate limits new clients of one source only", () => {
  const gate = new SourceGate({ ratePerSecondPerSource: 1, burstPerSource: 2 });
  assert.equal(gate.admit("127.0.0.2", 0), undefined);
  assert.equal(gate.admit("127.0.0.2", 0), undefined);
  assert.equal(gate.admit("127.0.0.2", 10), "Rate");
  assert.equal(gate.admit("127.0.0.3", 10), undefined);
  assert.equal(gate.admit("127.0.0.2", 1000), undefined);
  assert.equal(gate.active, 4);
});

Deno.test("SourceGate: bad limits are RangeErrors naming the field", () => {
  assert.throws(() => new SourceGate({ maxActive: 0 }), /maxActive must be a whole number >= 1/);
  assert.throws(() => new SourceGate({ maxActivePerSource: 1.5 }), /maxActivePerSource/);
  assert.throws(() => new SourceGate({ sourceRanges: ["10.0.0.1/8"] }), /did you mean/);
});

Deno.test("SourceGate: remembered verdicts follow a change of sourceRanges", () => {
  const gate = new SourceGate({ sourceRanges: ["127.0.0.2"] });
  assert.equal(gate.admit("127.0.0.3", 0), "SourceNotAllowed");
  gate.reconfigure({ sourceRanges: ["127.0.0.3"] });
  assert.equal(gate.admit("127.0.0.3", 0), undefined);
  assert.equal(gate.admit("127.0.0.2", 0), "SourceNotAllowed");
  for (let i = 0; i < 5000; i++) gate.allows(`10.0.${i >> 8}.${i & 255}`); // more than it keeps
  assert.ok(gate.allows("127.0.0.3"));
});
