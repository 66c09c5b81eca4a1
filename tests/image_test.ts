/**
 * Static checks of the Dockerfile (no container engine here): a pinned official Deno image runs the
 * `compile` task on every file the program needs; the runtime stage is distroless, non-root,
 * without a shell.
 */
import assert from "node:assert/strict";
import { repoRoot } from "./_support/kustomize.ts";
import { compileTaskSteps } from "./_support/program.ts";

interface Stage {
  readonly image: string;
  readonly instructions: readonly { readonly keyword: string; readonly value: string }[];
}

/** The Dockerfile's stages, comments dropped and continuation lines joined. */
async function dockerfileStages(): Promise<Stage[]> {
  const text = await Deno.readTextFile(`${repoRoot}Dockerfile`);
  const lines = text.replace(/\\\n/g, " ").split("\n").map((line) => line.trim());
  const stages: { image: string; instructions: { keyword: string; value: string }[] }[] = [];
  for (const line of lines) {
    if (line === "" || line.startsWith("#")) continue;
    const [, keyword = "", value = ""] = /^(\S+)\s+(.*)$/.exec(line) ?? [];
    if (keyword.toUpperCase() === "FROM") {
      stages.push({ image: value.split(/\s+/)[0] ?? "", instructions: [] });
    } else {
      stages.at(-1)?.instructions.push({ keyword: keyword.toUpperCase(), value });
    }
  }
  return stages;
}

const of = (stage: Stage | undefined, keyword: string) =>
  stage?.instructions.filter((instruction) => instruction.keyword === keyword)
    .map((instruction) => instruction.value) ?? [];

Deno.test("the image builds with the compile task on the official Deno image CI uses", async () => {
  const [build, ...rest] = await dockerfileStages();
  const ciVersion = /^DENO_VERSION=(\S+)$/m.exec(await Deno.readTextFile(`${repoRoot}.ci/run`))
    ?.[1];
  assert.equal(build?.image, `denoland/deno:${ciVersion}`, "pinned to the Deno version of CI");
  assert.equal(rest.length, 1, "one runtime stage");
  const runs = of(build, "RUN");
  assert.ok(runs.some((run) => /^deno task compile\b/.test(run)), "runs the compile task");
  assert.ok(!runs.some((run) => /--allow-|\bdeno compile\b/.test(run)), "no flags of its own");
});

Deno.test("the image copies every file the compile task bundles", async () => {
  const [build] = await dockerfileStages();
  const copied = of(build, "COPY").flatMap((value) => {
    const parts = value.split(/\s+/).filter((part) => !part.startsWith("--"));
    return parts.slice(0, -1).map((source) => source.replace(/^\.\//, "").replace(/\/$/, ""));
  });
  const isCopied = (path: string) =>
    copied.some((source) => path === source || path.startsWith(`${source}/`));
  const { bundles } = await compileTaskSteps();
  const needed = new Set(["deno.json", "deno.lock"]);
  for (const { entry } of bundles) {
    const info = await new Deno.Command(Deno.execPath(), {
      args: ["info", "--json", entry],
      cwd: repoRoot,
      env: { DENO_NO_UPDATE_CHECK: "1", NO_COLOR: "1" },
      stdout: "piped",
    }).output();
    assert.ok(info.success, `deno info ${entry}`);
    const graph = JSON.parse(new TextDecoder().decode(info.stdout)) as {
      modules: { specifier: string }[];
    };
    const root = new URL(`file://${repoRoot}`).href;
    for (const { specifier } of graph.modules) {
      if (specifier.startsWith(root)) needed.add(specifier.slice(root.length));
    }
  }
  assert.ok(needed.has("main.ts") && needed.size > 10, `module graph read: ${[...needed]}`);
  const missing = [...needed].filter((path) => !isCopied(path));
  assert.deepEqual(missing, [], "files the build needs but the Dockerfile does not copy");
});

Deno.test("the runtime image is distroless, non-root and has no shell", async () => {
  const [build, runtime] = await dockerfileStages();
  assert.match(runtime?.image ?? "", /^gcr\.io\/distroless\/[\w.-]+:nonroot$/);
  assert.deepEqual(of(runtime, "RUN"), [], "no RUN: there is no shell to run it");
  const [user] = of(runtime, "USER");
  assert.match(user ?? "", /^[1-9]\d*(:[1-9]\d*)?$/, "a numeric non-root user");
  const [entrypoint] = of(runtime, "ENTRYPOINT");
  const command = JSON.parse(entrypoint ?? "null") as string[];
  assert.ok(Array.isArray(command), "exec form: no shell in between");
  const { binary } = await compileTaskSteps();
  assert.ok(
    of(runtime, "COPY").some((copy) => copy.includes(`/${binary} ${command[0]}`)),
    `copies the compiled ${binary} to ${command[0]}`,
  );
  assert.ok(of(build, "RUN").some((run) => run.includes(`./${binary} --version`)));
});
