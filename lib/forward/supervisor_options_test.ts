import assert from "node:assert/strict";
import {
  resolveSupervisorOptions,
  SUPERVISOR_DEFAULTS,
  type SupervisorOptions,
} from "./supervisor_options.ts";

Deno.test("resolveSupervisorOptions() keeps what is given and takes the rest from the defaults", () => {
  assert.deepEqual(resolveSupervisorOptions({}), SUPERVISOR_DEFAULTS);
  const given = resolveSupervisorOptions({ listenAddress: "127.0.0.2", drainGraceMs: 0 });
  assert.deepEqual(given, { ...SUPERVISOR_DEFAULTS, listenAddress: "127.0.0.2", drainGraceMs: 0 });
});

Deno.test("resolveSupervisorOptions() binds TCP with reusePort when there are workers", () => {
  assert.equal(resolveSupervisorOptions({ workers: 2 }).tcpReusePort, true);
  assert.equal(resolveSupervisorOptions({ workers: 1 }).tcpReusePort, false);
  assert.equal(resolveSupervisorOptions({ tcpReusePort: true }).tcpReusePort, true);
});

Deno.test("SUPERVISOR_DEFAULTS pass the checks", () => {
  assert.deepEqual(resolveSupervisorOptions({ ...SUPERVISOR_DEFAULTS }), SUPERVISOR_DEFAULTS);
});

Deno.test("resolveSupervisorOptions() names the bad option and its value", () => {
  const bad: Array<[SupervisorOptions, RegExp]> = [
    [{ dialTimeoutMs: 0 }, /Invalid dialTimeoutMs 0: must be an integer >= 1/],
    [{ udpBufferBytes: 1.5 }, /Invalid udpBufferBytes 1.5/],
    [{ accessLogSampleRate: 0 }, /Invalid accessLogSampleRate 0: must be above 0 and at most 1/],
    [{ accessLogSampleRate: 1.5 }, /Invalid accessLogSampleRate 1.5/],
    [{ accessLog: "yes" as unknown as boolean }, /Invalid accessLog "yes": must be a boolean/],
    [{ proxyHeaderTimeoutMs: 0 }, /Invalid proxyHeaderTimeoutMs 0/],
    [{ drainGraceMs: -1 }, /Invalid drainGraceMs -1/],
    [{ udpBusyPollUs: -50 }, /Invalid udpBusyPollUs -50/],
    [{ listenAddress: "" }, /Invalid listenAddress ""/],
    [
      { bindRetryInitialMs: 10, bindRetryMaxMs: 5 },
      /bindRetryMaxMs 5: must be >= bindRetryInitialMs 10/,
    ],
    [{ nope: 1 } as SupervisorOptions, /Unknown Supervisor option "nope"/],
    [{ targetPolicy: { deniedCidrs: ["10.0.0.1/8"] } }, /"10.0.0.1\/8": the address has bits set/],
    [{ defaultSourceRanges: ["nope"] }, /"nope" is not an IP address/],
    [
      { udpEngine: "fast" } as unknown as SupervisorOptions,
      /Invalid udpEngine "fast": must be one of auto, io_uring, batched, portable/,
    ],
    [
      { tcpEngine: "zero-copy" } as unknown as SupervisorOptions,
      /Invalid tcpEngine "zero-copy": must be one of auto, splice, portable/,
    ],
  ];
  for (const [options, message] of bad) {
    assert.throws(
      () => resolveSupervisorOptions(options),
      { name: "RangeError", message },
      message.source,
    );
  }
});
