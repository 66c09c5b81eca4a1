/**
 * Fault suite, point 4 of issue 12: a hot reload never applies a truncated file, and a lost watch
 * is noticed, counted and set up again.
 */
import assert from "node:assert/strict";
import { patternBytes, readExactly, startTcpEcho, writeAll } from "../_support/net_tcp.ts";
import { waitUntil } from "../_support/wait.ts";
import { freePort, startProgram } from "../_support/program.ts";
import { tcpDocument, tempConfigFile, watchingFile, withTempDir } from "./_config.ts";

const TWO = `${tcpDocument("a", 8001, 1)}---\n${tcpDocument("b", 8002, 1)}`;
const names = (specs: readonly { name: string }[] | undefined) => specs?.map((s) => s.name);

Deno.test("an emptied file, or one that drops every object, is a rejected reload", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/proxies.yaml`;
    await Deno.writeTextFile(path, TWO);
    await watchingFile(path, {}, async ({ applied, loads }) => {
      await Deno.writeTextFile(path, ""); // `: > proxies.yaml`
      await waitUntil("the truncation to be judged", () => loads.length === 2);
      await Deno.writeTextFile(path, "# nothing left\n---\n");
      await waitUntil("the comment-only file to be judged", () => loads.length === 3);
      assert.deepEqual(loads, ["success", "failure", "failure"]);
      assert.equal(applied.length, 1, "nothing but the initial set was applied");
      // A change that keeps one object is a normal reload.
      await Deno.writeTextFile(path, tcpDocument("b", 8002, 1));
      await waitUntil("the partial removal", () => applied.length === 2);
      assert.deepEqual(names(applied[1]), ["default/b"]);
    });
  });
});

Deno.test("--config-allow-empty applies a reload that removes every object", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/proxies.yaml`;
    await Deno.writeTextFile(path, TWO);
    await watchingFile(path, { allowEmpty: true }, async ({ applied }) => {
      await Deno.writeTextFile(path, "");
      await waitUntil("the empty set", () => applied.length === 2);
      assert.deepEqual(applied[1], []);
    });
  });
});

Deno.test("a re-created directory is logged as a lost watch, counted, and watched again", async () => {
  await withTempDir(async (parent) => {
    const dir = `${parent}/config`;
    const path = `${dir}/proxies.yaml`;
    await Deno.mkdir(dir);
    await Deno.writeTextFile(path, TWO);
    await watchingFile(path, {}, async ({ applied, watchLost }) => {
      // An edit first: once it is applied, the watch is surely in place.
      await Deno.writeTextFile(path, tcpDocument("b", 8002, 1));
      await waitUntil("the first edit", () => applied.length === 2);
      await Deno.remove(dir, { recursive: true });
      await Deno.mkdir(dir);
      await Deno.writeTextFile(path, tcpDocument("a", 8001, 1));
      await waitUntil("the file in the new directory", () => applied.length === 3);
      assert.deepEqual(names(applied[2]), ["default/a"]);
      await waitUntil("the lost watch to be counted", () => watchLost() >= 1);
      // The new watch delivers edits again.
      await Deno.writeTextFile(path, TWO);
      await waitUntil("an edit after the new watch", () => applied.length === 4);
      assert.deepEqual(names(applied[3]), ["default/a", "default/b"]);
    });
  });
});

Deno.test("rewriting the same content with a pause never cuts a connection of the unchanged forwarder", async () => {
  await using echo = startTcpEcho();
  const port = freePort();
  const text = tcpDocument("live", port, echo.port);
  await using config = await tempConfigFile([text]);
  await using program = await startProgram([
    "--config",
    config.path,
    "--drain-grace-period=100ms",
  ]);
  await program.waitForLog("listening", (line) => line["forwarder"] === "default/live");
  using conn = await Deno.connect({ hostname: "127.0.0.1", port });
  await writeAll(conn, patternBytes(1000));
  assert.deepEqual(await readExactly(conn, 1000), patternBytes(1000));
  // As a writer that truncates first and writes later: `: > file`, a pause, the same content.
  await Deno.writeTextFile(config.path, "");
  await program.waitForLog(
    "the truncation to be rejected",
    (line) => /holds no UnDyingProxy object now/.test(line.message),
  );
  await new Promise((resolve) => setTimeout(resolve, 500));
  await Deno.writeTextFile(config.path, text);
  await new Promise((resolve) => setTimeout(resolve, 500));
  await writeAll(conn, patternBytes(1000, 2));
  assert.deepEqual(await readExactly(conn, 1000), patternBytes(1000, 2));
  assert.ok(!program.logs().some((line) => /Stopped listening/.test(line.message)));
});
