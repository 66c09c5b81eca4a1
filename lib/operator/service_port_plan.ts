/**
 * Pure planning of the ports the operator keeps in a managed Service: which ServicePort each
 * UnDyingProxy needs (name rule, port, protocol), and the new port list that keeps every port the
 * operator does not own untouched.
 *
 * Port naming rule (DNS-1123 label, at most 63 characters, unique in the Service). The prefix is
 * `tcp-`/`udp-` only where one Service holds both protocols; with the Go operator's layout (one
 * Service per protocol) there is none, so names stay what the Go operator wrote:
 * - object in the operator namespace whose `[<protocol>-]<name>` is a valid label: that;
 * - otherwise (another namespace, too long, or characters a label cannot hold):
 *   `[<protocol>-]<sanitised [namespace-]name, cut>-<8 hex digits of FNV-1a("namespace/name")>`.
 *
 * Ownership is recorded in the Service annotation {@linkcode MANAGED_PORTS_ANNOTATION} (the sorted,
 * comma-separated names of the ports the operator wrote), so hand-made and placeholder ports are
 * never touched and ports of vanished objects can be removed level-based. A port not yet owned but
 * named exactly like an object in the operator namespace (or like its wanted port), with that
 * object's protocol, is a port written by the Go operator (which used the bare object name): it is
 * adopted, and renamed where the Service holds both protocols. An owned port under another name
 * (the other naming layout) with a wanted port's protocol and number is renamed in place, keeping
 * its nodePort.
 * @module
 */

import type { ServicePort } from "kubernetes-types/core/v1.d.ts";
import type { ForwarderSpec } from "../spec.ts";

/** Service annotation listing the port names the operator owns. */
export const MANAGED_PORTS_ANNOTATION = "proxy.sfact.io/managed-ports";

/** A Service protocol the operator manages. */
export type ServiceProtocol = "TCP" | "UDP";

/** One ServicePort an UnDyingProxy needs. */
export interface WantedPort {
  readonly name: string;
  readonly port: number;
  readonly protocol: ServiceProtocol;
  /** The forwarder (`namespace/name`) the port belongs to. */
  readonly owner: string;
  /** The name the Go operator gave this port (the bare object name), adopted when found. */
  readonly legacyName?: string;
}

/** A forwarder whose port could not be placed in the Service, and why. */
export interface BlockedPort {
  readonly wanted: WantedPort;
  readonly reason: string;
}

/** The outcome of {@linkcode planServicePorts}. */
export interface ServicePortPlan {
  /** The complete new port list (operator-owned and foreign ports). */
  readonly ports: readonly ServicePort[];
  /** Sorted names of the ports the operator owns after the change. */
  readonly owned: readonly string[];
  readonly added: readonly WantedPort[];
  readonly removed: readonly ServicePort[];
  readonly blocked: readonly BlockedPort[];
  /** True when the ports or the ownership annotation must be written. */
  readonly changed: boolean;
}

const MAX_LABEL = 63;
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/** 32-bit FNV-1a of a string's UTF-16 code units, as 8 hex digits (stable, not cryptographic). */
function fnv1aHex(text: string): string {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash.toString(16).padStart(8, "0");
}

/**
 * The ServicePort name of one object and protocol: `game`, or `tcp-game` when `prefixed` (one
 * Service holds both protocols); see the module doc for the rule.
 */
export function servicePortName(
  protocol: ServiceProtocol,
  object: {
    readonly namespace: string;
    readonly name: string;
    readonly operatorNamespace: string;
    /** One Service holds both protocols. */
    readonly prefixed: boolean;
  },
): string {
  const { namespace, name, operatorNamespace, prefixed } = object;
  const prefix = prefixed ? `${protocol.toLowerCase()}-` : "";
  const plain = prefix + name;
  if (namespace === operatorNamespace && plain.length <= MAX_LABEL && DNS_LABEL.test(plain)) {
    return plain;
  }
  const base = (namespace === operatorNamespace ? name : `${namespace}-${name}`)
    .toLowerCase().replace(/[^a-z0-9-]+/g, "-");
  const hash = fnv1aHex(`${namespace}/${name}`);
  const head = base.slice(0, MAX_LABEL - prefix.length - 1 - hash.length).replace(/-+$/, "");
  return head ? `${prefix}${head}-${hash}` : `${prefix}${hash}`;
}

/** Splits a forwarder name `namespace/name`. */
export function splitForwarderName(name: string): { namespace: string; name: string } {
  const slash = name.indexOf("/");
  if (slash <= 0) throw new TypeError(`Forwarder name "${name}" is not "namespace/name"`);
  return { namespace: name.slice(0, slash), name: name.slice(slash + 1) };
}

/**
 * The ports the desired set needs for the given protocols (the protocols of one Service: names are
 * prefixed when there are two), in desired order. When two forwarders want the same protocol and
 * port, only the first (the one the supervisor lets listen) gets it.
 */
export function wantedServicePorts(
  desired: readonly ForwarderSpec[],
  protocols: readonly ServiceProtocol[],
  operatorNamespace: string,
): WantedPort[] {
  const wanted: WantedPort[] = [];
  const taken = new Set<string>();
  for (const spec of desired) {
    const { namespace, name } = splitForwarderName(spec.name);
    for (const protocol of protocols) {
      const part = protocol === "TCP" ? spec.tcp : spec.udp;
      if (!part) continue;
      const key = `${protocol}/${part.listenPort}`;
      if (taken.has(key)) continue;
      taken.add(key);
      wanted.push({
        name: servicePortName(protocol, {
          namespace,
          name,
          operatorNamespace,
          prefixed: protocols.length > 1,
        }),
        port: part.listenPort,
        protocol,
        owner: spec.name,
        ...(namespace === operatorNamespace ? { legacyName: name } : {}),
      });
    }
  }
  return wanted;
}

/** Parses the ownership annotation into port names. */
export function parseOwnedPorts(annotation: string | undefined): Set<string> {
  return new Set((annotation ?? "").split(",").map((s) => s.trim()).filter((s) => s !== ""));
}

/** Formats port names for the ownership annotation (sorted, comma-separated). */
export function formatOwnedPorts(names: Iterable<string>): string {
  return [...new Set(names)].sort().join(",");
}

function toServicePort(wanted: WantedPort, previous?: ServicePort): ServicePort {
  const port: ServicePort = {
    name: wanted.name,
    port: wanted.port,
    targetPort: wanted.port,
    protocol: wanted.protocol,
  };
  // Keep an allocated nodePort while the port itself is unchanged (LoadBalancer/NodePort Services).
  if (
    previous?.nodePort !== undefined && previous.port === wanted.port &&
    (previous.protocol ?? "TCP") === wanted.protocol
  ) {
    port.nodePort = previous.nodePort;
  }
  return port;
}

function matches(current: ServicePort, wanted: WantedPort): boolean {
  return current.name === wanted.name && current.port === wanted.port &&
    (current.protocol ?? "TCP") === wanted.protocol && current.targetPort === wanted.port;
}

/**
 * The wanted port an owned port `p` under another name becomes (same protocol and number), when
 * that wanted port is not placed yet and has no port of its own name in `current`.
 */
function renamable(
  p: ServicePort,
  plan: {
    readonly placeable: ReadonlyMap<string, WantedPort>;
    readonly placed: ReadonlySet<string>;
    readonly current: readonly ServicePort[];
  },
): WantedPort | undefined {
  const { placeable, placed, current } = plan;
  for (const w of placeable.values()) {
    if (placed.has(w.name) || w.port !== p.port || w.protocol !== (p.protocol ?? "TCP")) continue;
    if (!current.some((c) => c.name === w.name)) return w;
  }
  return undefined;
}

/**
 * Plans the new port list of a Service: owned ports are updated in place, added at the end or
 * removed; foreign ports keep their place and values. A wanted port whose name or protocol+port is
 * held by a foreign port is reported as blocked instead of written.
 * @param current the Service's `spec.ports`
 * @param owned the names from {@linkcode MANAGED_PORTS_ANNOTATION}
 * @param wanted every port the operator wants in this Service
 */
export function planServicePorts(
  current: readonly ServicePort[],
  owned: ReadonlySet<string>,
  wanted: readonly WantedPort[],
): ServicePortPlan {
  const wantedByName = new Map(wanted.map((w) => [w.name, w]));
  const legacy = new Map<string, WantedPort>();
  for (const w of wanted) {
    if (w.legacyName !== undefined && !wantedByName.has(w.legacyName)) legacy.set(w.legacyName, w);
  }
  const isOwned = (p: ServicePort): boolean => {
    if (p.name === undefined) return false;
    if (owned.has(p.name)) return true;
    const adoptable = legacy.get(p.name) ?? wantedByName.get(p.name);
    return adoptable !== undefined && (p.protocol ?? "TCP") === adoptable.protocol;
  };

  const foreign = current.filter((p) => !isOwned(p));
  const foreignNames = new Set(foreign.map((p) => p.name));
  const foreignPorts = new Set(foreign.map((p) => `${p.protocol ?? "TCP"}/${p.port}`));
  const blocked: BlockedPort[] = [];
  const placeable = new Map<string, WantedPort>();
  for (const w of wanted) {
    if (foreignNames.has(w.name)) {
      blocked.push({
        wanted: w,
        reason: `port name "${w.name}" is used by a port not owned by us`,
      });
    } else if (foreignPorts.has(`${w.protocol}/${w.port}`)) {
      blocked.push({
        wanted: w,
        reason: `${w.protocol} port ${w.port} is used by a port not owned by us`,
      });
    } else {
      placeable.set(w.name, w);
    }
  }

  const ports: ServicePort[] = [];
  const removed: ServicePort[] = [];
  const placed = new Set<string>();
  for (const p of current) {
    if (!isOwned(p)) {
      ports.push(p);
      continue;
    }
    const w = p.name === undefined ? undefined : placeable.get(p.name);
    if (w && !placed.has(w.name)) {
      placed.add(w.name);
      ports.push(matches(p, w) ? p : toServicePort(w, p));
    } else {
      const adopted = (p.name === undefined ? undefined : legacy.get(p.name)) ??
        renamable(p, { placeable, placed, current });
      if (adopted && placeable.has(adopted.name) && !placed.has(adopted.name)) {
        placed.add(adopted.name);
        ports.push(toServicePort(adopted, p));
      } else {
        removed.push(p);
      }
    }
  }
  const added: WantedPort[] = [];
  for (const w of placeable.values()) {
    if (placed.has(w.name)) continue;
    ports.push(toServicePort(w));
    added.push(w);
  }

  const ownedAfter = formatOwnedPorts(placeable.keys()).split(",").filter((s) => s !== "");
  const changed = formatOwnedPorts(owned) !== formatOwnedPorts(ownedAfter) ||
    ports.length !== current.length || ports.some((p, i) => p !== current[i]);
  return { ports, owned: ownedAfter, added, removed, blocked, changed };
}
