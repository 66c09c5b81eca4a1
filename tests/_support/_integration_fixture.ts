/**
 * Fixture for `tests/control_plane_test.ts`, run with `deno test` in a subprocess whose environment
 * hides the binaries: one `integrationTest` that must be ignored (or fail when CI=true).
 */
import { integrationTest } from "./control_plane.ts";

integrationTest("fixture needing a control plane", async (cp) => {
  await cp.kubectlOk(["get", "namespaces"]);
});
