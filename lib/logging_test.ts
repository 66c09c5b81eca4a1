import assert from "node:assert/strict";
import { getLogger, reset } from "@logtape/logtape";
import { writeAccessRecord } from "./forward/access_log.ts";
import { setupLogging } from "./logging.ts";

async function capture(
  options: { format: "json" | "text"; level: "debug" | "info"; stacktraceLevel: "error" | "fatal" },
  fn: () => void,
): Promise<string[]> {
  const lines: string[] = [];
  await setupLogging({ ...options, write: (line) => lines.push(line) });
  try {
    fn();
  } finally {
    await reset();
  }
  return lines;
}

Deno.test("setupLogging() writes JSON lines with bare strings and top-level properties", async () => {
  const lines = await capture({ format: "json", level: "info", stacktraceLevel: "error" }, () => {
    const log = getLogger(["undying-proxy", "test"]);
    log.debug("hidden");
    log.info("Listening on {protocol} port {port}", {
      protocol: "tcp",
      port: 80,
      forwarder: "a/b",
      message: "a property named like a fixed key",
    });
  });
  assert.equal(lines.length, 1);
  assert.ok(lines[0]?.endsWith("\n"));
  const record = JSON.parse(lines[0] ?? "");
  assert.equal(record.message, "Listening on tcp port 80");
  assert.equal(record.level, "INFO");
  assert.equal(record.logger, "undying-proxy.test");
  assert.equal(record.forwarder, "a/b");
  assert.equal(record.port, 80);
  assert.ok(!Number.isNaN(Date.parse(record["@timestamp"])));
});

Deno.test("setupLogging() keeps stack traces only from --zap-stacktrace-level on", async () => {
  const error = new Error("boom");
  const lines = await capture({ format: "json", level: "debug", stacktraceLevel: "error" }, () => {
    const log = getLogger(["undying-proxy", "test"]);
    log.warn("warned {error}", { error });
    log.error("failed {error}", { error });
  });
  const [warned, failed] = lines.map((line) => JSON.parse(line));
  assert.equal(warned.message, "warned boom");
  assert.deepEqual(warned.error, { name: "Error", message: "boom" });
  assert.equal(failed.error.message, "boom");
  assert.match(failed.error.stack, /logging_test\.ts/);
});

Deno.test("setupLogging() writes human-readable text with --log-format=text", async () => {
  const lines = await capture({ format: "text", level: "info", stacktraceLevel: "fatal" }, () => {
    getLogger(["undying-proxy", "test"]).info("Loaded {path}", { path: "a.yaml" });
  });
  assert.equal(lines.length, 1);
  assert.match(lines[0] ?? "", /INF.*undying-proxy.test.*Loaded a\.yaml\n$/);
});

Deno.test("access records are written whatever --log-level says, readable in the text format", async () => {
  const lines: string[] = [];
  await setupLogging({
    format: "text",
    level: "error",
    stacktraceLevel: "error",
    write: (line) => lines.push(line),
  });
  try {
    getLogger(["undying-proxy", "tcp"]).warn("hidden below error");
    writeAccessRecord({
      forwarder: "ns/a",
      namespace: "ns",
      name: "a",
      protocol: "udp",
      clientAddress: "::1",
      clientPort: 5,
      listenPort: 6,
      targetHost: "t.example",
      targetPort: 7,
      bytesClientToTarget: 10,
      bytesTargetToClient: 20,
      datagramsClientToTarget: 1,
      datagramsTargetToClient: 2,
      startTime: "2026-01-01T00:00:00.000Z",
      durationMs: 3,
      endReason: "idle_timeout",
    });
  } finally {
    await reset();
  }
  assert.equal(lines.length, 1);
  assert.match(
    lines[0]!,
    /\[INF\] undying-proxy·access: udp ::1 port 5 -> t\.example:7 via ns\/a ended: idle_timeout after 3 ms, 10 B up, 20 B down\n$/,
  );
});
