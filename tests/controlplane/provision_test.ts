/** `deno task controlplane` lookup order and errors, run as a subprocess with a controlled environment. */
import assert from "node:assert/strict";
import { type DenoRun, runDeno } from "./run_deno.ts";

const provisionScript = new URL("./provision.ts", import.meta.url).pathname;

function provision(env: Record<string, string>): Promise<DenoRun> {
  const permissions = ["--allow-env", "--allow-read", "--allow-write", "--allow-run"];
  return runDeno(["run", ...permissions, provisionScript], env);
}

/** A temp dir with executable files named `names` (provisioning only checks that they exist). */
async function dirWith(...names: string[]): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "undying-proxy-bins-" });
  for (const name of names) {
    await Deno.writeTextFile(`${dir}/${name}`, "#!/bin/sh\n", { mode: 0o755 });
  }
  return dir;
}

function lastLine(text: string): string {
  return text.trimEnd().split("\n").at(-1) ?? "";
}

Deno.test("provision prints KUBEBUILDER_ASSETS when it holds both binaries", async () => {
  const assets = await dirWith("kube-apiserver", "etcd");
  const cache = await Deno.makeTempDir();
  try {
    const run = await provision({ KUBEBUILDER_ASSETS: assets, UNDYING_PROXY_CACHE: cache });
    assert.equal(run.code, 0, run.stderr);
    assert.equal(lastLine(run.stdout), assets);
    assert.match(run.stderr, /using KUBEBUILDER_ASSETS=/);
  } finally {
    await Deno.remove(assets, { recursive: true });
    await Deno.remove(cache, { recursive: true });
  }
});

Deno.test("provision prefers KUBE_APISERVER_BIN/ETCD_BIN and links them when in two directories", async () => {
  const apiserverDir = await dirWith("kube-apiserver");
  const etcdDir = await dirWith("etcd");
  const assets = await dirWith("kube-apiserver", "etcd");
  const cache = await Deno.makeTempDir();
  try {
    const run = await provision({
      KUBE_APISERVER_BIN: `${apiserverDir}/kube-apiserver`,
      ETCD_BIN: `${etcdDir}/etcd`,
      KUBEBUILDER_ASSETS: assets,
      UNDYING_PROXY_CACHE: cache,
    });
    assert.equal(run.code, 0, run.stderr);
    const dir = lastLine(run.stdout);
    assert.equal(dir, `${cache}/controlplane/from-env`);
    assert.equal(
      await Deno.realPath(`${dir}/kube-apiserver`),
      await Deno.realPath(`${apiserverDir}/kube-apiserver`),
    );
    assert.equal(await Deno.realPath(`${dir}/etcd`), await Deno.realPath(`${etcdDir}/etcd`));
  } finally {
    for (const dir of [apiserverDir, etcdDir, assets, cache]) {
      await Deno.remove(dir, { recursive: true });
    }
  }
});

Deno.test("provision fails naming the variables when only one of the pair is set", async () => {
  const apiserverDir = await dirWith("kube-apiserver");
  try {
    const run = await provision({ KUBE_APISERVER_BIN: `${apiserverDir}/kube-apiserver` });
    assert.equal(run.code, 1);
    assert.equal(run.stdout, "");
    assert.match(run.stderr, /KUBE_APISERVER_BIN=.* and ETCD_BIN=: set both or neither/);
  } finally {
    await Deno.remove(apiserverDir, { recursive: true });
  }
});

Deno.test("provision fails naming the missing file when KUBEBUILDER_ASSETS lacks etcd", async () => {
  const assets = await dirWith("kube-apiserver");
  try {
    const run = await provision({ KUBEBUILDER_ASSETS: assets });
    assert.equal(run.code, 1);
    assert.ok(
      run.stderr.includes(`KUBEBUILDER_ASSETS=${assets}: ${assets}/etcd does not exist`),
      run.stderr,
    );
  } finally {
    await Deno.remove(assets, { recursive: true });
  }
});

Deno.test("provision uses a complete version-keyed cache entry without building", async () => {
  const cache = await Deno.makeTempDir();
  try {
    const goMod = await Deno.readTextFile(new URL("./go.mod", import.meta.url));
    const kubernetes = /k8s\.io\/kubernetes (v\S+)/.exec(goMod)?.[1];
    const etcd = /go\.etcd\.io\/etcd\/server\/v3 (v\S+)/.exec(goMod)?.[1];
    const entry = `${cache}/controlplane/k8s-${kubernetes}-etcd-${etcd}`;
    await Deno.mkdir(entry, { recursive: true });
    for (const name of ["kube-apiserver", "etcd", "kubectl"]) {
      await Deno.writeTextFile(`${entry}/${name}`, "#!/bin/sh\n", { mode: 0o755 });
    }
    const run = await provision({ UNDYING_PROXY_CACHE: cache });
    assert.equal(run.code, 0, run.stderr);
    assert.equal(lastLine(run.stdout), entry);
    assert.doesNotMatch(run.stderr, /go build/);
  } finally {
    await Deno.remove(cache, { recursive: true });
  }
});

Deno.test("provision finds a Go off the PATH in $GOROOT/bin, refuses one older than go.mod needs", async () => {
  const goroot = await Deno.makeTempDir({ prefix: "undying-proxy-goroot-" });
  const cache = await Deno.makeTempDir();
  /** Installs a fake `go` that reports `version` and fails every other command with code 3. */
  const fakeGo = (version: string) =>
    Deno.writeTextFile(
      `${goroot}/bin/go`,
      `#!/bin/sh\n[ "$1" = version ] && echo "go version ${version} linux/amd64" && exit 0\nexit 3\n`,
      { mode: 0o755 },
    );
  const env = { PATH: "/usr/bin:/bin", GOROOT: goroot, UNDYING_PROXY_CACHE: cache };
  try {
    await Deno.mkdir(`${goroot}/bin`);
    await fakeGo("go1.22.5");
    const old = await provision(env);
    assert.equal(old.code, 1, old.stderr);
    assert.equal(old.stdout, "");
    assert.ok(
      old.stderr.includes(
        `${goroot}/bin/go is "go version go1.22.5 linux/amd64", but tests/controlplane/go.mod ` +
          "needs Go 1.24 or newer; install Go 1.24 or newer",
      ),
      old.stderr,
    );

    await fakeGo("go1.26.0");
    const recent = await provision(env);
    assert.equal(recent.code, 1, recent.stderr);
    assert.ok(recent.stderr.includes(`with go version go1.26.0 linux/amd64 (${goroot}/bin/go)`));
    assert.ok(recent.stderr.includes(`\`${goroot}/bin/go mod download\` exited with code 3`));
  } finally {
    await Deno.remove(goroot, { recursive: true });
    await Deno.remove(cache, { recursive: true });
  }
});
