/**
 * The main thread's side of the system worker: the one FFI thread (besides the engines) that makes
 * the libc calls Deno has no API for, so that the main thread itself opens no library and keeps no
 * FFI once it revoked it. Requests are asynchronous; file descriptors are process-wide, so the
 * worker acts on the main thread's sockets. The started worker is installed for this thread
 * ({@linkcode systemWorker}) until disposed; other threads (the TCP forwarding workers) reach it
 * through a {@linkcode SystemWorker.channel} they install with {@linkcode installSystemChannel}.
 * Without one, callers keep their portable fallback.
 * @module
 */
import { startFfiWorker, workerModuleUrl } from "./ffi_worker.ts";
import type { TcpSocketRef } from "./system_calls.ts";
import type { SystemAnswer, SystemChannel, SystemRequest } from "./system_messages.ts";

/** A request without its sequence number. */
type Request = SystemRequest extends infer R ? R extends SystemRequest ? Omit<R, "seq"> : never
  : never;

/** What a thread asks the system worker (see {@linkcode SystemWorker}). */
export interface SystemCallsClient {
  /** The soft and hard `RLIMIT_NOFILE` of the process (`Infinity` when unlimited). */
  fdLimit(): Promise<{ soft: number; hard: number } | undefined>;
  /** File descriptors open in the process now. */
  openFdCount(): Promise<number | undefined>;
  /** The text of an allow-listed `/proc` file (`PROC_FILES` of `system_calls.ts`), if readable. */
  readProcFile(path: string): Promise<string | undefined>;
  /**
   * Resets `conn` (its peer gets an RST when it is closed next; close it only after this
   * resolves, so that its descriptor cannot be reused meanwhile). False when not possible.
   */
  resetTcp(conn: Deno.TcpConn): Promise<boolean>;
}

let installed: SystemCallsClient | undefined;

/** The system worker of this thread, if one was started (or a channel installed) and not disposed. */
export function systemWorker(): SystemCallsClient | undefined {
  return installed;
}

/** Installs a channel from {@linkcode SystemWorker.channel} as this thread's system worker. */
export function installSystemChannel(port: MessagePort): void {
  const client = new RequestClient((message) => port.postMessage(message));
  port.onmessage = (event: MessageEvent<SystemAnswer>) => client.receive(event.data);
  installed = client;
}

/** Requests with sequence numbers over one message endpoint, and their answers. */
class RequestClient implements SystemCallsClient {
  readonly #post: (request: SystemRequest) => void;
  readonly #pending = new Map<number, (value: unknown) => void>();
  #nextSeq = 1;
  #closed = false;

  constructor(post: (request: SystemRequest) => void) {
    this.#post = post;
  }

  async fdLimit(): Promise<{ soft: number; hard: number } | undefined> {
    return await this.#request({ kind: "fdLimit" }) as { soft: number; hard: number } | undefined;
  }

  async openFdCount(): Promise<number | undefined> {
    return await this.#request({ kind: "openFdCount" }) as number | undefined;
  }

  async readProcFile(path: string): Promise<string | undefined> {
    return await this.#request({ kind: "readProcFile", path }) as string | undefined;
  }

  async resetTcp(conn: Deno.TcpConn): Promise<boolean> {
    const socket = socketRef(conn);
    if (socket === undefined) return false;
    return await this.#request({ kind: "resetTcp", socket }) === true;
  }

  /** Resolves the request an answer is for. */
  receive(message: SystemAnswer): void {
    if (message.kind !== "answer") return;
    this.#pending.get(message.seq)?.(message.value);
    this.#pending.delete(message.seq);
  }

  /** Answers nothing from now on; pending requests resolve as failed. */
  close(): void {
    this.#closed = true;
    for (const resolve of this.#pending.values()) resolve(undefined);
    this.#pending.clear();
  }

  #request(request: Request): Promise<unknown> {
    if (this.#closed) return Promise.resolve(undefined);
    const seq = this.#nextSeq++;
    const answer = Promise.withResolvers<unknown>();
    this.#pending.set(seq, answer.resolve);
    this.#post({ ...request, seq } as SystemRequest);
    return answer.promise;
  }
}

/** A running system worker. */
export class SystemWorker implements SystemCallsClient, Disposable {
  readonly #worker: Worker;
  readonly #client: RequestClient;
  #disposed = false;

  private constructor(worker: Worker) {
    this.#worker = worker;
    this.#client = new RequestClient((request) => worker.postMessage(request));
  }

  /**
   * Starts the worker (needs FFI on this thread, to hand it on) and installs it.
   * @throws when FFI is not permitted or libc cannot be opened in the worker.
   */
  static async start(): Promise<SystemWorker> {
    if (Deno.permissions.querySync({ name: "ffi" }).state !== "granted") {
      throw new Error("FFI is not permitted (--allow-ffi)");
    }
    const worker = startFfiWorker(workerModuleUrl(import.meta.url, "system_worker"), "ffi-system");
    const system = new SystemWorker(worker);
    const started = Promise.withResolvers<void>();
    worker.onmessage = (event: MessageEvent<SystemAnswer>) => {
      const message = event.data;
      if (message.kind === "ready") started.resolve();
      else if (message.kind === "failed") started.reject(new Error(message.message));
      else system.#client.receive(message);
    };
    worker.onerror = (event) => {
      event.preventDefault();
      started.reject(new Error(`the system worker failed: ${event.message}`));
      system[Symbol.dispose]();
    };
    try {
      await started.promise;
    } catch (error) {
      system[Symbol.dispose]();
      throw error;
    }
    installed = system;
    return system;
  }

  /** A channel to this worker for another thread (transfer it; see `installSystemChannel`). */
  channel(): MessagePort {
    const { port1, port2 } = new MessageChannel();
    this.#worker.postMessage({ kind: "channel", port: port2 } satisfies SystemChannel, [port2]);
    return port1;
  }

  fdLimit(): Promise<{ soft: number; hard: number } | undefined> {
    return this.#client.fdLimit();
  }

  openFdCount(): Promise<number | undefined> {
    return this.#client.openFdCount();
  }

  readProcFile(path: string): Promise<string | undefined> {
    return this.#client.readProcFile(path);
  }

  resetTcp(conn: Deno.TcpConn): Promise<boolean> {
    return this.#client.resetTcp(conn);
  }

  /** Stops the worker; pending requests resolve as failed. */
  [Symbol.dispose](): void {
    if (this.#disposed) return;
    this.#disposed = true;
    if (installed === this) installed = undefined;
    this.#worker.terminate();
    this.#client.close();
  }
}

/**
 * How the worker finds `conn`: Deno keeps the descriptor on accepted connections (an internal
 * symbol); a connection it dialed is found by its local and remote port.
 */
function socketRef(conn: Deno.TcpConn): TcpSocketRef | undefined {
  const symbol = Object.getOwnPropertySymbols(conn).find((s) =>
    s.description === "Deno.internal.fd"
  );
  const fd = symbol === undefined
    ? undefined
    : (conn as unknown as Record<symbol, unknown>)[symbol];
  if (typeof fd === "number" && fd >= 0) return { fd };
  try {
    return { localPort: conn.localAddr.port, remotePort: conn.remoteAddr.port };
  } catch {
    return undefined; // closed meanwhile: no address any more
  }
}
