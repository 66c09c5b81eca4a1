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
