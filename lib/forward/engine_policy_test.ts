import assert from "node:assert/strict";
import { TargetPolicy } from "./policy/target_policy.ts";
import { portableOnly } from "./tcp_engine.ts";
import { needsPortable } from "./udp_engine.ts";

const SPEC = {
  listenPort: 1,
  targetPort: 2,
  targetHost: "10.0.0.1",
  readTimeoutSeconds: 30,
  writeTimeoutSeconds: 5,
};

Deno.test("needsPortable(): only a per-source session limit over several threads leaves the batched engine", () => {
  const full = { ...SPEC, sourceRanges: ["192.0.2.0/24"], maxSessions: 5, accessLog: true };
  assert.equal(needsPortable(full, 1), false);
  assert.equal(needsPortable({ ...SPEC, proxyProtocol: "v2" }, 2), false);
  assert.equal(needsPortable({ ...SPEC, maxSessionsPerSource: 1 }, 1), false);
  assert.equal(needsPortable({ ...SPEC, maxSessionsPerSource: 1 }, 2), true);
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
