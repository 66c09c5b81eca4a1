/**
 * Busy polling of an engine thread (`--udp-busy-poll`): after traffic, the thread polls its
 * sockets without sleeping for up to a window, so the next datagram finds it awake. A sleeping
 * thread is woken by the kernel, which in a VM costs an interrupt to a halted virtual CPU (tens of
 * microseconds, several times per round trip); a polling one costs a CPU while traffic flows.
 * Once the window passes without traffic the thread sleeps again, so an idle engine costs nothing.
 * @module
 */

/** Polls between looks at the clock (a poll is a system call; the clock is cheaper but not free). */
const POLLS_PER_CLOCK_READ = 4;

/** The busy-polling window of one engine thread and when it last saw traffic. */
export class BusyPoll {
  #windowMs = 0;
  #activeAtMs = -Infinity;
  readonly #now: () => number;

  /** @param now a monotonic clock in milliseconds with sub-millisecond precision. */
  constructor(now: () => number = () => performance.now()) {
    this.#now = now;
  }

  /** Sets the window in microseconds; 0 turns busy polling off. */
  set microseconds(value: number) {
    this.#windowMs = value / 1000;
  }

  /** Notes traffic: the window starts again. */
  active(): void {
    if (this.#windowMs > 0) this.#activeAtMs = this.#now();
  }

  /**
   * Calls `poll` (which must not block) until it finds something (a result above 0, returned) or
   * the window since the last traffic has passed (0 is returned; at once when busy polling is off
   * or the window had passed already). The caller notes what it handles with {@linkcode active}.
   */
  spin(poll: () => number): number {
    if (this.#windowMs === 0 || this.#now() - this.#activeAtMs >= this.#windowMs) return 0;
    for (let polls = 1;; polls++) {
      const found = poll();
      if (found > 0) return found;
      if (polls % POLLS_PER_CLOCK_READ === 0 && this.#now() - this.#activeAtMs >= this.#windowMs) {
        return 0;
      }
    }
  }
}
