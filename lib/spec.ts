/**
 * The forwarding spec model shared by every source of desired state (CR watch, YAML file) and the
 * data plane. Mirrors `spec` of the `UnDyingProxy` custom resource.
 * @module
 */

/** One TCP forward: listen on `listenPort`, forward to `targetHost:targetPort`. */
export interface TcpSpec {
  readonly listenPort: number;
  readonly targetPort: number;
  /** DNS name or IP literal (IPv6 without brackets). Resolved on every dial. */
  readonly targetHost: string;
}

/** One UDP forward, with its session timeouts. */
export interface UdpSpec extends TcpSpec {
  /** A session expires after this many seconds without traffic in either direction. @default 30 */
  readonly readTimeoutSeconds: number;
  /** Upper bound for each send. @default 5 */
  readonly writeTimeoutSeconds: number;
}

/** The complete desired state of one forwarder, identified by `name` (a CR's `namespace/name`). */
export interface ForwarderSpec {
  readonly name: string;
  readonly tcp?: TcpSpec;
  readonly udp?: UdpSpec;
}

/** One validation problem: which field, the offending value, and why it is wrong. */
export interface SpecProblem {
  /** Dotted path, e.g. `spec.udp.listenPort`. */
  readonly field: string;
  readonly value: unknown;
  readonly reason: string;
}

/** Result of {@linkcode parseForwarderSpec}: a valid spec or every problem found. */
export type SpecResult =
  | { readonly ok: true; readonly spec: ForwarderSpec }
  | { readonly ok: false; readonly problems: readonly SpecProblem[] };
