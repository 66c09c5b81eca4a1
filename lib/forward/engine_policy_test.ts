import assert from "node:assert/strict";
import { TargetPolicy } from "./policy/target_policy.ts";
import { portableOnly } from "./tcp_engine.ts";
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

Deno.test("portableOnly(): the splice engine leaves TCP parts the access policy applies to", () => {
  const tcp = { listenPort: 1, targetPort: 2, targetHost: "10.0.0.1" };
  const open = TargetPolicy.ALLOW_ALL;
  assert.deepEqual(portableOnly(tcp, open, []), []);
  assert.deepEqual(portableOnly(tcp, new TargetPolicy({ deniedCidrs: ["127.0.0.0/8"] }), []), [
    "the target policy",
  ]);
  assert.deepEqual(portableOnly(tcp, open, ["192.0.2.0/24"]), ["--default-source-ranges"]);
  assert.deepEqual(
    portableOnly({ ...tcp, sourceRanges: ["192.0.2.0/24"], maxConnections: 3 }, open, [
      "10.0.0.0/8",
    ]),
    ["sourceRanges", "maxConnections"],
    "the spec's own ranges replace the default",
  );
});
