/**
 * Shutdown signals: the first SIGTERM or SIGINT aborts {@linkcode ShutdownSignals.signal} so that the
 * program drains and exits 0; a second one ends the process at once. The same signal arriving again
 * within a short window is the same request: one Ctrl-C in a terminal reaches the program twice under
 * `deno task`, once from the terminal (to the whole process group) and once forwarded by the task.
 * @module
 */

/** Signal numbers, for the conventional exit code 128 + n. */
const NUMBERS: Partial<Record<Deno.Signal, number>> = { SIGINT: 2, SIGTERM: 15, SIGUSR2: 12 };

/** Options of {@linkcode ShutdownSignals}. */
export interface ShutdownSignalsOptions {
  /** @default ["SIGTERM", "SIGINT"] */
  readonly signals?: readonly Deno.Signal[];
  /** Called on the second signal. @default exits the process with code 128 + signal number */
  readonly onSecondSignal?: (signal: Deno.Signal) => void;
  /** The first signal repeated within this many milliseconds counts once. @default 1000 */
  readonly repeatWindowMs?: number;
}

/** Listens for shutdown signals until disposed. */
export class ShutdownSignals implements Disposable {
  readonly #controller = new AbortController();
  readonly #handlers: [Deno.Signal, () => void][] = [];
  #firstAt = 0;

  /** Starts listening. */
  constructor(options: ShutdownSignalsOptions = {}) {
    const onSecond = options.onSecondSignal ??
      ((signal: Deno.Signal) => Deno.exit(128 + (NUMBERS[signal] ?? 0)));
    const windowMs = options.repeatWindowMs ?? 1000;
    for (const name of options.signals ?? ["SIGTERM", "SIGINT"]) {
      const handler = () => {
        const now = performance.now();
        if (!this.#controller.signal.aborted) {
          this.#firstAt = now;
          this.#controller.abort(name);
        } else if (name !== this.#controller.signal.reason || now - this.#firstAt >= windowMs) {
          onSecond(name);
        }
      };
      Deno.addSignalListener(name, handler);
      this.#handlers.push([name, handler]);
    }
  }

  /** Aborted on the first signal; its `reason` is the signal name. */
  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  /** Stops listening (the default signal behaviour, ending the process, applies again). */
  [Symbol.dispose](): void {
    for (const [name, handler] of this.#handlers.splice(0)) {
      Deno.removeSignalListener(name, handler);
    }
  }
}
