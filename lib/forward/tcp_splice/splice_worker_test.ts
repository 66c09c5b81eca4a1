import assert from "node:assert/strict";

Deno.test("the splice TCP engine thread (which holds FFI) imports only our own modules", async () => {
  const root = new URL("../../../", import.meta.url);
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", new URL("splice_worker.ts", import.meta.url).pathname],
    cwd: root.pathname,
    env: { DENO_NO_UPDATE_CHECK: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.ok(output.success, new TextDecoder().decode(output.stderr));
  const info = JSON.parse(new TextDecoder().decode(output.stdout)) as {
    modules: { specifier: string }[];
  };
  const foreign = info.modules.map((module) => module.specifier)
    .filter((specifier) => !specifier.startsWith(new URL("lib/", root).href));
  assert.deepEqual(foreign, []);
  assert.ok(info.modules.length > 5, "the graph was read");
});
