/**
 * The UDP sessions of one listener, keyed by client address without building a string per datagram:
 * a map by client hostname (the string `receive()` already allocated) of maps by port.
 * @module
 */

/** What the table needs to know about a session. */
export interface ClientKeyed {
  readonly client: Deno.NetAddr;
}

/** Sessions by client address. */
export class UdpSessionTable<S extends ClientKeyed> {
  readonly #byHost = new Map<string, Map<number, S>>();
  #size = 0;

  /** Number of sessions. */
  get size(): number {
    return this.#size;
  }

  /** The session of `hostname:port`, if any. */
  get(hostname: string, port: number): S | undefined {
    return this.#byHost.get(hostname)?.get(port);
  }

  /** Adds `session` under its client address (replacing none: callers check `get()` first). */
  add(session: S): void {
    const { hostname, port } = session.client;
    let byPort = this.#byHost.get(hostname);
    if (byPort === undefined) {
      byPort = new Map();
      this.#byHost.set(hostname, byPort);
    }
    if (!byPort.has(port)) this.#size++;
    byPort.set(port, session);
  }

  /** Removes `session` if it is the one stored under its client address. */
  delete(session: S): void {
    const { hostname, port } = session.client;
    const byPort = this.#byHost.get(hostname);
    if (byPort?.get(port) !== session) return;
    byPort.delete(port);
    this.#size--;
    if (byPort.size === 0) this.#byHost.delete(hostname);
  }

  /** Every session (safe to delete while iterating). */
  *[Symbol.iterator](): IterableIterator<S> {
    for (const byPort of this.#byHost.values()) yield* byPort.values();
  }
}
