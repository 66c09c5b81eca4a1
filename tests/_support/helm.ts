/**
 * Real `helm` for the chart tests (`tests/tools/helm/`: `HELM_BIN` or the cache `deno task helm`
 * fills), and tests that need it: ignored with a loud reason when it is missing, failed instead
 * when `CI=true`, like the control-plane tests.
 * @module
 */
import { type ControlPlane, integrationTest } from "./control_plane.ts";
import { repoRoot } from "./kustomize.ts";
import { findHelm } from "../tools/helm/binary.ts";

/** The chart's directory. */
export const chartDir: string = `${repoRoot}charts/undying-proxy`;

/** Exit code and output of one helm run. */
export interface HelmResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** How to render or install the chart. */
export interface ChartOptions {
  /** @default "undying-proxy" */
  readonly release?: string;
  /** @default "undying-proxy" */
  readonly namespace?: string;
  /** Values (each top-level key passed with `--set-json`). */
  readonly values?: Record<string, unknown>;
}

/** A real helm binary. */
export interface Helm {
  readonly path: string;
  /** Runs `helm args` (with `KUBECONFIG` when given) and returns code and output. */
  run(args: readonly string[], kubeconfig?: string): Promise<HelmResult>;
  /** Like `run`, but returns stdout and throws with stderr on a non-zero exit. */
  runOk(args: readonly string[], kubeconfig?: string): Promise<string>;
  /** `helm template` of the chart (CRDs left out unless `includeCrds`). */
  template(options?: ChartOptions & { readonly includeCrds?: boolean }): Promise<string>;
  /** Arguments naming release, chart, namespace and values for `template`/`install`. */
  chartArgs(options?: ChartOptions): string[];
}

function helmAt(path: string): Helm {
  const run = async (args: readonly string[], kubeconfig?: string): Promise<HelmResult> => {
    const home = await Deno.makeTempDir({ prefix: "undying-proxy-helm-" });
    try {
      const output = await new Deno.Command(path, {
        args: [...args],
        clearEnv: true,
        env: {
          PATH: Deno.env.get("PATH") ?? "",
          // Repositories, caches (also kubectl's discovery cache in ~/.kube) and plugins of the
          // user are kept out of the tests, and the tests' out of the working tree.
          HOME: home,
          HELM_CACHE_HOME: `${home}/cache`,
          HELM_CONFIG_HOME: `${home}/config`,
          HELM_DATA_HOME: `${home}/data`,
          ...(kubeconfig ? { KUBECONFIG: kubeconfig } : {}),
        },
        stdout: "piped",
        stderr: "piped",
      }).output();
      const decoder = new TextDecoder();
      return {
        code: output.code,
        stdout: decoder.decode(output.stdout),
        stderr: decoder.decode(output.stderr),
      };
    } finally {
      await Deno.remove(home, { recursive: true });
    }
  };
  const runOk = async (args: readonly string[], kubeconfig?: string) => {
    const result = await run(args, kubeconfig);
    if (result.code !== 0) {
      throw new Error(`helm ${args.join(" ")} exited with ${result.code}: ${result.stderr}`);
    }
    return result.stdout;
  };
  const chartArgs = (options: ChartOptions = {}) => {
    const args = [
      options.release ?? "undying-proxy",
      chartDir,
      "--namespace",
      options.namespace ?? "undying-proxy",
    ];
    for (const [key, value] of Object.entries(options.values ?? {})) {
      args.push("--set-json", `${key}=${JSON.stringify(value)}`);
    }
    return args;
  };
  return {
    path,
    run,
    runOk,
    chartArgs,
    async template(options = {}) {
      const args = ["template", ...chartArgs(options)];
      return await runOk(options.includeCrds ? [...args, "--include-crds"] : args);
    },
  };
}

let warnedMissing = false;

function register(name: string, define: (helm: Helm) => void): void {
  const lookup = findHelm();
  if (lookup.found) {
    define(helmAt(lookup.path));
    return;
  }
  if (Deno.env.get("CI") === "true" || lookup.misconfigured) {
    Deno.test(name, () => {
      throw new Error(`Chart test cannot run: no helm: ${lookup.reason}`);
    });
    return;
  }
  if (!warnedMissing) {
    warnedMissing = true;
    Deno.stderr.writeSync(
      new TextEncoder().encode(
        `\n!!! SKIPPING chart tests: ${lookup.reason}\n!!! (with CI=true they fail)\n\n`,
      ),
    );
  }
  Deno.test({ name: `${name} (SKIPPED: no helm)`, ignore: true, fn: () => {} });
}

/** A test that needs helm only. */
export function helmTest(name: string, fn: (helm: Helm) => Promise<void>): void {
  register(name, (helm) => Deno.test(name, () => fn(helm)));
}

/** A test that needs helm and the shared control plane (see `integrationTest`). */
export function helmIntegrationTest(
  name: string,
  fn: (helm: Helm, cp: ControlPlane) => Promise<void>,
): void {
  register(name, (helm) => integrationTest(name, (cp) => fn(helm, cp)));
}
