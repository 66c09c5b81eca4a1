/**
 * Fault suite, point 4 of issue 12: a hot reload never applies a truncated file, and a lost watch
 * is noticed, counted and set up again.
 */
import assert from "node:assert/strict";
import { waitFor } from "../_support/net_wait.ts";
import { tcpDocument, watchingFile, withTempDir } from "./_config.ts";

const TWO = `${tcpDocument("a", 8001, 1)}---\n${tcpDocument("b", 8002, 1)}`;
const names = (specs: readonly { name: string }[] | undefined) => specs?.map((s) => s.name);

Deno.test("an emptied file, or one that drops every object, is a rejected reload", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/proxies.yaml`;
    await Deno.writeTextFile(path, TWO);
    await watchingFile(path, {}, async ({ applied, loads }) => {
      await Deno.writeTextFile(path, ""); // `: > proxies.yaml`
      await waitFor(() => loads.length === 2, { message: "the truncation to be judged" });
      await Deno.writeTextFile(path, "# nothing left\n---\n");
      await waitFor(() => loads.length === 3, { message: "the comment-only file to be judged" });
      assert.deepEqual(loads, ["success", "failure", "failure"]);
      assert.equal(applied.length, 1, "nothing but the initial set was applied");
      // A change that keeps one object is a normal reload.
      await Deno.writeTextFile(path, tcpDocument("b", 8002, 1));
      await waitFor(() => applied.length === 2, { message: "the partial removal" });
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
      await waitFor(() => applied.length === 2, { message: "the empty set" });
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
      await Deno.remove(dir, { recursive: true });
      await Deno.mkdir(dir);
      await Deno.writeTextFile(path, tcpDocument("a", 8001, 1));
      await waitFor(() => applied.length === 2, { message: "the file in the new directory" });
      assert.deepEqual(names(applied[1]), ["default/a"]);
      await waitFor(() => watchLost() >= 1, { message: "the lost watch to be counted" });
      // The new watch delivers edits again.
      await Deno.writeTextFile(path, TWO);
      await waitFor(() => applied.length === 3, { message: "an edit after the new watch" });
      assert.deepEqual(names(applied[2]), ["default/a", "default/b"]);
    });
  });
});
