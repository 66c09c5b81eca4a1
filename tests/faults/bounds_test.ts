/**
 * Fault suite, point 6 of issue 12: UDP timeouts have upper bounds, in the file mode and the CRD.
 */
import assert from "node:assert/strict";
import { load } from "js-yaml";
import {
  MAX_READ_TIMEOUT_SECONDS,
  MAX_WRITE_TIMEOUT_SECONDS,
  parseForwarderSpec,
} from "../../lib/spec.ts";
import { repoRoot } from "../_support/kustomize.ts";

const udp = (timeouts: Record<string, number>) => ({
  udp: { listenPort: 1, targetPort: 2, targetHost: "127.0.0.1", ...timeouts },
});

Deno.test("readTimeoutSeconds and writeTimeoutSeconds beyond their bounds are rejected", () => {
  for (
    const [field, max] of [
      ["readTimeoutSeconds", MAX_READ_TIMEOUT_SECONDS],
      ["writeTimeoutSeconds", MAX_WRITE_TIMEOUT_SECONDS],
    ] as const
  ) {
    assert.ok(parseForwarderSpec("a", udp({ [field]: max })).ok, `${field} = ${max}`);
    for (const value of [max + 1, 9223372036854775807]) {
      const result = parseForwarderSpec("a", udp({ [field]: value }));
      assert.ok(!result.ok, `${field} = ${value} accepted`);
      assert.equal(result.problems[0]?.field, `spec.udp.${field}`);
      assert.match(result.problems[0]?.reason ?? "", new RegExp(`from 1 to ${max}`));
    }
  }
});

Deno.test("the CRD bounds the UDP timeouts with the same maximums", async () => {
  const crd = load(
    await Deno.readTextFile(`${repoRoot}k8s/crd/proxy.sfact.io_undyingproxies.yaml`),
  ) as {
    spec: {
      versions: {
        schema: {
          openAPIV3Schema: {
            properties: { spec: { properties: { udp: { properties: Record<string, unknown> } } } };
          };
        };
      }[];
    };
  };
  for (const version of crd.spec.versions) {
    const fields = version.schema.openAPIV3Schema.properties.spec.properties.udp.properties;
    assert.equal((fields["readTimeoutSeconds"] as { maximum?: number }).maximum, 86_400);
    assert.equal((fields["writeTimeoutSeconds"] as { maximum?: number }).maximum, 3_600);
  }
  assert.equal(MAX_READ_TIMEOUT_SECONDS, 86_400);
  assert.equal(MAX_WRITE_TIMEOUT_SECONDS, 3_600);
});
