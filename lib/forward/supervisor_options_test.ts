import assert from "node:assert/strict";
import { resolveSupervisorOptions, type SupervisorOptions } from "./supervisor_options.ts";

Deno.test("resolveSupervisorOptions() fills in the defaults", () => {
  assert.deepEqual(resolveSupervisorOptions({}), {
    listenAddress: "::",
    dialTimeoutMs: 5000,
    drainGraceMs: 10_000,
    tcpIdleTimeoutMs: 0,
    udpMaxSessions: 10_000,
    udpBufferBytes: 65_535,
    bindRetryInitialMs: 500,
    bindRetryMaxMs: 30_000,
    workers: 1,
    tcpReusePort: false,
    targetPolicy: {},
    defaultSourceRanges: [],
  });
  const given = resolveSupervisorOptions({ listenAddress: "127.0.0.2", drainGraceMs: 0 });
  assert.equal(given.listenAddress, "127.0.0.2");
  assert.equal(given.drainGraceMs, 0);
  assert.equal(resolveSupervisorOptions({ workers: 2 }).tcpReusePort, true);
});

Deno.test("resolveSupervisorOptions() names the bad option and its value", () => {
  const bad: Array<[SupervisorOptions, RegExp]> = [
    [{ dialTimeoutMs: 0 }, /Invalid dialTimeoutMs 0: must be an integer >= 1/],
    [{ udpBufferBytes: 1.5 }, /Invalid udpBufferBytes 1.5/],
    [{ drainGraceMs: -1 }, /Invalid drainGraceMs -1/],
    [{ listenAddress: "" }, /Invalid listenAddress ""/],
    [
      { bindRetryInitialMs: 10, bindRetryMaxMs: 5 },
      /bindRetryMaxMs 5: must be >= bindRetryInitialMs 10/,
    ],
    [{ nope: 1 } as SupervisorOptions, /Unknown Supervisor option "nope"/],
    [{ targetPolicy: { deniedCidrs: ["10.0.0.1/8"] } }, /"10.0.0.1\/8": the address has bits set/],
    [{ defaultSourceRanges: ["nope"] }, /"nope" is not an IP address/],
  ];
  for (const [options, message] of bad) {
    assert.throws(
      () => resolveSupervisorOptions(options),
      { name: "RangeError", message },
      message.source,
    );
  }
});
