/**
 * Runs the real program (`main.ts`) as a subprocess with exactly the permission flags of the
 * `compile` task in deno.json, reads its JSON log lines, and scrapes its `/metrics`.
 * @module
 */
import { cleanEnv } from "./clean_env.ts";
import { repoRoot } from "./kustomize.ts";
import { waitUntil } from "./wait.ts";

/**
 * The `--allow-*`/`--deny-*` flags of a deno.json task (default `compile`: the program's own), and
 * its `--v8-flags` (the runtime the binary embeds gets them too).
 */
export async function taskPermissionFlags(task = "compile"): Promise<string[]> {
  const command = await taskCommand(task);
  const flags = command.split(/\s+/).filter((part) => /^--((allow|deny)-|v8-flags=)/.test(part));
  if (flags.length === 0) throw new Error(`No permission flags in the ${task} task: ${command}`);
  return flags;
}

async function taskCommand(task: string): Promise<string> {
  const config = JSON.parse(await Deno.readTextFile(`${repoRoot}deno.json`)) as {
    tasks: Record<string, string>;
  };
  const command = config.tasks[task];
  if (command === undefined) throw new Error(`deno.json has no ${task} task`);
  return command;
}

/** A port that was free on 127.0.0.1 for both TCP and UDP a moment ago. */
export function freePort(): number {
  for (let attempt = 0; attempt < 50; attempt++) {
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = listener.addr.port;
    listener.close();
    try {
      Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port }).close();
      return port;
    } catch {
      // Taken for UDP: try another.
    }
  }
  throw new Error("No port free for both TCP and UDP");
}

/** The `deno bundle` steps of the `compile` task: source entry and output file, both repo-relative. */
export interface BundleStep {
  readonly entry: string;
  readonly output: string;
  /** The `deno bundle` arguments after `deno`. */
  readonly args: readonly string[];
}

/**
 * Reads the `compile` task: its bundle steps, the bundle that `deno compile` starts, and the
 * binary it writes (repo-relative).
 * @throws {Error} when the task compiles something it did not bundle, or leaves a bundle out.
 */
export async function compileTaskSteps(): Promise<
  { bundles: BundleStep[]; compiled: string; binary: string }
> {
  const steps = (await taskCommand("compile")).split("&&").map((step) => step.trim().split(/\s+/));
  const compile = steps.find((words) => words.includes("compile")) ?? [];
  const bundles = steps.filter((words) => words.includes("bundle")).map((words) => {
    const args = words.slice(words.indexOf("bundle"));
    return { args, output: args[args.indexOf("-o") + 1] ?? "", entry: args.at(-1) ?? "" };
  });
  const compiled = compile.at(-1) ?? "";
  if (!bundles.some((bundle) => bundle.output === compiled)) {
    throw new Error(`The compile task compiles ${compiled}, which none of its bundle steps builds`);
  }
  for (const { output } of bundles) {
    if (output !== compiled && compile[compile.indexOf(output) - 1] !== "--include") {
      throw new Error(`The compile task bundles ${output} but does not --include it`);
    }
  }
  return { bundles, compiled, binary: compile[compile.indexOf("-o") + 1] ?? "" };
}

/**
 * Runs the bundle steps of the `compile` task with their outputs in `dir` instead: the JavaScript
 * that `deno compile` embeds, i.e. exactly the code the image runs. Put `dir` inside the
 * repository so that deno.json applies (its `unstable` list), as it does when compiling.
 * @returns the program's bundle, the module the compiled binary starts.
 */
export async function bundleProgram(dir: string): Promise<string> {
  const { bundles, compiled } = await compileTaskSteps();
  const inDir = (path: string) => `${dir}/${path.slice(path.lastIndexOf("/") + 1)}`;
  for (const { args, output } of bundles) {
    const relocated = args.map((arg) => arg === output ? inDir(output) : arg);
    const result = await new Deno.Command(Deno.execPath(), {
      args: relocated,
      cwd: repoRoot,
      env: { DENO_NO_UPDATE_CHECK: "1", NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!result.success) {
      const why = new TextDecoder().decode(result.stderr);
      throw new Error(`deno ${relocated.join(" ")} failed: ${why}`);
    }
  }
  return inDir(compiled);
}

/** Where and how the program runs (see {@linkcode startProgram}). */
export interface ProgramOptions {
  /** The module to run. @default main.ts */
  readonly entry?: string;
  /**
   * A hosts file the program sees as `/etc/hosts` (in a private mount namespace: needs root), so
   * that cluster DNS names such as `svc.ns.svc.cluster.local` resolve to loopback addresses.
   */
  readonly hostsFile?: string;
  /** A command that runs the program, e.g. `["prlimit", "--nofile=200:200", "--"]`. */
  readonly wrapper?: readonly string[];
  /** Keep the program's own metrics defaults (HTTPS and token review in operator mode). */
  readonly metricsDefaults?: boolean;
  /**
   * Run through `deno task <task>` (its flags first, `args` after them win) in a process group of
   * its own, with JSON logs, instead of `deno run` with the compile task's permissions
   * ({@linkcode startProgram} only; `entry` and `hostsFile` do not apply).
   */
  readonly task?: string;
  /** Permission flags instead of the compile task's (to test with fewer; not with `task`). */
  readonly flags?: readonly string[];
}

/**
 * `deno run` of the program with `flags` (use {@linkcode taskPermissionFlags}) in a clean
 * environment, from the repository root.
 */
function programCommand(
  args: readonly string[],
  flags: readonly string[],
  options: ProgramOptions = {},
): Deno.Command {
  const deno = [
    ...(options.wrapper ?? []),
    Deno.execPath(),
    "run",
    ...flags,
    options.entry ?? `${repoRoot}main.ts`,
    ...args,
  ];
  const [command = "", ...commandArgs] = options.hostsFile === undefined ? deno : [
    "unshare",
    "--mount",
    "--",
    "sh",
    "-c",
    'mount --bind "$0" /etc/hosts && exec "$@"',
    options.hostsFile,
    ...deno,
  ];
  return new Deno.Command(command, {
    args: commandArgs,
    cwd: repoRoot,
    env: cleanEnv({ NO_COLOR: "1" }),
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  });
}

/**
 * `deno task <task> ...args` from the repository root in a clean environment, in a process group of
 * its own (`setsid`), as a terminal runs a command: the group's id is the child's pid.
 */
function taskProcessCommand(task: string, args: readonly string[]): Deno.Command {
  const denoDir = Deno.execPath().slice(0, Deno.execPath().lastIndexOf("/"));
  return new Deno.Command("setsid", {
    args: [Deno.execPath(), "task", task, ...args],
    cwd: repoRoot,
    env: cleanEnv({ NO_COLOR: "1", PATH: `${denoDir}:/usr/bin:/bin` }),
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  });
}

/**
 * Runs the program to completion (for `--help`, bad flags, bad configs), with the compile task's
 * permission flags unless `flags` are given.
 */
export async function runProgram(
  args: readonly string[],
  flags?: readonly string[],
): Promise<{ code: number; stdout: string; stderr: string }> {
  const output = await programCommand(args, flags ?? await taskPermissionFlags()).output();
  const decoder = new TextDecoder();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

/** One JSON log line of the program. */
export type LogLine = Record<string, unknown> & { message: string; level: string };

/** A running program. */
export interface ProgramProcess extends AsyncDisposable {
  /** Process id (of `deno`, or of the task's shell with `task`). */
  readonly pid: number;
  /** Port of `/metrics` (bound to 127.0.0.1:0 unless `args` say otherwise; 0 when disabled). */
  readonly metricsPort: number;
  /** Port of `/healthz` and `/readyz` (0 when disabled). */
  readonly probesPort: number;
  /** Log lines so far. */
  logs(): LogLine[];
  /** Everything written so far, for failure messages. */
  output(): string;
  /** Waits (bounded) for a log line matching `match`, and returns it. */
  waitForLog(what: string, match: (line: LogLine) => boolean, timeoutMs?: number): Promise<LogLine>;
  /** Sends a signal (ignored when the process is gone). */
  signal(name: Deno.Signal): void;
  /** Sends a signal to the process group, as a terminal does on Ctrl-C (started with `task`). */
  signalGroup(name: Deno.Signal): void;
  /** The exit code, once the process has exited. */
  readonly exited: Promise<number>;
  /** GET on the probe port: status and body. */
  probe(path: "/readyz" | "/healthz"): Promise<{ status: number; body: string }>;
  /** Scrapes `/metrics`. */
  scrape(): Promise<Exposition>;
}

/**
 * Starts `main.ts` with `args` on loopback: forwarders on 127.0.0.1, metrics (plain HTTP unless
 * `metricsDefaults`) and probes on 127.0.0.1:0 (read back from the JSON log), unless `args` set
 * those flags. Resolves once both servers listen. Disposing kills the process (its group, with
 * `task`) if it still runs.
 */
export async function startProgram(
  args: readonly string[],
  options: ProgramOptions = {},
): Promise<ProgramProcess> {
  // JSON logs (read back below) and plain /metrics (scraped below) unless `args` ask otherwise: the
  // program's own defaults are the Go operator's (text logs; HTTPS and token review in operator mode).
  const given = (name: string) =>
    args.some((arg) =>
      arg === name || arg.startsWith(`${name}=`) || arg === `--no-${name.slice(2)}`
    );
  const defaults = [
    "--listen-address=127.0.0.1",
    "--metrics-bind-address=127.0.0.1:0",
    "--health-probe-bind-address=127.0.0.1:0",
    "--log-format=json",
    ...options.metricsDefaults ? [] : ["--metrics-secure=false", "--metrics-authed=false"],
    ...(options.task === undefined ? [] : ["--zap-encoder=json"]),
  ].filter((flag) => !given(flag.slice(0, flag.indexOf("="))));
  const child = options.task === undefined
    ? programCommand([...defaults, ...args], options.flags ?? await taskPermissionFlags(), options)
      .spawn()
    : taskProcessCommand(options.task, [...defaults, ...args]).spawn();
  let text = "";
  const lines: LogLine[] = [];
  const collect = async (stream: ReadableStream<Uint8Array>, parse: boolean) => {
    let partial = "";
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      text += chunk;
      if (!parse) continue;
      const parts = (partial + chunk).split("\n");
      partial = parts.pop() ?? "";
      for (const part of parts) {
        try {
          lines.push(JSON.parse(part) as LogLine);
        } catch {
          // Not a log line (e.g. a Deno warning): kept in output() only.
        }
      }
    }
  };
  const collecting = Promise.all([collect(child.stdout, false), collect(child.stderr, true)]);
  const exited = child.status.then(async (status) => {
    await collecting;
    return status.code;
  });
  let gone = false;
  exited.then(() => gone = true, () => gone = true);
  const signal = (name: Deno.Signal, group = false) => {
    try {
      if (group) Deno.kill(-child.pid, name);
      else child.kill(name);
    } catch {
      // Already gone.
    }
  };
  const kill = () => signal("SIGKILL", options.task !== undefined);
  const waitForLog = async (
    what: string,
    match: (line: LogLine) => boolean,
    timeoutMs = 30_000,
  ) => {
    try {
      await waitUntil(what, () => {
        if (lines.some(match)) return true;
        if (gone) throw new Error(`The program exited before ${what}`);
        return false;
      }, { timeoutMs });
    } catch (error) {
      throw new Error(`${error}\n--- program output ---\n${text.slice(-6000)}`);
    }
    return lines.find(match) as LogLine;
  };
  const portOf = async (server: string, flag: string) => {
    if (args.includes(`--${flag}=0`)) return 0; // Disabled: nothing to wait for.
    const line = await waitForLog(`the ${server} server`, (l) => l["server"] === server);
    return line["port"] as number;
  };
  let metricsPort = 0;
  let probesPort = 0;
  try {
    [metricsPort, probesPort] = await Promise.all([
      portOf("metrics", "metrics-bind-address"),
      portOf("probes", "health-probe-bind-address"),
    ]);
  } catch (error) {
    kill();
    await exited;
    throw error;
  }
  const get = async (port: number, path: string) => {
    const response = await fetch(`http://127.0.0.1:${port}${path}`);
    return { status: response.status, body: await response.text() };
  };
  return {
    pid: child.pid,
    metricsPort,
    probesPort,
    logs: () => [...lines],
    output: () => text,
    waitForLog,
    signal: (name) => signal(name),
    signalGroup: (name) => signal(name, true),
    exited,
    probe: (path) => get(probesPort, path),
    scrape: async () => parseExposition((await get(metricsPort, "/metrics")).body),
    [Symbol.asyncDispose]: async () => {
      kill();
      await exited;
    },
  };
}

/** Parsed Prometheus text: samples by `name{labels}` (labels as printed) and types by name. */
export interface Exposition {
  readonly series: ReadonlyMap<string, number>;
  readonly types: ReadonlyMap<string, string>;
}

/** Parses the Prometheus text exposition format (as prom-client prints it). */
export function parseExposition(text: string): Exposition {
  const series = new Map<string, number>();
  const types = new Map<string, string>();
  for (const line of text.split("\n")) {
    const type = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (type) types.set(type[1] ?? "", type[2] ?? "");
    const sample = /^([^#\s]\S*) (\S+)$/.exec(line);
    if (sample) series.set(sample[1] ?? "", Number(sample[2]));
  }
  return { series, types };
}

/**
 * Waits (bounded) until every series in `expected` has its value; the error names each series
 * that differs and its last value.
 */
export async function waitForSeries(
  program: Pick<ProgramProcess, "scrape">,
  expected: Readonly<Record<string, number>>,
  timeoutMs = 30_000,
): Promise<void> {
  let last = new Map<string, number>();
  try {
    await waitUntil("the expected metric values", async () => {
      last = new Map((await program.scrape()).series);
      return Object.entries(expected).every(([key, value]) => last.get(key) === value);
    }, { timeoutMs });
  } catch (error) {
    const wrong = Object.entries(expected).filter(([key, value]) => last.get(key) !== value);
    throw new Error(
      `${error}: ${wrong.map(([key, value]) => `${key}=${last.get(key)} (want ${value})`)}`,
    );
  }
}
