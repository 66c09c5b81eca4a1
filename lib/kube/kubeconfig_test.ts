import assert from "node:assert/strict";
import { createTestCa, issueTestClientCertificate } from "../../tests/_support/kube_test_certs.ts";
import { KubeClient } from "./client.ts";
import { kubeconfigPaths, loadKubeconfig } from "./kubeconfig.ts";
import { KubeconfigError } from "./kubeconfig_error.ts";

const dir = await Deno.makeTempDir({ prefix: "kubeconfig-test-" });
const ca = await createTestCa(dir);
const caPem = await Deno.readTextFile(ca.cert);
const certs = {
  pkcs1: await issueTestClientCertificate(ca, dir, "pkcs1", { user: "a", format: "rsa-pkcs1" }),
  pkcs8: await issueTestClientCertificate(ca, dir, "pkcs8", { user: "a", format: "rsa-pkcs8" }),
  ec: await issueTestClientCertificate(ca, dir, "ec", { user: "a", format: "ec-sec1" }),
};
globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));

const noEnv = () => undefined;
let fileCount = 0;

/** Writes a kubeconfig (JSON is YAML) with one context "c" to a new sub-folder of `dir`. */
async function writeConfig(
  user: Record<string, unknown>,
  cluster: Record<string, unknown> = { server: "https://127.0.0.1:6443" },
  extra: Record<string, unknown> = {},
): Promise<string> {
  const folder = `${dir}/cfg${fileCount++}`;
  await Deno.mkdir(folder);
  const path = `${folder}/config`;
  await Deno.writeTextFile(
    path,
    JSON.stringify({
      apiVersion: "v1",
      kind: "Config",
      clusters: [{ name: "k", cluster }],
      users: [{ name: "u", user }],
      contexts: [{ name: "c", context: { cluster: "k", user: "u", namespace: "ns1" } }],
      "current-context": "c",
      ...extra,
    }),
  );
  return path;
}

async function assertKubeconfigError(
  promise: Promise<unknown>,
  expected: { file: string; field: string; why: RegExp },
): Promise<void> {
  const error = await promise.then(() => undefined, (e) => e);
  assert.ok(error instanceof KubeconfigError, `expected a KubeconfigError, got ${error}`);
  assert.equal(error.file, expected.file);
  assert.equal(error.field, expected.field);
  assert.match(error.message, expected.why);
}

for (const [format, files] of Object.entries(certs)) {
  Deno.test(`loadKubeconfig() reads a ${format} client key as data and Deno accepts it`, async () => {
    const path = await writeConfig(
      {
        "client-certificate-data": btoa(await Deno.readTextFile(files.cert)),
        "client-key-data": btoa(await Deno.readTextFile(files.key)),
      },
      { server: "https://127.0.0.1:6443/", "certificate-authority-data": btoa(caPem) },
    );
    const config = await loadKubeconfig({ path, env: noEnv });
    assert.equal(config.server, "https://127.0.0.1:6443");
    assert.deepEqual(config.caCerts, [caPem]);
    assert.equal(config.clientCertificate?.key, await Deno.readTextFile(files.key));
    assert.equal(config.namespace, "ns1");
    using client = new KubeClient(config);
    assert.equal(client.namespace, "ns1");
  });
}

Deno.test("loadKubeconfig() resolves certificate files relative to the kubeconfig's folder", async () => {
  const path = await writeConfig(
    { "client-certificate": "../ec.crt", "client-key": "../ec.key" },
    { server: "https://127.0.0.1:6443", "certificate-authority": ca.cert },
  );
  const config = await loadKubeconfig({ path, env: noEnv });
  assert.equal(config.clientCertificate?.cert, await Deno.readTextFile(certs.ec.cert));
  assert.deepEqual(config.caCerts, [caPem]);
});

Deno.test("loadKubeconfig() sends a token, or a tokenFile read again for every request", async () => {
  const withToken = await loadKubeconfig({ path: await writeConfig({ token: "abc" }), env: noEnv });
  assert.deepEqual(await withToken.credentials.get(), { authorization: "Bearer abc" });

  const path = await writeConfig({ tokenFile: "token" });
  const tokenPath = path.replace(/config$/, "token");
  await Deno.writeTextFile(tokenPath, "first\n");
  const config = await loadKubeconfig({ path, env: noEnv });
  assert.deepEqual(await config.credentials.get(), { authorization: "Bearer first" });
  await Deno.writeTextFile(tokenPath, "second");
  assert.deepEqual(await config.credentials.get(), { authorization: "Bearer second" });
  await Deno.remove(tokenPath);
  await assertKubeconfigError(config.credentials.get(), {
    file: path,
    field: 'users[name="u"].user.tokenFile',
    why: /cannot read token file .*token/,
  });
});

Deno.test("loadKubeconfig() uses basic auth from username and password", async () => {
  const config = await loadKubeconfig({
    path: await writeConfig({ username: "me", password: "pw" }),
    env: noEnv,
  });
  assert.deepEqual(await config.credentials.get(), { authorization: `Basic ${btoa("me:pw")}` });
});

Deno.test("loadKubeconfig() picks a named context over the current one", async () => {
  const path = await writeConfig({ token: "t" }, { server: "https://127.0.0.1:1" }, {
    clusters: [
      { name: "k", cluster: { server: "https://127.0.0.1:1" } },
      { name: "other", cluster: { server: "https://127.0.0.1:2" } },
    ],
    contexts: [
      { name: "c", context: { cluster: "k", user: "u" } },
      { name: "d", context: { cluster: "other", user: "u" } },
    ],
  });
  assert.equal((await loadKubeconfig({ path, env: noEnv })).server, "https://127.0.0.1:1");
  const named = await loadKubeconfig({ path, context: "d", env: noEnv });
  assert.equal(named.server, "https://127.0.0.1:2");
  assert.equal(named.namespace, "default");
  assert.match(named.source, /context "d" in .*config/);
});

Deno.test("loadKubeconfig() merges KUBECONFIG files: first definition wins, paths stay per file", async () => {
  const first = await writeConfig({ token: "from-first" }, { server: "https://127.0.0.1:1" }, {
    "current-context": "",
  });
  const second = await writeConfig(
    { "client-certificate": "../pkcs8.crt", "client-key": "../pkcs8.key", token: "second" },
    { server: "https://127.0.0.1:2" },
  );
  const env = (name: string) =>
    name === "KUBECONFIG" ? `${dir}/missing:${first}:${second}` : undefined;
  assert.deepEqual(await kubeconfigPaths({ env }), [first, second]);
  const config = await loadKubeconfig({ env });
  // current-context comes from the second file (the first has none), cluster and user from the first.
  assert.equal(config.server, "https://127.0.0.1:1");
  assert.deepEqual(await config.credentials.get(), { authorization: "Bearer from-first" });
  assert.equal(config.clientCertificate, undefined);
});

Deno.test("kubeconfigPaths() falls back to ~/.kube/config and fails on a KUBECONFIG of missing files", async () => {
  assert.deepEqual(
    await kubeconfigPaths({ env: (name) => (name === "HOME" ? "/home/x" : undefined) }),
    ["/home/x/.kube/config"],
  );
  await assertKubeconfigError(
    kubeconfigPaths({ env: (n) => (n === "KUBECONFIG" ? "/nope/a:/nope/b" : undefined) }),
    { file: "KUBECONFIG", field: "", why: /none of the listed files exists: \/nope\/a, \/nope\/b/ },
  );
});

Deno.test("loadKubeconfig() names the file for a missing kubeconfig and for bad YAML", async () => {
  await assertKubeconfigError(loadKubeconfig({ path: `${dir}/absent`, env: noEnv }), {
    file: `${dir}/absent`,
    field: "",
    why: /cannot read kubeconfig: No such file/,
  });
  const bad = `${dir}/bad.yaml`;
  await Deno.writeTextFile(bad, "clusters:\n  - name: x\n   cluster: {\n");
  await assertKubeconfigError(loadKubeconfig({ path: bad, env: noEnv }), {
    file: bad,
    field: "",
    why: /invalid YAML/,
  });
});

Deno.test("loadKubeconfig() explains a missing current context, context, cluster or user", async () => {
  const noCurrent = await writeConfig({}, undefined, { "current-context": undefined });
  await assertKubeconfigError(loadKubeconfig({ path: noCurrent, env: noEnv }), {
    file: noCurrent,
    field: "current-context",
    why: /is not set and no context was given/,
  });
  await assertKubeconfigError(loadKubeconfig({ path: noCurrent, context: "zz", env: noEnv }), {
    file: noCurrent,
    field: "current-context",
    why: /names context "zz", which is not defined .*\(known: "c"\)/,
  });
  const noCluster = await writeConfig({}, undefined, {
    contexts: [{ name: "c", context: { cluster: "gone", user: "u" } }],
  });
  await assertKubeconfigError(loadKubeconfig({ path: noCluster, env: noEnv }), {
    file: noCluster,
    field: 'contexts[name="c"].context.cluster',
    why: /names cluster "gone", which is not defined/,
  });
  const noUser = await writeConfig({}, undefined, {
    contexts: [{ name: "c", context: { cluster: "k", user: "nobody" } }],
  });
  await assertKubeconfigError(loadKubeconfig({ path: noUser, env: noEnv }), {
    file: noUser,
    field: 'contexts[name="c"].context.user',
    why: /names user "nobody"/,
  });
  const noServer = await writeConfig({}, {});
  await assertKubeconfigError(loadKubeconfig({ path: noServer, env: noEnv }), {
    file: noServer,
    field: 'clusters[name="k"].cluster.server',
    why: /is missing/,
  });
});

Deno.test("loadKubeconfig() names the field of an unreadable or non-PEM certificate", async () => {
  const missing = await writeConfig({
    "client-certificate": "nope.crt",
    "client-key": "../ec.key",
  });
  await assertKubeconfigError(loadKubeconfig({ path: missing, env: noEnv }), {
    file: missing,
    field: 'users[name="u"].user.client-certificate',
    why: /cannot read ".*\/nope\.crt": No such file/,
  });
  const notPem = await writeConfig({
    "client-certificate-data": btoa("hello"),
    "client-key-data": btoa(await Deno.readTextFile(certs.ec.key)),
  });
  await assertKubeconfigError(loadKubeconfig({ path: notPem, env: noEnv }), {
    file: notPem,
    field: 'users[name="u"].user.client-certificate-data',
    why: /does not hold a PEM certificate/,
  });
  const badBase64 = await writeConfig({ token: "t" }, {
    server: "https://127.0.0.1:1",
    "certificate-authority-data": "%%%",
  });
  await assertKubeconfigError(loadKubeconfig({ path: badBase64, env: noEnv }), {
    file: badBase64,
    field: 'clusters[name="k"].cluster.certificate-authority-data',
    why: /is not valid base64/,
  });
  const certOnly = await writeConfig({ "client-certificate": "../ec.crt" });
  await assertKubeconfigError(loadKubeconfig({ path: certOnly, env: noEnv }), {
    file: certOnly,
    field: 'users[name="u"].user.client-key',
    why: /needs both client-certificate and client-key/,
  });
});

Deno.test("loadKubeconfig() refuses settings Deno cannot honour, saying why", async () => {
  const cases: Array<[Record<string, unknown>, Record<string, unknown>, string, RegExp]> = [
    [
      {},
      { "insecure-skip-tls-verify": true },
      'clusters[name="k"].cluster.insecure-skip-tls-verify',
      /cannot skip TLS verification/,
    ],
    [
      {},
      { "tls-server-name": "x" },
      'clusters[name="k"].cluster.tls-server-name',
      /cannot override the TLS server name/,
    ],
    [{ "auth-provider": { name: "gcp" } }, {}, 'users[name="u"].user.auth-provider', /use exec/],
    [{ as: "bob" }, {}, 'users[name="u"].user.as', /impersonation/],
  ];
  for (const [user, clusterExtra, field, why] of cases) {
    const path = await writeConfig(user, { server: "https://127.0.0.1:1", ...clusterExtra });
    await assertKubeconfigError(loadKubeconfig({ path, env: noEnv }), { file: path, field, why });
  }
});

Deno.test("KubeClient() names the configuration when Deno rejects a key", async () => {
  const path = await writeConfig({
    "client-certificate-data": btoa(await Deno.readTextFile(certs.ec.cert)),
    "client-key-data": btoa("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"),
  });
  const config = await loadKubeconfig({ path, env: noEnv });
  assert.throws(() => new KubeClient(config), (error: unknown) => {
    assert.ok(error instanceof KubeconfigError);
    assert.match(error.message, /context "c" in .*: client certificate\/key: Deno cannot use/);
    return true;
  });
});
