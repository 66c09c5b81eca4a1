/**
 * `deno task dev:cluster`: a local cluster to try the operator on, in minutes. Starts the real
 * kube-apiserver + etcd the tests use (`tests/_support/control_plane.ts`; the binaries come from
 * `deno task controlplane`, built once with Go when missing), installs what `k8s/default` ships
 * except the workload (CRD, namespace `undying-proxy`, RBAC, the two Services), writes an admin
 * kubeconfig to a path it prints, runs the operator (`main.ts` with the compile task's permissions,
 * under the shipped ServiceAccount's rights) and applies the cluster samples. Ctrl-C stops it all.
 *
 * Usage: `deno task dev:cluster [--kubeconfig-out FILE] [operator flags...]`; the operator flags
 * override the defaults below (e.g. `--listen-address=127.0.0.2`). Its own lines go to stdout,
 * prefixed `[dev:cluster]`; the operator's log goes to stderr.
 * @module
 */
import { findControlPlaneBinaries } from "../controlplane/binaries.ts";
import { cleanEnv } from "../_support/clean_env.ts";
import { type ControlPlane, startControlPlane } from "../_support/control_plane.ts";
import { parseManifests, repoRoot } from "../_support/kustomize.ts";
import { taskPermissionFlags } from "../_support/program.ts";
import { ShutdownSignals } from "../../lib/shutdown.ts";
import { errorMessage } from "../../lib/util/error_message.ts";

const NAMESPACE = "undying-proxy";
/** Kinds of `k8s/default` that are installed: everything but the operator's own workload. */
// The ClusterRoles let the operator review scrapers' tokens (--metrics-authed, on by default).
const INSTALLED_KINDS = [
  "Namespace",
  "ServiceAccount",
  "Role",
  "RoleBinding",
  "ClusterRole",
  "ClusterRoleBinding",
  "Service",
];
const READY_TIMEOUT = "90s";

function say(line: string): void {
  Deno.stdout.writeSync(new TextEncoder().encode(`[dev:cluster] ${line}\n`));
}

/** Splits our own `--kubeconfig-out FILE` from the operator's flags. */
function parseArgs(args: readonly string[]): { kubeconfigOut: string; operatorArgs: string[] } {
  let kubeconfigOut = `${repoRoot}.dev-cluster/kubeconfig`;
  const operatorArgs: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] ?? "";
    if (arg.startsWith("--kubeconfig-out=")) kubeconfigOut = arg.slice("--kubeconfig-out=".length);
    else if (arg === "--kubeconfig-out") kubeconfigOut = args[++i] ?? kubeconfigOut;
    else if (arg !== "--") operatorArgs.push(arg);
  }
  return { kubeconfigOut, operatorArgs };
}

/** Builds the control-plane binaries with `deno task controlplane` when none are found. */
async function provisionBinaries(): Promise<void> {
  const lookup = findControlPlaneBinaries();
  if (lookup.found) return;
  if (lookup.misconfigured) throw new Error(lookup.reason);
  say(`no kube-apiserver/etcd yet (${lookup.reason}): building them with Go, once (5-10 min)`);
  const status = await new Deno.Command(Deno.execPath(), {
    args: ["task", "controlplane"],
    cwd: repoRoot,
    stdout: "null",
    stderr: "inherit",
  }).output();
  if (!status.success) throw new Error("deno task controlplane failed (see above)");
}

/** Applies the non-workload objects of `k8s/default` and returns the operator's kubeconfig. */
async function install(cp: ControlPlane): Promise<string> {
  const rendered = await cp.kubectlOk(["kustomize", `${repoRoot}k8s/default`]);
  const objects = parseManifests(rendered).filter((o) => INSTALLED_KINDS.includes(o.kind));
  await cp.kubectlOk(["apply", "--server-side", "-f", "-"], {
    stdin: objects.map((o) => JSON.stringify(o)).join("\n"),
  });
  say(`installed ${objects.map((o) => `${o.kind}/${o.metadata.name}`).join(", ")} (+ the CRD)`);
  // A token of the shipped ServiceAccount: the operator gets exactly the shipped RBAC's rights.
  return await cp.kubeconfigForServiceAccount(NAMESPACE, "undying-proxy");
}

/** Starts the operator with the `operator` task's permissions; its log goes to our stderr. */
async function startOperator(
  kubeconfig: string,
  args: readonly string[],
): Promise<Deno.ChildProcess> {
  const flags = await taskPermissionFlags("operator");
  const operatorArgs = [
    `--operator-namespace=${NAMESPACE}`,
    `--kubeconfig=${kubeconfig}`,
    "--replica-name=dev",
    "--listen-address=127.0.0.1",
    "--metrics-bind-address=127.0.0.1:8080",
    "--health-probe-bind-address=127.0.0.1:8081",
    "--drain-grace-period=2s",
    "--zap-devel",
    ...args,
  ];
  say(`operator: deno run ${flags.join(" ")} main.ts ${operatorArgs.join(" ")}`);
  return new Deno.Command(Deno.execPath(), {
    args: ["run", ...flags, `${repoRoot}main.ts`, ...operatorArgs],
    cwd: repoRoot,
    env: cleanEnv(),
    clearEnv: true,
    stdin: "null",
    stdout: "inherit",
    stderr: "inherit",
  }).spawn();
}

/** Applies the cluster samples and waits (bounded) until they are Ready; prints the table. */
async function applySamples(cp: ControlPlane, operatorExited: Promise<unknown>): Promise<void> {
  await cp.kubectlOk(["apply", "-n", NAMESPACE, "-k", `${repoRoot}k8s/samples`]);
  const waiting = cp.kubectl([
    "wait",
    "undyingproxies",
    "--all",
    "-n",
    NAMESPACE,
    "--for=condition=Ready",
    `--timeout=${READY_TIMEOUT}`,
  ]);
  const outcome = await Promise.race([waiting, operatorExited.then(() => undefined)]);
  if (outcome === undefined) throw new Error("the operator exited (its log is above)");
  const table = await cp.kubectlOk(["get", "undp", "-n", NAMESPACE, "-o", "wide"]);
  say(outcome.code === 0 ? "samples applied, all Ready:" : "samples applied, NOT all Ready:");
  Deno.stdout.writeSync(new TextEncoder().encode(table));
}

/** `kubectl` when it is on the PATH, else the full path of the one the control plane uses. */
function kubectlCommand(cp: ControlPlane): string {
  const onPath = (Deno.env.get("PATH") ?? "").split(":").some((dir) => {
    try {
      return Deno.statSync(`${dir}/kubectl`).isFile;
    } catch {
      return false;
    }
  });
  return onPath ? "kubectl" : cp.kubectlPath;
}

/** SIGKILL unless it has exited already; resolves once it is gone. */
async function stopNow(child: Deno.ChildProcess | undefined): Promise<void> {
  try {
    child?.kill("SIGKILL");
  } catch {
    // Already exited.
  }
  await child?.status;
}

async function main(args: readonly string[]): Promise<number> {
  const { kubeconfigOut, operatorArgs } = parseArgs(args);
  let operator: Deno.ChildProcess | undefined;
  using signals = new ShutdownSignals({
    // A second Ctrl-C: stop waiting; exiting kills the servers (and the operator) at once.
    onSecondSignal: () => {
      stopNow(operator);
      Deno.exit(130);
    },
  });
  await provisionBinaries();
  await using cp = await startControlPlane({ exitOnSignals: false });
  say(`kube-apiserver ${cp.serverUrl} with etcd, data in ${cp.dir}`);
  const operatorKubeconfig = await install(cp);
  if (signals.signal.aborted) return 0;
  await Deno.mkdir(kubeconfigOut.slice(0, kubeconfigOut.lastIndexOf("/")) || "/", {
    recursive: true,
  });
  await Deno.copyFile(cp.adminKubeconfigPath, kubeconfigOut);
  try {
    say(`kubeconfig: ${kubeconfigOut}`);
    const child = await startOperator(operatorKubeconfig, operatorArgs);
    operator = child;
    const exited = child.status;
    const stopped = new Promise((resolve) =>
      signals.signal.addEventListener("abort", resolve, { once: true })
    );
    const applied = applySamples(cp, exited).then(() => undefined, (error: unknown) => error);
    const failure = await Promise.race([applied, stopped.then(() => undefined)]);
    if (failure !== undefined) throw failure;
    if (!signals.signal.aborted) {
      const kubectl = kubectlCommand(cp);
      say(`try: ${kubectl} --kubeconfig ${kubeconfigOut} get undp -n ${NAMESPACE}`);
      say("running; Ctrl-C stops the operator, kube-apiserver and etcd");
    }
    const status = await Promise.race([exited, stopped.then(() => undefined)]);
    if (status !== undefined) throw new Error(`the operator exited with ${status.code}`);
    say(`${signals.signal.reason}: stopping`);
    // The same signal the operator may have had from the terminal already: it counts once there.
    child.kill(signals.signal.reason as Deno.Signal);
    const timer = setTimeout(() => stopNow(child), 15_000);
    await exited;
    clearTimeout(timer);
  } finally {
    await stopNow(operator);
    await Deno.remove(kubeconfigOut).catch(() => {});
  }
  return 0;
}

if (import.meta.main) {
  try {
    const code = await main(Deno.args);
    say("stopped");
    Deno.exit(code);
  } catch (error) {
    say(`failed: ${errorMessage(error)}`);
    Deno.exit(1);
  }
}
