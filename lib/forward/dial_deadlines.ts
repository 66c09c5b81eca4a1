/**
 * Dial timeouts shared by the connections of one TCP listener: dials that start within the same
 * short window share one abort signal and one timer, instead of an AbortController and a timer per
 * connection. A dial is aborted between `timeoutMs` and `timeoutMs` plus the window after it started.
 * @module
 */

interface Window {
  readonly controller: AbortController;
  /** `performance.now()` after which new dials open the next window. */
  readonly endsAt: number;
  readonly timer: ReturnType<typeof setTimeout>;
}

/** Longest window; short timeouts get a window of a tenth of the timeout. */
const MAX_WINDOW_MS = 100;

/** Abort signals for dials, one per window of start times. */
export class DialDeadlines {
  readonly #timeoutMs: number;
  readonly #windowMs: number;
  readonly #live = new Set<Window>();
  #current: Window | undefined;

  /** @param timeoutMs How long a dial may take (a positive integer). */
  constructor(timeoutMs: number) {
    this.#timeoutMs = timeoutMs;
    this.#windowMs = Math.max(1, Math.min(MAX_WINDOW_MS, Math.floor(timeoutMs / 10)));
  }

  /** The signal for a dial starting now; it aborts once the dial's time is up. */
  signal(): AbortSignal {
    const now = performance.now();
    let window = this.#current;
    if (window === undefined || now >= window.endsAt) {
      const controller = new AbortController();
      const timer = setTimeout(() => {
        this.#live.delete(window!);
        controller.abort();
      }, this.#timeoutMs + this.#windowMs);
      window = { controller, endsAt: now + this.#windowMs, timer };
      this.#current = window;
      this.#live.add(window);
    }
    return window.controller.signal;
  }

  /** Aborts every dial in progress and clears the timers (when the listener stops). */
  abortAll(): void {
    for (const window of this.#live) {
      clearTimeout(window.timer);
      window.controller.abort();
    }
    this.#live.clear();
    this.#current = undefined;
  }
}
