/**
 * The contract between a source of desired state (the `--config` file, the Kubernetes watch) and the
 * program: the source hands over complete desired sets, never diffs.
 * @module
 */
import type { ForwarderSpec } from "./spec.ts";

/** Delivers complete desired sets; the first delivery is the initial state (readiness waits for it). */
export interface DesiredStateSource {
  /** For logs, e.g. `file k8s/samples/local.yaml`. */
  readonly description: string;
  /**
   * Calls `apply` with the complete desired set: first the initial one, then after every change.
   * Resolves once `signal` is aborted and everything it started has stopped.
   * @throws {Error} on a failure it cannot recover from (the program then stops with exit code 1).
   */
  run(apply: (desired: readonly ForwarderSpec[]) => void, signal: AbortSignal): Promise<void>;
}
