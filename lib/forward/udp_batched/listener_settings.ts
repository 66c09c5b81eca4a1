/**
 * The target and timeouts of one batched UDP listener in shared memory: the main thread writes them
 * (at open and on every update), the engine threads read them when a session opens and when they
 * sweep, so an update applies at once on every thread. A sequence number (odd while a write is in
 * progress) makes every read consistent.
 * @module
 */

/** Where new sessions send; undefined while the target name does not resolve. */
export interface EngineTarget {
  readonly sockaddr: Uint8Array;
  readonly family: 4 | 6;
}

/** Timeouts of a listener's sessions. */
export interface EngineTimeouts {
  readonly readTimeoutMs: number;
  readonly writeTimeoutMs: number;
}

/** One consistent read of {@linkcode ListenerSettings}. */
export interface SettingsSnapshot {
  readonly generation: number;
  readonly target: EngineTarget | undefined;
  readonly timeouts: EngineTimeouts;
}

/** Int32 words: sequence, family (0 = none), sockaddr length, read timeout, write timeout. */
const WORDS = 8;
const SOCKADDR_AT = WORDS * 4;
const BYTES = SOCKADDR_AT + 32;

/** Shared settings of one listener. */
export class ListenerSettings {
  /** The memory, posted to the engine threads. */
  readonly buffer: SharedArrayBuffer;
  readonly #words: Int32Array<SharedArrayBuffer>;
  readonly #bytes: Uint8Array<SharedArrayBuffer>;

  /** New (empty) settings, or a view of the ones the main thread posted. */
  constructor(buffer: SharedArrayBuffer = new SharedArrayBuffer(BYTES)) {
    this.buffer = buffer;
    this.#words = new Int32Array(buffer, 0, WORDS);
    this.#bytes = new Uint8Array(buffer);
  }

  /** Increases with every write. */
  get generation(): number {
    return Atomics.load(this.#words, 0);
  }

  /** Main thread: publishes a new target and timeouts. */
  write(target: EngineTarget | undefined, timeouts: EngineTimeouts): void {
    const words = this.#words;
    Atomics.add(words, 0, 1);
    Atomics.store(words, 1, target?.family ?? 0);
    Atomics.store(words, 2, target?.sockaddr.length ?? 0);
    Atomics.store(words, 3, timeouts.readTimeoutMs);
    Atomics.store(words, 4, timeouts.writeTimeoutMs);
    if (target !== undefined) this.#bytes.set(target.sockaddr, SOCKADDR_AT);
    Atomics.add(words, 0, 1);
  }

  /** Engine thread: a consistent copy. */
  read(): SettingsSnapshot {
    const words = this.#words;
    for (;;) {
      const before = Atomics.load(words, 0);
      if (before % 2 === 1) continue;
      const family = Atomics.load(words, 1);
      const length = Atomics.load(words, 2);
      const timeouts = {
        readTimeoutMs: Atomics.load(words, 3),
        writeTimeoutMs: Atomics.load(words, 4),
      };
      const sockaddr = this.#bytes.slice(SOCKADDR_AT, SOCKADDR_AT + length);
      if (Atomics.load(words, 0) !== before) continue;
      const target = family === 0 ? undefined : { sockaddr, family: family as 4 | 6 };
      return { generation: before, target, timeouts };
    }
  }
}
