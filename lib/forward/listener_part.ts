/**
 * One protocol part (TCP or UDP) of one forwarder: waits for its port claim, binds, retries a failed
 * bind with capped exponential backoff, applies live updates, and drains on stop. The supervisor
 * decides who may claim a port; this class only reports its state.
 * @module
 */

import { getLogger } from "@logtape/logtape";
import type { PartSpec } from "../spec.ts";
import type { StopCause } from "./access_log.ts";
import { Backoff } from "../util/backoff.ts";
import type { TargetReport } from "./policy/forwarder_policy.ts";
import type { ForbiddenTarget } from "./policy/target_policy.ts";
import type { ListenerState, Protocol } from "./state.ts";
import { errorMessage } from "../util/error_message.ts";

const log = getLogger(["undying-proxy", "supervisor"]);

/** A bound, forwarding listener of either protocol. */
export interface RunningForwarder<S> {
  /** Resolves once the listening socket is closed and its port free again. */
  readonly released: Promise<void>;
  /** Applies a spec with the same listen port (new target, new timeouts). */
  update(spec: S): void;
  /**
   * Stops taking new clients, lets live ones finish for up to `graceMs`, then closes all (their
   * access records say `cause`, default `drained`).
   */
  drain(graceMs: number, cause?: StopCause): Promise<void>;
}

/** How a part binds and reports. */
export interface ListenerPartOptions<S> {
  readonly forwarder: string;
  readonly protocol: Protocol;
  /**
   * Binds `spec.listenPort` (throwing or rejecting with the OS error) and starts forwarding; an
   * engine that binds in another thread answers with a promise. The forwarder calls `onTarget`
   * whenever it learns whether its target is forbidden (see `TargetPolicy`).
   */
  readonly open: (
    spec: S,
    onTarget: TargetReport,
  ) => RunningForwarder<S> | Promise<RunningForwarder<S>>;
  /** Called with every bind failure (for the error counters). */
  readonly onBindError: (error: unknown) => void;
  readonly bindRetryInitialMs: number;
  readonly bindRetryMaxMs: number;
  /** Called after every state change (not after `stop()`). */
  readonly onChange: () => void;
}

export type { TargetReport };

/** What `stop()` hands back: when the port is free, and when everything is closed. */
export interface PartStop {
  readonly released: Promise<void>;
  readonly done: Promise<void>;
}

/** The listener of one protocol of one forwarder. */
export class ListenerPart<S extends PartSpec> {
  readonly #options: ListenerPartOptions<S>;
  #spec: S;
  #state: ListenerState = { phase: "pending" };
  #running: RunningForwarder<S> | undefined;
  /** The forwarder's last target verdict. */
  #forbidden: ForbiddenTarget | undefined;
  /** An asynchronous bind in progress (its result, or undefined when it failed). */
  #opening: Promise<RunningForwarder<S> | undefined> | undefined;
  #claimed = false;
  #stopped = false;
  readonly #retryBackoff: Backoff;
  #retryTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(spec: S, options: ListenerPartOptions<S>) {
    this.#spec = spec;
    this.#options = options;
    // Bind retries start over only after a successful bind: ±20% so forwarders do not retry in step.
    this.#retryBackoff = new Backoff({
      initialMs: options.bindRetryInitialMs,
      maxMs: options.bindRetryMaxMs,
      resetAfterMs: Number.POSITIVE_INFINITY,
      jitter: [0.8, 1.2],
    });
  }

  /** The current spec. */
  get spec(): S {
    return this.#spec;
  }

  /** The reported state. */
  get state(): ListenerState {
    return this.#state;
  }

  /** True once this part holds its port claim (it binds or retries). */
  get claimed(): boolean {
    return this.#claimed;
  }

  /** Reports that `holder` has the port; the supervisor calls `start()` once it is free. */
  waitFor(holder: string): void {
    const state = this.#state;
    if (state.phase === "conflict" && state.holder === holder) return;
    log.warn("{protocol} port {port} of {forwarder} is held by {holder}; waiting", {
      protocol: this.#options.protocol,
      port: this.#spec.listenPort,
      forwarder: this.#options.forwarder,
      holder,
    });
    this.#setState({ phase: "conflict", holder, port: this.#spec.listenPort });
  }

  /**
   * Takes the claim and binds at once (binding is synchronous), so the state is `listening` or
   * `failed` when this returns; a failed bind is retried until bound or stopped.
   */
  start(): void {
    if (this.#claimed || this.#stopped) return;
    this.#claimed = true;
    this.#bind();
  }

  /** Applies a spec with the same listen port; new clients see it at once. */
  update(spec: S): void {
    this.#spec = spec;
    this.#running?.update(spec);
  }

  /**
   * Stops retrying and drains the listener (if bound); no more state changes are reported.
   * @param cause Why, for the access records of what is still open then.
   */
  stop(graceMs: number, cause?: StopCause): PartStop {
    this.#stopped = true;
    clearTimeout(this.#retryTimer);
    const opening = this.#opening;
    if (opening !== undefined) {
      // Bound in another thread: stop whatever the bind in progress yields.
      return {
        released: opening.then((running) => running?.released),
        done: opening.then((running) => running && this.#drain(running, graceMs, cause)),
      };
    }
    const running = this.#running;
    if (running === undefined) return { released: Promise.resolve(), done: Promise.resolve() };
    return { released: running.released, done: this.#drain(running, graceMs, cause) };
  }

  #drain(running: RunningForwarder<S>, graceMs: number, cause?: StopCause): Promise<void> {
    return running.drain(graceMs, cause).then(() => {
      log.info("Stopped listening on {protocol} port {port} for {forwarder}", this.#logProps());
    });
  }

  /** Resolves once a bind in progress (an engine thread's) has succeeded or failed. */
  async binding(): Promise<void> {
    await this.#opening;
  }

  #bind(): void {
    if (this.#stopped) return;
    let opened;
    try {
      opened = this.#options.open(this.#spec, (forbidden) => this.#reportTarget(forbidden));
    } catch (error) {
      this.#bindFailed(error);
      return;
    }
    if (!(opened instanceof Promise)) {
      this.#bound(opened);
      return;
    }
    const spec = this.#spec;
    this.#opening = opened.then(
      (running) => {
        this.#opening = undefined;
        if (!this.#stopped) {
          if (this.#spec !== spec) running.update(this.#spec);
          this.#bound(running);
        }
        return running;
      },
      (error: unknown) => {
        this.#opening = undefined;
        if (!this.#stopped) this.#bindFailed(error);
        return undefined;
      },
    );
  }

  #bindFailed(error: unknown): void {
    this.#options.onBindError(error);
    const retryInMs = this.#retryBackoff.next();
    const reason = errorMessage(error);
    log.warn(
      "Cannot listen on {protocol} port {port} for {forwarder}: {reason}; retrying in {retryInMs} ms",
      { ...this.#logProps(), reason, retryInMs },
    );
    this.#setState({ phase: "failed", reason, retryInMs });
    this.#retryTimer = setTimeout(() => this.#bind(), retryInMs);
  }

  #bound(running: RunningForwarder<S>): void {
    this.#running = running;
    this.#retryBackoff.reset();
    log.info("Listening on {protocol} port {port} for {forwarder}", this.#logProps());
    this.#setState(this.#boundState());
  }

  /** `listening`, or `forbidden` while the target's verdict says so. */
  #boundState(): ListenerState {
    const port = this.#spec.listenPort;
    const forbidden = this.#forbidden;
    return forbidden === undefined
      ? { phase: "listening", port }
      : { phase: "forbidden", port, address: forbidden.address, rule: forbidden.rule };
  }

  #reportTarget(forbidden: ForbiddenTarget | undefined): void {
    const before = this.#forbidden;
    this.#forbidden = forbidden;
    if (before?.address === forbidden?.address && before?.rule === forbidden?.rule) return;
    if (forbidden !== undefined) {
      log.warn(
        "Not forwarding {protocol} port {port} of {forwarder}: target {host} resolves to {address}, forbidden by {rule}",
        { ...this.#logProps(), host: this.#spec.targetHost, ...forbidden },
      );
    } else if (before !== undefined) {
      log.info("The {protocol} target of {forwarder} is allowed again", this.#logProps());
    }
    const phase = this.#state.phase;
    if (!this.#stopped && (phase === "listening" || phase === "forbidden")) {
      this.#setState(this.#boundState());
    }
  }

  #setState(state: ListenerState): void {
    this.#state = state;
    if (!this.#stopped) this.#options.onChange();
  }

  #logProps(): Record<string, unknown> {
    return {
      protocol: this.#options.protocol,
      port: this.#spec.listenPort,
      forwarder: this.#options.forwarder,
    };
  }
}
