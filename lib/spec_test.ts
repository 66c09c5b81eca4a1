import assert from "node:assert/strict";
import { describeProblems, ipLiteralFamily, parseForwarderSpec, type SpecResult } from "./spec.ts";

function problemsOf(result: SpecResult): Array<[string, unknown]> {
  return result.ok ? [] : result.problems.map((p) => [p.field, p.value]);
}

Deno.test("parseForwarderSpec() accepts tcp and udp and applies the UDP timeout defaults", () => {
  const result = parseForwarderSpec("ns/a", {
    tcp: { listenPort: 8000, targetPort: 80, targetHost: "web.ns.svc.cluster.local" },
    udp: { listenPort: 5353, targetPort: 53, targetHost: "fd00::53" },
  });
  assert.deepEqual(result, {
    ok: true,
    spec: {
      name: "ns/a",
      tcp: { listenPort: 8000, targetPort: 80, targetHost: "web.ns.svc.cluster.local" },
      udp: {
        listenPort: 5353,
        targetPort: 53,
        targetHost: "fd00::53",
        readTimeoutSeconds: 30,
        writeTimeoutSeconds: 5,
      },
    },
  });
});

Deno.test("parseForwarderSpec() keeps explicit timeouts and treats 0 as the default", () => {
  const udp = { listenPort: 1, targetPort: 65535, targetHost: "10.0.0.1" };
  const explicit = parseForwarderSpec("a", {
    udp: { ...udp, readTimeoutSeconds: 7, writeTimeoutSeconds: 2 },
  });
  assert.deepEqual(explicit.ok && explicit.spec.udp, {
    ...udp,
    readTimeoutSeconds: 7,
    writeTimeoutSeconds: 2,
  });
  const zero = parseForwarderSpec("a", {
    udp: { ...udp, readTimeoutSeconds: 0, writeTimeoutSeconds: null },
  });
  assert.deepEqual(zero.ok && zero.spec.udp, {
    ...udp,
    readTimeoutSeconds: 30,
    writeTimeoutSeconds: 5,
  });
});

Deno.test("parseForwarderSpec() treats a missing spec and null sections as empty", () => {
  assert.deepEqual(parseForwarderSpec("a", undefined), { ok: true, spec: { name: "a" } });
  assert.deepEqual(parseForwarderSpec("a", { tcp: null, udp: null }), {
    ok: true,
    spec: { name: "a" },
  });
});

Deno.test("parseForwarderSpec() returns every problem with field and value", () => {
  const result = parseForwarderSpec("a", {
    tcp: { listenPort: 0, targetPort: "80", targetHost: "" },
    udp: {
      listenPort: 65536,
      targetPort: 1.5,
      targetHost: "bad host",
      readTimeoutSeconds: -1,
      writeTimeoutSeconds: 2.5,
      bufferBytes: 4,
    },
    extra: true,
  });
  assert.deepEqual(problemsOf(result), [
    ["spec.extra", true],
    ["spec.tcp.listenPort", 0],
    ["spec.tcp.targetPort", "80"],
    ["spec.tcp.targetHost", ""],
    ["spec.udp.bufferBytes", 4],
    ["spec.udp.listenPort", 65536],
    ["spec.udp.targetPort", 1.5],
    ["spec.udp.targetHost", "bad host"],
    ["spec.udp.readTimeoutSeconds", -1],
    ["spec.udp.writeTimeoutSeconds", 2.5],
  ]);
});

Deno.test("parseForwarderSpec() reports bad timeouts even when the rest of udp is valid", () => {
  const result = parseForwarderSpec("a", {
    udp: {
      listenPort: 1,
      targetPort: 2,
      targetHost: "h",
      readTimeoutSeconds: -1,
      writeTimeoutSeconds: "5",
    },
  });
  assert.deepEqual(problemsOf(result), [
    ["spec.udp.readTimeoutSeconds", -1],
    ["spec.udp.writeTimeoutSeconds", "5"],
  ]);
});

Deno.test("parseForwarderSpec() rejects a spec as a whole: a valid tcp part is not kept", () => {
  const result = parseForwarderSpec("a", {
    tcp: { listenPort: 80, targetPort: 80, targetHost: "web" },
    udp: { listenPort: 53, targetPort: 53, targetHost: "dns", writeTimeoutSeconds: -5 },
  });
  assert.deepEqual(result, {
    ok: false,
    problems: [{
      field: "spec.udp.writeTimeoutSeconds",
      value: -5,
      reason: "must be an integer from 1 to 3600 (seconds)",
    }],
  });
});

Deno.test("parseForwarderSpec() reports missing fields, non-objects and an empty name", () => {
  assert.deepEqual(problemsOf(parseForwarderSpec("", { tcp: {} })), [
    ["metadata.name", ""],
    ["spec.tcp.listenPort", undefined],
    ["spec.tcp.targetPort", undefined],
    ["spec.tcp.targetHost", undefined],
  ]);
  assert.deepEqual(problemsOf(parseForwarderSpec("a", { udp: [1] })), [["spec.udp", [1]]]);
  assert.deepEqual(problemsOf(parseForwarderSpec("a", "tcp")), [["spec", "tcp"]]);
});

Deno.test("parseForwarderSpec() checks targetHost as a DNS name or IP literal", () => {
  const hostProblems = (targetHost: unknown) =>
    problemsOf(parseForwarderSpec("a", { tcp: { listenPort: 1, targetPort: 1, targetHost } }));
  for (
    const good of ["localhost", "a-b.c_d.example.", "127.0.0.1", "::1", "fd00::1:2", "x".repeat(63)]
  ) {
    assert.deepEqual(hostProblems(good), [], good);
  }
  for (
    const bad of [
      "[::1",
      "::1]",
      "[10.0.0.1]",
      "[localhost]",
      "[[::1]]",
      "1.2.3.999",
      "::g",
      "-a.example",
      "a..b",
      "x".repeat(64),
      `${"a.".repeat(127)}aa`,
      42,
    ]
  ) {
    assert.deepEqual(hostProblems(bad), [["spec.tcp.targetHost", bad]], String(bad));
  }
});

Deno.test("parseForwarderSpec() accepts a bracketed IPv6 targetHost (the Go operator's spelling) and strips the brackets", () => {
  const result = parseForwarderSpec("a", {
    tcp: { listenPort: 1, targetPort: 2, targetHost: "[::1]" },
    udp: { listenPort: 1, targetPort: 2, targetHost: "[fd00::1:2]" },
  });
  assert.ok(result.ok, JSON.stringify(result));
  assert.equal(result.spec.tcp?.targetHost, "::1");
  assert.equal(result.spec.udp?.targetHost, "fd00::1:2");
});

Deno.test("ipLiteralFamily() tells IPv4, IPv6 and names apart", () => {
  assert.deepEqual(ipLiteralFamily("10.0.0.1"), 4);
  assert.deepEqual(ipLiteralFamily("::ffff:10.0.0.1"), 6);
  assert.deepEqual(ipLiteralFamily("fd00::1"), 6);
  assert.deepEqual(ipLiteralFamily("echo.default.svc"), 0);
  assert.deepEqual(ipLiteralFamily("[::1]"), 0);
});

Deno.test("parseForwarderSpec() reads sourceRanges and the limits of each protocol", () => {
  const result = parseForwarderSpec("ns/limits", {
    tcp: {
      listenPort: 1,
      targetPort: 2,
      targetHost: "10.0.0.1",
      sourceRanges: ["192.0.2.0/24", "2001:db8::1"],
      maxConnections: 100,
      maxConnectionsPerSource: 10,
      connectionsPerSecondPerSource: 5,
      connectionBurstPerSource: 20,
    },
    udp: {
      listenPort: 1,
      targetPort: 2,
      targetHost: "10.0.0.1",
      maxSessions: 50,
      maxSessionsPerSource: 2,
      maxConnections: null,
    },
  });
  assert.ok(!result.ok, "maxConnections is no UDP field");
  assert.deepEqual(problemsOf(result), [["spec.udp.maxConnections", null]]);
  const ok = parseForwarderSpec("ns/limits", {
    tcp: { listenPort: 1, targetPort: 2, targetHost: "a", maxConnections: 100 },
    udp: { listenPort: 1, targetPort: 2, targetHost: "a", sourceRanges: ["::1"], maxSessions: 5 },
  });
  assert.ok(ok.ok);
  assert.equal(ok.spec.tcp?.maxConnections, 100);
  assert.equal(ok.spec.tcp?.sourceRanges, undefined, "absent: the flag's default applies");
  assert.deepEqual(ok.spec.udp?.sourceRanges, ["::1"]);
  assert.equal(ok.spec.udp?.maxSessions, 5);
});

Deno.test("parseForwarderSpec() names bad ranges and limits", () => {
  const result = parseForwarderSpec("ns/bad", {
    tcp: {
      listenPort: 1,
      targetPort: 2,
      targetHost: "a",
      sourceRanges: ["10.1.2.3/8", 7, "nope"],
      maxConnections: 0,
      connectionBurstPerSource: 3,
    },
    udp: { listenPort: 1, targetPort: 2, targetHost: "a", sourceRanges: [], maxSessions: 1.5 },
  });
  assert.ok(!result.ok);
  assert.deepEqual(problemsOf(result), [
    ["spec.tcp.sourceRanges[0]", "10.1.2.3/8"],
    ["spec.tcp.sourceRanges[1]", 7],
    ["spec.tcp.sourceRanges[2]", "nope"],
    ["spec.tcp.maxConnections", 0],
    ["spec.udp.sourceRanges", []],
    ["spec.udp.maxSessions", 1.5],
    ["spec.tcp.connectionBurstPerSource", 3],
  ]);
  const reasons = result.problems.map((p) => p.reason);
  assert.match(reasons[0]!, /did you mean 10\.0\.0\.0\/8/);
  assert.match(reasons[6]!, /needs spec\.tcp\.connectionsPerSecondPerSource/);
});

Deno.test("parseForwarderSpec() takes PROXY protocol and access log fields into the parts", () => {
  const base = { listenPort: 8000, targetPort: 80, targetHost: "10.0.0.1" };
  const result = parseForwarderSpec("a", {
    accessLog: true,
    tcp: { ...base, proxyProtocol: "v1", acceptProxyProtocol: false },
    udp: { ...base, proxyProtocol: "v2" },
  });
  assert.deepEqual(result.ok && result.spec.tcp, {
    ...base,
    proxyProtocol: "v1",
    acceptProxyProtocol: false,
    accessLog: true,
  });
  assert.deepEqual(result.ok && result.spec.udp, {
    ...base,
    proxyProtocol: "v2",
    readTimeoutSeconds: 30,
    writeTimeoutSeconds: 5,
    accessLog: true,
  });
  const absent = parseForwarderSpec("a", { tcp: { ...base, proxyProtocol: null } });
  assert.deepEqual(absent.ok && absent.spec.tcp, base);
});

Deno.test("parseForwarderSpec() rejects bad PROXY protocol and access log values by field", () => {
  const base = { listenPort: 8000, targetPort: 80, targetHost: "10.0.0.1" };
  const result = parseForwarderSpec("a", {
    accessLog: "yes",
    tcp: { ...base, proxyProtocol: "v3", acceptProxyProtocol: 1 },
    udp: { ...base, proxyProtocol: "v1", acceptProxyProtocol: true },
  });
  assert.deepEqual(problemsOf(result), [
    ["spec.accessLog", "yes"],
    ["spec.tcp.proxyProtocol", "v3"],
    ["spec.tcp.acceptProxyProtocol", 1],
    ["spec.udp.acceptProxyProtocol", true],
    ["spec.udp.proxyProtocol", "v1"],
  ]);
});

Deno.test("describeProblems() names every field, its value and the reason", () => {
  const bad = parseForwarderSpec("ns/bad", {
    tcp: { listenPort: 70000, targetPort: 80, targetHost: "" },
  });
  assert.ok(!bad.ok);
  const message = describeProblems(bad.problems);
  assert.match(message, /spec\.tcp\.listenPort: 70000: .+; spec\.tcp\.targetHost: "": .+/);
  assert.equal(
    describeProblems([{ field: "spec.tcp.targetHost", value: undefined, reason: "missing" }]),
    "spec.tcp.targetHost: missing",
  );
});
