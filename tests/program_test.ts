/**
 * Black-box tests of the program: `main.ts` runs as a subprocess with the compile task's
 * permissions, configured by a YAML file, with echo servers on loopback as targets.
 */
import assert from "node:assert/strict";
import { dump } from "js-yaml";
import { FLAGS } from "../lib/cli.ts";
import { createPki } from "./_support/_pki.ts";
import { repoRoot } from "./_support/kustomize.ts";
import { peerCertificate } from "./_support/peer_certificate.ts";
import { waitUntil } from "./_support/wait.ts";
import {
  patternBytes,
  readAll,
  readExactly,
  startTcpEcho,
  startTcpServer,
  writeAll,
} from "./_support/net_tcp.ts";
import { startUdpEcho, udpClient } from "./_support/net_udp.ts";
import { startRecordingTcpServer } from "./_support/net_proxy_protocol.ts";
import { parseProxyHeader } from "../lib/forward/proxy_protocol/decode.ts";
import { AUTO_NATIVE_UDP_ENGINE } from "./_support/io_uring_probe.ts";
import {
  bundleProgram,
  freePort,
  type LogLine,
  type ProgramProcess,
  runProgram,
  startProgram,
  taskPermissionFlags,
  waitForSeries,
} from "./_support/program.ts";

/** Bound for every wait: generous, since the machine may be loaded by other tests. */
const WAIT_MS = 30_000;

interface Forward {
  readonly name: string;
  readonly tcp?: { listenPort: number; targetPort: number };
  readonly udp?: { listenPort: number; targetPort: number };
}

/** UnDyingProxy documents as a user writes them (no namespace: `default`). */
function configYaml(forwards: readonly Forward[]): string {
  return forwards.map((forward) =>
    dump({
      apiVersion: "proxy.sfact.io/v1alpha1",
      kind: "UnDyingProxy",
      metadata: { name: forward.name },
      spec: {
        ...(forward.tcp && { tcp: { ...forward.tcp, targetHost: "127.0.0.1" } }),
        ...(forward.udp && { udp: { ...forward.udp, targetHost: "127.0.0.1" } }),
      },
    })
  ).join("---\n");
}

/** A temporary config file; removed on dispose. */
async function tempConfig(forwards: readonly Forward[]) {
  const dir = await Deno.makeTempDir({ prefix: "program_test_" });
  const path = `${dir}/proxies.yaml`;
  await Deno.writeTextFile(path, configYaml(forwards));
  return {
    path,
    write: (text: string) => Deno.writeTextFile(path, text),
    [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }),
  };
}

/** A UDP echo server and a config file whose object "game" forwards a free UDP port to it. */
async function udpGame() {
  const echo = startUdpEcho();
  const port = freePort();
  const file = await tempConfig([{
    name: "game",
    udp: { listenPort: port, targetPort: echo.port },
  }]);
  return {
    port,
    /** The `--config` flag naming the file. */
    config: `--config=${file.path}`,
    async [Symbol.asyncDispose]() {
      await file[Symbol.asyncDispose]();
      await echo[Symbol.asyncDispose]();
    },
  };
}

/** Sends `size` bytes (pattern `seed`) to UDP `port` and expects them back whole. */
async function assertUdpEchoes(port: number, size: number, seed: number): Promise<void> {
  using client = udpClient();
  const datagram = patternBytes(size, seed);
  assert.deepEqual(await client.request(datagram, port, WAIT_MS), datagram);
}

async function waitReady(program: ProgramProcess): Promise<void> {
  try {
    await waitUntil(
      "/readyz to answer 200",
      async () => (await program.probe("/readyz")).status === 200,
      { timeoutMs: WAIT_MS },
    );
  } catch (error) {
    throw new Error(`${error}\n--- program output ---\n${program.output().slice(-6000)}`);
  }
}

/** Sends `size` bytes through `port` to an echo server and checks that they come back intact. */
async function echoThrough(port: number, size: number, seed = 1): Promise<void> {
  using conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const data = patternBytes(size, seed);
  await writeAll(conn, data);
  assert.deepEqual(await readExactly(conn, size), data);
}

/** Waits (bounded) until nothing accepts TCP connections on `port`. */
async function waitRefused(port: number): Promise<void> {
  await waitUntil(`port ${port} to refuse connections`, async () => {
    try {
      (await Deno.connect({ hostname: "127.0.0.1", port })).close();
      return false;
    } catch {
      return true;
    }
  }, { timeoutMs: WAIT_MS });
}

Deno.test("--help lists every flag with its default, --version the version", async () => {
  const help = await runProgram(["--help"]);
  assert.equal(help.code, 0, help.stderr);
  for (const name of Object.keys(FLAGS)) {
    assert.match(help.stdout, new RegExp(`--${name}\\b[^\\n]*\\n[^\\n]*\\(default: `), `--${name}`);
  }
  const version = await runProgram(["--version"]);
  const { version: expected } = JSON.parse(await Deno.readTextFile("deno.json"));
  assert.equal(version.stdout, `undying-proxy ${expected}\n`);
});

Deno.test("a bad command line exits 2 with one line naming the flag, value and reason", async () => {
  const cases: [string[], RegExp][] = [
    [["--config=x.yaml", "--no-such-flag"], /unknown flag --no-such-flag/],
    [["--config=x.yaml", "--dial-timeout=soon"], /"soon" for --dial-timeout: not a duration/],
    [["--config=x.yaml", "--udp-max-sessions=0"], /"0" for --udp-max-sessions: must be between/],
    [["--config=x.yaml", "--zap-devel=yes"], /"yes" for --zap-devel: expected true or false/],
    [["--config=x.yaml", "--listen-address=127.0.0.l"], /"127.0.0.l" for --listen-address: not an/],
    [["--config=x.yaml", "stray"], /unexpected argument "stray"/],
    [[], /--operator-namespace must be set/],
    [["--config=x.yaml", "--metrics-authed"], /--metrics-authed=true needs operator mode/],
    [["--config=x.yaml", "--access-log-sample-rate=0"], /"0" for --access-log-sample-rate/],
  ];
  const results = await Promise.all(cases.map(([args]) => runProgram(args)));
  results.forEach((result, index) => {
    const [args, message] = cases[index] ?? [[], /./];
    assert.equal(result.code, 2, `${args.join(" ")}: ${result.stderr}`);
    assert.match(result.stderr, message);
    assert.match(result.stderr, /^undying-proxy: [^\n]+\n$/, "exactly one line");
  });
});

Deno.test("an invalid config file at start exits 1 naming document, field and value, in the log format asked for", async () => {
  await using config = await tempConfig([
    { name: "fine", tcp: { listenPort: freePort(), targetPort: 1 } },
    { name: "bad", tcp: { listenPort: 70000, targetPort: 1 } },
  ]);
  const problem = /document 2 \(default\/bad\): spec\.tcp\.listenPort = 70000: must be/;
  for (const flag of ["--zap-devel=false", "--log-format=json"]) {
    const json = await runProgram([`--config=${config.path}`, flag]);
    assert.equal(json.code, 1, json.stderr);
    const fatal = json.stderr.trim().split("\n").map((line) => JSON.parse(line)).at(-1);
    assert.equal(fatal.level, "FATAL", flag);
    assert.match(fatal.message, problem);
  }
  // Nothing (--zap-devel defaults to true, as in the Go operator), --zap-devel, or the Go
  // operator's --zap-encoder=console: the same, human-readable.
  for (const flags of [[], ["--zap-devel"], ["--zap-encoder=console"]]) {
    const text = await runProgram([`--config=${config.path}`, ...flags]);
    const what = flags.join(" ") || "no flag";
    assert.equal(text.code, 1, text.stderr);
    assert.match(text.stderr, /\[FTL\] undying-proxy: Cannot start: Invalid config file/, what);
    assert.match(text.stderr, problem);
    assert.ok(!text.stderr.trimStart().startsWith("{"), `${what}: not JSON`);
  }
});

Deno.test("--udp-buffer-bytes above 65535 or in hex (the Go operator took both) runs with a warning", async () => {
  await using config = await tempConfig([]);
  for (
    const [value, expected] of [["0x20000", /0x20000: 131072 bytes .*using 65535/], [
      "0x400",
      null,
    ]] as const
  ) {
    await using program = await startProgram([
      `--config=${config.path}`,
      `--udp-buffer-bytes=${value}`,
    ]);
    await waitReady(program);
    const warnings = program.logs().filter((line) => line.level === "WARNING");
    if (expected === null) {
      assert.deepEqual(warnings, [], `${value}: 1024, no warning`);
    } else {
      assert.match(String(warnings[0]?.message), expected);
    }
  }
});

Deno.test("--check-config validates the file as a reload would, starts nothing, exits 0 or 1", async () => {
  const [tcpPort, udpPort] = [freePort(), freePort()];
  await using config = await tempConfig([
    { name: "web", tcp: { listenPort: tcpPort, targetPort: 80 } },
    { name: "dns", udp: { listenPort: udpPort, targetPort: 53 } },
  ]);
  const valid = await runProgram(["--check-config", `--config=${config.path}`]);
  assert.equal(valid.code, 0, valid.stderr);
  assert.equal(
    valid.stdout,
    `${config.path}: valid, 2 forwarders: TCP port ${tcpPort}, UDP port ${udpPort}\n`,
  );
  assert.equal(valid.stderr, "", "no log: nothing started");

  // Every problem, one per line, in the words of a rejected reload.
  await config.write(
    `${configYaml([{ name: "web", tcp: { listenPort: 70000, targetPort: 80 } }])}---\n` +
      "apiVersion: proxy.sfact.io/v1alpha1\nkind: UnDyingProxy\nmetadata: { name: dns }\n" +
      "spec: { udp: { listenPort: 53, targetPort: 53 } }\n",
  );
  const invalid = await runProgram(["--check-config", `--config=${config.path}`]);
  assert.equal(invalid.code, 1, invalid.stderr);
  assert.equal(invalid.stdout, "");
  assert.deepEqual(invalid.stderr.split("\n"), [
    `${config.path}: invalid, 2 problems:`,
    "  document 1 (default/web): spec.tcp.listenPort = 70000: must be an integer from 1 to 65535",
    "  document 2 (default/dns): spec.udp.targetHost: missing (a DNS name or an IP address)",
    "",
  ]);
  await config.write("spec: {\n");
  const syntax = await runProgram(["--check-config", `--config=${config.path}`]);
  assert.equal(syntax.code, 1);
  assert.match(syntax.stderr, /^ {2}document 1, line 1, column 7: YAML syntax: this "\{"/m);
});

Deno.test("standalone mode forwards TCP and UDP, and /metrics counts the traffic", async () => {
  await using tcpEcho = startTcpEcho();
  await using udpEcho = startUdpEcho();
  const [tcpPort, udpPort] = [freePort(), freePort()];
  await using config = await tempConfig([
    { name: "web", tcp: { listenPort: tcpPort, targetPort: tcpEcho.port } },
    { name: "dns", udp: { listenPort: udpPort, targetPort: udpEcho.port } },
  ]);
  await using program = await startProgram([`--config=${config.path}`]);
  await waitReady(program);

  await echoThrough(tcpPort, 1000);
  await assertUdpEchoes(udpPort, 300, 7);

  const expected: Record<string, number> = {
    "undying_proxy_tcp_forwarders": 1,
    "undying_proxy_udp_forwarders": 1,
    'undying_proxy_tcp_from_clients_to_target_bytes_total{forwarder="web",namespace="default"}':
      1000,
    'undying_proxy_tcp_from_target_to_clients_bytes_total{forwarder="web",namespace="default"}':
      1000,
    'undying_proxy_tcp_connections_total{forwarder="web",namespace="default"}': 1,
    'undying_proxy_tcp_forwarding_errors_total{type="DialServerTarget"}': 0,
    'undying_proxy_tcp_forwarder_errors_total{forwarder="web",namespace="default",type="DialServerTarget"}':
      0,
    'undying_proxy_udp_clients_connected{forwarder="dns",namespace="default"}': 1,
    'undying_proxy_udp_from_clients_to_target_bytes_total{forwarder="dns",namespace="default"}':
      300,
    'undying_proxy_udp_from_target_to_clients_bytes_total{forwarder="dns",namespace="default"}':
      300,
    'undying_proxy_udp_from_clients_to_target_datagrams_total{forwarder="dns",namespace="default"}':
      1,
    'undying_proxy_udp_sessions_total{forwarder="dns",namespace="default"}': 1,
    'undying_proxy_udp_dropped_datagrams_total{forwarder="dns",namespace="default"}': 0,
    'undying_proxy_udp_truncated_datagrams_total{forwarder="dns",namespace="default"}': 0,
    'undying_proxy_udp_forwarding_errors_total{type="WriteToTarget"}': 0,
    'undying_proxy_udp_forwarding_errors_total{type="SetReadDeadlineTargetToClient"}': 0,
    'undying_proxy_udp_forwarder_errors_total{forwarder="dns",namespace="default",type="WriteToTarget"}':
      0,
    'undying_proxy_forwarder_state{forwarder="web",namespace="default",protocol="tcp",state="listening"}':
      1,
    'undying_proxy_config_reloads_total{result="success"}': 1,
    'undying_proxy_config_reloads_total{result="failure"}': 0,
    "undying_proxy_config_last_reload_successful": 1,
    "undying_proxy_shutting_down": 0,
  };
  // The process metrics dashboards and alerts of the Go operator use (real values, not 0).
  const processSeries = ["process_resident_memory_bytes", "process_start_time_seconds"];
  // The TCP connection is closed by now, but its byte counters may be read a moment later.
  await waitForSeries(program, expected, WAIT_MS);
  const last = new Map((await program.scrape()).series);
  for (const name of processSeries) assert.ok((last.get(name) ?? 0) > 0, `${name} > 0`);
  // Every metric served is documented with its type, and every documented one is served.
  const { types } = await program.scrape();
  const served = new Map([...types].filter(([name]) => name.startsWith("undying_proxy_")));
  assert.deepEqual(served, await documentedMetrics());
  const closed = await program.waitForLog(
    "the listener log",
    (line) => /Listening on tcp port/.test(line.message) && line["forwarder"] === "default/web",
  );
  assert.equal(closed.level, "INFO");
});

/** Every metric the README's metrics section documents, with its type. */
async function documentedMetrics(): Promise<Map<string, string>> {
  const readme = await Deno.readTextFile("README.md");
  const section = /<!-- section:metrics -->([\s\S]*?)<!-- \/section:metrics -->/.exec(readme)?.[1];
  const rows = (section ?? "").matchAll(/^\| `(undying_proxy_\w+)` +\| (\w+) /gm);
  return new Map([...rows].map((row) => [row[1] ?? "", row[2] ?? ""]));
}

Deno.test("editing the file opens a new port without touching live connections; a broken file is rejected", async () => {
  await using echo = startTcpEcho();
  const [firstPort, secondPort] = [freePort(), freePort()];
  const first: Forward = { name: "first", tcp: { listenPort: firstPort, targetPort: echo.port } };
  await using config = await tempConfig([first]);
  await using program = await startProgram([`--config=${config.path}`]);
  await waitReady(program);

  // An established connection on the first port, used before and after each reload.
  using live = await Deno.connect({ hostname: "127.0.0.1", port: firstPort });
  const roundTrip = async (seed: number) => {
    const data = patternBytes(64, seed);
    await writeAll(live, data);
    assert.deepEqual(await readExactly(live, 64), data);
  };
  await roundTrip(1);

  await config.write(
    configYaml([first, { name: "second", tcp: { listenPort: secondPort, targetPort: echo.port } }]),
  );
  const reloaded = await program.waitForLog(
    "the reload",
    (line) => /^Reloaded .*: 2 forwarder/.test(line.message),
  );
  assert.deepEqual([reloaded["added"], reloaded["changed"]], [["default/second"], []]);
  await waitUntil(`port ${secondPort} forwarding`, async () => {
    try {
      await echoThrough(secondPort, 100);
      return true;
    } catch {
      return false;
    }
  }, { timeoutMs: WAIT_MS });
  await roundTrip(2);

  // Broken: duplicate names and a bad port. Rejected whole; both forwarders keep serving.
  await config.write(
    `${configYaml([first, first])}---\n${
      configYaml([{ name: "x", tcp: { listenPort: 0, targetPort: 1 } }])
    }`,
  );
  const rejected = await program.waitForLog(
    "the rejection",
    (line) => /^Rejected/.test(line.message),
  );
  assert.equal(rejected.level, "ERROR");
  assert.match(
    String(rejected["message"]),
    /document 2 \(default\/first\): metadata\.name = "default\/first": duplicate of document 1/,
  );
  assert.match(rejected.message, /document 3 \(default\/x\): spec\.tcp\.listenPort = 0/);
  const { series } = await program.scrape();
  assert.equal(series.get('undying_proxy_config_reloads_total{result="failure"}'), 1);
  assert.equal(series.get("undying_proxy_config_last_reload_successful"), 0);
  await roundTrip(3);
  await echoThrough(secondPort, 100, 4);
  assert.equal((await program.probe("/readyz")).status, 200);

  // Removing "second" closes its port and its series leave /metrics; "first" is untouched.
  await config.write(configYaml([first]));
  const removal = await program.waitForLog(
    "the removal",
    (line) => /^Reloaded .*: 1 forwarder/.test(line.message),
  );
  assert.deepEqual(removal["removed"], ["default/second"]);
  const stopped = await program.waitForLog(
    "the stopped listener",
    (line) => /^Stopped listening on tcp port/.test(line.message),
  );
  assert.equal(stopped["forwarder"], "default/second");
  await waitUntil("the series of the removed forwarder to disappear", async () => {
    const keys = [...(await program.scrape()).series.keys()];
    return !keys.some((key) => key.includes('forwarder="second"'));
  }, { timeoutMs: WAIT_MS });
  await waitRefused(secondPort);
  await roundTrip(5);
});

Deno.test("a config file deleted and restored unchanged reports its reload successful again", async () => {
  await using config = await tempConfig([
    { name: "kept", tcp: { listenPort: freePort(), targetPort: 1 } },
  ]);
  const text = await Deno.readTextFile(config.path);
  await using program = await startProgram([`--config=${config.path}`]);
  await waitReady(program);
  const lastReload = async () =>
    (await program.scrape()).series.get("undying_proxy_config_last_reload_successful");
  assert.equal(await lastReload(), 1);
  await Deno.remove(config.path);
  await waitUntil("the failed read of the deleted file", async () => await lastReload() === 0, {
    timeoutMs: WAIT_MS,
  });
  await config.write(text);
  await waitUntil(
    "undying_proxy_config_last_reload_successful to be 1 again",
    async () => await lastReload() === 1,
    { timeoutMs: WAIT_MS },
  );
  const { series } = await program.scrape();
  assert.equal(series.get('undying_proxy_config_reloads_total{result="success"}'), 2);
  assert.equal(series.get('undying_proxy_config_reloads_total{result="failure"}'), 1);
});

Deno.test("/readyz follows the listeners, turns 503 at SIGTERM, and the drain lets a transfer finish", async () => {
  // A target that sends a first chunk, then the rest only when the test says so.
  let release = () => {};
  const released = new Promise<void>((resolve) => release = resolve);
  const head = patternBytes(1000, 1);
  const tail = patternBytes(200_000, 2);
  await using target = startTcpServer(async (conn) => {
    await writeAll(conn, head);
    await released;
    await writeAll(conn, tail);
  });
  const port = freePort();
  await using config = await tempConfig([
    { name: "slow", tcp: { listenPort: port, targetPort: target.port } },
  ]);
  await using program = await startProgram([`--config=${config.path}`, "--drain-grace-period=60s"]);

  // Whenever /readyz says 200, the forwarder accepts connections.
  await waitReady(program);
  const readyBody = await program.probe("/readyz");
  assert.deepEqual(readyBody, { status: 200, body: "ok\n" });
  const client = await Deno.connect({ hostname: "127.0.0.1", port });
  assert.deepEqual(await readExactly(client, head.length), head);

  program.signal("SIGTERM");
  await program.waitForLog("the drain to start", (line) => /^Received SIGTERM/.test(line.message));
  assert.deepEqual(await program.probe("/readyz"), {
    status: 503,
    body: "not ready: shutting down\n",
  });
  assert.equal((await program.probe("/healthz")).status, 200);
  // The listener is closed: new connections are refused.
  await waitRefused(port);
  assert.equal((await program.scrape()).series.get("undying_proxy_shutting_down"), 1);

  release();
  const rest = await readAll(client);
  assert.equal(rest.length, tail.length);
  assert.deepEqual(rest, tail);
  // The target closed; our side closes too, which ends the last connection and so the drain.
  client.close();
  assert.equal(await program.exited, 0, program.output().slice(-3000));
});

Deno.test("a second signal ends the drain at once with a non-zero exit code", async () => {
  let release = () => {};
  const released = new Promise<void>((resolve) => release = resolve);
  await using target = startTcpServer(async (conn) => {
    await writeAll(conn, new Uint8Array([1]));
    await released;
  });
  const port = freePort();
  await using config = await tempConfig([
    { name: "held", tcp: { listenPort: port, targetPort: target.port } },
  ]);
  await using program = await startProgram([`--config=${config.path}`, "--drain-grace-period=10m"]);
  await waitReady(program);
  using client = await Deno.connect({ hostname: "127.0.0.1", port });
  await readExactly(client, 1);
  // Ctrl-C twice in a terminal: SIGINT starts the drain as SIGTERM does; the second one ends it.
  program.signal("SIGINT");
  await program.waitForLog("the drain to start", (line) => /^Received SIGINT/.test(line.message));
  program.signal("SIGTERM");
  assert.equal(await program.exited, 128 + 15);
  release();
});

Deno.test("one Ctrl-C under `deno task start` drains and exits 0: SIGINT to the process group counts once", async () => {
  await using echo = startTcpEcho();
  const port = freePort();
  await using config = await tempConfig([
    { name: "live", tcp: { listenPort: port, targetPort: echo.port } },
  ]);
  await using program = await startProgram(
    [`--config=${config.path}`, "--drain-grace-period=10m"],
    { task: "start" },
  );
  await waitReady(program);
  using client = await Deno.connect({ hostname: "127.0.0.1", port });
  const roundTrip = async (seed: number) => {
    const data = patternBytes(32, seed);
    await writeAll(client, data);
    assert.deepEqual(await readExactly(client, 32), data);
  };
  await roundTrip(1);
  // A terminal sends SIGINT to the whole group, and `deno task` forwards it to the program again.
  program.signalGroup("SIGINT");
  await program.waitForLog("the drain to start", (line) => /^Received SIGINT/.test(line.message));
  await new Promise((resolve) => setTimeout(resolve, 1000));
  await roundTrip(2); // Still draining: the live connection works.
  client.close();
  assert.equal(await program.exited, 0, program.output().slice(-3000));
  assert.ok(program.logs().some((line) => line.message === "Stopped"));
});

Deno.test("a port in use fails only its forwarder, visibly, and the program stays ready", async () => {
  await using echo = startTcpEcho();
  using squatter = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const freeOne = freePort();
  await using config = await tempConfig([
    { name: "blocked", tcp: { listenPort: squatter.addr.port, targetPort: echo.port } },
    { name: "works", tcp: { listenPort: freeOne, targetPort: echo.port } },
  ]);
  await using program = await startProgram([`--config=${config.path}`]);
  await waitReady(program);
  await echoThrough(freeOne, 10);
  const failed =
    'undying_proxy_forwarder_state{forwarder="blocked",namespace="default",protocol="tcp",state="failed"}';
  await waitUntil(
    "the failed state in /metrics",
    async () => (await program.scrape()).series.get(failed) === 1,
    { timeoutMs: WAIT_MS },
  );
  const logged = await program.waitForLog(
    "the bind failure",
    (line) =>
      line["forwarder"] === "default/blocked" && line.level !== "INFO" && line.level !== "DEBUG",
  );
  assert.match(logged.message, /in use|bind|listen/i);
});

Deno.test("--metrics-bind-address=0 and --health-probe-bind-address=0 serve neither", async () => {
  await using echo = startTcpEcho();
  const port = freePort();
  await using config = await tempConfig([{
    name: "quiet",
    tcp: { listenPort: port, targetPort: echo.port },
  }]);
  await using program = await startProgram([
    `--config=${config.path}`,
    "--metrics-bind-address=0",
    "--health-probe-bind-address=0",
  ]);
  await program.waitForLog("readiness", (line) => /^Ready/.test(line.message));
  await echoThrough(port, 100);
  assert.deepEqual(program.logs().filter((line) => line["server"] !== undefined), []);
  program.signal("SIGTERM");
  assert.equal(await program.exited, 0);
});

Deno.test("dial errors are counted and logged with the forwarder's name, rate-limited", async () => {
  const [listenPort, closedPort] = [freePort(), freePort()];
  await using config = await tempConfig([
    { name: "refused", tcp: { listenPort, targetPort: closedPort } },
  ]);
  await using program = await startProgram([`--config=${config.path}`]);
  await waitReady(program);
  const started = Date.now();
  const attempts = 20;
  for (let attempt = 0; attempt < attempts; attempt++) {
    // The target refuses: the program closes the client at once, without a byte.
    using conn = await Deno.connect({ hostname: "127.0.0.1", port: listenPort });
    assert.equal((await readAll(conn)).length, 0);
  }
  const counter =
    'undying_proxy_tcp_forwarder_errors_total{forwarder="refused",namespace="default",type="DialServerTarget"}';
  await waitUntil(
    `${counter} to reach ${attempts}`,
    async () => (await program.scrape()).series.get(counter) === attempts,
    { timeoutMs: WAIT_MS },
  );
  // The Go operator's counter: the same count, labelled by type only.
  const goCounter = 'undying_proxy_tcp_forwarding_errors_total{type="DialServerTarget"}';
  assert.equal((await program.scrape()).series.get(goCounter), attempts);
  const elapsedMs = Date.now() - started;
  const isDialError = (line: LogLine) =>
    line["forwarder"] === "default/refused" && line["type"] === "DialServerTarget";
  const first = await program.waitForLog("the dial error", isDialError);
  assert.equal(first.level, "WARNING");
  assert.match(first.message, new RegExp(`127\\.0\\.0\\.1:${closedPort}`));
  // At most one line a second (the limit is looser than the program's), not one per attempt.
  const logged = program.logs().filter(isDialError).length;
  assert.ok(logged <= 1 + Math.floor(elapsedMs / 1000), `${logged} lines in ${elapsedMs} ms`);
});

Deno.test("the bundles the compile task embeds run the program with its permissions", async () => {
  await Deno.mkdir(`${repoRoot}dist`, { recursive: true });
  const dir = await Deno.makeTempDir({ dir: `${repoRoot}dist`, prefix: "test_bundle_" });
  try {
    const entry = await bundleProgram(dir);
    await using tcpEcho = startTcpEcho();
    await using udpEcho = startUdpEcho();
    const [tcpPort, udpPort] = [freePort(), freePort()];
    await using config = await tempConfig([
      { name: "bundled", tcp: { listenPort: tcpPort, targetPort: tcpEcho.port } },
      { name: "bundled-udp", udp: { listenPort: udpPort, targetPort: udpEcho.port } },
    ]);
    // Two forwarding threads: the worker's own bundle must be found too.
    await using program = await startProgram([
      `--config=${config.path}`,
      "--workers=2",
      "--drain-grace-period=1s",
    ], {
      entry,
    });
    await waitReady(program);
    // The UDP engine threads' own bundle must be found and pass the self-test.
    await program.waitForLog(
      "the native UDP engine",
      (line) => line.message === `UDP engine: ${AUTO_NATIVE_UDP_ENGINE} (2 thread(s))`,
    );
    for (let seed = 0; seed < 4; seed++) await echoThrough(tcpPort, 10_000, seed);
    await assertUdpEchoes(udpPort, 1200, 3);
    program.signal("SIGTERM");
    assert.equal(await program.exited, 0, program.output().slice(-3000));
    assert.ok(!/error|failed/i.test(program.output()), program.output().slice(-3000));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the start and operator tasks run with the compile task's permissions", async () => {
  assert.deepEqual(await taskPermissionFlags("start"), await taskPermissionFlags("compile"));
  assert.deepEqual(await taskPermissionFlags("operator"), await taskPermissionFlags("compile"));
  const flags = await taskPermissionFlags("compile");
  // --allow-ffi: for the FFI threads only (the system worker of lib/ffi/ for the fd limit, /proc
  // and TCP resets, and the forwarding engines); the main thread revokes it at start.
  for (const forbidden of ["--allow-write", "--allow-run", "--allow-all"]) {
    assert.ok(!flags.some((flag) => flag.startsWith(forbidden)), `${forbidden} in compile task`);
  }
  assert.ok(flags.includes("--allow-ffi"), "--allow-ffi in compile task");
});

Deno.test("--metrics-secure serves /metrics over HTTPS with the certificate of --metrics-cert-path", async () => {
  const dir = await Deno.makeTempDir({ prefix: "program_tls_" });
  try {
    const pki = await createPki(dir);
    await using config = await tempConfig([]);
    await using program = await startProgram([
      `--config=${config.path}`,
      "--metrics-secure",
      `--metrics-cert-path=${dir}`,
      "--metrics-cert-name=apiserver.crt",
      "--metrics-cert-key=apiserver.key",
    ]);
    using client = Deno.createHttpClient({ caCerts: [await Deno.readTextFile(pki.caCert)] });
    const response = await fetch(`https://127.0.0.1:${program.metricsPort}/metrics`, { client });
    assert.equal(response.status, 200);
    assert.match(await response.text(), /^undying_proxy_build_info\{version="[^"]+"\} 1$/m);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("--metrics-secure without a certificate serves a self-signed one made at start-up", async () => {
  await using config = await tempConfig([]);
  await using program = await startProgram([`--config=${config.path}`, "--metrics-secure"]);
  const notice = await program.waitForLog("the self-signed certificate notice", (line) => {
    return line.message.includes("self-signed certificate");
  });
  assert.deepEqual((notice["names"] as string[]).slice(0, 1), ["localhost"]);
  assert.deepEqual((notice["names"] as string[]).slice(-2), ["127.0.0.1", "::1"]);
  // Trust exactly the certificate the server presents: verification (chain and the 127.0.0.1
  // name) stays on.
  const cert = await peerCertificate(program.metricsPort);
  using client = Deno.createHttpClient({ caCerts: [cert] });
  const response = await fetch(`https://127.0.0.1:${program.metricsPort}/metrics`, { client });
  assert.equal(response.status, 200);
  assert.match(await response.text(), /^undying_proxy_build_info\{version="[^"]+"\} 1$/m);
  await assert.rejects(
    fetch(`https://127.0.0.1:${program.metricsPort}/metrics`),
    "not a public CA's",
  );
});

Deno.test("file mode: a PROXY header is accepted and sent on, and access records are JSON lines whatever --log-level", async () => {
  await using target = startRecordingTcpServer();
  await using config = await tempConfig([]);
  const port = freePort();
  await config.write(dump({
    apiVersion: "proxy.sfact.io/v1alpha1",
    kind: "UnDyingProxy",
    metadata: { name: "pp" },
    spec: {
      tcp: {
        listenPort: port,
        targetHost: "127.0.0.1",
        targetPort: target.port,
        proxyProtocol: "v2",
      },
    },
  }));
  await using program = await startProgram([
    `--config=${config.path}`,
    "--accept-proxy-protocol",
    "--access-log",
    "--log-level=error", // hides the servers' start lines: nothing to wait for but the port
    "--metrics-bind-address=0",
    "--health-probe-bind-address=0",
  ]);
  let conn: Deno.TcpConn | undefined;
  await waitUntil(`port ${port} to accept`, async () => {
    conn = await Deno.connect({ hostname: "127.0.0.1", port }).catch(() => undefined);
    return conn !== undefined;
  }, { timeoutMs: WAIT_MS });
  assert.ok(conn !== undefined);
  await writeAll(
    conn,
    new TextEncoder().encode("PROXY TCP4 198.51.100.9 203.0.113.1 1234 80\r\nhello"),
  );
  await conn.closeWrite();
  assert.equal((await readAll(conn)).length, 0);
  conn.close();
  await waitUntil("target EOF", () => target.received.length === 1, { timeoutMs: WAIT_MS });
  const header = parseProxyHeader(target.received[0]!);
  assert.deepEqual(header.kind === "accepted" && header.source, {
    hostname: "198.51.100.9",
    port: 1234,
  });
  assert.equal(new TextDecoder().decode(target.received[0]!.subarray(28)), "hello");
  const record = await program.waitForLog(
    "the access record",
    (l) => l.logger === "undying-proxy.access",
  );
  assert.equal(record.level, "INFO");
  assert.equal(record.forwarder, "default/pp");
  assert.equal(record.namespace, "default");
  assert.equal(record.name, "pp");
  assert.equal(record.clientAddress, "198.51.100.9");
  assert.equal(record.clientPort, 1234);
  assert.equal(record.peerAddress, "127.0.0.1");
  assert.equal(record.listenPort, port);
  assert.equal(record.targetPort, target.port);
  assert.equal(record.bytesClientToTarget, 5);
  assert.equal(record.endReason, "client_closed");
  assert.equal(
    record.message,
    `tcp 198.51.100.9 port 1234 -> 127.0.0.1:${target.port} via default/pp ended: client_closed ` +
      `after ${record.durationMs} ms, 5 B up, 0 B down`,
  );
  assert.ok(!program.logs().some((l) => l.level === "INFO" && l.logger !== "undying-proxy.access"));
});

/** The UDP engine the program reports in its metrics. */
async function udpEngineMetric(program: ProgramProcess): Promise<Record<string, number>> {
  const { series } = await program.scrape();
  return {
    io_uring: series.get('undying_proxy_udp_engine{engine="io_uring"}') ?? -1,
    batched: series.get('undying_proxy_udp_engine{engine="batched"}') ?? -1,
    portable: series.get('undying_proxy_udp_engine{engine="portable"}') ?? -1,
  };
}

/** {@linkcode udpEngineMetric} when `engine` is in use. */
function onlyEngine(engine: "io_uring" | "batched" | "portable"): Record<string, number> {
  return { io_uring: 0, batched: 0, portable: 0, [engine]: 1 };
}

Deno.test("UDP goes through a native engine by default (io_uring where allowed): logged at start, exported as a metric", async () => {
  await using game = await udpGame();
  await using program = await startProgram([game.config]);
  await waitReady(program);
  await program.waitForLog(
    "the engine",
    (line) => line.message === `UDP engine: ${AUTO_NATIVE_UDP_ENGINE} (1 thread(s))`,
  );
  assert.deepEqual(await udpEngineMetric(program), onlyEngine(AUTO_NATIVE_UDP_ENGINE));
  await assertUdpEchoes(game.port, 65_507, 5);
});

Deno.test("--udp-engine=batched keeps the batched engine on epoll (no io_uring)", async () => {
  await using game = await udpGame();
  await using program = await startProgram([game.config, "--udp-engine=batched"]);
  await waitReady(program);
  await program.waitForLog(
    "the engine",
    (line) => line.message === "UDP engine: batched (1 thread(s))",
  );
  assert.deepEqual(await udpEngineMetric(program), onlyEngine("batched"));
  await assertUdpEchoes(game.port, 1200, 7);
});

Deno.test("--udp-busy-poll is named in the engine's start line; the portable engine warns that it sleeps", async () => {
  await using game = await udpGame();
  {
    await using program = await startProgram([game.config, "--udp-busy-poll=50us"]);
    await waitReady(program);
    await program.waitForLog(
      "the engine",
      (line) =>
        line.message ===
          `UDP engine: ${AUTO_NATIVE_UDP_ENGINE} (1 thread(s), busy polling 50 µs after traffic)`,
    );
    await assertUdpEchoes(game.port, 1200, 8);
  }
  await using program = await startProgram([
    game.config,
    "--udp-busy-poll=50us",
    "--udp-engine=portable",
  ]);
  await waitReady(program);
  await program.waitForLog(
    "the warning",
    (line) =>
      line.level === "WARNING" && /--udp-busy-poll applies to the batched/.test(line.message),
  );
});

Deno.test("without FFI permission, --udp-engine=auto falls back to the portable engine with a warning", async () => {
  await using game = await udpGame();
  const flags = (await taskPermissionFlags()).filter((flag) => flag !== "--allow-ffi");
  await using program = await startProgram([game.config], { flags });
  await waitReady(program);
  const warning = await program.waitForLog(
    "the fallback warning",
    (line) => line.level === "WARNING" && /batched UDP engine cannot run/.test(line.message),
  );
  assert.match(warning.message, /FFI is not permitted/);
  assert.deepEqual(await udpEngineMetric(program), onlyEngine("portable"));
  await assertUdpEchoes(game.port, 1200, 6);
});

Deno.test("--udp-engine=batched without FFI permission stops with a clear error", async () => {
  await using config = await tempConfig([]);
  const flags = (await taskPermissionFlags()).filter((flag) => flag !== "--allow-ffi");
  const result = await runProgram([
    `--config=${config.path}`,
    "--udp-engine=batched",
    "--metrics-bind-address=0",
    "--health-probe-bind-address=0",
  ], flags);
  assert.equal(result.code, 1, result.stderr);
  assert.match(result.stderr, /batched UDP engine cannot run: FFI is not permitted/);
});

/** The TCP engine the program reports in its metrics. */
async function tcpEngineMetric(program: ProgramProcess): Promise<Record<string, number>> {
  const { series } = await program.scrape();
  return {
    splice: series.get('undying_proxy_tcp_engine{engine="splice"}') ?? -1,
    portable: series.get('undying_proxy_tcp_engine{engine="portable"}') ?? -1,
  };
}

/** Sends `data` through `port` to an echo and returns what comes back. */
async function tcpEcho(port: number, data: Uint8Array): Promise<Uint8Array> {
  using conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const reading = readAll(conn);
  await writeAll(conn, data);
  await conn.closeWrite();
  return await reading;
}

Deno.test("TCP goes through the splice engine by default: logged at start, exported as a metric", async () => {
  await using echo = startTcpEcho();
  const tcpPort = freePort();
  await using config = await tempConfig([
    { name: "db", tcp: { listenPort: tcpPort, targetPort: echo.port } },
  ]);
  await using program = await startProgram([`--config=${config.path}`]);
  await waitReady(program);
  await program.waitForLog(
    "the engine",
    (line) => line.message === "TCP engine: splice (1 thread(s))",
  );
  assert.deepEqual(await tcpEngineMetric(program), { splice: 1, portable: 0 });
  const data = patternBytes(3 << 20, 8);
  assert.deepEqual(await tcpEcho(tcpPort, data), data);
});

Deno.test("without FFI permission, --tcp-engine=auto falls back to the portable engine with a warning", async () => {
  await using echo = startTcpEcho();
  const tcpPort = freePort();
  await using config = await tempConfig([
    { name: "db", tcp: { listenPort: tcpPort, targetPort: echo.port } },
  ]);
  const flags = (await taskPermissionFlags()).filter((flag) => flag !== "--allow-ffi");
  await using program = await startProgram([`--config=${config.path}`], { flags });
  await waitReady(program);
  const warning = await program.waitForLog(
    "the fallback warning",
    (line) => line.level === "WARNING" && /splice TCP engine cannot run/.test(line.message),
  );
  assert.match(warning.message, /FFI is not permitted/);
  assert.deepEqual(await tcpEngineMetric(program), { splice: 0, portable: 1 });
  const data = patternBytes(100_000, 9);
  assert.deepEqual(await tcpEcho(tcpPort, data), data);
});

Deno.test("--tcp-engine=splice without FFI permission stops with a clear error", async () => {
  await using config = await tempConfig([]);
  const flags = (await taskPermissionFlags()).filter((flag) => flag !== "--allow-ffi");
  const result = await runProgram([
    `--config=${config.path}`,
    "--tcp-engine=splice",
    "--metrics-bind-address=0",
    "--health-probe-bind-address=0",
  ], flags);
  assert.equal(result.code, 1, result.stderr);
  assert.match(result.stderr, /splice TCP engine cannot run: FFI is not permitted/);
});
