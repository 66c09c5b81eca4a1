/**
 * What a forwarder of either protocol (or a further engine) gets from the access policy: the target
 * rules, the default source ranges, and where to report its target's verdict.
 * @module
 */

import type { ForbiddenTarget, TargetPolicy } from "./target_policy.ts";

/** How a forwarder reports its target's verdict: the forbidden address, or undefined (allowed). */
export type TargetReport = (forbidden: ForbiddenTarget | undefined) => void;

/** The policy options shared by the TCP and UDP forwarders. */
export interface ForwarderPolicyOptions {
  /** Which target addresses may be used. @default TargetPolicy.ALLOW_ALL */
  readonly policy?: TargetPolicy;
  /** `sourceRanges` used when the spec has none. @default [] (everyone) */
  readonly defaultSourceRanges?: readonly string[];
  /** Told whether the target is forbidden, at start, on update and after each lookup. */
  readonly onTarget?: TargetReport;
}
