/**
 * What the reconcile loop reports about itself, in the terms of controller-runtime's controller and
 * work-queue metrics (the Go operator exported those): requests queued, passes started and their
 * outcome. The loop has one queue item (a full pass over every object), so a pass is a reconcile.
 * @module
 */

/** The outcome of one reconcile pass: `error` when a step failed and the pass is retried. */
export type PassResult = "success" | "error";

/** Receives the loop's queue and pass events; every method must be cheap and never throw. */
export interface LoopObserver {
  /** A change asked for a pass (a watch event, a listener change). */
  queued(): void;
  /** A pass starts (after the queued requests were merged). */
  started(): void;
  /** The pass that started last ended; `error` passes are retried with backoff. */
  finished(result: PassResult): void;
}

/** An observer that records nothing. */
export const NO_OBSERVER: LoopObserver = {
  queued() {},
  started() {},
  finished() {},
};
