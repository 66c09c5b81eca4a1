/**
 * A list-then-watch reflector: keeps a store of every object of one resource and tells its consumer
 * when the store changed, in a level-friendly way.
 *
 * It lists (paginated), swaps the store in one assignment and emits `synced`, then watches from the
 * list's resourceVersion with bookmarks and a bounded, randomised server timeout, emitting `changed`
 * per event. A dropped connection or an API server restart resumes from the last event's or
 * bookmark's resourceVersion; a 410 Gone (HTTP or `ERROR` event) lists again. A stream that stays
 * silent longer than the server timeout plus a margin is abandoned and reopened, so the reflector
 * never stalls silently; one that ends without an event before half its timeout counts as a failure,
 * so it never spins either. Errors back off exponentially with jitter; an AbortSignal stops it.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import { ApiError } from "./api_error.ts";
import { sleep } from "../util/abortable_delay.ts";
import { Backoff, type BackoffOptions } from "../util/backoff.ts";
import type { KubeClient } from "./client.ts";
import { type KubeObject, objectKey, type Resource } from "./resources.ts";
import type { WatchEvent } from "./watch_stream.ts";
import { errorMessage } from "../util/error_message.ts";

const logger = getLogger(["undying-proxy", "kube"]);

/** What the reflector tells its consumer. */
export type ReflectorEvent =
  /** A (re)list replaced the whole store; `changedKeys` were added, changed or removed by it. */
  | { type: "synced"; changedKeys: string[] }
  /** One watch event changed the object at `key` (read the store for its current state). */
  | { type: "changed"; key: string; eventType: "ADDED" | "MODIFIED" | "DELETED" }
  /** A list or watch failed; the reflector backs off and carries on. */
  | { type: "error"; error: Error };

/** Options of {@linkcode Reflector}. */
export interface ReflectorOptions {
  /** Namespace to watch; omit for cluster-scoped resources or all namespaces. */
  namespace?: string;
  /** Label selector. */
  labelSelector?: string;
  /** Field selector. */
  fieldSelector?: string;
  /** List page size. @default 500 */
  pageSize?: number;
  /** Server-side watch timeout. @default a random value in 270–330 s, like client-go's ~5 min */
  watchTimeoutSeconds?: number;
  /** A stream silent for the watch timeout plus this long is reopened. @default 30000 */
  livenessMarginMs?: number;
  /** Backoff between failed attempts. @default client-go's (0.8 s to 30 s, reset after 2 min) */
  backoff?: BackoffOptions;
}

/** The reflector's state machine: each state is handled by one `#step`. */
type State =
  | { phase: "list" }
  | { phase: "watch" }
  | { phase: "backoff"; delayMs: number; then: "list" | "watch" }
  | { phase: "stopped" };

/** Keeps a store of one resource's objects in sync with the API server. */
export class Reflector<T extends KubeObject> {
  readonly #client: KubeClient;
  readonly #resource: Resource<T>;
  readonly #options: ReflectorOptions;
  readonly #backoff: Backoff;
  readonly #watchTimeoutSeconds: number;
  readonly #livenessMarginMs: number;
  #store = new Map<string, T>();
  #synced = false;
  #resourceVersion = "";
  #eventsSinceList = 0;
  #running = false;

  /** @throws {RangeError} for a non-positive watch timeout or a negative liveness margin. */
  constructor(client: KubeClient, resource: Resource<T>, options: ReflectorOptions = {}) {
    this.#client = client;
    this.#resource = resource;
    this.#options = options;
    this.#backoff = new Backoff(options.backoff);
    this.#watchTimeoutSeconds = options.watchTimeoutSeconds ??
      270 + Math.floor(Math.random() * 61);
    this.#livenessMarginMs = options.livenessMarginMs ?? 30_000;
    if (!(this.#watchTimeoutSeconds > 0) || !(this.#livenessMarginMs >= 0)) {
      throw new RangeError(
        `Invalid reflector options: watchTimeoutSeconds ${this.#watchTimeoutSeconds} must be > 0 ` +
          `and livenessMarginMs ${this.#livenessMarginMs} >= 0`,
      );
    }
  }

  /** The current objects by key (`namespace/name`): updated per event, replaced whole by a list. */
  get store(): ReadonlyMap<string, T> {
    return this.#store;
  }

  /** The resourceVersion the next watch starts from. */
  get resourceVersion(): string {
    return this.#resourceVersion;
  }

  /** True once a list completed and no 410 has invalidated the store since. */
  isSynced(): boolean {
    return this.#synced;
  }

  /**
   * Runs until `signal` aborts (then it returns normally), yielding what changed. The consumer
   * should read the store, not rebuild state from the events. One run at a time.
   * @throws {TypeError} when another run of this reflector is active.
   */
  async *run(signal: AbortSignal): AsyncGenerator<ReflectorEvent> {
    if (this.#running) {
      throw new TypeError(`Reflector of ${this.#resource.plural} is already running`);
    }
    this.#running = true;
    try {
      let state: State = { phase: "list" };
      while (state.phase !== "stopped") {
        state = signal.aborted ? { phase: "stopped" } : yield* this.#step(state, signal);
      }
    } finally {
      this.#running = false;
    }
  }

  async *#step(state: State, signal: AbortSignal): AsyncGenerator<ReflectorEvent, State> {
    switch (state.phase) {
      case "list":
        try {
          return yield* this.#list(signal);
        } catch (error) {
          return yield* this.#failed(error, signal, "list");
        }
      case "watch":
        try {
          return yield* this.#watch(signal);
        } catch (error) {
          return yield* this.#failed(error, signal, "watch");
        }
      case "backoff":
        try {
          await sleep(state.delayMs, signal);
        } catch {
          return { phase: "stopped" };
        }
        return { phase: state.then };
      case "stopped":
        return state;
    }
  }

  async *#list(signal: AbortSignal): AsyncGenerator<ReflectorEvent, State> {
    const listed = await this.#client.list(this.#resource, {
      ...this.#selectors(),
      limit: this.#options.pageSize ?? 500,
      signal,
    });
    const next = new Map<string, T>();
    for (const item of listed.items) next.set(objectKey(item), item);
    const changedKeys = [...next.keys()].filter((key) =>
      this.#store.get(key)?.metadata?.resourceVersion !== next.get(key)?.metadata?.resourceVersion
    );
    for (const key of this.#store.keys()) if (!next.has(key)) changedKeys.push(key);
    this.#store = next;
    this.#resourceVersion = listed.resourceVersion;
    this.#synced = true;
    this.#eventsSinceList = 0;
    logger.debug("Listed {count} {plural} at resourceVersion {resourceVersion}", {
      count: next.size,
      plural: this.#resource.plural,
      resourceVersion: listed.resourceVersion,
    });
    yield { type: "synced", changedKeys };
    return { phase: "watch" };
  }

  async *#watch(signal: AbortSignal): AsyncGenerator<ReflectorEvent, State> {
    const events = this.#client.watch(this.#resource, {
      ...this.#selectors(),
      resourceVersion: this.#resourceVersion,
      allowWatchBookmarks: true,
      timeoutSeconds: this.#watchTimeoutSeconds,
      idleTimeoutMs: this.#watchTimeoutSeconds * 1000 + this.#livenessMarginMs,
      signal,
    });
    const startedAt = Date.now();
    let received = 0;
    for await (const event of events) {
      received++;
      this.#eventsSinceList++;
      const change = this.#apply(event);
      if (change) yield change;
    }
    if (received === 0 && Date.now() - startedAt < this.#watchTimeoutSeconds * 500) {
      // Not the server's timeout: something (a proxy, a restarting server) cut the stream at once.
      // Back off like client-go's "very short watch" instead of reconnecting in a tight loop.
      throw new Error(
        `${this.#resource.plural} watch ended without an event after ${
          Date.now() - startedAt
        } ms, long before its ${this.#watchTimeoutSeconds} s timeout`,
      );
    }
    // The server ended the watch (its timeout): resume at once from the last resourceVersion.
    return { phase: "watch" };
  }

  #apply(event: WatchEvent<T>): ReflectorEvent | undefined {
    const resourceVersion = event.object.metadata?.resourceVersion;
    if (resourceVersion) this.#resourceVersion = resourceVersion;
    if (event.type === "BOOKMARK") return undefined;
    const key = objectKey(event.object);
    if (event.type === "DELETED") this.#store.delete(key);
    else this.#store.set(key, event.object);
    return { type: "changed", key, eventType: event.type };
  }

  async *#failed(
    error: unknown,
    signal: AbortSignal,
    phase: "list" | "watch",
  ): AsyncGenerator<ReflectorEvent, State> {
    if (signal.aborted) return { phase: "stopped" };
    if (error instanceof ApiError && error.kind === "Gone") {
      // The resourceVersion is too old (compaction, API server restart): list again, at once after
      // a watch that made progress, else after a backoff so a flapping server cannot make us loop.
      this.#synced = false;
      logger.info("{plural} watch expired ({message}); listing again", {
        plural: this.#resource.plural,
        message: error.message,
      });
      return phase === "watch" && this.#eventsSinceList > 0
        ? { phase: "list" }
        : { phase: "backoff", delayMs: this.#backoff.next(), then: "list" };
    }
    const failure = error instanceof Error ? error : new Error(errorMessage(error));
    const delayMs = this.#backoff.next();
    logger.warn("{plural} {phase} failed, retrying in {delayMs} ms: {message}", {
      plural: this.#resource.plural,
      phase,
      delayMs,
      message: failure.message,
    });
    yield { type: "error", error: failure };
    return { phase: "backoff", delayMs, then: phase };
  }

  #selectors(): { namespace?: string; labelSelector?: string; fieldSelector?: string } {
    const { namespace, labelSelector, fieldSelector } = this.#options;
    return {
      ...(namespace !== undefined ? { namespace } : {}),
      ...(labelSelector !== undefined ? { labelSelector } : {}),
      ...(fieldSelector !== undefined ? { fieldSelector } : {}),
    };
  }
}
