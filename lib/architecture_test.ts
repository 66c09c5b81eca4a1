/**
 * The direction of the architecture, checked on the real import graph (`deno info --json`, type-only
 * imports included): the data plane (`lib/forward/`) knows nothing of Kubernetes, the client
 * (`lib/kube/`) nothing of the operator, the FFI foundation (`lib/ffi/`) nothing but the shared
 * helpers, the shared helpers (`lib/util/`) nothing of ours, and no
 * module of `lib/` imports itself through a cycle.
 * @module
 */
import assert from "node:assert/strict";

/** Imports by module, paths relative to the repository root (e.g. `lib/spec.ts`). */
type ImportGraph = ReadonlyMap<string, readonly string[]>;

/** A folder of `lib/` and what its modules (and what they import from `lib/`) must not reach. */
interface DirectionRule {
  readonly folder: string;
  readonly mayNotReach: (path: string) => boolean;
}

const RULES: readonly DirectionRule[] = [
  {
    folder: "lib/forward/",
    mayNotReach: (path) => path.startsWith("lib/kube/") || path.startsWith("lib/operator/"),
  },
  { folder: "lib/kube/", mayNotReach: (path) => path.startsWith("lib/operator/") },
  {
    // The FFI foundation (libc bindings, layouts, FFI workers) serves every native engine.
    folder: "lib/ffi/",
    mayNotReach: (path) =>
      path.startsWith("lib/") && !path.startsWith("lib/ffi/") && !path.startsWith("lib/util/"),
  },
  {
    folder: "lib/util/",
    mayNotReach: (path) => path.startsWith("lib/") && !path.startsWith("lib/util/"),
  },
];

const ROOT = new URL("../", import.meta.url);

/** The import graph of every module under `lib/` and of everything they import. */
async function libImportGraph(): Promise<ImportGraph> {
  const files: string[] = [];
  const walk = async (dir: URL): Promise<void> => {
    for await (const entry of Deno.readDir(dir)) {
      if (entry.isDirectory) await walk(new URL(`${entry.name}/`, dir));
      else if (entry.name.endsWith(".ts")) files.push(new URL(entry.name, dir).href);
    }
  };
  await walk(new URL("lib/", ROOT));
  const entry = await Deno.makeTempFile({ suffix: ".ts" });
  try {
    await Deno.writeTextFile(
      entry,
      files.map((href) => `import ${JSON.stringify(href)};\n`).join(""),
    );
    const output = await new Deno.Command(Deno.execPath(), {
      args: ["info", "--json", entry],
      cwd: new URL(".", ROOT).pathname,
      env: { DENO_NO_UPDATE_CHECK: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.ok(output.success, new TextDecoder().decode(output.stderr));
    return graphFromDenoInfo(JSON.parse(new TextDecoder().decode(output.stdout)));
  } finally {
    await Deno.remove(entry);
  }
}

interface DenoInfoDependency {
  readonly code?: { readonly specifier?: string };
  readonly type?: { readonly specifier?: string };
}

/** Our modules and their imports of our modules (code and type-only) from `deno info --json`. */
function graphFromDenoInfo(
  info: { modules: { specifier: string; dependencies?: DenoInfoDependency[] }[] },
): ImportGraph {
  const ours = (specifier: string | undefined) =>
    specifier?.startsWith(ROOT.href) ? specifier.slice(ROOT.href.length) : undefined;
  const graph = new Map<string, string[]>();
  for (const module of info.modules) {
    const path = ours(module.specifier);
    if (path === undefined) continue;
    const imports = new Set<string>();
    for (const dependency of module.dependencies ?? []) {
      for (const target of [dependency.code?.specifier, dependency.type?.specifier]) {
        const targetPath = ours(target);
        if (targetPath !== undefined) imports.add(targetPath);
      }
    }
    graph.set(path, [...imports].sort());
  }
  return graph;
}

/**
 * Every broken rule as `importer -> imported` chains: what a module of a rule's folder reaches
 * through imports made by `lib/` modules (a test helper under `tests/` is not followed).
 */
function directionViolations(graph: ImportGraph, rules: readonly DirectionRule[]): string[] {
  const violations: string[] = [];
  for (const rule of rules) {
    for (const start of graph.keys()) {
      if (!start.startsWith(rule.folder)) continue;
      const via = new Map<string, string>([[start, ""]]);
      const queue = [start];
      while (queue.length > 0) {
        const module = queue.shift() as string;
        if (!module.startsWith("lib/")) continue;
        for (const target of graph.get(module) ?? []) {
          if (via.has(target)) continue;
          via.set(target, module);
          if (rule.mayNotReach(target)) {
            const chain = [target];
            for (let at = module; at !== ""; at = via.get(at) ?? "") chain.unshift(at);
            violations.push(chain.join(" -> "));
          } else queue.push(target);
        }
      }
    }
  }
  return [...new Set(violations)];
}

/** Every import cycle among `lib/` modules, each as the list of its modules (Tarjan's SCCs). */
function importCycles(graph: ImportGraph): string[][] {
  const inLib = (path: string) => path.startsWith("lib/");
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const cycles: string[][] = [];
  const visit = (module: string): void => {
    index.set(module, index.size);
    low.set(module, index.get(module) as number);
    stack.push(module);
    onStack.add(module);
    for (const target of (graph.get(module) ?? []).filter(inLib)) {
      if (!index.has(target)) {
        visit(target);
        low.set(module, Math.min(low.get(module) as number, low.get(target) as number));
      } else if (onStack.has(target)) {
        low.set(module, Math.min(low.get(module) as number, index.get(target) as number));
      }
    }
    if (low.get(module) !== index.get(module)) return;
    const component: string[] = [];
    let member: string;
    do {
      member = stack.pop() as string;
      onStack.delete(member);
      component.push(member);
    } while (member !== module);
    if (component.length > 1 || (graph.get(module) ?? []).includes(module)) {
      cycles.push(component.sort());
    }
  };
  for (const module of graph.keys()) if (inLib(module) && !index.has(module)) visit(module);
  return cycles;
}

Deno.test("architecture: forward knows no Kubernetes, kube no operator, util nothing of ours", async () => {
  const graph = await libImportGraph();
  assert.ok(graph.has("lib/forward/supervisor.ts") && graph.has("lib/operator/operator.ts"));
  assert.deepEqual(directionViolations(graph, RULES), []);
});

Deno.test("architecture: no import cycles in lib/ (type-only imports included)", async () => {
  assert.deepEqual(importCycles(await libImportGraph()), []);
});

Deno.test("architecture checks catch a wrong-way import, also an indirect one, and a cycle", () => {
  const graph: ImportGraph = new Map([
    ["lib/forward/a.ts", ["lib/spec.ts", "tests/_support/x.ts"]],
    ["lib/spec.ts", ["lib/kube/client.ts"]],
    ["tests/_support/x.ts", ["lib/operator/operator.ts"]],
    ["lib/kube/client.ts", ["lib/util/delay.ts"]],
    ["lib/util/delay.ts", ["lib/kube/client.ts"]],
    ["lib/operator/operator.ts", ["lib/operator/operator.ts"]],
  ]);
  assert.deepEqual(directionViolations(graph, RULES), [
    "lib/forward/a.ts -> lib/spec.ts -> lib/kube/client.ts",
    "lib/util/delay.ts -> lib/kube/client.ts",
  ]);
  assert.deepEqual(importCycles(graph), [
    ["lib/kube/client.ts", "lib/util/delay.ts"],
    ["lib/operator/operator.ts"],
  ]);
});

Deno.test("architecture: only FFI worker entry modules open a library (the main thread opens none)", async () => {
  const opening: string[] = [];
  const walk = async (dir: URL, path: string): Promise<void> => {
    for await (const entry of Deno.readDir(dir)) {
      if (entry.isDirectory) await walk(new URL(`${entry.name}/`, dir), `${path}${entry.name}/`);
      else if (entry.name.endsWith(".ts") && !entry.name.endsWith("_test.ts")) {
        const text = await Deno.readTextFile(new URL(entry.name, dir));
        if (/Deno\.dlopen\(|openLibc\(/.test(text)) opening.push(`${path}${entry.name}`);
      }
    }
  };
  await walk(new URL("lib/", ROOT), "lib/");
  assert.ok(!/Deno\.dlopen\(|openLibc\(/.test(await Deno.readTextFile(new URL("main.ts", ROOT))));
  // lib/ffi/libc.ts defines openLibc(); each worker entry module is started with scoped permissions.
  assert.deepEqual(opening.sort(), [
    "lib/ffi/libc.ts",
    "lib/ffi/system_worker.ts",
    "lib/forward/tcp_splice/splice_worker.ts",
    "lib/forward/udp_batched/engine_worker.ts",
  ]);
});
