import assert from "node:assert/strict";
import { TargetPolicy } from "./policy/target_policy.ts";
import { needsPolicy } from "./udp_engine.ts";

const SPEC = {
  listenPort: 1,
  targetPort: 2,
  targetHost: "10.0.0.1",
  readTimeoutSeconds: 30,
  writeTimeoutSeconds: 5,
};

Deno.test("needsPolicy(): a UDP part with a target rule, source ranges or limits leaves the batched engine", () => {
  const open = TargetPolicy.ALLOW_ALL;
  assert.equal(
    needsPolicy(SPEC, open, []),
    false,
    "no rule at all: the batched engine may serve it",
  );
  assert.equal(needsPolicy(SPEC, new TargetPolicy({ deniedCidrs: ["127.0.0.0/8"] }), []), true);
  assert.equal(needsPolicy(SPEC, open, ["192.0.2.0/24"]), true, "default source ranges");
  assert.equal(needsPolicy({ ...SPEC, sourceRanges: ["192.0.2.0/24"] }, open, []), true);
  assert.equal(needsPolicy({ ...SPEC, maxSessions: 5 }, open, []), true);
  assert.equal(needsPolicy({ ...SPEC, maxSessionsPerSource: 1 }, open, []), true);
});
