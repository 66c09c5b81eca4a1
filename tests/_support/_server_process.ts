/**
 * Long-running server processes (etcd, kube-apiserver) that never outlive the test process:
 * output goes to a log file, the pid to a pid file, and a watchdog shell kills every pid file's
 * process when the Deno process disappears without cleaning up (SIGKILL, crash). A normal exit,
 * SIGINT or SIGTERM kills them synchronously from here.
 */

/** A spawned server whose output is appended to `logPath`. */
export class ServerProcess {
  readonly #child: Deno.ChildProcess;
  readonly #pidFile: string;
  readonly #status: Promise<Deno.CommandStatus>;
  #exited = false;

  private constructor(child: Deno.ChildProcess, pidFile: string, readonly logPath: string) {
    this.#child = child;
    this.#pidFile = pidFile;
    this.#status = child.status.then((status) => {
      this.#exited = true;
      return status;
    });
  }

  /** Starts `program args` with output appended to `<dir>/<name>.log` and its pid in `<dir>/<name>.pid`. */
  static spawn(name: string, program: string, args: readonly string[], dir: string): ServerProcess {
    const logPath = `${dir}/${name}.log`;
    // `exec` keeps the pid: the pid we record is the server's own, not a shell's.
    const child = new Deno.Command("sh", {
      args: ["-c", 'exec "$0" "$@" >>"$SERVER_LOG" 2>&1', program, ...args],
      env: { SERVER_LOG: logPath },
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    child.unref();
    const pidFile = `${dir}/${name}.pid`;
    Deno.writeTextFileSync(pidFile, `${child.pid}\n`);
    return new ServerProcess(child, pidFile, logPath);
  }

  /** The server's process id. */
  get pid(): number {
    return this.#child.pid;
  }

  /** True once the process has exited. */
  get exited(): boolean {
    return this.#exited;
  }

  /** Resolves when the process exits. */
  get status(): Promise<Deno.CommandStatus> {
    return this.#status;
  }

  /** SIGTERM, then SIGKILL after `graceMs`; resolves once the process is gone. */
  async stop(graceMs = 10_000): Promise<void> {
    // Unref'd so a shared server never holds the test process open; awaiting it needs a ref.
    this.#child.ref();
    if (!this.#exited) {
      signal(this.#child, "SIGTERM");
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timedOut = new Promise<"timeout">((resolve) => {
        timer = setTimeout(() => resolve("timeout"), graceMs);
      });
      const outcome = await Promise.race([this.#status, timedOut]);
      clearTimeout(timer);
      if (outcome === "timeout") signal(this.#child, "SIGKILL");
    }
    await this.#status;
    removeQuietly(this.#pidFile);
  }

  /** Synchronous SIGKILL, for exit paths that cannot await. */
  killNow(): void {
    if (!this.#exited) signal(this.#child, "SIGKILL");
  }

  /** The last `count` lines of the log, for error messages. */
  logTail(count = 30): string {
    try {
      return Deno.readTextFileSync(this.logPath).trimEnd().split("\n").slice(-count).join("\n");
    } catch {
      return "(no log)";
    }
  }
}

/**
 * Kills the processes named by `<dir>/*.pid` and removes `dir` once `ownerPid` is gone; exits on its
 * own when `dir` disappears (normal teardown).
 */
export function spawnWatchdog(dir: string, ownerPid: number = Deno.pid): Deno.ChildProcess {
  const script = [
    'while kill -0 "$1" 2>/dev/null && [ -d "$2" ]; do sleep 1; done',
    '[ -d "$2" ] || exit 0',
    'for f in "$2"/*.pid; do [ -f "$f" ] && kill -TERM "$(cat "$f")" 2>/dev/null; done',
    "sleep 5",
    'for f in "$2"/*.pid; do [ -f "$f" ] && kill -KILL "$(cat "$f")" 2>/dev/null; done',
    'rm -rf "$2"',
  ].join("\n");
  const child = new Deno.Command("sh", {
    args: ["-c", script, "control-plane-watchdog", String(ownerPid), dir],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  child.unref();
  return child;
}

function signal(child: Deno.ChildProcess, name: Deno.Signal): void {
  try {
    child.kill(name);
  } catch (error) {
    // Already reaped between the exited check and the kill.
    if (!(error instanceof TypeError) && !(error instanceof Deno.errors.NotFound)) throw error;
  }
}

function removeQuietly(path: string): void {
  try {
    Deno.removeSync(path);
  } catch {
    // already gone
  }
}
