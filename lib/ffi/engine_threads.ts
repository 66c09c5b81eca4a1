/**
 * The threads of a native engine, seen from the main thread: starts them (FFI workers with scoped
 * permissions), sends them requests and matches the answers by `seq`, relays their log lines, and
 * stops them through the shared stop flag. A thread that reports a doorbell port with `ready` is
 * woken from `epoll_wait` by one datagram after every message. Both native engines (splice TCP,
 * batched UDP) run on it: `start` → `ready`/`failed`, requests with `seq`, `log`, `stopped`.
 * @module
 */

import { getLogger, type Logger } from "@logtape/logtape";
import type { EngineNotice, StartMessage } from "./engine_messages.ts";
import { startFfiWorker, WorkerControl } from "./ffi_worker.ts";

export type { EngineNotice, StartMessage };

/** How long a thread may take to start or to answer a request before it counts as broken. */
const ANSWER_TIMEOUT_MS = 10_000;

type OmitSeq<T> = T extends unknown ? Omit<T, "seq"> : never;

interface Thread<A> {
  readonly index: number;
  readonly worker: Worker;
  readonly control: WorkerControl;
  readonly pending: Map<number, PromiseWithResolvers<A>>;
  readonly ready: PromiseWithResolvers<void>;
  readonly stopped: PromiseWithResolvers<void>;
  broken: string | undefined;
  /** Where the thread's doorbell listens, once it is ready (if it has one). */
  doorbell: Deno.NetAddr | undefined;
}

/** One byte that wakes an engine thread from `epoll_wait`. */
const RING = new Uint8Array(1);

/** Running engine threads taking requests `R` (with `seq`) and answering `A` (with `seq`). */
export class EngineThreads<R extends { readonly seq: number }, A extends { readonly seq: number }> {
  readonly #threads: Thread<A>[] = [];
  readonly #label: string;
  readonly #log: Logger;
  /** Rings the threads' doorbells; opened when the first thread reports one. */
  #ringer: Deno.DatagramConn | undefined;
  #seq = 0;
  #closed = false;
  /** Who takes the access records of each listener. */
  readonly #records = new Map<number, (record: unknown) => void>();

  /**
   * Starts `count` threads of the worker module `url` (named `<label>-<n>` in logs) and waits
   * until each has opened libc.
   */
  static async start<R extends { readonly seq: number }, A extends { readonly seq: number }>(
    url: URL,
    label: string,
    count: number,
  ): Promise<EngineThreads<R, A>> {
    const threads = new EngineThreads<R, A>(url, label, count);
    try {
      await Promise.all(threads.#threads.map((thread) => withTimeout(thread.ready.promise)));
    } catch (error) {
      await threads.close();
      throw error;
    }
    return threads;
  }

  private constructor(url: URL, label: string, count: number) {
    this.#label = label;
    this.#log = getLogger(["undying-proxy", "ffi", label]);
    for (let index = 0; index < count; index++) {
      const thread: Thread<A> = {
        index,
        worker: startFfiWorker(url, `${label}-${index + 1}`),
        control: new WorkerControl(),
        pending: new Map(),
        ready: Promise.withResolvers(),
        stopped: Promise.withResolvers(),
        broken: undefined,
        doorbell: undefined,
      };
      thread.ready.promise.catch(() => {});
      thread.worker.onmessage = (event: MessageEvent<A | EngineNotice>) =>
        this.#receive(thread, event.data);
      thread.worker.onerror = (event) => {
        event.preventDefault();
        this.#break(thread, event.message);
      };
      this.#threads.push(thread);
      const start: StartMessage = { kind: "start", control: thread.control.buffer, row: index + 1 };
      this.#post(thread, start);
    }
  }

  /** Number of threads. */
  get count(): number {
    return this.#threads.length;
  }

  /** Sends `request` to thread `index` and resolves with its answer. */
  request(index: number, request: OmitSeq<R>): Promise<A> {
    const thread = this.#threads[index]!;
    if (thread.broken !== undefined) {
      return Promise.reject(
        new Error(`${this.#label} thread ${index + 1} failed: ${thread.broken}`),
      );
    }
    const seq = ++this.#seq;
    const answer = Promise.withResolvers<A>();
    thread.pending.set(seq, answer);
    this.#post(thread, { ...request, seq });
    return answer.promise;
  }

  /** Sends `request` to every thread; resolves with the answers in thread order. */
  requestAll(request: OmitSeq<R>): Promise<A[]> {
    return Promise.all(this.#threads.map((thread) => this.request(thread.index, request)));
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
    this.#ringer?.close();
    this.#ringer = undefined;
  }

  /** Hands every access record the threads send for listener `id` to `take`, until forgotten. */
  onRecords(id: number, take: (record: unknown) => void): void {
    this.#records.set(id, take);
  }

  /** Stops handing on the records of listener `id`. */
  forgetRecords(id: number): void {
    this.#records.delete(id);
  }

  #post(thread: Thread<A>, message: unknown): void {
    thread.worker.postMessage(message);
    thread.control.notePosted();
    this.#ring(thread);
  }

  /** Wakes `thread` (best effort: without the datagram it wakes at its next timeout anyway). */
  #ring(thread: Thread<A>): void {
    if (thread.doorbell === undefined || this.#ringer === undefined) return;
    this.#ringer.send(RING, thread.doorbell).catch(() => {});
  }

  #receive(thread: Thread<A>, message: A | EngineNotice): void {
    if ("seq" in message) {
      const answer = thread.pending.get(message.seq);
      thread.pending.delete(message.seq);
      answer?.resolve(message);
      return;
    }
    switch (message.kind) {
      case "ready":
        if (message.doorbellPort !== undefined && !this.#closed) {
          thread.doorbell = { transport: "udp", hostname: "127.0.0.1", port: message.doorbellPort };
          this.#ringer ??= Deno.listenDatagram({
            transport: "udp",
            hostname: "127.0.0.1",
            port: 0,
          });
        }
        thread.ready.resolve();
        return;
      case "failed":
        this.#break(thread, message.message);
        return;
      case "stopped":
        thread.stopped.resolve();
        return;
      case "record":
        this.#records.get(message.id)?.(message.record);
        return;
      case "log":
        this.#log[message.level](message.message, {
          thread: thread.index + 1,
          ...message.properties,
        });
        return;
    }
  }

  #break(thread: Thread<A>, reason: string): void {
    thread.broken = reason;
    this.#log.error("{label} thread {thread} failed: {reason}", {
      label: this.#label,
      thread: thread.index + 1,
      reason,
    });
    const error = new Error(`${this.#label} thread ${thread.index + 1} failed: ${reason}`);
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
