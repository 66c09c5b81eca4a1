/**
 * `deno task helm`: provides the `helm` the chart tests run. Uses what `findHelm()` finds
 * (`HELM_BIN`, the version-keyed cache); otherwise builds `helm.sh/helm/v3/cmd/helm` with the Go
 * toolchain from the module in this folder into a temporary directory beside the cache entry and
 * renames it into place, as `tests/controlplane/provision.ts` does for the control plane.
 *
 * Progress goes to stderr; the last line of stdout is the path of `helm`.
 * @module
 */
import { findGo, goBuild, ProvisionError, run } from "../../controlplane/provision.ts";
import { findHelm, helmCacheDir, helmGoModUrl, helmVersion } from "./binary.ts";

const encoder = new TextEncoder();

function progress(message: string): void {
  Deno.stderr.writeSync(encoder.encode(`[helm] ${message}\n`));
}

async function main(): Promise<string> {
  const lookup = findHelm();
  if (lookup.found) {
    progress(`using ${lookup.source}`);
    return lookup.path;
  }
  if (lookup.misconfigured) throw new ProvisionError(lookup.reason);
  progress(`no helm yet: ${lookup.reason}`);
  const version = helmVersion();
  const finalDir = helmCacheDir(version);
  const moduleDir = new URL(".", helmGoModUrl()).pathname;
  const go = await findGo(moduleDir, helmGoModUrl(), "helm", "set HELM_BIN to an existing helm");
  progress(`building helm ${version} with ${go.version} into ${finalDir}`);
  const parent = finalDir.slice(0, finalDir.lastIndexOf("/"));
  await Deno.mkdir(parent, { recursive: true });
  const tempDir = await Deno.makeTempDir({ dir: parent, prefix: ".build-" });
  try {
    const started = Date.now();
    await run([go.path, "mod", "download"], moduleDir);
    // What helm's Makefile stamps in: its version, and the Kubernetes minor of its client-go as the
    // default for `helm template`/`helm lint` (else v1.20, older than any chart's kubeVersion).
    const goMod = await Deno.readTextFile(helmGoModUrl());
    const kubeMinor = /^\s*k8s\.io\/client-go\s+v0\.(\d+)\./m.exec(goMod)?.[1];
    if (kubeMinor === undefined) {
      throw new ProvisionError("go.mod does not require k8s.io/client-go");
    }
    const xFlags = [`-X helm.sh/helm/v3/internal/version.version=${version}`];
    for (const pkg of ["helm.sh/helm/v3/pkg/lint/rules", "helm.sh/helm/v3/pkg/chartutil"]) {
      xFlags.push(`-X ${pkg}.k8sVersionMajor=1`, `-X ${pkg}.k8sVersionMinor=${kubeMinor}`);
    }
    await goBuild(
      go.path,
      moduleDir,
      "helm.sh/helm/v3/cmd/helm",
      `${tempDir}/helm`,
      xFlags,
      progress,
    );
    const printed = await run([`${tempDir}/helm`, "version", "--short"], moduleDir);
    if (!printed.startsWith(version)) {
      throw new ProvisionError(`helm version printed ${JSON.stringify(printed)}, not ${version}`);
    }
    await Deno.remove(finalDir, { recursive: true }).catch(() => {});
    await Deno.rename(tempDir, finalDir);
    progress(`built in ${Math.round((Date.now() - started) / 1000)}s`);
    return `${finalDir}/helm`;
  } finally {
    await Deno.remove(tempDir, { recursive: true }).catch(() => {});
  }
}

if (import.meta.main) {
  try {
    Deno.stdout.writeSync(encoder.encode(`${await main()}\n`));
  } catch (error) {
    progress(`FAILED: ${error instanceof ProvisionError ? error.message : String(error)}`);
    Deno.exit(1);
  }
}
