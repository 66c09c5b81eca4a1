/**
 * Child processes of the benchmark: each runs in its own process group (via `setsid`) so that stopping
 * it also stops whatever it forked (socat, nginx workers). A {@linkcode ProcessGroup} owns them all and
 * stops every one on `close()`, which the harness calls on success, failure and Ctrl-C.
 * @module
 */

/** How long a process gets after SIGTERM before its whole group is killed. */
const STOP_GRACE_MS = 3000;
/** Bytes of stderr kept per process for error messages. */
const STDERR_TAIL_BYTES = 4096;

import { groupMembers } from "./procfs.ts";

/** Environment for every child: never let a `deno` child look up its update server. */
const CHILD_ENV = { DENO_NO_UPDATE_CHECK: "1" };

function killGroup(pid: number, signal: Deno.Signal): void {
  try {
    Deno.kill(-pid, signal);
  } catch {
    // the group is already gone
  }
}

/**
 * Members of group `pgid` still alive. Without permission to list /proc (tests run without
 * --allow-all) the whole group is signalled instead, and none are returned.
 */
function survivors(pgid: number): number[] {
  try {
    return groupMembers(pgid);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotCapable)) throw error;
    killGroup(pgid, "SIGKILL");
    return [];
  }
}

/** Splits a byte stream into lines. */
class LineReader {
  readonly #reader: ReadableStreamDefaultReader<string>;
  #buffered = "";

  constructor(stream: ReadableStream<Uint8Array>) {
    this.#reader = stream.pipeThrough(new TextDecoderStream()).getReader();
  }

  /** The next line without its newline, or `undefined` at end of stream. */
  async next(): Promise<string | undefined> {
    for (;;) {
      const end = this.#buffered.indexOf("\n");
      if (end >= 0) {
        const line = this.#buffered.slice(0, end);
        this.#buffered = this.#buffered.slice(end + 1);
        return line;
      }
      const { value, done } = await this.#reader.read();
      if (done) {
        const rest = this.#buffered;
        this.#buffered = "";
        return rest === "" ? undefined : rest;
      }
      this.#buffered += value;
    }
  }

  /** Everything until the end of the stream. */
  async rest(): Promise<string> {
    let text = this.#buffered;
    this.#buffered = "";
    for (;;) {
      const { value, done } = await this.#reader.read();
      if (done) return text;
      text += value;
    }
  }

  /** Stops reading. */
  async cancel(): Promise<void> {
    await this.#reader.cancel().catch(() => {});
  }
}

/** What to do with a child's standard streams. */
export interface SpawnOptions {
  /** Pipe stdin so the harness can write to it. @default false */
  readonly stdin?: boolean;
  /** Read stdout line by line with `readLine()`/`readAll()`; otherwise discarded. @default false */
  readonly stdout?: boolean;
}

/** One child process in its own process group. */
export class ManagedProcess {
  readonly name: string;
  readonly pid: number;
  readonly #child: Deno.ChildProcess;
  readonly #stdout: LineReader | undefined;
  readonly #stderrTask: Promise<void>;
  readonly #hasStdin: boolean;
  #exited = false;
  #stderrTail = "";
  #stopped: Promise<Deno.CommandStatus> | undefined;

  constructor(name: string, command: string, args: readonly string[], options: SpawnOptions) {
    this.name = name;
    // setsid execs the command in the same process (it only forks when already a group leader).
    this.#child = new Deno.Command("setsid", {
      args: [command, ...args],
      env: CHILD_ENV,
      stdin: options.stdin ? "piped" : "null",
      stdout: options.stdout ? "piped" : "null",
      stderr: "piped",
    }).spawn();
    this.pid = this.#child.pid;
    this.#hasStdin = options.stdin ?? false;
    this.#child.status.then(() => this.#exited = true);
    this.#stdout = options.stdout ? new LineReader(this.#child.stdout) : undefined;
    this.#stderrTask = this.#keepStderrTail(new LineReader(this.#child.stderr));
  }

  async #keepStderrTail(reader: LineReader): Promise<void> {
    for (let line = await reader.next(); line !== undefined; line = await reader.next()) {
      this.#stderrTail = (this.#stderrTail + line + "\n").slice(-STDERR_TAIL_BYTES);
    }
  }

  /** The last lines the process wrote to stderr. */
  get stderrTail(): string {
    return this.#stderrTail.trim();
  }

  /** Exit status once the process ended. */
  get status(): Promise<Deno.CommandStatus> {
    return this.#child.status;
  }

  /** The next stdout line, failing after `timeoutMs` or when the process exits first. */
  async readLine(timeoutMs: number): Promise<string> {
    const reader = this.#requireStdout();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`${this.name}: no output within ${timeoutMs} ms`)),
        timeoutMs,
      );
    });
    try {
      const line = await Promise.race([reader.next(), timeout]);
      if (line === undefined) {
        const status = await this.#child.status;
        throw new Error(`${this.name} exited with code ${status.code}: ${this.stderrTail}`);
      }
      return line;
    } finally {
      clearTimeout(timer);
    }
  }

  /** All of stdout until the process exits (killing its group after `timeoutMs`), and the status. */
  async readAll(timeoutMs: number): Promise<{ stdout: string; status: Deno.CommandStatus }> {
    const reader = this.#requireStdout();
    const timer = setTimeout(() => this.#signal("SIGKILL"), timeoutMs);
    try {
      const stdout = await reader.rest();
      const status = await this.#child.status;
      await this.#stderrTask;
      return { stdout, status };
    } finally {
      clearTimeout(timer);
    }
  }

  /** Writes one line to stdin. */
  async writeLine(line: string): Promise<void> {
    const writer = this.#child.stdin.getWriter();
    try {
      await writer.write(new TextEncoder().encode(line + "\n"));
    } finally {
      writer.releaseLock();
    }
  }

  #requireStdout(): LineReader {
    if (this.#stdout === undefined) throw new Error(`${this.name}: stdout is not piped`);
    return this.#stdout;
  }

  /** SIGTERM to the group, SIGKILL after a grace period; resolves when the process has exited. */
  stop(): Promise<Deno.CommandStatus> {
    this.#stopped ??= this.#stop();
    return this.#stopped;
  }

  /** Signals the group; a no-op once the leader was reaped (its pid may be reused). */
  #signal(signal: Deno.Signal): void {
    if (!this.#exited) killGroup(this.pid, signal);
  }

  async #stop(): Promise<Deno.CommandStatus> {
    this.#signal("SIGTERM");
    const timer = setTimeout(() => this.#signal("SIGKILL"), STOP_GRACE_MS);
    try {
      if (this.#hasStdin) await this.#child.stdin.close().catch(() => {});
      const status = await this.#child.status;
      // Forks that outlived the leader (one caught mid-fork misses the group signal); found by
      // their group id, so no unrelated process is signalled even if the leader's pid is reused.
      for (const pid of survivors(this.pid)) {
        try {
          Deno.kill(pid, "SIGKILL");
        } catch {
          // exited meanwhile
        }
      }
      await this.#stdout?.cancel();
      await this.#stderrTask;
      return status;
    } finally {
      clearTimeout(timer);
    }
  }
}

/** Owner of every child process the harness starts. */
export class ProcessGroup {
  readonly #processes = new Set<ManagedProcess>();
  #closed = false;

  /**
   * Starts `command` in its own process group.
   * @throws {Error} after `close()`, so an interrupted run starts nothing new.
   */
  spawn(
    name: string,
    command: string,
    args: readonly string[],
    options: SpawnOptions = {},
  ): ManagedProcess {
    if (this.#closed) throw new Error(`Not starting ${name}: the benchmark is stopping`);
    const process = new ManagedProcess(name, command, args, options);
    this.#processes.add(process);
    return process;
  }

  /** Stops one process and forgets it. */
  async stop(process: ManagedProcess): Promise<void> {
    await process.stop();
    this.#processes.delete(process);
  }

  /** Stops every process still running and refuses to start new ones. */
  async close(): Promise<void> {
    this.#closed = true;
    await Promise.all([...this.#processes].map((p) => this.stop(p)));
  }
}
