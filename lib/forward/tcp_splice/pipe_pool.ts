/**
 * Pipes of one splice engine thread, kept in a bounded pool: a direction of a connection takes a
 * pipe when data arrives and gives it back (empty) when its source has nothing more to read, so an
 * idle connection holds no pipe; beyond `maxIdle` returned pipes are closed, and so is every pooled
 * pipe once none was taken for `IDLE_PIPE_MS` (an idle thread holds no pipe either).
 * @module
 */

import type { Pipe, TcpSockets } from "./tcp_sockets.ts";

/** Pipe size asked for: enough for bulk copies to move 1 MiB per splice. */
export const PIPE_BYTES = 1 << 20;

/** Pooled pipes close after this long without a pipe taken. */
export const IDLE_PIPE_MS = 2000;

/** A bounded pool of empty pipes. */
export class PipePool {
  readonly #sockets: TcpSockets;
  readonly #maxIdle: number;
  readonly #idle: Pipe[] = [];
  /** Called once when the kernel refuses the 1 MiB size (the pipe keeps 64 KiB). */
  readonly #onSmall: () => void;
  #warned = false;
  #lastAcquireMs = 0;
  /** Pipes handed out and not returned. */
  inUse = 0;

  constructor(sockets: TcpSockets, maxIdle: number, onSmall: () => void) {
    this.#sockets = sockets;
    this.#maxIdle = maxIdle;
    this.#onSmall = onSmall;
  }

  /** Idle pipes in the pool. */
  get idle(): number {
    return this.#idle.length;
  }

  /** An empty pipe. @throws {OsError} when none can be created (e.g. EMFILE). */
  acquire(nowMs: number): Pipe {
    this.#lastAcquireMs = nowMs;
    let pipe = this.#idle.pop();
    if (pipe === undefined) {
      const created = this.#sockets.pipe(PIPE_BYTES);
      pipe = created.pipe;
      if (!created.resized && !this.#warned) {
        this.#warned = true;
        this.#onSmall();
      }
    }
    this.inUse++;
    return pipe;
  }

  /** Gives back an empty pipe. */
  release(pipe: Pipe): void {
    this.inUse--;
    if (this.#idle.length < this.#maxIdle) this.#idle.push(pipe);
    else this.#close(pipe);
  }

  /** Closes a pipe that may hold data (its connection was aborted). */
  discard(pipe: Pipe): void {
    this.inUse--;
    this.#close(pipe);
  }

  /** When {@linkcode trim} will close the pooled pipes (Infinity while none is pooled). */
  get trimDueMs(): number {
    return this.#idle.length > 0 ? this.#lastAcquireMs + IDLE_PIPE_MS : Infinity;
  }

  /** Closes the pooled pipes when none was taken for `IDLE_PIPE_MS`. */
  trim(nowMs: number): void {
    if (this.#idle.length > 0 && nowMs - this.#lastAcquireMs >= IDLE_PIPE_MS) this.close();
  }

  /** Closes every idle pipe. */
  close(): void {
    for (const pipe of this.#idle.splice(0)) this.#close(pipe);
  }

  #close(pipe: Pipe): void {
    this.#sockets.close(pipe.read);
    this.#sockets.close(pipe.write);
  }
}
