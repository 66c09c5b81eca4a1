/**
 * Where the chart tests' `helm` comes from: `HELM_BIN`, else the build cache outside the repository
 * keyed by the version pinned in `go.mod` beside this file (`deno task helm` fills it). Shared by
 * the provisioning script (`provision.ts`) and the test helper (`tests/_support/helm.ts`).
 * Synchronous because `Deno.test` registration is.
 * @module
 */
import { cacheRoot, notExecutable } from "../../controlplane/binaries.ts";

/** `file:` URL of the Go module that builds helm. */
export function helmGoModUrl(): URL {
  return new URL("./go.mod", import.meta.url);
}

/** The helm version required by `go.mod` (e.g. `v3.21.4`). */
export function helmVersion(): string {
  const match = /^\s*helm\.sh\/helm\/v3\s+(v\S+)/m.exec(Deno.readTextFileSync(helmGoModUrl()));
  if (!match?.[1]) throw new Error("tests/tools/helm/go.mod does not require helm.sh/helm/v3");
  return match[1];
}

/** Cache directory for the pinned version, e.g. `<root>/helm/helm-v3.21.4`. */
export function helmCacheDir(version: string = helmVersion()): string {
  return `${cacheRoot()}/helm/helm-${version}`;
}

/** Result of looking for helm: its path, or why there is none (`misconfigured`: a bad HELM_BIN). */
export type HelmLookup =
  | { readonly found: true; readonly path: string; readonly source: string }
  | { readonly found: false; readonly reason: string; readonly misconfigured: boolean };

/** Looks for helm (`HELM_BIN`, then the cache) without building anything. */
export function findHelm(): HelmLookup {
  const explicit = Deno.env.get("HELM_BIN");
  if (explicit) {
    const problem = notExecutable(explicit);
    if (problem) return { found: false, misconfigured: true, reason: `HELM_BIN: ${problem}` };
    return { found: true, path: explicit, source: "HELM_BIN" };
  }
  let cached: string;
  try {
    cached = `${helmCacheDir()}/helm`;
  } catch (error) {
    return { found: false, misconfigured: true, reason: String(error) };
  }
  const problem = notExecutable(cached);
  if (problem) {
    return {
      found: false,
      misconfigured: false,
      reason: `${problem}; run \`deno task helm\` (builds it with Go) or set HELM_BIN`,
    };
  }
  return { found: true, path: cached, source: `cache ${cached}` };
}
