import assert from "node:assert/strict";

const ROOT = new URL("../../", import.meta.url);

for (
  const [engine, entry] of [
    ["batched UDP", "udp_batched/engine_worker.ts"],
    ["splice TCP", "tcp_splice/splice_worker.ts"],
  ]
) {
  Deno.test(`the ${engine} engine thread (which holds FFI) imports only our own modules`, async () => {
    const output = await new Deno.Command(Deno.execPath(), {
      args: ["info", "--json", new URL(entry!, import.meta.url).pathname],
      cwd: ROOT.pathname,
      env: { DENO_NO_UPDATE_CHECK: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.ok(output.success, new TextDecoder().decode(output.stderr));
    const info = JSON.parse(new TextDecoder().decode(output.stdout)) as {
      modules: { specifier: string }[];
    };
    const foreign = info.modules.map((module) => module.specifier)
      .filter((specifier) => !specifier.startsWith(new URL("lib/", ROOT).href));
    assert.deepEqual(foreign, []);
    assert.ok(info.modules.length > 5, "the graph was read");
  });
}
