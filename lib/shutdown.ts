/**
 * Shutdown signals: the first SIGTERM or SIGINT aborts {@linkcode ShutdownSignals.signal} so that the
 * program drains and exits 0; a second one ends the process at once.
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
}

/** Listens for shutdown signals until disposed. */
export class ShutdownSignals implements Disposable {
  readonly #controller = new AbortController();
  readonly #handlers: [Deno.Signal, () => void][] = [];

  /** Starts listening. */
  constructor(options: ShutdownSignalsOptions = {}) {
    const onSecond = options.onSecondSignal ??
      ((signal: Deno.Signal) => Deno.exit(128 + (NUMBERS[signal] ?? 0)));
    for (const name of options.signals ?? ["SIGTERM", "SIGINT"]) {
      const handler = () => {
        if (this.#controller.signal.aborted) onSecond(name);
        else this.#controller.abort(name);
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
