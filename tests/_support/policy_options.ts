/**
 * Forwarder policy options for tests: the target rules and default source ranges as plain data,
 * and the verdicts the forwarder reported, in order.
 * @module
 */

import type { ForwarderPolicyOptions } from "../../lib/forward/policy/forwarder_policy.ts";
import {
  type ForbiddenTarget,
  TargetPolicy,
  type TargetPolicyOptions,
} from "../../lib/forward/policy/target_policy.ts";

/** What a policy test sets. */
export interface TestPolicy {
  readonly policy?: TargetPolicyOptions;
  readonly defaultSourceRanges?: readonly string[];
  /** Address the forwarder under test binds. @default "127.0.0.1" */
  readonly listen?: string;
}

/** Options for a forwarder, and the list its target verdicts are pushed to. */
export function recordingPolicy(
  test: TestPolicy,
): { options: Required<ForwarderPolicyOptions>; reports: Array<ForbiddenTarget | undefined> } {
  const reports: Array<ForbiddenTarget | undefined> = [];
  return {
    reports,
    options: {
      policy: new TargetPolicy(test.policy ?? {}),
      defaultSourceRanges: test.defaultSourceRanges ?? [],
      onTarget: (forbidden) => reports.push(forbidden),
    },
  };
}
