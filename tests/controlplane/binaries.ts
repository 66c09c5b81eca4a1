/**
 * Where the test control plane's `kube-apiserver` and `etcd` come from. Shared by the provisioning
 * script (`provision.ts`) and the test harness (`tests/_support/control_plane.ts`), so both look in
 * the same places in the same order:
 *
 * 1. `KUBE_APISERVER_BIN` and `ETCD_BIN` (both), else
 * 2. `KUBEBUILDER_ASSETS` (a directory holding `kube-apiserver` and `etcd`, as envtest users have), else
 * 3. the build cache outside the repository, keyed by the versions pinned in `go.mod` beside this file
 *    (it holds a version-matched `kubectl` too).
 *
 * kubectl: `KUBECTL_BIN`, else a `kubectl` beside `kube-apiserver`, else `kubectl` on the PATH.
 *
 * Everything here is synchronous because `Deno.test` registration (ignore or not) is synchronous.
 */

/** The two binaries a control plane needs, and where they were found. */
export interface ControlPlaneBinaries {
  readonly kubeApiserver: string;
  readonly etcd: string;
  /** kubectl to drive it with (a path, or `kubectl` to search the PATH). */
  readonly kubectl: string;
  /** Human-readable origin, e.g. `KUBEBUILDER_ASSETS=/x` or `cache /root/.cache/...`. */
  readonly source: string;
}

/** Result of looking for the binaries: found, or a reason fit for a skip/fail message. */
export type BinariesLookup =
  | { readonly found: true; readonly binaries: ControlPlaneBinaries }
  | { readonly found: false; readonly reason: string; readonly misconfigured: boolean };

/** Versions pinned by `tests/controlplane/go.mod`. */
export interface ControlPlaneVersions {
  readonly kubernetes: string;
  readonly etcd: string;
}

/** Reads the Kubernetes and etcd versions required by `tests/controlplane/go.mod`. */
export function controlPlaneVersions(): ControlPlaneVersions {
  const goMod = Deno.readTextFileSync(goModUrl());
  return {
    kubernetes: requiredVersion(goMod, "k8s.io/kubernetes"),
    etcd: requiredVersion(goMod, "go.etcd.io/etcd/server/v3"),
  };
}

/** `file:` URL of the Go module that builds the binaries. */
export function goModUrl(): URL {
  return new URL("./go.mod", import.meta.url);
}

/**
 * Root of the cache: `$UNDYING_PROXY_CACHE`, else `$XDG_CACHE_HOME/undying-proxy`, else
 * `$HOME/.cache/undying-proxy`.
 */
export function cacheRoot(): string {
  const explicit = Deno.env.get("UNDYING_PROXY_CACHE");
  if (explicit) return explicit;
  const xdg = Deno.env.get("XDG_CACHE_HOME");
  if (xdg) return `${xdg}/undying-proxy`;
  const home = Deno.env.get("HOME");
  if (!home) {
    throw new Error(
      "Cannot locate the control-plane cache: neither UNDYING_PROXY_CACHE nor HOME is set",
    );
  }
  return `${home}/.cache/undying-proxy`;
}

/** Cache directory for the pinned versions, e.g. `<root>/controlplane/k8s-v1.34.4-etcd-v3.6.4`. */
export function versionedCacheDir(versions: ControlPlaneVersions = controlPlaneVersions()): string {
  return `${cacheRoot()}/controlplane/k8s-${versions.kubernetes}-etcd-${versions.etcd}`;
}

/** Looks for the binaries in the documented order without building anything. */
export function findControlPlaneBinaries(): BinariesLookup {
  const apiserverBin = Deno.env.get("KUBE_APISERVER_BIN");
  const etcdBin = Deno.env.get("ETCD_BIN");
  if (apiserverBin || etcdBin) {
    if (!apiserverBin || !etcdBin) {
      return misconfigured(
        `KUBE_APISERVER_BIN=${apiserverBin ?? ""} and ETCD_BIN=${
          etcdBin ?? ""
        }: set both or neither`,
      );
    }
    const problem = notExecutable(apiserverBin) ?? notExecutable(etcdBin);
    if (problem) return misconfigured(`KUBE_APISERVER_BIN/ETCD_BIN: ${problem}`);
    return found(apiserverBin, etcdBin, "KUBE_APISERVER_BIN and ETCD_BIN");
  }
  const assets = Deno.env.get("KUBEBUILDER_ASSETS");
  if (assets) {
    const problem = notExecutable(`${assets}/kube-apiserver`) ?? notExecutable(`${assets}/etcd`);
    if (problem) return misconfigured(`KUBEBUILDER_ASSETS=${assets}: ${problem}`);
    return found(`${assets}/kube-apiserver`, `${assets}/etcd`, `KUBEBUILDER_ASSETS=${assets}`);
  }
  let cached: string;
  try {
    cached = versionedCacheDir();
  } catch (error) {
    return misconfigured(String(error));
  }
  const problem = missingFrom(cached, cachedBinaryNames);
  if (problem) {
    return {
      found: false,
      misconfigured: false,
      reason:
        `no KUBE_APISERVER_BIN/ETCD_BIN or KUBEBUILDER_ASSETS set and no cached build (${problem}); ` +
        "run `deno task controlplane` to build them",
    };
  }
  return found(`${cached}/kube-apiserver`, `${cached}/etcd`, `cache ${cached}`);
}

/** Returns why `path` is not an executable regular file, or undefined when it is one. */
export function notExecutable(path: string): string | undefined {
  let info: Deno.FileInfo;
  try {
    info = Deno.statSync(path);
  } catch (error) {
    return error instanceof Deno.errors.NotFound ? `${path} does not exist` : `${path}: ${error}`;
  }
  if (!info.isFile) return `${path} is not a file`;
  if (info.mode !== null && (info.mode & 0o111) === 0) return `${path} is not executable`;
  return undefined;
}

function requiredVersion(goMod: string, modulePath: string): string {
  const pattern = new RegExp(`^\\s*${modulePath.replaceAll(".", "\\.")}\\s+(v\\S+)`, "m");
  const match = pattern.exec(goMod);
  if (!match?.[1]) {
    throw new Error(`tests/controlplane/go.mod does not require ${modulePath}`);
  }
  return match[1];
}

/** Names of the binaries a complete cache entry holds. */
export const cachedBinaryNames: readonly string[] = ["kube-apiserver", "etcd", "kubectl"];

/** Why `dir` lacks one of `names` as an executable, or undefined when all are there. */
export function missingFrom(dir: string, names: readonly string[]): string | undefined {
  for (const name of names) {
    const problem = notExecutable(`${dir}/${name}`);
    if (problem) return problem;
  }
  return undefined;
}

function found(kubeApiserver: string, etcd: string, source: string): BinariesLookup {
  const explicit = Deno.env.get("KUBECTL_BIN");
  const sibling = `${kubeApiserver.slice(0, kubeApiserver.lastIndexOf("/") + 1)}kubectl`;
  const kubectl = explicit || (notExecutable(sibling) === undefined ? sibling : "kubectl");
  return { found: true, binaries: { kubeApiserver, etcd, kubectl, source } };
}

function misconfigured(reason: string): BinariesLookup {
  return { found: false, misconfigured: true, reason };
}
