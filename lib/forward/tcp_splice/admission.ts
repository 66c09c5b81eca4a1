/**
 * Who a splice engine thread lets in on one listener, in the portable engine's order: the source
 * ranges, `maxConnections` over every thread (a shared count), the per-source limit and rate (a
 * {@linkcode SourceGate} of this thread: exact only with one thread, which is why such parts run on
 * the portable engine when there are several), then the target rules. Plain code, no I/O.
 * @module
 */

import { SourceGate, type SourceLimits } from "../policy/source_gate.ts";
import type { TcpRejectReason } from "../state.ts";
import type { TcpListenerPolicy } from "./messages.ts";

/** The gate rules of `policy` (the shared `maxConnections` is counted apart), or undefined if none. */
function gateLimits(policy: TcpListenerPolicy): SourceLimits | undefined {
  const limits: SourceLimits = {
    sourceRanges: policy.sourceRanges,
    ...(policy.maxConnectionsPerSource !== undefined &&
      { maxActivePerSource: policy.maxConnectionsPerSource }),
    ...(policy.connectionsPerSecondPerSource !== undefined &&
      { ratePerSecondPerSource: policy.connectionsPerSecondPerSource }),
    ...(policy.connectionBurstPerSource !== undefined &&
      { burstPerSource: policy.connectionBurstPerSource }),
  };
  const gated = policy.sourceRanges.length > 0 || policy.maxConnectionsPerSource !== undefined ||
    policy.connectionsPerSecondPerSource !== undefined;
  return gated ? limits : undefined;
}

/**
 * Checks `policy` as the engine threads will take it (the main thread calls this before posting).
 * @throws {RangeError} when a range or a number is invalid.
 */
export function validateTcpPolicy(policy: TcpListenerPolicy): void {
  const limits = gateLimits(policy);
  if (limits !== undefined) new SourceGate(limits);
  const max = policy.maxConnections;
  if (max !== undefined && (!Number.isSafeInteger(max) || max < 1)) {
    throw new RangeError(`maxConnections must be a whole number >= 1, got ${max}`);
  }
}

/** Admission of one listener on one engine thread. */
export class TcpAdmission {
  /** Connections open over every thread of the listener (index 0). */
  readonly #inUse: Int32Array<SharedArrayBuffer>;
  #maxConnections = Infinity;
  #gate: SourceGate | undefined;

  /** @param inUse the listener's shared count (one Int32). */
  constructor(inUse: SharedArrayBuffer, policy: TcpListenerPolicy) {
    this.#inUse = new Int32Array(inUse, 0, 1);
    this.apply(policy);
  }

  /**
   * New clients follow `policy`; open connections keep counting (a gate reconfigured in place
   * keeps each source's count).
   * @throws {RangeError} when a range or a number is invalid (then nothing changes).
   */
  apply(policy: TcpListenerPolicy): void {
    const limits = gateLimits(policy);
    if (limits === undefined) this.#gate = undefined;
    else if (this.#gate === undefined) this.#gate = new SourceGate(limits);
    else this.#gate.reconfigure(limits);
    this.#maxConnections = policy.maxConnections ?? Infinity;
  }

  /** The gate of new clients: when set, `admit` needs the client's address. */
  get gate(): SourceGate | undefined {
    return this.#gate;
  }

  /**
   * Admits a client from `source` (its address; "" when there is no gate), counting it until
   * {@linkcode release} with the gate it got, or says why not (then nothing is counted).
   */
  admit(source: string, forbidden: boolean, nowMs: number): TcpRejectReason | undefined {
    const gate = this.#gate;
    if (gate !== undefined && !gate.allows(source)) return "SourceNotAllowed";
    if (Atomics.add(this.#inUse, 0, 1) >= this.#maxConnections) {
      Atomics.sub(this.#inUse, 0, 1);
      return "MaxConnections";
    }
    const rejection = gate?.admit(source, nowMs);
    let reason: TcpRejectReason | undefined;
    if (rejection === "ActivePerSource") reason = "MaxConnectionsPerSource";
    else if (rejection === "Rate") reason = "ConnectionRate";
    else if (forbidden) {
      gate?.release(source);
      reason = "TargetForbidden";
    }
    if (reason !== undefined) Atomics.sub(this.#inUse, 0, 1);
    return reason;
  }

  /** Ends a connection admitted by `gate` (the gate current at its admission). */
  release(gate: SourceGate | undefined, source: string): void {
    Atomics.sub(this.#inUse, 0, 1);
    gate?.release(source);
  }
}
