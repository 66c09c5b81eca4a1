/**
 * `undying-proxy`: forwards TCP and UDP ports to targets, one `UnDyingProxy` object each, read from a
 * YAML file (`--config`) or, as a Kubernetes operator, from the cluster. Wiring only: parse flags,
 * build the parts, start them, wait for a shutdown signal, drain, set the exit code.
 * @module
 */
import { getLogger } from "@logtape/logtape";
import denoConfig from "./deno.json" with { type: "json" };
import { checkConfig } from "./lib/check_config.ts";
import { FlagError, type Options, parseCommandLine, usage } from "./lib/cli.ts";
import { revokeFfi } from "./lib/ffi/ffi_worker.ts";
import { SystemWorker } from "./lib/ffi/system_worker_client.ts";
import { parseConfigOffThread } from "./lib/config_parse.ts";
import { FileSource } from "./lib/file_source.ts";
import { runConvert } from "./lib/ingress_nginx/convert_command.ts";
import { openOperator } from "./lib/operator/open_operator.ts";
import { OPERATOR_ERROR_TYPES } from "./lib/operator/operator_errors.ts";
import { apiServerAddresses } from "./lib/kube/api_server_addresses.ts";
import {
  operatorTargetDefaults,
  type TargetPolicyOptions,
} from "./lib/forward/policy/target_policy.ts";
import { Supervisor } from "./lib/forward/supervisor.ts";
import { metricsTls, startHttpServer } from "./lib/http_server.ts";
import { droppedAccessRecords, flushLogs, setupLogging } from "./lib/logging.ts";
import { openMetricsAuthorizer } from "./lib/metrics_auth.ts";
import { ProgramMetrics } from "./lib/metrics.ts";
import { ControllerMetrics } from "./lib/controller_metrics.ts";
import { registerProcessMetrics } from "./lib/process_metrics.ts";
import { probeHandler, Readiness } from "./lib/probes.ts";
import { registerLimitMetrics } from "./lib/limit_metrics.ts";
import { resourceLimits } from "./lib/resource_limits.ts";
import { ShutdownSignals } from "./lib/shutdown.ts";
import type { DesiredStateSource } from "./lib/source.ts";
import { errorMessage } from "./lib/util/error_message.ts";

const VERSION: string = denoConfig.version;
const log = getLogger(["undying-proxy"]);

/**
 * Exit codes: 0 after a clean shutdown (or a valid file with `--check-config`), 1 when the program
 * cannot run (or an invalid file), 2 for a bad command line, 3 after a shutdown that had to cut TCP
 * connections still open when the drain grace ended.
 */
async function main(args: readonly string[]): Promise<number> {
  if (args[0] === "convert") {
    return await runConvert(args.slice(1), {
      stdout: (text) => writeText(Deno.stdout, text),
      stderr: (text) => writeText(Deno.stderr, text),
    });
  }
  let command;
  try {
    command = parseCommandLine(args);
  } catch (error) {
    if (!(error instanceof FlagError)) throw error;
    writeLine(Deno.stderr, `undying-proxy: ${error.message}`);
    return 2;
  }
  if (command.kind === "help") writeLine(Deno.stdout, usage(VERSION));
  if (command.kind === "version") writeLine(Deno.stdout, `undying-proxy ${VERSION}`);
  if (command.kind !== "run") return 0;
  if (command.options.checkConfig && command.options.config !== undefined) {
    const check = await checkConfig(command.options.config, command.options.configMaxBytes);
    writeLine(check.valid ? Deno.stdout : Deno.stderr, check.lines.join("\n"));
    return check.valid ? 0 : 1;
  }
  return await run(command.options, command.warnings);
}

async function run(options: Options, warnings: readonly string[]): Promise<number> {
  // --zap-devel (default true, as in the Go operator) already chose the defaults of these.
  await setupLogging({
    level: options.zapLogLevel ?? options.logLevel,
    format: options.zapEncoder ?? options.logFormat,
    stacktraceLevel: options.zapStacktraceLevel,
  });
  for (const warning of warnings) log.warn("Flag {warning}", { warning });
  using signals = new ShutdownSignals();
  using _system = await startSystemWorker();
  const targetPolicy = await targetPolicyOf(options);
  log.info("Targets: denied {denied}; allowed {allowed}", {
    denied: targetPolicy.deniedCidrs?.join(", ") || "none",
    allowed: targetPolicy.allowedCidrs?.join(", ") || "every address not denied",
  });
  const limits = await resourceLimits(options.maxOpenSockets);
  await using supervisor = new Supervisor({
    listenAddress: options.listenAddress,
    dialTimeoutMs: options.dialTimeoutMs,
    drainGraceMs: options.drainGracePeriodMs,
    tcpIdleTimeoutMs: options.tcpIdleTimeoutMs,
    udpMaxSessions: options.udpMaxSessions,
    udpBufferBytes: options.udpBufferBytes,
    maxOpenSockets: limits.maxOpenSockets,
    udpBufferBudgetBytes: options.udpBufferBudgetBytes,
    workers: options.workers,
    targetPolicy,
    defaultSourceRanges: options.defaultSourceRanges,
    acceptProxyProtocol: options.acceptProxyProtocol,
    proxyHeaderTimeoutMs: options.proxyHeaderTimeoutMs,
    accessLog: options.accessLog,
    accessLogSampleRate: options.accessLogSampleRate,
    udpEngine: options.udpEngine,
    udpBusyPollUs: options.udpBusyPollUs,
    tcpEngine: options.tcpEngine,
  });
  const metrics = new ProgramMetrics(supervisor, {
    version: VERSION,
    droppedAccessRecords,
    configFile: options.config !== undefined,
  });
  try {
    const udpEngine = await supervisor.udpEngine();
    const busyPolls = options.udpBusyPollUs > 0 && udpEngine !== "portable";
    log.info("UDP engine: {engine} ({threads} thread(s){busyPoll})", {
      engine: udpEngine,
      threads: udpEngine === "portable" ? 1 : options.workers,
      busyPoll: busyPolls ? `, busy polling ${options.udpBusyPollUs} µs after traffic` : "",
    });
    metrics.recordUdpEngine(udpEngine);
    if (options.udpBusyPollUs > 0 && udpEngine === "portable") {
      log.warn("--udp-busy-poll applies to the batched UDP engines only; the portable one sleeps");
    }
    const tcpEngine = await supervisor.tcpEngine();
    log.info("TCP engine: {engine} ({threads} thread(s))", {
      engine: tcpEngine,
      threads: options.workers,
    });
    metrics.recordTcpEngine(tcpEngine);
  } catch (error) {
    log.fatal("Cannot start: {reason}", { reason: errorMessage(error), error });
    return 1;
  }
  // Before the process metrics: the fd metrics read by the system worker take the standard names.
  using _limitMetrics = registerLimitMetrics(metrics.registry, {
    fdLimit: limits.fdLimit,
    maxOpenSockets: limits.maxOpenSockets,
    budgets: supervisor.budgets,
    statuses: () => supervisor.statuses(),
  });
  // Only the system worker and the engine threads (started above, with their own permissions)
  // keep FFI; this thread opened no library.
  dropFfi();
  registerProcessMetrics(metrics.registry);
  const readiness = new Readiness(() => supervisor.statuses());
  await using servers = new AsyncDisposableStack();
  let source: DesiredStateSource;
  try {
    source = await openSource(options, { supervisor, metrics });
    await startServers(options, { metrics, readiness, servers });
  } catch (error) {
    log.fatal("Cannot start: {reason}", { reason: errorMessage(error), error });
    return 1;
  }

  const stopSource = new AbortController();
  const unsubscribe = supervisor.onChange(() => logFirstReady(readiness));
  const sourceDone = source.run((desired) => {
    supervisor.apply(desired);
    readiness.markApplied();
    logFirstReady(readiness);
  }, stopSource.signal);
  log.info("undying-proxy {version} running from {source}", {
    version: VERSION,
    source: source.description,
  });

  const sourceEnded = sourceDone.then(
    () => new Error(`${source.description} stopped delivering its configuration`),
    (error: unknown) => error,
  );
  const reason = await Promise.race([aborted(signals.signal), sourceEnded]);
  let exitCode = 0;
  if (typeof reason === "string") {
    log.info("Received {signal}: not ready any more, draining for up to {graceMs} ms", {
      signal: reason,
      graceMs: options.drainGracePeriodMs,
    });
  } else {
    log.fatal("Stopping: {reason}", { reason: errorMessage(reason), error: reason });
    exitCode = 1;
  }
  readiness.markShuttingDown();
  metrics.shuttingDown.set(1);
  unsubscribe();
  stopSource.abort();
  await sourceEnded;
  const forcedBefore = supervisor.forcedCloses;
  await supervisor.close({ graceMs: options.drainGracePeriodMs });
  const forced = supervisor.forcedCloses - forcedBefore;
  if (forced > 0) {
    log.error(
      "Stopped, but cut {count} TCP connection(s) still open after the drain grace period " +
        "of {graceMs} ms (exit code 3)",
      { count: forced, graceMs: options.drainGracePeriodMs },
    );
    return exitCode === 0 ? 3 : exitCode;
  }
  log.info("Stopped");
  await flushLogs();
  return exitCode;
}

/**
 * The target rules: `--allowed-target-cidrs` and `--denied-target-cidrs`; without the latter, file
 * mode denies nothing and operator mode denies loopback, unspecified and link-local addresses and
 * the API server's own.
 */
async function targetPolicyOf(options: Options): Promise<TargetPolicyOptions> {
  const allowedCidrs = options.allowedTargetCidrs;
  if (options.deniedTargetCidrs !== undefined || options.config !== undefined) {
    return { allowedCidrs, deniedCidrs: options.deniedTargetCidrs ?? [] };
  }
  const apiServer = await apiServerAddresses({ kubeconfig: options.kubeconfig });
  return { allowedCidrs, ...operatorTargetDefaults(apiServer) };
}

/** The source of desired state: the `--config` file, else the Kubernetes operator. */
function openSource(
  options: Options,
  parts: { readonly supervisor: Supervisor; readonly metrics: ProgramMetrics },
): Promise<DesiredStateSource> {
  if (options.config !== undefined) {
    return FileSource.open(options.config, {
      maxBytes: options.configMaxBytes,
      parse: parseConfigOffThread,
      allowEmpty: options.configAllowEmpty,
      onLoad: (result) => parts.metrics.recordReload(result),
      onWatchLost: () => parts.metrics.configWatchLost?.inc(),
    });
  }
  // Operator mode: UnDyingProxy objects from the cluster (lib/operator/operator.ts). Every error type
  // starts at 0 so that rate() and alerts work from the first error on.
  for (const type of OPERATOR_ERROR_TYPES) parts.metrics.operatorErrors.inc({ type }, 0);
  const controller = new ControllerMetrics(parts.metrics.registry);
  return openOperator(options, {
    view: parts.supervisor,
    countError: (type) => parts.metrics.operatorErrors.inc({ type }),
    observer: controller,
    onRequest: (result) => controller.request(result),
  });
}

/** Starts the metrics and probe servers that are not disabled; `servers` closes them at exit. */
async function startServers(
  options: Options,
  parts: { metrics: ProgramMetrics; readiness: Readiness; servers: AsyncDisposableStack },
): Promise<void> {
  if (options.metricsBindAddress !== null) {
    const tls = options.metricsSecure ? await metricsTls(options) : undefined;
    const handler = (request: Request) => parts.metrics.handle(request);
    // --metrics-authed: TokenReview + SubjectAccessReview per scrape (operator mode only).
    if (options.metricsAuthed && !options.metricsSecure) {
      log.warn("--metrics-authed without --metrics-secure: scrapers send their tokens unencrypted");
    }
    const authorizer = options.metricsAuthed
      ? parts.servers.use(await openMetricsAuthorizer(options))
      : undefined;
    parts.servers.use(startHttpServer({
      name: "metrics",
      address: options.metricsBindAddress,
      handler: authorizer?.protect(handler) ?? handler,
      ...(tls !== undefined && { tls }),
    }));
  }
  if (options.healthProbeBindAddress !== null) {
    parts.servers.use(startHttpServer({
      name: "probes",
      address: options.healthProbeBindAddress,
      handler: probeHandler(parts.readiness),
    }));
  }
}

/**
 * The system worker (libc calls for the fd limit and count, /proc files, TCP resets), or nothing
 * when FFI is not permitted or libc cannot be opened (logged; those fall back: no fd metrics, FIN
 * instead of RST).
 */
async function startSystemWorker(): Promise<Disposable | undefined> {
  if (Deno.permissions.querySync({ name: "ffi" }).state !== "granted") return undefined;
  try {
    return await SystemWorker.start();
  } catch (error) {
    log.warn("No system worker ({reason}): no fd metrics, aborts end with FIN, not RST", {
      reason: errorMessage(error),
    });
    return undefined;
  }
}

/** Revokes FFI on this thread if it was granted (the FFI workers keep theirs). */
function dropFfi(): void {
  if (Deno.permissions.querySync({ name: "ffi" }).state === "granted") revokeFfi();
}

function logFirstReady(readiness: Readiness): void {
  if (!readiness.becameReady()) return;
  log.info("Ready: the configuration is applied and every listener that can bind is listening");
}

function aborted(signal: AbortSignal): Promise<string> {
  return new Promise((resolve) => {
    if (signal.aborted) resolve(String(signal.reason));
    else signal.addEventListener("abort", () => resolve(String(signal.reason)), { once: true });
  });
}

function writeLine(stream: typeof Deno.stdout | typeof Deno.stderr, text: string): void {
  writeText(stream, `${text}\n`);
}

function writeText(stream: typeof Deno.stdout | typeof Deno.stderr, text: string): void {
  const bytes = new TextEncoder().encode(text);
  let written = 0;
  while (written < bytes.length) written += stream.writeSync(bytes.subarray(written));
}

if (import.meta.main) Deno.exit(await main(Deno.args));
