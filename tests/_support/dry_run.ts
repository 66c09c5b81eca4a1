/**
 * Server-side dry runs of rendered manifests (kustomize or helm) against the test control plane,
 * with stand-ins for the Prometheus Operator's CRDs that the optional objects need.
 * @module
 */
import assert from "node:assert/strict";
import type { ControlPlane } from "./control_plane.ts";
import { parseManifests } from "./kustomize.ts";

/**
 * Installs stand-ins for the Prometheus Operator's ServiceMonitor and PrometheusRule CRDs (any
 * spec accepted) and waits until they are Established.
 */
export async function installMonitoringCrdStubs(cp: ControlPlane): Promise<void> {
  for (
    const [kind, plural] of [["ServiceMonitor", "servicemonitors"], [
      "PrometheusRule",
      "prometheusrules",
    ]]
  ) {
    const crd = {
      apiVersion: "apiextensions.k8s.io/v1",
      kind: "CustomResourceDefinition",
      metadata: { name: `${plural}.monitoring.coreos.com` },
      spec: {
        group: "monitoring.coreos.com",
        names: { kind, plural, listKind: `${kind}List` },
        scope: "Namespaced",
        versions: [{
          name: "v1",
          served: true,
          storage: true,
          schema: {
            openAPIV3Schema: {
              type: "object",
              properties: {
                spec: { type: "object", "x-kubernetes-preserve-unknown-fields": true },
              },
            },
          },
        }],
      },
    };
    await cp.kubectlOk(["apply", "--server-side", "-f", "-"], { stdin: JSON.stringify(crd) });
    await cp.kubectlOk([
      "wait",
      "--for=condition=Established",
      "--timeout=60s",
      `crd/${plural}.monitoring.coreos.com`,
    ]);
  }
}

/**
 * `kubectl apply --server-side --dry-run=server` of `yaml`; asserts that it succeeds and that
 * every object was applied, and returns kubectl's stderr (warnings). `what` names the rendering.
 */
export async function serverDryRun(cp: ControlPlane, yaml: string, what: string): Promise<string> {
  const result = await cp.kubectl(["apply", "--server-side", "--dry-run=server", "-f", "-"], {
    stdin: yaml,
  });
  assert.equal(result.code, 0, `${what} dry run: ${result.stderr}`);
  const applied = result.stdout.trim().split("\n").length;
  assert.equal(applied, parseManifests(yaml).length, `${what}: every object applied`);
  return result.stderr;
}
