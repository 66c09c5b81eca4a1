/**
 * Health probes: `/healthz` answers while the event loop runs; `/readyz` answers 200 only once the
 * initial desired state was applied and no forwarder is still `pending`, and 503 during shutdown.
 * @module
 */
import type { ForwarderStatus } from "./forward/state.ts";

/** Whether the program should receive traffic, and if not, why. */
export type ReadinessCheck = { readonly ready: true } | {
  readonly ready: false;
  readonly reason: string;
};

/** Readiness of the program, derived from the supervisor's statuses. */
export class Readiness {
  #statuses: () => Iterable<ForwarderStatus>;
  #applied = false;
  #shuttingDown = false;
  #wasReady = false;

  /** @param statuses The current status of every desired forwarder (the supervisor's `statuses`). */
  constructor(statuses: () => Iterable<ForwarderStatus>) {
    this.#statuses = statuses;
  }

  /** The source delivered its initial desired set and it was applied. */
  markApplied(): void {
    this.#applied = true;
  }

  /** Shutdown began: never ready again. */
  markShuttingDown(): void {
    this.#shuttingDown = true;
  }

  /** True the first time the program is ready (for a one-time log line), false before and after. */
  becameReady(): boolean {
    if (this.#wasReady || !this.check().ready) return false;
    this.#wasReady = true;
    return true;
  }

  /**
   * Ready when the initial state is applied and every forwarder that can bind listens. Forwarders that
   * failed to bind or lost a port conflict do not hold readiness back: they are retried and reported,
   * and one bad object must not take the whole replica out of rotation.
   */
  check(): ReadinessCheck {
    if (this.#shuttingDown) return { ready: false, reason: "shutting down" };
    if (!this.#applied) return { ready: false, reason: "initial configuration not applied yet" };
    const pending: string[] = [];
    for (const status of this.#statuses()) {
      for (const protocol of ["tcp", "udp"] as const) {
        if (status[protocol]?.phase === "pending") pending.push(`${status.name} (${protocol})`);
      }
    }
    if (pending.length > 0) {
      const shown = pending.slice(0, 10).join(", ") + (pending.length > 10 ? ", ..." : "");
      return { ready: false, reason: `${pending.length} listener(s) pending: ${shown}` };
    }
    return { ready: true };
  }
}

/** Answers `/healthz` and `/readyz` (`?verbose` is accepted and ignored); anything else is 404. */
export function probeHandler(readiness: Readiness): (request: Request) => Response {
  return (request) => {
    switch (new URL(request.url).pathname) {
      case "/healthz":
      case "/livez":
        return new Response("ok\n");
      case "/readyz": {
        const check = readiness.check();
        return check.ready
          ? new Response("ok\n")
          : new Response(`not ready: ${check.reason}\n`, { status: 503 });
      }
      default:
        return new Response("not found\n", { status: 404 });
    }
  };
}
