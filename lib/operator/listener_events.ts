/**
 * Pure diff of the supervisor's listener states between two reconcile passes, turned into the
 * Events to record (listener started, failed, in conflict, stopped) and the error metric types to
 * advance.
 * @module
 */

import type { ForwarderStatus, ListenerState, Protocol } from "../forward/state.ts";
import type { ForwarderSpec } from "../spec.ts";
import type { EventNote } from "./events.ts";
import type { OperatorErrorType } from "./operator_errors.ts";

/** One listener change worth an Event. */
export interface ListenerTransition {
  /** Forwarder name, `namespace/name`. */
  readonly name: string;
  readonly note: EventNote;
  /** Error type to count, for failures. */
  readonly error?: OperatorErrorType;
}

const PROTOCOLS: readonly Protocol[] = ["tcp", "udp"];

function same(a: ListenerState | undefined, b: ListenerState | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  if (a.phase !== b.phase) return false;
  if (a.phase === "listening" && b.phase === "listening") return a.port === b.port;
  if (a.phase === "conflict" && b.phase === "conflict") {
    return a.port === b.port && a.holder === b.holder;
  }
  if (a.phase === "forbidden" && b.phase === "forbidden") {
    return a.port === b.port && a.address === b.address && a.rule === b.rule;
  }
  return true;
}

/** One protocol part of one forwarder between two passes. */
interface PartChange {
  readonly name: string;
  readonly protocol: Protocol;
  readonly before: ListenerState | undefined;
  readonly after: ListenerState | undefined;
  /** The listen port of the desired spec, if any. */
  readonly port: number | undefined;
  readonly replica: string;
}

function transition(change: PartChange): ListenerTransition | undefined {
  const { name, protocol, before, after, port, replica } = change;
  if (same(before, after)) return undefined;
  const what = `${protocol.toUpperCase()} port ${port ?? "?"}`;
  switch (after?.phase) {
    case "listening":
      if (before?.phase === "forbidden" && before.port === after.port) {
        return {
          name,
          note: {
            type: "Normal",
            reason: "TargetAllowed",
            message: `${protocol.toUpperCase()} port ${after.port} on ${replica} forwards again: ` +
              `the target resolves to an allowed address`,
          },
        };
      }
      return {
        name,
        note: {
          type: "Normal",
          reason: "Listening",
          message: `${protocol.toUpperCase()} port ${after.port} listening on ${replica}`,
        },
      };
    case "failed":
      if (before?.phase === "failed") return undefined;
      return {
        name,
        note: {
          type: "Warning",
          reason: "BindFailed",
          message: `${what} cannot listen on ${replica}: ${after.reason} (retrying)`,
        },
        error: protocol === "tcp" ? "FailedSetupTCPForwarder" : "FailedSetupUDPForwarder",
      };
    case "conflict":
      return {
        name,
        note: {
          type: "Warning",
          reason: "PortConflict",
          message: `${protocol.toUpperCase()} port ${after.port} on ${replica} is held by ` +
            `${after.holder}; taken over once it is free`,
        },
      };
    case "forbidden":
      return {
        name,
        note: {
          type: "Warning",
          reason: "TargetForbidden",
          message: `${protocol.toUpperCase()} port ${after.port} on ${replica} does not forward: ` +
            `target address ${after.address} is forbidden: ${after.rule}`,
        },
        error: "TargetForbidden",
      };
    case "pending":
      return undefined;
    case undefined:
      if (before?.phase !== "listening") return undefined;
      return {
        name,
        note: {
          type: "Normal",
          reason: "Stopped",
          message: `${protocol.toUpperCase()} port ${before.port} stopped on ${replica}`,
        },
      };
  }
}

/**
 * The transitions from `previous` to `current` statuses (both keyed by forwarder name).
 * `specs` are the desired specs, for the listen port of failed listeners.
 */
export function listenerTransitions(input: {
  readonly previous: ReadonlyMap<string, ForwarderStatus>;
  readonly current: ReadonlyMap<string, ForwarderStatus>;
  readonly specs: ReadonlyMap<string, ForwarderSpec>;
  readonly replica: string;
}): ListenerTransition[] {
  const { previous, current, specs, replica } = input;
  const transitions: ListenerTransition[] = [];
  for (const name of new Set([...previous.keys(), ...current.keys()])) {
    for (const protocol of PROTOCOLS) {
      const t = transition({
        name,
        protocol,
        before: previous.get(name)?.[protocol],
        after: current.get(name)?.[protocol],
        port: specs.get(name)?.[protocol]?.listenPort,
        replica,
      });
      if (t) transitions.push(t);
    }
  }
  return transitions;
}
