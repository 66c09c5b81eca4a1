/**
 * Kubernetes Events about UnDyingProxy objects (listener started/failed/stopped, Service port
 * added/removed), written as core/v1 Events so `kubectl describe` shows them. Identical events are
 * suppressed for a window and the overall rate is bounded, so a flapping listener cannot flood the
 * API server. Recording never throws: a failure is logged and counted.
 * @module
 */

import { getLogger } from "@logtape/logtape";
import type { Event } from "kubernetes-types/core/v1.d.ts";
import type { ObjectMeta } from "kubernetes-types/meta/v1.d.ts";
import type { KubeClient } from "../kube/client.ts";
import type { CountOperatorError } from "./operator_errors.ts";
import { CORE_EVENTS } from "../kube/resources.ts";
import { errorMessage } from "../util/error_message.ts";

const logger = getLogger(["undying-proxy", "kube"]);

/** The object an Event is about. */
export interface EventSubject {
  readonly apiVersion?: string;
  readonly kind?: string;
  readonly metadata?: ObjectMeta;
}

/** One Event to record. */
export interface EventNote {
  readonly type: "Normal" | "Warning";
  /** CamelCase reason, e.g. `Listening` or `ServicePortAdded`. */
  readonly reason: string;
  readonly message: string;
}

/** Options of {@linkcode EventDeduper}. */
export interface EventDeduperOptions {
  /** Identical events within this window are recorded once. @default 600000 */
  windowMs?: number;
  /** Events that may be recorded at once after a quiet period. @default 25 */
  burst?: number;
  /** Sustained events per second. @default 1 */
  perSecond?: number;
  /** Clock, replaceable in tests. @default Date.now */
  now?: () => number;
}

const MAX_REMEMBERED = 4096;

/** Decides which events are recorded: once per key and window, within a token-bucket rate. */
export class EventDeduper {
  readonly #windowMs: number;
  readonly #burst: number;
  readonly #perMs: number;
  readonly #now: () => number;
  readonly #seen = new Map<string, number>();
  #tokens: number;
  #refilledAt: number;

  /** @throws {RangeError} for a negative window, a burst below 1 or a rate of 0 or less. */
  constructor(options: EventDeduperOptions = {}) {
    this.#windowMs = options.windowMs ?? 600_000;
    this.#burst = options.burst ?? 25;
    const perSecond = options.perSecond ?? 1;
    if (this.#windowMs < 0 || this.#burst < 1 || !(perSecond > 0)) {
      throw new RangeError(
        `Invalid event rate limit: windowMs ${this.#windowMs}, burst ${this.#burst}, ` +
          `perSecond ${perSecond} (need windowMs >= 0, burst >= 1, perSecond > 0)`,
      );
    }
    this.#perMs = perSecond / 1000;
    this.#now = options.now ?? Date.now;
    this.#tokens = this.#burst;
    this.#refilledAt = this.#now();
  }

  /** True when an event with this key may be recorded now (and remembers it). */
  admit(key: string): boolean {
    const now = this.#now();
    const last = this.#seen.get(key);
    if (last !== undefined && now - last < this.#windowMs) return false;
    this.#tokens = Math.min(this.#burst, this.#tokens + (now - this.#refilledAt) * this.#perMs);
    this.#refilledAt = now;
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    this.#seen.delete(key);
    this.#seen.set(key, now);
    if (this.#seen.size > MAX_REMEMBERED) {
      // Insertion order is recording order: forget the oldest half.
      for (const k of this.#seen.keys()) {
        if (this.#seen.size <= MAX_REMEMBERED / 2) break;
        this.#seen.delete(k);
      }
    }
    return true;
  }
}

/** Options of {@linkcode EventRecorder}. */
export interface EventRecorderOptions extends EventDeduperOptions {
  /** This replica's name (`reportingInstance`, `source.host`). */
  replica: string;
  /** Counts failed writes as `FailedRecordEvent`. */
  countError?: CountOperatorError;
}

const COMPONENT = "undying-proxy";
const MAX_MESSAGE = 1024;

/** Builds the core/v1 Event for a note about `subject`. */
export function buildEvent(input: {
  readonly subject: EventSubject;
  readonly note: EventNote;
  /** The recording replica (`source.host`, `reportingInstance`). */
  readonly replica: string;
  readonly now: Date;
  /** Makes the Event's name unique. */
  readonly suffix: string;
}): Event {
  const { subject, note, replica, now, suffix } = input;
  const meta = subject.metadata ?? {};
  const time = now.toISOString();
  return {
    apiVersion: "v1",
    kind: "Event",
    metadata: { name: `${meta.name ?? "unknown"}.${suffix}`, namespace: meta.namespace ?? "" },
    involvedObject: {
      ...(subject.apiVersion ? { apiVersion: subject.apiVersion } : {}),
      ...(subject.kind ? { kind: subject.kind } : {}),
      ...(meta.name ? { name: meta.name } : {}),
      ...(meta.namespace ? { namespace: meta.namespace } : {}),
      ...(meta.uid ? { uid: meta.uid } : {}),
      ...(meta.resourceVersion ? { resourceVersion: meta.resourceVersion } : {}),
    },
    type: note.type,
    reason: note.reason,
    message: note.message.length > MAX_MESSAGE
      ? `${note.message.slice(0, MAX_MESSAGE - 1)}…`
      : note.message,
    firstTimestamp: time,
    lastTimestamp: time,
    count: 1,
    source: { component: COMPONENT, host: replica },
    reportingComponent: COMPONENT,
    reportingInstance: replica,
  };
}

/** Records Events through the API server, deduplicated and rate-limited. */
export class EventRecorder {
  readonly #client: KubeClient;
  readonly #replica: string;
  readonly #deduper: EventDeduper;
  readonly #countError: CountOperatorError | undefined;

  /** Records as `replica` through `client`. */
  constructor(client: KubeClient, options: EventRecorderOptions) {
    this.#client = client;
    this.#replica = options.replica;
    this.#deduper = new EventDeduper(options);
    this.#countError = options.countError;
  }

  /** Records one Event unless an identical one was recorded recently; never throws. */
  async record(subject: EventSubject, note: EventNote, signal?: AbortSignal): Promise<void> {
    const meta = subject.metadata ?? {};
    const key = `${meta.uid ?? `${meta.namespace}/${meta.name}`}|${note.type}|${note.reason}|` +
      note.message;
    if (!this.#deduper.admit(key)) return;
    const now = new Date();
    // Unique across replicas recording at the same millisecond (client-go uses time + random too).
    const suffix = `${now.getTime().toString(16)}${crypto.randomUUID().slice(0, 8)}`;
    const event = buildEvent({ subject, note, replica: this.#replica, now, suffix });
    try {
      await this.#client.create(CORE_EVENTS, event, signal ? { signal } : {});
    } catch (error) {
      if (signal?.aborted) return;
      this.#countError?.("FailedRecordEvent");
      logger.warn("Cannot record Event {reason} for {object}: {error}", {
        reason: note.reason,
        object: `${meta.namespace}/${meta.name}`,
        error: errorMessage(error),
      });
    }
  }
}
