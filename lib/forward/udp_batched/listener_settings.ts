/**
 * The target and timeouts of one batched UDP listener in shared memory: the main thread writes them
 * (at open and on every update), the engine threads read them when a session opens and when they
 * sweep, so an update applies at once on every thread. A sequence number (odd while a write is in
 * progress) makes every read consistent.
 * @module
 */

/** Where new sessions send; undefined while the target name does not resolve (or is forbidden). */
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
  /** The target policy forbids every address of the target: new clients are rejected. */
  readonly forbidden: boolean;
  readonly timeouts: EngineTimeouts;
}

/**
 * Int32 words: sequence, family (0 = none, -1 = forbidden), sockaddr length, read timeout, write
 * timeout, policy generation.
 */
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

  /**
   * The generation of the listener's policy (source rules, PROXY header) the main thread posted
   * last: an engine thread that has applied an older one waits for the message before it admits
   * new clients.
   */
  get policyGeneration(): number {
    return Atomics.load(this.#words, 5);
  }

  /** Main thread: counts a new policy about to be posted; its generation. */
  nextPolicy(): number {
    return Atomics.add(this.#words, 5, 1) + 1;
  }

  /** Main thread: publishes a new target (or that it is forbidden) and timeouts. */
  write(target: EngineTarget | "forbidden" | undefined, timeouts: EngineTimeouts): void {
    const words = this.#words;
    const address = typeof target === "object" ? target : undefined;
    Atomics.add(words, 0, 1);
    Atomics.store(words, 1, target === "forbidden" ? -1 : address?.family ?? 0);
    Atomics.store(words, 2, address?.sockaddr.length ?? 0);
    Atomics.store(words, 3, timeouts.readTimeoutMs);
    Atomics.store(words, 4, timeouts.writeTimeoutMs);
    if (address !== undefined) this.#bytes.set(address.sockaddr, SOCKADDR_AT);
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
      const target = family <= 0 ? undefined : { sockaddr, family: family as 4 | 6 };
      return { generation: before, target, forbidden: family === -1, timeouts };
    }
  }
}
