/**
 * The files a release ships besides the code: the Apache-2.0 license (as the Go operator it replaces)
 * and a changelog whose newest version is the one in deno.json.
 */
import assert from "node:assert/strict";
import { projectVersion, repoRoot } from "./_support/kustomize.ts";

Deno.test("LICENSE holds the full Apache License 2.0 text", async () => {
  const text = await Deno.readTextFile(`${repoRoot}LICENSE`);
  assert.match(text, /^\s*Apache License\s+Version 2\.0, January 2004/);
  assert.match(text, /TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION/);
  // Every one of the nine sections, in order, then the end of the terms.
  let from = 0;
  for (let section = 1; section <= 9; section++) {
    const at = text.indexOf(`\n   ${section}. `, from);
    assert.ok(at > from, `section ${section} of the license is missing or out of order`);
    from = at;
  }
  assert.ok(text.indexOf("END OF TERMS AND CONDITIONS", from) > from);
});

Deno.test("CHANGELOG.md starts with the version in deno.json", async () => {
  const text = await Deno.readTextFile(`${repoRoot}CHANGELOG.md`);
  const versions = [...text.matchAll(/^## \[?(\d+\.\d+\.\d+)\]?/gm)].map((match) => match[1]);
  assert.ok(versions.length > 0, "CHANGELOG.md has no version heading (## x.y.z)");
  assert.equal(versions[0], await projectVersion());
  assert.equal(versions.at(-1), "0.1.0", "the first release is 0.1.0");
});
