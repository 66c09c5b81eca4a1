/**
 * Fixture for `tests/control_plane_test.ts`: starts a control plane, prints its directory on stdout
 * and waits to be killed, so the test can check nothing survives an interrupted test process.
 */
import { startControlPlane } from "./control_plane.ts";

const controlPlane = await startControlPlane({ installCrds: false });
Deno.stdout.writeSync(new TextEncoder().encode(`${controlPlane.dir}\n`));
// Keep the process alive until a signal arrives; teardown is the harness's job.
setInterval(() => {}, 60_000);
