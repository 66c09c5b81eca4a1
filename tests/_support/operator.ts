/**
 * End-to-end support for the operator: runs the real program as a `deno run` subprocess with exactly
 * the permission flags of the `compile` task, under a ServiceAccount bound only by the shipped RBAC
 * (`k8s/rbac/`), and reads UnDyingProxy objects back with kubectl.
 * @module
 */

import { dump, load } from "js-yaml";
import type { Service } from "kubernetes-types/core/v1.d.ts";
import type { UnDyingProxy } from "../../k8s/undying_proxy_types.ts";
import type { ControlPlane } from "./control_plane.ts";
import { renderKustomization, repoRoot } from "./kustomize.ts";
import { readExactly, writeAll } from "./net_tcp.ts";
import { udpClient } from "./net_udp.ts";
import { type Exposition, freePort, startProgram } from "./program.ts";
import { waitUntil } from "./wait.ts";

/**
 * Applies the shipped RBAC (`k8s/rbac/`) into `namespace` and returns a kubeconfig of its
 * ServiceAccount, which has exactly those rights.
 */
export async function operatorKubeconfig(cp: ControlPlane, namespace: string): Promise<string> {
  // The harness creates the ServiceAccount itself; the shipped one is then applied over it.
  const kubeconfig = await cp.kubeconfigForServiceAccount(namespace, "undying-proxy");
  const rendered = await renderKustomization("k8s/rbac", { namespace });
  await cp.kubectlOk(["apply", "-n", namespace, "-f", "-"], { stdin: rendered });
  return kubeconfig;
}

/** Creates a Service with one placeholder port (as the shipped manifests do). */
export async function createManagedService(
  cp: ControlPlane,
  namespace: string,
  name: string,
  protocol: "TCP" | "UDP",
): Promise<void> {
  const service: Service = {
    apiVersion: "v1",
    kind: "Service",
    metadata: { name, namespace },
    spec: {
      selector: { app: "undying-proxy" },
      ports: [{ name: "placeholder", port: 1, targetPort: 1, protocol }],
    },
  };
  await cp.kubectlOk(["apply", "-f", "-"], { stdin: JSON.stringify(service) });
}

/** A sample from `k8s/samples/` with its name, ports and target replaced (YAML for kubectl). */
export async function sampleYaml(
  file: string,
  changes: {
    name: string;
    tcp?: { listenPort: number; targetPort: number };
    udp?: { listenPort: number; targetPort: number };
    targetHost?: string;
    annotations?: Record<string, string>;
  },
): Promise<string> {
  const sample = load(await Deno.readTextFile(`${repoRoot}k8s/samples/${file}`)) as UnDyingProxy;
  sample.metadata = {
    ...sample.metadata,
    name: changes.name,
    ...(changes.annotations ? { annotations: changes.annotations } : {}),
  };
  const spec = sample.spec ?? {};
  for (const protocol of ["tcp", "udp"] as const) {
    const part = spec[protocol];
    const change = changes[protocol];
    if (part === undefined && change !== undefined) {
      throw new Error(`Sample ${file} has no spec.${protocol}`);
    }
    if (part === undefined) continue;
    if (change === undefined) {
      delete spec[protocol];
      continue;
    }
    part.listenPort = change.listenPort;
    part.targetPort = change.targetPort;
    part.targetHost = changes.targetHost ?? "127.0.0.1";
  }
  return dump(sample);
}

/** Applies a sample changed as by {@linkcode sampleYaml} into `namespace` with kubectl. */
export async function applySample(
  cp: ControlPlane,
  namespace: string,
  file: string,
  changes: Parameters<typeof sampleYaml>[1],
): Promise<void> {
  await cp.kubectlOk(["apply", "-n", namespace, "-f", "-"], {
    stdin: await sampleYaml(file, changes),
  });
}

/** True when a TCP connection to `hostname:port` echoes `text` back (false when refused). */
export async function tcpEchoes(hostname: string, port: number, text = "ping"): Promise<boolean> {
  let conn: Deno.TcpConn;
  try {
    conn = await Deno.connect({ hostname, port });
  } catch {
    return false;
  }
  try {
    await writeAll(conn, new TextEncoder().encode(text));
    return new TextDecoder().decode(await readExactly(conn, text.length)) === text;
  } catch {
    return false;
  } finally {
    conn.close();
  }
}

/** True when a UDP request to `hostname:port` is answered with `text` within `timeoutMs`. */
export async function udpEchoes(
  hostname: string,
  port: number,
  text = "ping",
  timeoutMs = 2000,
): Promise<boolean> {
  using client = udpClient(hostname);
  try {
    const reply = await client.request(new TextEncoder().encode(text), port, timeoutMs);
    return new TextDecoder().decode(reply) === text;
  } catch {
    return false;
  }
}

/**
 * True when a TCP exchange through `hostname:port` reached `target` (its accept count grew);
 * throws when the connection is refused or not answered.
 */
export async function reaches(
  port: number,
  target: { readonly accepted: number },
  hostname = "127.0.0.2",
): Promise<boolean> {
  const before = target.accepted;
  const conn = await Deno.connect({ hostname, port });
  try {
    await writeAll(conn, new TextEncoder().encode("x"));
    await readExactly(conn, 1);
  } finally {
    conn.close();
  }
  return target.accepted > before;
}

/** Runs `body`; a failure is rethrown with the tail of every operator's output attached. */
export async function explainFailure<T>(
  operators: readonly OperatorProcess[],
  body: () => Promise<T>,
): Promise<T> {
  try {
    return await body();
  } catch (error) {
    const outputs = operators.map((o) => `--- ${o.replica} ---\n${o.output().slice(-6000)}`);
    throw new Error(`${error}\n${outputs.join("\n")}`, { cause: error });
  }
}

/** Reads an UnDyingProxy with kubectl (admin). */
export async function getProxy(
  cp: ControlPlane,
  namespace: string,
  name: string,
): Promise<UnDyingProxy | undefined> {
  const result = await cp.kubectl(["get", "undyingproxy", name, "-n", namespace, "-o", "json"]);
  if (result.code !== 0) {
    if (result.stderr.includes("NotFound")) return undefined;
    throw new Error(`kubectl get undyingproxy ${name} failed: ${result.stderr}`);
  }
  return JSON.parse(result.stdout) as UnDyingProxy;
}

/** `kubectl patch KIND NAME` with a merge patch (an object) or a JSON patch (an array). */
export async function patchObject(
  cp: ControlPlane,
  namespace: string,
  kind: "undyingproxy" | "service",
  name: string,
  patch: object,
): Promise<void> {
  const type = Array.isArray(patch) ? "json" : "merge";
  await cp.kubectlOk([
    "patch",
    kind,
    name,
    "-n",
    namespace,
    `--type=${type}`,
    "-p",
    JSON.stringify(patch),
  ]);
}

/** Deletes an UnDyingProxy with kubectl and waits (bounded) until it is gone. */
export async function deleteProxy(
  cp: ControlPlane,
  namespace: string,
  name: string,
): Promise<void> {
  await cp.kubectlOk(["delete", "undyingproxy", name, "-n", namespace, "--wait=false"]);
  await waitUntil(
    `${namespace}/${name} gone`,
    async () => (await getProxy(cp, namespace, name)) === undefined ? true : undefined,
  );
}

/** Waits (bounded) until Events with every reason in `reasons` exist for the object `name`. */
export async function waitForEvents(
  cp: ControlPlane,
  namespace: string,
  name: string,
  reasons: readonly string[],
): Promise<void> {
  // Events are written alongside the status: wait for them rather than race them.
  await waitUntil(`Events ${reasons.join(", ")} of ${namespace}/${name}`, async () => {
    const seen = (await cp.kubectlOk([
      "get",
      "events",
      "-n",
      namespace,
      `--field-selector=involvedObject.name=${name}`,
      "-o",
      'jsonpath={range .items[*]}{.reason}{"\\n"}{end}',
    ])).split("\n");
    return reasons.every((reason) => seen.includes(reason)) ? true : undefined;
  }, { timeoutMs: 30_000 });
}

/** Reads a Service's ports with kubectl (admin). */
export async function servicePorts(
  cp: ControlPlane,
  namespace: string,
  name: string,
): Promise<{ name?: string; port: number; targetPort?: number | string; protocol?: string }[]> {
  const json = await cp.kubectlOk(["get", "service", name, "-n", namespace, "-o", "json"]);
  return (JSON.parse(json) as Service).spec?.ports ?? [];
}

/** Waits until `check` accepts the object (bounded), and returns it. */
export function waitForProxy(
  cp: ControlPlane,
  namespace: string,
  name: string,
  what: string,
  check: (object: UnDyingProxy) => boolean,
  timeoutMs = 60_000,
): Promise<UnDyingProxy> {
  return waitUntil(what, async () => {
    const object = await getProxy(cp, namespace, name);
    return object !== undefined && check(object) ? object : undefined;
  }, { timeoutMs, intervalMs: 250 });
}

/** Waits until the object's `Ready` condition has `reason` (`Listening` = Ready), and returns it. */
export function waitForReason(
  cp: ControlPlane,
  namespace: string,
  name: string,
  reason: string,
  timeoutMs = 60_000,
): Promise<UnDyingProxy> {
  return waitForProxy(
    cp,
    namespace,
    name,
    `${namespace}/${name} Ready reason ${reason}`,
    (object) => readyCondition(object)?.reason === reason,
    timeoutMs,
  );
}

/** The `Ready` condition of an object. */
export function readyCondition(
  object: UnDyingProxy,
): { status: string; reason?: string; message?: string } | undefined {
  return object.status?.conditions?.find((c) => c.type === "Ready");
}

/** Flags that turn Service management off (tests that do not look at Services). */
export const NO_MANAGED_SERVICES: readonly string[] = [
  "--tcp-service-to-manage=",
  "--udp-service-to-manage=",
];

const handedOut = new Set<number>();

/**
 * A port free on 127.0.0.1 for TCP and UDP a moment ago, and never handed out before by this
 * function in this process (two quick `freePort()` calls may return the same port).
 */
export function nextFreePort(): number {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = freePort();
    if (handedOut.has(port)) continue;
    handedOut.add(port);
    return port;
  }
  throw new Error("No free port that was not handed out before");
}

/** Options of {@linkcode startOperator}. */
export interface StartOperatorOptions {
  readonly kubeconfig: string;
  readonly namespace: string;
  readonly replica: string;
  /** @default "127.0.0.2" */
  readonly listenAddress?: string;
  /** Extra flags, e.g. `--tcp-service-to-manage=x`. */
  readonly args?: readonly string[];
  /**
   * Keep operator mode's default deny list (loopback, link-local, the API server). Off by default:
   * the tests' targets are on loopback, so they pass `--denied-target-cidrs=` explicitly.
   * @default false
   */
  readonly defaultTargetPolicy?: boolean;
  /** A hosts file the operator sees as `/etc/hosts` (see `ProgramOptions.hostsFile`). */
  readonly hostsFile?: string;
}

/** A running operator process. */
export interface OperatorProcess extends AsyncDisposable {
  readonly replica: string;
  readonly listenAddress: string;
  /** Everything the process wrote so far (stdout and stderr), for failure messages. */
  output(): string;
  /** The exit code once the process has exited, else undefined. */
  exitCode(): number | undefined;
  /** The HTTP status of `/readyz`, or undefined while the probe server does not answer. */
  readyzStatus(): Promise<number | undefined>;
  /** True when `/readyz` answers 200. */
  isReady(): Promise<boolean>;
  /** The parsed `/metrics` exposition. */
  metrics(): Promise<Exposition>;
  /** SIGSTOP: the process freezes (its connections stay open, nothing is read). */
  pause(): void;
  /** SIGCONT after {@linkcode pause}. */
  resume(): void;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves with the exit code. */
  stop(graceMs?: number): Promise<number>;
  /** SIGKILL at once (a crash); resolves once the process is gone. */
  kill(): Promise<void>;
}

/**
 * Starts `main.ts` in operator mode with the compile task's permissions (via `startProgram`:
 * metrics and probes on ports read back from its log). Resolves once both servers listen.
 */
export async function startOperator(options: StartOperatorOptions): Promise<OperatorProcess> {
  const listenAddress = options.listenAddress ?? "127.0.0.2";
  const program = await startProgram([
    `--operator-namespace=${options.namespace}`,
    `--kubeconfig=${options.kubeconfig}`,
    `--replica-name=${options.replica}`,
    `--listen-address=${listenAddress}`,
    "--drain-grace-period=1s",
    "--log-level=debug",
    ...options.defaultTargetPolicy ? [] : ["--denied-target-cidrs="],
    ...options.args ?? [],
  ], options.hostsFile === undefined ? {} : { hostsFile: options.hostsFile });
  let code: number | undefined;
  program.exited.then((c) => code = c);
  const readyzStatus = async () => {
    try {
      return (await program.probe("/readyz")).status;
    } catch {
      return undefined;
    }
  };
  const stop = async (graceMs = 15_000) => {
    program.signal("SIGCONT");
    program.signal("SIGTERM");
    const timer = setTimeout(() => program.signal("SIGKILL"), graceMs);
    try {
      return await program.exited;
    } finally {
      clearTimeout(timer);
    }
  };
  return {
    replica: options.replica,
    listenAddress,
    output: () => program.output(),
    exitCode: () => code,
    metrics: () => program.scrape(),
    readyzStatus,
    async isReady() {
      return (await readyzStatus()) === 200;
    },
    pause: () => program.signal("SIGSTOP"),
    resume: () => program.signal("SIGCONT"),
    stop,
    async kill() {
      program.signal("SIGKILL");
      await program.exited;
    },
    [Symbol.asyncDispose]: async () => {
      await stop(5_000);
    },
  };
}

/**
 * Starts an operator (replica `op-a` unless given), waits until it is ready, runs `body` (a failure
 * carries the operator's output), then stops it and checks that it exited with 0.
 */
export async function withOperator(
  options: Omit<StartOperatorOptions, "replica"> & { readonly replica?: string },
  body: (operator: OperatorProcess) => Promise<void>,
): Promise<void> {
  await using operator = await startOperator({ replica: "op-a", ...options });
  await explainFailure([operator], async () => {
    await waitReady(operator);
    await body(operator);
  });
  const code = await operator.stop();
  if (code !== 0) {
    throw new Error(`operator ${operator.replica} exited with ${code}\n${operator.output()}`);
  }
}

/** Waits until the operator answers ready on `/readyz`, failing with its output otherwise. */
export async function waitReady(operator: OperatorProcess, timeoutMs = 60_000): Promise<void> {
  const explain = (what: unknown) =>
    new Error(`${what}\n--- operator output ---\n${operator.output().slice(-6000)}`);
  let outcome: "ready" | "exited";
  try {
    outcome = await waitUntil(`operator ${operator.replica} ready`, async () => {
      if (operator.exitCode() !== undefined) return "exited";
      return (await operator.isReady()) ? "ready" : undefined;
    }, { timeoutMs, intervalMs: 200 });
  } catch (error) {
    throw explain(error);
  }
  if (outcome === "exited") {
    throw explain(`operator ${operator.replica} exited with ${operator.exitCode()} before ready`);
  }
}
