import assert from "node:assert/strict";
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

Deno.test("portableOnly(): only per-source TCP limits over several threads leave the splice engine", () => {
  const tcp = { listenPort: 1, targetPort: 2, targetHost: "10.0.0.1" };
  const limited = { ...tcp, sourceRanges: ["192.0.2.0/24"], maxConnections: 3 };
  assert.deepEqual(portableOnly(tcp, 2), []);
  assert.deepEqual(portableOnly(limited, 2), []);
  assert.deepEqual(portableOnly({ ...limited, maxConnectionsPerSource: 1 }, 1), []);
  assert.deepEqual(
    portableOnly({ ...limited, maxConnectionsPerSource: 1, connectionsPerSecondPerSource: 5 }, 2),
    [
      "maxConnectionsPerSource with --workers > 1",
      "connectionsPerSecondPerSource with --workers > 1",
    ],
  );
});
