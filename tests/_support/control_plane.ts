/**
 * A real Kubernetes control plane for integration tests: etcd + kube-apiserver on loopback ports,
 * RBAC on, certificates made with openssl, torn down at `close()`, at module unload, on SIGINT/SIGTERM,
 * and by a watchdog when the test process dies without cleaning up.
 *
 * Binaries come from `tests/controlplane/binaries.ts` (env vars, `KUBEBUILDER_ASSETS`, the cache that
 * `deno task controlplane` fills).
 */
import { type ControlPlaneBinaries, findControlPlaneBinaries } from "../controlplane/binaries.ts";
import { createPki, issueClientCertificate, type Pki } from "./_pki.ts";
import { ServerProcess, spawnWatchdog } from "./_server_process.ts";
import { waitUntil } from "./wait.ts";
import { errorMessage } from "../../lib/util/error_message.ts";

/** Result of one kubectl run. */
export interface KubectlResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Options of one kubectl run. */
export interface KubectlOptions {
  /** Written to kubectl's standard input (e.g. a manifest for `apply -f -`). */
  readonly stdin?: string;
  /** @default the admin kubeconfig */
  readonly kubeconfig?: string;
}

/** A running etcd + kube-apiserver pair. */
export interface ControlPlane {
  /** `https://127.0.0.1:<port>`. */
  readonly serverUrl: string;
  /** Kubeconfig (certificate data embedded) of user `admin` in group `system:masters`. */
  readonly adminKubeconfigPath: string;
  /** Temporary directory with certificates, kubeconfigs, logs and etcd data. */
  readonly dir: string;
  /** PEM file of the CA that signed the serving and client certificates. */
  readonly caCertPath: string;
  /** Static bearer token of user `admin-token` in group `system:masters`. */
  readonly adminToken: string;
  /** etcd's client URL (`http://127.0.0.1:<port>`). */
  readonly etcdUrl: string;
  /** The kubectl that `kubectl()` runs (version-matched from the cache when available). */
  readonly kubectlPath: string;
  /** Runs real kubectl against this control plane (admin unless `options.kubeconfig`). */
  kubectl(args: string[], options?: KubectlOptions): Promise<KubectlResult>;
  /** Like `kubectl`, but returns stdout and throws with the stderr when the exit code is not 0. */
  kubectlOk(args: string[], options?: KubectlOptions): Promise<string>;
  /** Creates a namespace with a unique name starting with `prefix` and returns its name. */
  createNamespace(prefix?: string): Promise<string>;
  /**
   * Kubeconfig for `system:serviceaccount:<namespace>:<name>`: creates the ServiceAccount if missing
   * and embeds a TokenRequest token. It has only the rights that RBAC objects in the cluster grant it.
   */
  kubeconfigForServiceAccount(namespace: string, name: string): Promise<string>;
  /**
   * Kubeconfig for a client-certificate identity (`user`, `groups`), with the certificate and key
   * as files referenced by paths relative to the kubeconfig.
   */
  kubeconfigForUser(user: string, groups?: readonly string[]): Promise<string>;
  /** Stops kube-apiserver (SIGTERM, then SIGKILL); etcd keeps running. */
  stopApiServer(): Promise<void>;
  /** Starts kube-apiserver again on the same port with the same etcd, and waits until it is ready. */
  startApiServer(): Promise<void>;
  /** `stopApiServer()` then `startApiServer()`. */
  restartApiServer(): Promise<void>;
  /**
   * Compacts etcd to its current revision. With the watch cache off (the default) a watch or list
   * from an older resourceVersion then gets 410 Gone.
   */
  compactEtcd(): Promise<void>;
  /** Stops both servers and removes `dir`. */
  close(): Promise<void>;
  /** Same as `close()`. */
  [Symbol.asyncDispose](): Promise<void>;
}

/** Options of `startControlPlane`. */
export interface ControlPlaneOptions {
  /**
   * Apply every CRD manifest in `k8s/crd/` (skipped when the folder is missing) and wait until
   * each is Established.
   * @default true
   */
  readonly installCrds?: boolean;
  /**
   * kube-apiserver's watch cache. Off by default so that `compactEtcd()` makes old
   * resourceVersions fail at once with 410 (the cache would keep serving them for a while).
   * With it on, watches get bookmarks and restarts answer old resourceVersions with 410 too.
   * @default false
   */
  readonly watchCache?: boolean;
  /**
   * On SIGINT or SIGTERM, kill both servers and exit the process at once. Turn it off when the
   * caller stops things in order itself (it must `close()`; process exit still kills the servers).
   * @default true
   */
  readonly exitOnSignals?: boolean;
}

const crdDir = new URL("../../k8s/crd/", import.meta.url);
const live = new Set<LocalControlPlane>();

/**
 * Starts etcd and kube-apiserver and waits until the API server is ready.
 * @throws Error with the reason (and server log tail) when the binaries are missing or a server fails
 */
export function startControlPlane(options: ControlPlaneOptions = {}): Promise<ControlPlane> {
  return startLocalControlPlane(options);
}

async function startLocalControlPlane(options: ControlPlaneOptions): Promise<LocalControlPlane> {
  const lookup = findControlPlaneBinaries();
  if (!lookup.found) throw new Error(`Cannot start a control plane: ${lookup.reason}`);
  const dir = await Deno.makeTempDir({ prefix: "undying-proxy-cp-" });
  const controlPlane = new LocalControlPlane(lookup.binaries, dir, options);
  try {
    await controlPlane.start();
    if (options.installCrds ?? true) await controlPlane.installCrds();
  } catch (error) {
    await controlPlane.close();
    throw error;
  }
  return controlPlane;
}

/** Options of {@linkcode integrationTest}. */
export interface IntegrationTestOptions {
  /**
   * The test restarts the shared API server (new processes outlive it), so leak checks are off.
   * @default false
   */
  readonly restartsControlPlane?: boolean;
}

/**
 * Registers an integration test that gets the control plane shared by this test module (started
 * by a setup test before the first integration test, stopped at unload; do not close it). Leak
 * checks (ops and resources) are on, since the shared servers exist before the test starts, except
 * for tests that restart them. Without binaries the test is ignored with a loud reason on stderr,
 * except when `CI=true` (or an env var points at missing binaries): then it fails.
 */
export function integrationTest(
  name: string,
  fn: (cp: ControlPlane) => Promise<void>,
  options: IntegrationTestOptions = {},
): void {
  if (!sharedSetupRegistered && findControlPlaneBinaries().found) {
    sharedSetupRegistered = true;
    Deno.test({
      name: "(setup) start the control plane shared by this module",
      sanitizeOps: false,
      sanitizeResources: false,
      fn: async () => void await sharedControlPlane(),
    });
  }
  registerTest(name, !options.restartsControlPlane, async () => {
    const cp = await sharedControlPlane();
    try {
      await fn(cp);
    } finally {
      // A test that failed between stopApiServer() and startApiServer() must not break the next ones.
      if (!cp.apiServerRunning) await cp.startApiServer();
    }
  });
}

let sharedSetupRegistered = false;

/**
 * Registers a test that starts its own control plane(s) via `startControlPlane` (e.g. to restart
 * or compact without disturbing others). Skipped or failed like `integrationTest`; sanitizers stay on.
 */
export function controlPlaneTest(name: string, fn: () => Promise<void>): void {
  registerTest(name, true, fn);
}

let shared: Promise<LocalControlPlane> | undefined;

function sharedControlPlane(): Promise<LocalControlPlane> {
  shared ??= startLocalControlPlane({});
  return shared;
}

let warnedMissing = false;

function registerTest(name: string, sanitize: boolean, fn: () => Promise<void>): void {
  const lookup = findControlPlaneBinaries();
  if (lookup.found) {
    Deno.test({ name, sanitizeOps: sanitize, sanitizeResources: sanitize, fn });
    return;
  }
  if (Deno.env.get("CI") === "true" || lookup.misconfigured) {
    Deno.test(name, () => {
      throw new Error(`Integration test cannot run: control plane unavailable: ${lookup.reason}`);
    });
    return;
  }
  if (!warnedMissing) {
    warnedMissing = true;
    writeStderr(
      `\n!!! SKIPPING Kubernetes integration tests: ${lookup.reason}\n` +
        "!!! (with CI=true these tests fail instead)\n\n",
    );
  }
  Deno.test({ name: `${name} (SKIPPED: no kube-apiserver/etcd)`, ignore: true, fn });
}

class LocalControlPlane implements ControlPlane {
  readonly dir: string;
  readonly adminToken = crypto.randomUUID();
  readonly #binaries: ControlPlaneBinaries;
  readonly #watchCache: boolean;
  readonly #exitOnSignals: boolean;
  #pki: Pki | undefined;
  #watchdog: Deno.ChildProcess | undefined;
  #etcd: ServerProcess | undefined;
  #apiserver: ServerProcess | undefined;
  #apiserverPort = 0;
  #etcdPort = 0;
  #closed = false;

  constructor(binaries: ControlPlaneBinaries, dir: string, options: ControlPlaneOptions) {
    this.#binaries = binaries;
    this.dir = dir;
    this.#watchCache = options.watchCache ?? false;
    this.#exitOnSignals = options.exitOnSignals ?? true;
  }

  get serverUrl(): string {
    return `https://127.0.0.1:${this.#apiserverPort}`;
  }

  get adminKubeconfigPath(): string {
    return `${this.dir}/admin.kubeconfig`;
  }

  get caCertPath(): string {
    return `${this.dir}/ca.crt`;
  }

  get etcdUrl(): string {
    return `http://127.0.0.1:${this.#etcdPort}`;
  }

  get apiServerRunning(): boolean {
    return this.#apiserver !== undefined && !this.#apiserver.exited;
  }

  get kubectlPath(): string {
    return this.#binaries.kubectl;
  }

  async start(): Promise<void> {
    live.add(this);
    installExitHandlers(this.#exitOnSignals);
    this.#watchdog = spawnWatchdog(this.dir);
    const pki = await createPki(this.dir);
    this.#pki = pki;
    await Deno.writeTextFile(
      `${this.dir}/tokens.csv`,
      `${this.adminToken},admin-token,admin-token-uid,"system:masters"\n`,
    );
    this.#etcdPort = freePort();
    await this.#startEtcd(freePort());
    this.#apiserverPort = freePort();
    await this.startApiServer();
    await writeKubeconfig(
      this.adminKubeconfigPath,
      this.serverUrl,
      await Deno.readTextFile(pki.caCert),
      {
        "client-certificate-data": base64(await Deno.readTextFile(pki.adminCert)),
        "client-key-data": base64(await Deno.readTextFile(pki.adminKey)),
      },
    );
  }

  async #startEtcd(peerPort: number): Promise<void> {
    const client = this.etcdUrl;
    const peer = `http://127.0.0.1:${peerPort}`;
    const etcd = ServerProcess.spawn("etcd", this.#binaries.etcd, [
      "--name=default",
      `--data-dir=${this.dir}/etcd-data`,
      `--listen-client-urls=${client}`,
      `--advertise-client-urls=${client}`,
      `--listen-peer-urls=${peer}`,
      `--initial-advertise-peer-urls=${peer}`,
      `--initial-cluster=default=${peer}`,
      "--initial-cluster-state=new",
      // Test data is thrown away: skip fsync so a loaded 2-core box stays fast.
      "--unsafe-no-fsync=true",
      "--log-level=warn",
    ], this.dir);
    this.#etcd = etcd;
    await waitUntil("etcd /health", async () => {
      if (etcd.exited) throw new Error(`etcd exited:\n${etcd.logTail()}`);
      const response = await fetch(`${client}/health`, { signal: AbortSignal.timeout(5_000) });
      const body = await response.text();
      return response.ok && body.includes('"health":"true"') ? true : undefined;
    }, { timeoutMs: 60_000 }).catch((error) => {
      throw new Error(`${error.message}\netcd log (${etcd.logPath}):\n${etcd.logTail()}`);
    });
  }

  async startApiServer(): Promise<void> {
    this.#assertOpen();
    if (this.#apiserver && !this.#apiserver.exited) {
      throw new Error("kube-apiserver is already running");
    }
    const pki = this.#pki;
    if (!pki) throw new Error("control plane PKI missing");
    const issuer = "https://kubernetes.default.svc.cluster.local";
    const apiserver = ServerProcess.spawn("kube-apiserver", this.#binaries.kubeApiserver, [
      `--etcd-servers=${this.etcdUrl}`,
      "--bind-address=127.0.0.1",
      "--advertise-address=127.0.0.1",
      `--secure-port=${this.#apiserverPort}`,
      `--cert-dir=${this.dir}/apiserver-certs`,
      `--tls-cert-file=${pki.servingCert}`,
      `--tls-private-key-file=${pki.servingKey}`,
      `--client-ca-file=${pki.caCert}`,
      `--token-auth-file=${this.dir}/tokens.csv`,
      "--authorization-mode=RBAC",
      `--service-account-key-file=${pki.serviceAccountPub}`,
      `--service-account-signing-key-file=${pki.serviceAccountKey}`,
      `--service-account-issuer=${issuer}`,
      `--api-audiences=${issuer}`,
      "--service-cluster-ip-range=10.0.0.0/24",
      "--allow-privileged=true",
      `--watch-cache=${this.#watchCache}`,
      "--profiling=false",
    ], this.dir);
    this.#apiserver = apiserver;
    const client = Deno.createHttpClient({ caCerts: [await Deno.readTextFile(pki.caCert)] });
    try {
      await waitUntil("kube-apiserver /readyz", async () => {
        if (apiserver.exited) throw new Error("kube-apiserver exited");
        const response = await fetch(`${this.serverUrl}/readyz`, {
          client,
          signal: AbortSignal.timeout(5_000),
        });
        await response.body?.cancel();
        return response.ok ? true : undefined;
      }, { timeoutMs: 120_000, intervalMs: 250 });
    } catch (error) {
      throw new Error(
        `${errorMessage(error)}\nkube-apiserver log (${apiserver.logPath}):\n` +
          apiserver.logTail(),
      );
    } finally {
      client.close();
    }
  }

  async stopApiServer(): Promise<void> {
    this.#assertOpen();
    await this.#apiserver?.stop(20_000);
  }

  async restartApiServer(): Promise<void> {
    await this.stopApiServer();
    await this.startApiServer();
  }

  async compactEtcd(): Promise<void> {
    this.#assertOpen();
    // A watch from resourceVersion N starts at revision N+1. Two writes outside /registry move the
    // revision past every resourceVersion handed out so far, so all of them become too old.
    const marker = { key: btoa("/undying-proxy-tests/compaction-marker"), value: btoa("x") };
    await this.#etcdCall("/v3/kv/put", marker);
    const put = await this.#etcdCall("/v3/kv/put", marker);
    const revision = (put as { header?: { revision?: string } }).header?.revision;
    if (!revision) throw new Error(`etcd put answered without a revision: ${JSON.stringify(put)}`);
    try {
      await this.#etcdCall("/v3/kv/compaction", { revision, physical: true });
    } catch (error) {
      // kube-apiserver compacts on its own too; already compacted to this revision is fine.
      if (!String(error).includes("required revision has been compacted")) throw error;
    }
  }

  async #etcdCall(path: string, body: unknown): Promise<unknown> {
    const response = await fetch(`${this.etcdUrl}${path}`, {
      method: "POST",
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(30_000),
    });
    const text = await response.text();
    if (!response.ok) throw new Error(`etcd ${path} answered ${response.status}: ${text}`);
    return JSON.parse(text);
  }

  async kubectl(args: string[], options: KubectlOptions = {}): Promise<KubectlResult> {
    const kubeconfig = options.kubeconfig ?? this.adminKubeconfigPath;
    const child = new Deno.Command(this.kubectlPath, {
      args: [`--kubeconfig=${kubeconfig}`, `--cache-dir=${this.dir}/kubectl-cache`, ...args],
      env: { KUBECONFIG: kubeconfig },
      stdin: options.stdin === undefined ? "null" : "piped",
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(180_000),
    }).spawn();
    if (options.stdin !== undefined) {
      const writer = child.stdin.getWriter();
      await writer.write(new TextEncoder().encode(options.stdin));
      await writer.close();
    }
    const output = await child.output();
    const decoder = new TextDecoder();
    return {
      code: output.code,
      stdout: decoder.decode(output.stdout),
      stderr: decoder.decode(output.stderr),
    };
  }

  async kubectlOk(args: string[], options: KubectlOptions = {}): Promise<string> {
    const result = await this.kubectl(args, options);
    if (result.code !== 0) {
      throw new Error(
        `kubectl ${args.join(" ")} exited with code ${result.code}: ${result.stderr.trim()}`,
      );
    }
    return result.stdout;
  }

  async createNamespace(prefix = "test"): Promise<string> {
    const cleaned =
      prefix.toLowerCase().replace(/[^a-z0-9-]+/g, "-").replace(/^-+|-+$/g, "").slice(0, 40) ||
      "test";
    const name = `${cleaned}-${crypto.randomUUID().slice(0, 8)}`;
    await this.kubectlOk(["create", "namespace", name]);
    return name;
  }

  async kubeconfigForServiceAccount(namespace: string, name: string): Promise<string> {
    const created = await this.kubectl(["create", "serviceaccount", name, "-n", namespace]);
    if (created.code !== 0 && !/already ?exists/i.test(created.stderr)) {
      throw new Error(
        `Cannot create ServiceAccount ${namespace}/${name}: ${created.stderr.trim()}`,
      );
    }
    const token =
      (await this.kubectlOk(["create", "token", name, "-n", namespace, "--duration=24h"])).trim();
    const path = `${this.dir}/sa-${namespace}-${name}.kubeconfig`;
    await writeKubeconfig(path, this.serverUrl, await Deno.readTextFile(this.caCertPath), {
      token,
    });
    return path;
  }

  async kubeconfigForUser(user: string, groups: readonly string[] = []): Promise<string> {
    const pki = this.#pki;
    if (!pki) throw new Error("control plane PKI missing");
    const fileName = `user-${user.replace(/[^A-Za-z0-9._-]+/g, "_")}-${
      crypto.randomUUID().slice(0, 8)
    }`;
    await issueClientCertificate(pki, this.dir, fileName, { user, groups });
    const path = `${this.dir}/${fileName}.kubeconfig`;
    await writeKubeconfig(path, this.serverUrl, await Deno.readTextFile(this.caCertPath), {
      "client-certificate": `${fileName}.crt`,
      "client-key": `${fileName}.key`,
    });
    return path;
  }

  async installCrds(): Promise<void> {
    const files: string[] = [];
    try {
      for await (const entry of Deno.readDir(crdDir)) {
        if (entry.isFile && /\.ya?ml$/.test(entry.name)) {
          files.push(new URL(entry.name, crdDir).pathname);
        }
      }
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return;
      throw error;
    }
    if (files.length === 0) return;
    const fileArgs = files.sort().flatMap((file) => ["-f", file]);
    await this.kubectlOk(["apply", "--server-side", ...fileArgs]);
    await this.kubectlOk(["wait", "--for=condition=Established", "--timeout=120s", ...fileArgs]);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#apiserver?.stop(20_000);
    await this.#etcd?.stop(10_000);
    await Deno.remove(this.dir, { recursive: true }).catch(() => {});
    // The watchdog notices the directory is gone within a second and exits.
    this.#watchdog?.ref();
    await this.#watchdog?.status;
    live.delete(this);
    if (live.size === 0) removeExitHandlers();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  /** Synchronous last-resort teardown for unload and signals. */
  killNow(): void {
    this.#closed = true;
    this.#apiserver?.killNow();
    this.#etcd?.killNow();
    try {
      Deno.removeSync(this.dir, { recursive: true });
    } catch {
      // etcd may still be writing for a moment; the watchdog removes the rest.
    }
  }

  #assertOpen(): void {
    if (this.#closed) throw new Error("control plane is closed");
  }
}

type UserCredentials =
  | { readonly token: string }
  | { readonly "client-certificate-data": string; readonly "client-key-data": string }
  | { readonly "client-certificate": string; readonly "client-key": string };

/** Writes a one-context kubeconfig (JSON, which is valid YAML) for `user` at `path`. */
async function writeKubeconfig(
  path: string,
  server: string,
  caPem: string,
  user: UserCredentials,
): Promise<void> {
  const kubeconfig = {
    apiVersion: "v1",
    kind: "Config",
    clusters: [{ name: "test", cluster: { server, "certificate-authority-data": base64(caPem) } }],
    users: [{ name: "test", user }],
    contexts: [{ name: "test", context: { cluster: "test", user: "test", namespace: "default" } }],
    "current-context": "test",
  };
  await Deno.writeTextFile(path, JSON.stringify(kubeconfig, null, 2) + "\n", { mode: 0o600 });
}

function base64(text: string): string {
  return btoa(text);
}

/**
 * A loopback TCP port that was free a moment ago, below Linux's ephemeral range (32768+), so that
 * an outgoing connection cannot take it as its source port while kube-apiserver restarts.
 */
function freePort(): number {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    try {
      using _listener = Deno.listen({ hostname: "127.0.0.1", port });
      return port;
    } catch (error) {
      if (!(error instanceof Deno.errors.AddrInUse)) throw error;
    }
  }
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  return listener.addr.port;
}

function writeStderr(text: string): void {
  Deno.stderr.writeSync(new TextEncoder().encode(text));
}

function killAllNow(): void {
  for (const controlPlane of live) controlPlane.killNow();
  live.clear();
}

const onUnload = (): void => killAllNow();
const onSigint = (): void => {
  killAllNow();
  Deno.exit(130);
};
const onSigterm = (): void => {
  killAllNow();
  Deno.exit(143);
};
let handlersInstalled = false;
let signalHandlersInstalled = false;

function installExitHandlers(signals: boolean): void {
  if (!handlersInstalled) {
    handlersInstalled = true;
    globalThis.addEventListener("unload", onUnload);
  }
  if (signals && !signalHandlersInstalled) {
    signalHandlersInstalled = true;
    Deno.addSignalListener("SIGINT", onSigint);
    Deno.addSignalListener("SIGTERM", onSigterm);
  }
}

function removeExitHandlers(): void {
  if (handlersInstalled) globalThis.removeEventListener("unload", onUnload);
  if (signalHandlersInstalled) {
    Deno.removeSignalListener("SIGINT", onSigint);
    Deno.removeSignalListener("SIGTERM", onSigterm);
  }
  handlersInstalled = false;
  signalHandlersInstalled = false;
}
