import assert from "node:assert/strict";
import {
  type Command,
  FlagError,
  FLAGS,
  flagsMarkdown,
  parseBindAddress,
  parseCommandLine,
  parseDurationMs,
  usage,
} from "./cli.ts";
import { SUPERVISOR_DEFAULTS } from "./forward/supervisor_options.ts";

function options(args: string[]) {
  const command: Command = parseCommandLine(args);
  assert.equal(command.kind, "run");
  return command.kind === "run" ? command.options : assert.fail("not a run command");
}

function flagError(args: string[]): FlagError {
  try {
    parseCommandLine(args);
  } catch (error) {
    assert.ok(error instanceof FlagError, `expected a FlagError, got ${error}`);
    return error;
  }
  return assert.fail(`${args.join(" ")} was accepted`);
}

Deno.test("parseCommandLine() applies the documented defaults", () => {
  const parsed = options(["--config", "x.yaml"]);
  assert.equal(parsed.config, "x.yaml");
  // The forwarding flags default to the supervisor's own defaults (their one source).
  assert.deepEqual(
    {
      listenAddress: parsed.listenAddress,
      dialTimeoutMs: parsed.dialTimeoutMs,
      drainGraceMs: parsed.drainGracePeriodMs,
      tcpIdleTimeoutMs: parsed.tcpIdleTimeoutMs,
      udpMaxSessions: parsed.udpMaxSessions,
      udpBufferBytes: parsed.udpBufferBytes,
      workers: parsed.workers,
    },
    {
      listenAddress: SUPERVISOR_DEFAULTS.listenAddress,
      dialTimeoutMs: SUPERVISOR_DEFAULTS.dialTimeoutMs,
      drainGraceMs: SUPERVISOR_DEFAULTS.drainGraceMs,
      tcpIdleTimeoutMs: SUPERVISOR_DEFAULTS.tcpIdleTimeoutMs,
      udpMaxSessions: SUPERVISOR_DEFAULTS.udpMaxSessions,
      udpBufferBytes: SUPERVISOR_DEFAULTS.udpBufferBytes,
      workers: SUPERVISOR_DEFAULTS.workers,
    },
  );
  assert.deepEqual(parsed.metricsBindAddress, { hostname: "", port: 8080 });
  assert.deepEqual(parsed.healthProbeBindAddress, { hostname: "", port: 8081 });
  assert.equal(parsed.metricsSecure, false, "file mode: plain HTTP (no API server for tokens)");
  assert.equal(parsed.metricsAuthed, false);
  assert.equal(parsed.tcpServiceToManage, "undying-proxy-tcp");
  assert.equal(parsed.udpServiceToManage, "undying-proxy-udp");
  // --zap-devel is on by default, as in the Go operator: debug, text, stack traces from warn.
  assert.equal(parsed.zapDevel, true);
  assert.equal(parsed.logLevel, "debug");
  assert.equal(parsed.logFormat, "text");
  assert.equal(parsed.zapStacktraceLevel, "warn");
  assert.equal(parsed.operatorNamespace, undefined);
  assert.deepEqual(parsed.watchNamespaces, []);
});

Deno.test('a later flag overrides an earlier one, and a "--" (deno task start -- ...) is ignored', () => {
  const parsed = options([
    "--config=a.yaml",
    "--zap-devel",
    "--",
    "--config",
    "b.yaml",
    "--no-zap-devel",
  ]);
  assert.equal(parsed.config, "b.yaml");
  assert.equal(parsed.zapDevel, false);
  assert.match(flagError(["--config=c", "--", "stray"]).message, /unexpected argument "stray"/);
});

Deno.test("--listen-address takes IPv4 and IPv6 literals", () => {
  for (const address of ["0.0.0.0", "127.0.0.1", "::", "::1", "fd00::10"]) {
    assert.equal(options(["--config=c", `--listen-address=${address}`]).listenAddress, address);
  }
});

Deno.test("parseCommandLine() takes the Go operator's spellings", () => {
  const parsed = options([
    "-operator-namespace=proxy",
    "--metrics-bind-address=0",
    "--health-probe-bind-address",
    "127.0.0.1:9000",
    "--zap-devel=true",
    "--metrics-secure=false",
    "--no-enable-http2",
    "--zap-stacktrace-level=panic",
    "--watch-namespaces=a, b",
  ]);
  assert.equal(parsed.operatorNamespace, "proxy");
  assert.equal(parsed.metricsBindAddress, null);
  assert.deepEqual(parsed.healthProbeBindAddress, { hostname: "127.0.0.1", port: 9000 });
  assert.equal(parsed.zapDevel, true);
  assert.equal(parsed.metricsSecure, false);
  assert.equal(parsed.zapStacktraceLevel, "fatal");
  assert.deepEqual(parsed.watchNamespaces, ["a", "b"]);
  assert.equal(options(["--config=c", "--watch-namespaces=*"]).watchNamespaces, "*");
});

Deno.test("operator mode takes the Go operator's metrics defaults: HTTPS and token review", () => {
  const operator = options(["--operator-namespace=p"]);
  assert.equal(operator.metricsSecure, true);
  assert.equal(operator.metricsAuthed, true);
  const plain = options([
    "--operator-namespace=p",
    "--metrics-secure=false",
    "--no-metrics-authed",
  ]);
  assert.equal(plain.metricsSecure, false);
  assert.equal(plain.metricsAuthed, false);
});

Deno.test("--zap-devel=false gives the production log defaults; explicit log flags win either way", () => {
  const production = options(["--config=c", "--zap-devel=false"]);
  assert.equal(production.logLevel, "info");
  assert.equal(production.logFormat, "json");
  assert.equal(production.zapStacktraceLevel, "error");
  const explicit = options(["--config=c", "--zap-devel", "--log-level=warn", "--log-format=json"]);
  assert.equal(explicit.logLevel, "warn");
  assert.equal(explicit.logFormat, "json");
});

Deno.test("--udp-buffer-bytes: Go integer syntax; above 65535 lowered with a warning", () => {
  const run = (value: string) => {
    const command = parseCommandLine(["--config=c", `--udp-buffer-bytes=${value}`]);
    return command.kind === "run" ? command : assert.fail("not a run command");
  };
  assert.equal(run("0x400").options.udpBufferBytes, 1024);
  assert.equal(run("0o2000").options.udpBufferBytes, 1024);
  assert.equal(run("02000").options.udpBufferBytes, 1024);
  assert.equal(run("0b10000000000").options.udpBufferBytes, 1024);
  assert.equal(run("0x_ff_ff").options.udpBufferBytes, 65535);
  assert.deepEqual(run("1024").warnings, []);
  const big = run("1048576");
  assert.equal(big.options.udpBufferBytes, 65535);
  assert.match(big.warnings.join(), /--udp-buffer-bytes=1048576: 1048576 bytes .*using 65535/);
  assert.equal(run("0x10000").options.udpBufferBytes, 65535);
  for (const bad of ["0", "-1", "0xg", "1e3", "ten"]) {
    assert.match(
      flagError(["--config=c", `--udp-buffer-bytes=${bad}`]).message,
      /--udp-buffer-bytes/,
    );
  }
});

Deno.test("the Go operator's secure metrics flags: a self-signed certificate, authed in operator mode", () => {
  const secure = options(["--config=c", "--metrics-secure"]);
  assert.equal(secure.metricsSecure, true);
  assert.equal(secure.metricsCertPath, undefined);
  const authed = options([
    "--operator-namespace=p",
    "--metrics-secure=true",
    "--metrics-authed=true",
  ]);
  assert.equal(authed.metricsSecure, true);
  assert.equal(authed.metricsAuthed, true);
});

Deno.test("parseCommandLine() takes the Go operator's other zap flags", () => {
  const defaults = options(["--config=c"]);
  assert.equal(defaults.zapLogLevel, undefined);
  assert.equal(defaults.zapEncoder, undefined);
  const zap = options(["--config=c", "--zap-log-level=2", "--zap-encoder=console"]);
  assert.equal(zap.zapLogLevel, "debug");
  assert.equal(zap.zapEncoder, "text");
  assert.equal(options(["--config=c", "--zap-log-level=error"]).zapLogLevel, "error");
  assert.equal(options(["--config=c", "--zap-encoder=json"]).zapEncoder, "json");
  assert.match(flagError(["--config=c", "--zap-encoder=xml"]).message, /"xml" for --zap-encoder/);
  assert.match(flagError(["--config=c", "--zap-log-level=0"]).message, /"0" for --zap-log-level/);
  assert.equal(options(["--config=c", "--zap-time-encoding=rfc3339"]).zapTimeEncoding, "rfc3339");
  assert.match(
    flagError(["--config=c", "--zap-time-encoding=unix"]).message,
    /"unix" for --zap-time-encoding/,
  );
});

Deno.test("parseCommandLine() names the flag, the value and the reason of a bad command line", () => {
  const cases: [string[], string, RegExp][] = [
    [["--config=c", "--bogus"], "--bogus", /unknown flag --bogus/],
    [["--config=c", "--dial-timeout=5"], "--dial-timeout", /"5" for --dial-timeout: .*unit/],
    [
      ["--config=c", "--dial-timeout=0"],
      "--dial-timeout",
      /"0" for --dial-timeout: must be more than 0/,
    ],
    [
      ["--config=c", "--zap-devel=maybe"],
      "--zap-devel",
      /"maybe" for --zap-devel: expected true or false/,
    ],
    [["--config=c", "--udp-buffer-bytes=0x"], "--udp-buffer-bytes", /"0x" for --udp-buffer-bytes/],
    [["--config=c", "--metrics-bind-address=8080"], "--metrics-bind-address", /"8080".*host:port/],
    [["--config=c", "--log-level=loud"], "--log-level", /"loud" for --log-level: expected one of/],
    [["--config=c", "--listen-address=127.0.0.l"], "--listen-address", /"127.0.0.l" .*not an IP/],
    [["--config=c", "--listen-address=localhost"], "--listen-address", /not an IP address/],
    [["--config=c", "--listen-address=[::1]"], "--listen-address", /without brackets/],
    [["--config=c", "--listen-address=0.0.0.0:80"], "--listen-address", /without a port/],
    [["--config=c", "--listen-address="], "--listen-address", /"" for --listen-address/],
    [["--config"], "--config", /missing value for --config/],
    [["--config=c", "stray"], "stray", /unexpected argument "stray"/],
    [["--config=c", "--metrics-authed"], "--metrics-authed", /needs operator mode.*--config/],
    [[], "--operator-namespace", /--operator-namespace must be set.*--config/],
    [["--check-config"], "--check-config", /--check-config needs --config FILE/],
  ];
  for (const [args, flag, message] of cases) {
    const error = flagError(args);
    assert.equal(error.flag, flag, args.join(" "));
    assert.match(error.message, message);
    assert.ok(!error.message.includes("\n"), "one line");
  }
});

Deno.test("parseCommandLine() recognizes --help, -h and --version", () => {
  assert.deepEqual(parseCommandLine(["--help"]), { kind: "help" });
  assert.deepEqual(parseCommandLine(["-h"]), { kind: "help" });
  assert.deepEqual(parseCommandLine(["--version"]), { kind: "version" });
});

Deno.test("usage() lists every flag with its default", () => {
  const text = usage("1.2.3");
  assert.match(text, /1\.2\.3/);
  for (const [name, flag] of Object.entries(FLAGS)) {
    const shown = "defaultText" in flag ? flag.defaultText : `"${flag.default}"`;
    assert.ok(text.includes(`--${name}`), `--${name} missing`);
    assert.ok(text.includes(`${flag.help} (default: ${shown})`), `default of --${name} missing`);
  }
});

Deno.test("the README's flag section is flagsMarkdown()", async () => {
  const readme = await Deno.readTextFile(new URL("../README.md", import.meta.url));
  const section = /<!-- section:flags -->([\s\S]*?)<!-- \/section:flags -->/.exec(readme)?.[1] ??
    "";
  // deno fmt pads table cells: compare rows without the padding.
  const rows = (text: string) =>
    text.split("\n").map((row) => row.replace(/ *\| */g, "|").replace(/-{3,}/g, "---").trim());
  assert.ok(
    rows(section).join("\n").includes(rows(flagsMarkdown()).join("\n")),
    "README flags table is stale: replace it with the output of\n" +
      "deno eval 'import { flagsMarkdown } from \"./lib/cli.ts\"; console.log(flagsMarkdown())'",
  );
});

Deno.test("parseDurationMs() reads Go durations and rejects bare numbers", () => {
  assert.equal(parseDurationMs("500ms", { min: 0 }), 500);
  assert.equal(parseDurationMs("1m30s", { min: 0 }), 90_000);
  assert.equal(parseDurationMs("1.5s", { min: 0 }), 1500);
  assert.equal(parseDurationMs("2h", { min: 0 }), 7_200_000);
  assert.equal(parseDurationMs("0", { min: 0 }), 0);
  assert.throws(() => parseDurationMs("10", { min: 0 }), RangeError);
  assert.throws(() => parseDurationMs("-1s", { min: 0 }), RangeError);
  assert.throws(() => parseDurationMs("5 s", { min: 0 }), RangeError);
  assert.equal(parseDurationMs("1500us", { min: 0 }), 2, "rounded to milliseconds");
});

Deno.test("--udp-busy-poll takes microseconds (us or µs) up to 10ms; 0, the default, is off", () => {
  assert.equal(options(["--config=c"]).udpBusyPollUs, 0);
  const cases: [string, number][] = [["50us", 50], ["50µs", 50], ["0.5ms", 500], ["10ms", 10_000]];
  for (const [raw, us] of cases) {
    assert.equal(options(["--config=c", `--udp-busy-poll=${raw}`]).udpBusyPollUs, us, raw);
  }
  const tooLong = flagError(["--config=c", "--udp-busy-poll=11ms"]);
  assert.equal(tooLong.flag, "--udp-busy-poll");
  assert.match(tooLong.message, /"11ms" for --udp-busy-poll: must be at most 10ms/);
  assert.match(flagError(["--config=c", "--udp-busy-poll=50"]).message, /unit \(us, ms/);
});

Deno.test("parseBindAddress() reads host:port, :port, [ipv6]:port and 0", () => {
  assert.deepEqual(parseBindAddress(":8080"), { hostname: "", port: 8080 });
  assert.deepEqual(parseBindAddress("0.0.0.0:1"), { hostname: "0.0.0.0", port: 1 });
  assert.deepEqual(parseBindAddress("[::1]:0"), { hostname: "::1", port: 0 });
  assert.equal(parseBindAddress("0"), null);
  assert.throws(() => parseBindAddress("::1:80"), RangeError);
  assert.throws(() => parseBindAddress(":70000"), RangeError);
});

Deno.test("parseCommandLine() reads the ingress-nginx ConfigMap flags (operator mode only)", () => {
  const parsed = options([
    "--operator-namespace=proxy",
    "--tcp-services-configmap=ingress-nginx/tcp-services",
    "--udp-services-configmap",
    "ingress-nginx/udp-services",
    "--cluster-domain=corp.example.",
  ]);
  assert.deepEqual(parsed.tcpServicesConfigmap, {
    namespace: "ingress-nginx",
    name: "tcp-services",
  });
  assert.deepEqual(parsed.udpServicesConfigmap, {
    namespace: "ingress-nginx",
    name: "udp-services",
  });
  assert.equal(parsed.clusterDomain, "corp.example");
  assert.equal(options(["--operator-namespace=proxy"]).clusterDomain, "cluster.local");
  const bad = flagError(["--operator-namespace=p", "--tcp-services-configmap=tcp-services"]);
  assert.equal(bad.flag, "--tcp-services-configmap");
  assert.match(bad.message, /"tcp-services".*NAMESPACE\/NAME/);
  const fileMode = flagError(["--config=x.yaml", "--udp-services-configmap=a/b"]);
  assert.match(fileMode.message, /--udp-services-configmap needs operator mode/);
  assert.match(flagError(["--operator-namespace=p", "--cluster-domain=Bad_Domain"]).message, /DNS/);
});
