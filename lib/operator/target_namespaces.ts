/**
 * `--allowed-target-namespaces`: objects may only target Services of their own namespace or of the
 * listed ones. Checked on Service names (`NAME.NAMESPACE.svc`, with or without the cluster domain);
 * other names and IP addresses are left to the target CIDR rules.
 * @module
 */

import type { ForwarderSpec, SpecProblem } from "../spec.ts";

/** The namespaces a Service name (`NAME.NAMESPACE.svc[.DOMAIN]`) lies in, else undefined. */
export function serviceNamespace(host: string): string | undefined {
  const labels = host.toLowerCase().replace(/\.$/, "").split(".");
  const svc = labels.indexOf("svc");
  return svc >= 2 ? labels[svc - 1] : undefined;
}

/**
 * The problems of `spec` under the namespace rule (each marked `forbidden`), or none.
 * @param namespace The object's own namespace (always allowed).
 * @param allowed `--allowed-target-namespaces`: "*" for any, else the extra namespaces.
 */
export function targetNamespaceProblems(
  spec: ForwarderSpec,
  namespace: string,
  allowed: "*" | readonly string[],
): SpecProblem[] {
  if (allowed === "*") return [];
  const problems: SpecProblem[] = [];
  for (const protocol of ["tcp", "udp"] as const) {
    const host = spec[protocol]?.targetHost;
    const target = host === undefined ? undefined : serviceNamespace(host);
    if (target === undefined || target === namespace || allowed.includes(target)) continue;
    problems.push({
      field: `spec.${protocol}.targetHost`,
      value: host,
      reason: `targets a Service of namespace "${target}"; allowed are the object's own ` +
        `namespace "${namespace}"${allowed.length > 0 ? ` and ${allowed.join(", ")}` : ""} ` +
        "(--allowed-target-namespaces)",
      forbidden: true,
    });
  }
  return problems;
}
