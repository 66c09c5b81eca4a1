/**
 * The engine threads of the batched UDP engine, seen from the main thread: starts them (FFI workers
 * with scoped permissions), sends them requests and matches the answers, relays their log lines,
 * and stops them through the shared stop flag.
 * @module
 */

import { getLogger } from "@logtape/logtape";
import { startFfiWorker, WorkerControl, workerModuleUrl } from "../../ffi/ffi_worker.ts";
import type { FromEngine, ToEngine } from "./messages.ts";

const log = getLogger(["undying-proxy", "udp"]);

/** How long a thread may take to start or to answer a request before it counts as broken. */
const ANSWER_TIMEOUT_MS = 10_000;

type OmitSeq<T> = T extends unknown ? Omit<T, "seq"> : never;
/** A request (a message with `seq`) without its `seq`. */
type Request = OmitSeq<Extract<ToEngine, { seq: number }>>;

interface Thread {
  readonly index: number;
  readonly worker: Worker;
  readonly control: WorkerControl;
  readonly pending: Map<number, PromiseWithResolvers<FromEngine>>;
  readonly ready: PromiseWithResolvers<void>;
  readonly stopped: PromiseWithResolvers<void>;
  broken: string | undefined;
  /** Where the thread's doorbell listens, once it is ready. */
  doorbell: Deno.NetAddr | undefined;
}

/** One byte that wakes an engine thread from `epoll_wait`. */
const RING = new Uint8Array(1);

/** Running engine threads. */
export class BatchedUdpEngine {
  readonly #threads: Thread[] = [];
  /** Rings the threads' doorbells, so that they read messages at once. */
  readonly #ringer = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  #ringerClosed = false;
  #seq = 0;
  #closed = false;

  /** Starts `threads` engine threads and waits until each has opened libc. */
  static async start(threads: number): Promise<BatchedUdpEngine> {
    const engine = new BatchedUdpEngine(threads);
    try {
      await Promise.all(engine.#threads.map((thread) => withTimeout(thread.ready.promise)));
    } catch (error) {
      await engine.close();
      throw error;
    }
    return engine;
  }

  private constructor(count: number) {
    const url = workerModuleUrl(import.meta.url, "engine_worker");
    for (let index = 0; index < count; index++) {
      const thread: Thread = {
        index,
        worker: startFfiWorker(url, `udp-engine-${index + 1}`),
        control: new WorkerControl(),
        pending: new Map(),
        ready: Promise.withResolvers(),
        stopped: Promise.withResolvers(),
        broken: undefined,
        doorbell: undefined,
      };
      thread.ready.promise.catch(() => {});
      thread.worker.onmessage = (event: MessageEvent<FromEngine>) =>
        this.#receive(thread, event.data);
      thread.worker.onerror = (event) => {
        event.preventDefault();
        this.#break(thread, event.message);
      };
      this.#threads.push(thread);
      this.#post(thread, { kind: "start", control: thread.control.buffer, row: index + 1 });
    }
  }

  /** Number of engine threads. */
  get threads(): number {
    return this.#threads.length;
  }

  /** Sends `request` to thread `index` and resolves with its answer. */
  request(index: number, request: Request): Promise<FromEngine> {
    const thread = this.#threads[index]!;
    if (thread.broken !== undefined) {
      return Promise.reject(new Error(`UDP engine thread ${index + 1} failed: ${thread.broken}`));
    }
    const seq = ++this.#seq;
    const answer = Promise.withResolvers<FromEngine>();
    thread.pending.set(seq, answer);
    this.#post(thread, { ...request, seq } as ToEngine);
    return answer.promise;
  }

  /** Stops every thread (their sockets close) and ends the workers. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const thread of this.#threads) {
      thread.control.requestStop();
      this.#ring(thread);
    }
    await Promise.all(
      this.#threads.map((thread) =>
        thread.broken !== undefined
          ? undefined
          : withTimeout(thread.stopped.promise).catch(() => {})
      ),
    );
    for (const thread of this.#threads) thread.worker.terminate();
    this.#ringerClosed = true;
    this.#ringer.close();
  }

  #post(thread: Thread, message: ToEngine): void {
    thread.worker.postMessage(message);
    thread.control.notePosted();
    this.#ring(thread);
  }

  /** Wakes `thread` (best effort: without the datagram it wakes within a second anyway). */
  #ring(thread: Thread): void {
    if (thread.doorbell === undefined || this.#ringerClosed) return;
    this.#ringer.send(RING, thread.doorbell).catch(() => {});
  }

  #receive(thread: Thread, message: FromEngine): void {
    switch (message.kind) {
      case "ready":
        thread.doorbell = { transport: "udp", hostname: "127.0.0.1", port: message.doorbellPort };
        thread.ready.resolve();
        return;
      case "failed":
        this.#break(thread, message.message);
        return;
      case "stopped":
        thread.stopped.resolve();
        return;
      case "log":
        log[message.level](message.message, { thread: thread.index + 1, ...message.properties });
        return;
      default: {
        const answer = thread.pending.get(message.seq);
        thread.pending.delete(message.seq);
        answer?.resolve(message);
      }
    }
  }

  #break(thread: Thread, reason: string): void {
    thread.broken = reason;
    log.error("UDP engine thread {thread} failed: {reason}", { thread: thread.index + 1, reason });
    const error = new Error(`UDP engine thread ${thread.index + 1} failed: ${reason}`);
    thread.ready.reject(error);
    for (const answer of thread.pending.values()) answer.reject(error);
    thread.pending.clear();
    thread.stopped.resolve();
  }
}

async function withTimeout<T>(promise: Promise<T>): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`no answer within ${ANSWER_TIMEOUT_MS} ms`)),
      ANSWER_TIMEOUT_MS,
    );
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
