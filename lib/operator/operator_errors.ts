/**
 * The `type` label values of `undying_proxy_operator_errors_total`: the Go operator's values first,
 * then the ones this operator adds.
 * @module
 */

/** Every operator error type (a closed set, usable as a metric label). */
export const OPERATOR_ERROR_TYPES = [
  // Go operator.
  "FailedSetupTCPForwarder",
  "FailedSetupUDPForwarder",
  "FailedFetch",
  "FailedUpdateStatus",
  "FailedRemoveFinalizer",
  "FailedAddFinalizer",
  "FailedServiceCleanup",
  "FailedManageTCPService",
  "FailedManageUDPService",
  // Added: an object's spec rejected, an Event not recorded, a dead replica's entry not removed.
  "InvalidSpec",
  "FailedRecordEvent",
  "FailedRemoveStaleReplica",
  // An ingress-nginx tcp/udp-services ConfigMap entry the operator cannot forward.
  "InvalidConfigMapEntry",
  // Added: a listener whose target resolves to an address the target policy forbids.
  "TargetForbidden",
] as const;

/** One operator error type. */
export type OperatorErrorType = typeof OPERATOR_ERROR_TYPES[number];

/** Advances `undying_proxy_operator_errors_total{type}` by one. */
export type CountOperatorError = (type: OperatorErrorType) => void;
