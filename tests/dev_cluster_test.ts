/**
 * `deno task dev:cluster`, run as a user runs it (in a process group of its own, stopped by SIGINT
 * to the group as Ctrl-C does): objects Ready within minutes, then a clean stop leaving nothing.
 */
import assert from "node:assert/strict";
import type { Service } from "kubernetes-types/core/v1.d.ts";
import type { UnDyingProxy } from "../k8s/undying_proxy_types.ts";
import { controlPlaneTest } from "./_support/control_plane.ts";
import { repoRoot } from "./_support/kustomize.ts";
import { waitUntil } from "./_support/wait.ts";
import { findControlPlaneBinaries } from "./controlplane/binaries.ts";

/**
 * The forwarders listen on a loopback address of this run's own, so the samples' fixed ports
 * collide with nothing else (another run of this test, a user's dev:cluster on 127.0.0.1).
 */
const LISTEN = `127.${100 + Math.floor(Math.random() * 100)}.${
  1 + Math.floor(Math.random() * 250)
}.${1 + Math.floor(Math.random() * 250)}`;
const SAMPLES = [
  "game-server-1001",
  "game-server-27015",
  "game-server-7777",
  "git-ssh",
  "restricted-db",
  "wireguard",
];

/** Processes in process group `pgid` (pgrep from procps). */
async function processGroup(pgid: number): Promise<string[]> {
  const output = await new Deno.Command("pgrep", {
    args: ["-a", "-g", String(pgid)],
    stdout: "piped",
  }).output();
  return new TextDecoder().decode(output.stdout).split("\n").filter((line) => line.trim() !== "");
}

async function kubectlJson<T>(kubeconfig: string, args: string[]): Promise<T> {
  const lookup = findControlPlaneBinaries();
  if (!lookup.found) throw new Error(lookup.reason);
  const output = await new Deno.Command(lookup.binaries.kubectl, {
    args: [`--kubeconfig=${kubeconfig}`, ...args, "-o", "json"],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  if (!output.success) {
    throw new Error(`kubectl ${args.join(" ")}: ${decoder.decode(output.stderr)}`);
  }
  return JSON.parse(decoder.decode(output.stdout)) as T;
}

controlPlaneTest(
  "deno task dev:cluster: samples Ready through kubectl, one Ctrl-C stops everything",
  async () => {
    const dir = await Deno.makeTempDir({ prefix: "dev_cluster_test_" });
    const kubeconfig = `${dir}/kubeconfig`;
    const child = new Deno.Command("setsid", {
      args: [
        Deno.execPath(),
        "task",
        "dev:cluster",
        `--kubeconfig-out=${kubeconfig}`,
        `--listen-address=${LISTEN}`,
        "--metrics-bind-address=127.0.0.1:0",
        "--health-probe-bind-address=127.0.0.1:0",
      ],
      cwd: repoRoot,
      env: { NO_COLOR: "1", DENO_NO_UPDATE_CHECK: "1" },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    let output = "";
    const collect = async (stream: ReadableStream<Uint8Array>) => {
      for await (const chunk of stream.pipeThrough(new TextDecoderStream())) output += chunk;
    };
    const collecting = Promise.all([collect(child.stdout), collect(child.stderr)]);
    let exitCode: number | undefined;
    const exited = child.status.then(async (status) => {
      await collecting;
      exitCode = status.code;
      return status.code;
    });
    try {
      await waitUntil("dev:cluster to be running", () => {
        if (exitCode !== undefined) throw new Error(`dev:cluster exited with ${exitCode}`);
        return output.includes("[dev:cluster] running;");
      }, { timeoutMs: 300_000, intervalMs: 200 });
      assert.match(output, new RegExp(`\\[dev:cluster\\] kubeconfig: ${kubeconfig}\\n`));
      assert.match(output, /\[dev:cluster\] samples applied, all Ready:/);

      // What the user sees with the printed kubeconfig: every sample Ready, the Services' ports kept.
      const list = await kubectlJson<{ items: UnDyingProxy[] }>(kubeconfig, [
        "get",
        "undp",
        "-n",
        "undying-proxy",
      ]);
      assert.deepEqual(list.items.map((o) => o.metadata.name).sort(), SAMPLES);
      for (const object of list.items) {
        assert.equal(object.status?.ready, true, JSON.stringify(object.status));
        assert.deepEqual(object.status?.replicas?.map((r) => r.name), ["dev"]);
      }
      const tcp = await kubectlJson<Service>(kubeconfig, [
        "get",
        "service",
        "undying-proxy-tcp",
        "-n",
        "undying-proxy",
      ]);
      assert.ok(tcp.spec?.ports?.some((port) => port.name === "git-ssh" && port.port === 2222));
      // The operator really listens (git-ssh is TCP 2222).
      (await Deno.connect({ hostname: LISTEN, port: 2222 })).close();

      // Ctrl-C: SIGINT to the whole process group.
      Deno.kill(-child.pid, "SIGINT");
      await waitUntil("dev:cluster to exit after one SIGINT", () => exitCode !== undefined, {
        timeoutMs: 60_000,
      });
      assert.equal(exitCode, 0);
      assert.match(output, /\[dev:cluster\] stopped\n/);
      await waitUntil(
        "no process of the group left (operator, kube-apiserver, etcd, watchdog)",
        async () => (await processGroup(child.pid)).length === 0,
        { timeoutMs: 15_000 },
      );
      await assert.rejects(Deno.stat(kubeconfig), Deno.errors.NotFound, "kubeconfig removed");
    } catch (error) {
      throw new Error(`${error}\n--- dev:cluster output ---\n${output.slice(-6000)}`);
    } finally {
      if (exitCode === undefined) Deno.kill(-child.pid, "SIGKILL");
      await exited;
      for (const line of await processGroup(child.pid)) {
        Deno.kill(Number(line.split(" ")[0]), "SIGKILL");
      }
      await Deno.remove(dir, { recursive: true });
    }
  },
);
