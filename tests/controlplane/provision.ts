/**
 * `deno task controlplane`: provides `kube-apiserver`, `etcd` (and a matching `kubectl`) for tests.
 *
 * Uses what `findControlPlaneBinaries()` finds (env vars, `KUBEBUILDER_ASSETS`, the version-keyed
 * cache); otherwise builds both with the Go toolchain from the module in this folder (go.mod pins
 * `k8s.io/kubernetes` and `go.etcd.io/etcd/server/v3`) into a temporary directory beside the cache
 * entry, then renames it into place, so an interrupted build never leaves a half-filled cache.
 *
 * Progress goes to stderr; the last line of stdout is the directory holding both binaries.
 * Exits non-zero with the reason when neither a binary nor a build is possible.
 */
import {
  cachedBinaryNames,
  cacheRoot,
  type ControlPlaneVersions,
  controlPlaneVersions,
  findControlPlaneBinaries,
  goModUrl,
  missingFrom,
  notExecutable,
  versionedCacheDir,
} from "./binaries.ts";

const encoder = new TextEncoder();

function progress(message: string): void {
  Deno.stderr.writeSync(encoder.encode(`[controlplane] ${message}\n`));
}

/** A build that cannot happen or failed; its message says why. */
export class ProvisionError extends Error {
  override name = "ProvisionError";
}

async function main(): Promise<string> {
  const lookup = findControlPlaneBinaries();
  if (lookup.found) {
    progress(`using ${lookup.binaries.source}`);
    return await directoryHoldingBoth(lookup.binaries.kubeApiserver, lookup.binaries.etcd);
  }
  if (lookup.misconfigured) throw new ProvisionError(lookup.reason);
  progress(`no binaries yet: ${lookup.reason}`);
  return await build(controlPlaneVersions());
}

/** The binaries' common directory; for env vars pointing at two directories, a directory of links. */
async function directoryHoldingBoth(kubeApiserver: string, etcd: string): Promise<string> {
  const apiserverDir = dirname(kubeApiserver);
  if (
    apiserverDir === dirname(etcd) && kubeApiserver.endsWith("/kube-apiserver") &&
    etcd.endsWith("/etcd")
  ) {
    return apiserverDir;
  }
  const links = `${cacheRoot()}/controlplane/from-env`;
  await Deno.mkdir(links, { recursive: true });
  for (const [name, target] of [["kube-apiserver", kubeApiserver], ["etcd", etcd]] as const) {
    await Deno.remove(`${links}/${name}`).catch(() => {});
    await Deno.symlink(await Deno.realPath(target), `${links}/${name}`);
  }
  return links;
}

async function build(versions: ControlPlaneVersions): Promise<string> {
  const finalDir = versionedCacheDir(versions);
  const moduleDir = dirname(goModUrl().pathname);
  const go = await findGo(moduleDir);
  progress(
    `building kube-apiserver ${versions.kubernetes} and etcd ${versions.etcd} with ${go.version} (${go.path})`,
  );
  progress(`into ${finalDir} (first build takes several minutes on 2 cores; later runs reuse it)`);
  await Deno.mkdir(dirname(finalDir), { recursive: true });
  const tempDir = await Deno.makeTempDir({ dir: dirname(finalDir), prefix: ".build-" });
  try {
    const started = Date.now();
    progress("downloading Go modules (go mod download)");
    await run([go.path, "mod", "download"], moduleDir);
    const minor = versions.kubernetes.split(".")[1] ?? "";
    // What the Kubernetes release build stamps in (hack/lib/version.sh); kubectl reads client-go's.
    const versionFlags = ["k8s.io/component-base/version", "k8s.io/client-go/pkg/version"].flatMap(
      (pkg) => [
        `-X ${pkg}.gitVersion=${versions.kubernetes}`,
        `-X ${pkg}.gitMajor=1`,
        `-X ${pkg}.gitMinor=${minor}`,
        `-X ${pkg}.gitTreeState=clean`,
      ],
    );
    const kubernetesCmd = "k8s.io/kubernetes/cmd";
    const builds: Array<[string, string, string[]]> = [
      [`${kubernetesCmd}/kube-apiserver`, "kube-apiserver", versionFlags],
      ["go.etcd.io/etcd/server/v3", "etcd", []],
      [`${kubernetesCmd}/kubectl`, "kubectl", versionFlags],
    ];
    for (const [pkg, name, xFlags] of builds) {
      await goBuild(go.path, moduleDir, pkg, `${tempDir}/${name}`, xFlags);
    }
    await verify([`${tempDir}/kube-apiserver`, "--version"], versions.kubernetes);
    await verify([`${tempDir}/etcd`, "--version"], versions.etcd.replace(/^v/, ""));
    await verify([`${tempDir}/kubectl`, "version", "--client"], versions.kubernetes);
    const seconds = Math.round((Date.now() - started) / 1000);
    await Deno.writeTextFile(
      `${tempDir}/BUILD_INFO`,
      `kubernetes ${versions.kubernetes}\netcd ${versions.etcd}\n${go.version}\nbuild seconds ${seconds}\n`,
    );
    await moveIntoPlace(tempDir, finalDir);
    progress(`built in ${seconds}s`);
    return finalDir;
  } finally {
    await Deno.remove(tempDir, { recursive: true }).catch(() => {});
  }
}

/**
 * `go build` of `pkg` in `moduleDir` into `output` (static, stripped, `-X` flags from `xFlags`),
 * reporting a package count now and then through `report`.
 * @throws ProvisionError with the last lines of go's errors
 */
export async function goBuild(
  goPath: string,
  moduleDir: string,
  pkg: string,
  output: string,
  xFlags: string[],
  report: (message: string) => void = progress,
): Promise<void> {
  const progress = report;
  const name = output.slice(output.lastIndexOf("/") + 1);
  progress(`go build ${pkg} -> ${name}`);
  const started = Date.now();
  const child = new Deno.Command(goPath, {
    args: [
      "build",
      "-v",
      "-mod=readonly",
      "-ldflags",
      ["-s", "-w", ...xFlags].join(" "),
      "-o",
      output,
      pkg,
    ],
    cwd: moduleDir,
    env: goEnv(),
    stdout: "inherit",
    stderr: "piped",
  }).spawn();
  // `go build -v` names each package as it compiles it: report a count now and then, keep errors.
  let packages = 0;
  let lastReport = Date.now();
  const errorLines: string[] = [];
  for await (const line of lines(child.stderr)) {
    if (/^[\w.-]+(\/[\w.~+-]+)*$/.test(line)) {
      packages++;
      if (Date.now() - lastReport > 15_000) {
        progress(
          `  ${name}: ${packages} packages compiled, ${Math.round((Date.now() - started) / 1000)}s`,
        );
        lastReport = Date.now();
      }
    } else {
      errorLines.push(line);
      Deno.stderr.writeSync(encoder.encode(`${line}\n`));
    }
  }
  const status = await child.status;
  if (!status.success) {
    throw new ProvisionError(
      `go build ${pkg} failed with exit code ${status.code}: ${errorLines.slice(-20).join("\n")}`,
    );
  }
  progress(`  ${name}: done, ${packages} packages, ${Math.round((Date.now() - started) / 1000)}s`);
}

/** A Go toolchain: its path and `go version` line. */
export interface GoToolchain {
  readonly path: string;
  readonly version: string;
}

/**
 * The first `go` that exists among PATH, `$GOROOT/bin` and `/usr/local/go/bin` (where the official
 * tarball goes, often missing from PATH in CI shells), checked against go.mod's `go` line.
 * @throws ProvisionError naming every place looked at, or the version found and the one needed
 */
export async function findGo(
  moduleDir: string,
  goMod: URL = goModUrl(),
  what = "the control plane",
  instead = "point KUBEBUILDER_ASSETS or KUBE_APISERVER_BIN and ETCD_BIN at existing binaries",
): Promise<GoToolchain> {
  const required = /^go (\d+)\.(\d+)/m.exec(await Deno.readTextFile(goMod));
  const [needMajor, needMinor] = [Number(required?.[1] ?? 1), Number(required?.[2] ?? 24)];
  const candidates = [
    ...(Deno.env.get("PATH") ?? "").split(":").filter((dir) => dir !== ""),
    ...(Deno.env.get("GOROOT") ? [`${Deno.env.get("GOROOT")}/bin`] : []),
    "/usr/local/go/bin",
  ].map((dir) => `${dir}/go`);
  const path = candidates.find((candidate) => notExecutable(candidate) === undefined);
  const install =
    `install Go ${needMajor}.${needMinor} or newer (https://go.dev/dl/), or ${instead}`;
  if (path === undefined) {
    throw new ProvisionError(
      `Cannot build ${what}: no Go toolchain on PATH, in $GOROOT/bin or in ` +
        `/usr/local/go/bin; ${install}`,
    );
  }
  // GOTOOLCHAIN=local: report an old Go instead of letting it fetch another toolchain.
  const version = (await run([path, "version"], moduleDir, { GOTOOLCHAIN: "local" })).trim();
  const found = /go(\d+)\.(\d+)/.exec(version);
  const [major, minor] = [Number(found?.[1] ?? 0), Number(found?.[2] ?? 0)];
  if (major < needMajor || (major === needMajor && minor < needMinor)) {
    throw new ProvisionError(
      `Cannot build ${what}: ${path} is "${version}", but ${fromRepoRoot(goMod)} ` +
        `needs Go ${needMajor}.${needMinor} or newer; ${install}`,
    );
  }
  return { path, version };
}

/** A file's path relative to the repository root, as messages show it. */
function fromRepoRoot(file: URL): string {
  return file.pathname.replace(new URL("../../", import.meta.url).pathname, "");
}

function goEnv(): Record<string, string> {
  const inherited = Deno.env.get("GOFLAGS") ?? "";
  return {
    CGO_ENABLED: "0",
    GOFLAGS: inherited.includes("-trimpath") ? inherited : `${inherited} -trimpath`.trim(),
  };
}

async function verify(
  command: readonly [string, ...string[]],
  expectedVersion: string,
): Promise<void> {
  const binary = command[0];
  const problem = notExecutable(binary);
  if (problem) throw new ProvisionError(`Build produced no usable binary: ${problem}`);
  const output = await run([...command], dirname(binary));
  if (!output.includes(expectedVersion)) {
    throw new ProvisionError(
      `${binary} --version printed ${JSON.stringify(output.trim())}, expected ${expectedVersion}`,
    );
  }
}

async function moveIntoPlace(tempDir: string, finalDir: string): Promise<void> {
  try {
    await Deno.rename(tempDir, finalDir);
    return;
  } catch (error) {
    // Another provisioning run finished first: keep its result if it is complete.
    if (missingFrom(finalDir, cachedBinaryNames) === undefined) return;
    if (!(error instanceof Deno.errors.AlreadyExists) && !String(error).includes("not empty")) {
      throw error;
    }
  }
  // An older, incomplete entry (e.g. from before kubectl was cached): replace it.
  await Deno.remove(finalDir, { recursive: true });
  await Deno.rename(tempDir, finalDir);
}

/** Runs `command` in `cwd` with the Go build environment; returns stdout and stderr. */
export async function run(
  command: string[],
  cwd: string,
  env: Record<string, string> = {},
): Promise<string> {
  const [program = "", ...args] = command;
  const output = await new Deno.Command(program, {
    args,
    cwd,
    env: { ...goEnv(), ...env },
    stdout: "piped",
    stderr: "piped",
  })
    .output();
  const decoder = new TextDecoder();
  if (!output.success) {
    throw new ProvisionError(
      `\`${command.join(" ")}\` exited with code ${output.code}: ${
        decoder.decode(output.stderr).trim()
      }`,
    );
  }
  return decoder.decode(output.stdout) + decoder.decode(output.stderr);
}

async function* lines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  let buffered = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    buffered += chunk;
    let newline: number;
    while ((newline = buffered.indexOf("\n")) >= 0) {
      yield buffered.slice(0, newline);
      buffered = buffered.slice(newline + 1);
    }
  }
  if (buffered) yield buffered;
}

function dirname(path: string): string {
  const slash = path.lastIndexOf("/");
  return slash <= 0 ? "/" : path.slice(0, slash);
}

if (import.meta.main) {
  try {
    const dir = await main();
    Deno.stdout.writeSync(encoder.encode(`${dir}\n`));
  } catch (error) {
    progress(`FAILED: ${error instanceof ProvisionError ? error.message : String(error)}`);
    Deno.exit(1);
  }
}
