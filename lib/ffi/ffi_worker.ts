/**
 * Starting the threads that hold FFI: a Web Worker with explicit permissions (FFI and read access
 * to its own module, nothing else; needs `--unstable-worker-options`), the shared control words the
 * main thread uses to stop and wake it, and revoking FFI on the main thread once every such worker
 * runs (a worker keeps the permissions it was started with).
 * @module
 */

/** The worker module next to `base` (an `import.meta.url`): `.ts` from source, `.js` bundled. */
export function workerModuleUrl(base: string, name: string): URL {
  return new URL(`./${name}${base.endsWith(".ts") ? ".ts" : ".js"}`, base);
}

/**
 * Starts `url` in a worker that may call native code and read its module, and nothing else: no
 * network, environment, files, subprocesses or imports from elsewhere.
 */
export function startFfiWorker(url: URL, name: string): Worker {
  return new Worker(url, {
    type: "module",
    name,
    deno: {
      permissions: {
        ffi: true,
        read: url.protocol === "file:" ? [decodeURIComponent(url.pathname)] : false,
        net: false,
        env: false,
        run: false,
        write: false,
        sys: false,
        import: false,
      },
    },
  });
}

/** Words shared with one FFI worker: a stop flag and a count of messages posted to it. */
export class WorkerControl {
  /** The memory, posted to the worker at start. */
  readonly buffer: SharedArrayBuffer;
  readonly #words: Int32Array<SharedArrayBuffer>;

  /** New control words, or a view of the ones the main thread posted. */
  constructor(buffer: SharedArrayBuffer = new SharedArrayBuffer(8)) {
    this.buffer = buffer;
    this.#words = new Int32Array(buffer);
  }

  /** Asks the worker to stop (it checks between waits). */
  requestStop(): void {
    Atomics.store(this.#words, 0, 1);
  }

  /** True once a stop was requested. */
  get stopRequested(): boolean {
    return Atomics.load(this.#words, 0) !== 0;
  }

  /** Notes that a message was posted, so a busy worker yields to receive it. */
  notePosted(): void {
    Atomics.add(this.#words, 1, 1);
  }

  /** True (and resets the count) when messages were posted since the last call. */
  takePosted(): boolean {
    // A load first: it is inlined, the exchange is a call.
    return Atomics.load(this.#words, 1) !== 0 && Atomics.exchange(this.#words, 1, 0) !== 0;
  }
}

/**
 * Revokes FFI for the calling thread (the main thread, after starting every FFI worker); workers
 * keep theirs. Returns the state afterwards ("prompt" or "denied" once revoked).
 */
export function revokeFfi(): Deno.PermissionState {
  return Deno.permissions.revokeSync({ name: "ffi" }).state;
}
