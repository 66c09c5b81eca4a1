/**
 * The README's Quick start and the docs as a new user follows them: every `deno task` they name
 * exists, and the Deno version they tell users to install is the one CI and the image use.
 */
import assert from "node:assert/strict";
import { repoRoot } from "./_support/kustomize.ts";

async function documents(): Promise<Map<string, string>> {
  const texts = new Map([["README.md", await Deno.readTextFile(`${repoRoot}README.md`)]]);
  for await (const entry of Deno.readDir(`${repoRoot}docs`)) {
    if (entry.name.endsWith(".md")) {
      texts.set(`docs/${entry.name}`, await Deno.readTextFile(`${repoRoot}docs/${entry.name}`));
    }
  }
  return texts;
}

Deno.test("every `deno task` the README and docs name is a task of deno.json", async () => {
  const { tasks } = JSON.parse(await Deno.readTextFile(`${repoRoot}deno.json`)) as {
    tasks: Record<string, string>;
  };
  const named = new Set<string>();
  for (const [file, text] of await documents()) {
    for (const [, task = ""] of text.matchAll(/deno task ([a-z][\w:-]*)/g)) {
      named.add(task);
      assert.ok(task in tasks, `${file} names "deno task ${task}", which deno.json lacks`);
    }
  }
  for (const task of ["start", "dev:cluster", "operator", "controlplane", "ok", "compile"]) {
    assert.ok(named.has(task), `deno task ${task} is documented`);
  }
});

Deno.test("the Quick start's prerequisites: the Deno version CI installs and the image builds with", async () => {
  const readme = await Deno.readTextFile(`${repoRoot}README.md`);
  const quickStart = /<!-- section:quick-start -->([\s\S]*?)<!-- \/section:quick-start -->/
    .exec(readme)?.[1] ?? "";
  const prerequisites = /### Prerequisites\n([\s\S]*?)\n### /.exec(quickStart)?.[1] ?? "";
  const ci = /^DENO_VERSION=(\S+)$/m.exec(await Deno.readTextFile(`${repoRoot}.ci/run`))?.[1];
  const image = /^FROM denoland\/deno:(\S+)/m.exec(
    await Deno.readTextFile(`${repoRoot}Dockerfile`),
  )?.[1];
  assert.ok(ci !== undefined && ci === image, `.ci/run installs ${ci}, the image uses ${image}`);
  assert.ok(prerequisites.includes(`npm i -g deno@${ci}`), "how to install that Deno");
  const goMod = await Deno.readTextFile(`${repoRoot}tests/controlplane/go.mod`);
  const go = /^go (\d+\.\d+)/m.exec(goMod)?.[1];
  for (const need of ["Node.js", "socat", `Go ${go}`, "openssl", "deno task controlplane"]) {
    assert.ok(prerequisites.includes(need), `the prerequisites name ${need}`);
  }
  // The two set-up commands: the program on the sample file, and everything the tests need.
  assert.match(quickStart, /^deno task start +#/m);
  assert.match(quickStart, /^\.ci\/run +#/m);
});
