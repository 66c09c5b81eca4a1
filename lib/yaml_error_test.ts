import assert from "node:assert/strict";
import { loadAll, YAMLException } from "js-yaml";
import { yamlSyntaxProblem } from "./yaml_error.ts";

/** The problem of a text that must not parse, as `line:column cause`. */
function problemOf(text: string): string {
  try {
    loadAll(text);
  } catch (error) {
    assert.ok(error instanceof YAMLException, String(error));
    const { line, column, cause } = yamlSyntaxProblem(text, error);
    return `${line}:${column} ${cause}`;
  }
  return assert.fail(`parsed: ${text}`);
}

Deno.test("yamlSyntaxProblem() reports an unclosed bracket or quote where it was opened", () => {
  const cases: [string, RegExp][] = [
    ["a: 1\nspec:\n  tcp: {listenPort: 1\nb: 2\n", /^3:8 this "\{" is never closed: add "\}"/],
    ["spec:\n  tcp: {listenPort: 1\n", /^2:8 this "\{"/],
    ["a: [1, 2\nb: 3\n", /^1:4 this "\[" is never closed: add "\]"/],
    ["a: [1, {b: [2]}, [3\nc: 4\n", /^1:18 this "\["/],
    ['a: "abc\nb: 3\n', /^1:4 the string quoted with " here is never closed/],
    ["a: 'it''s\nb: 3\n", /^1:4 the string quoted with ' here/],
    ['a: "x \\" y\nb: 3\n', /^1:4 the string quoted with "/],
    // Brackets in plain text and comments open nothing: the real problem is reported.
    ["a: x{y # {\nb: [1]\n\tc: 2\n", /^3:1 a tab in the indentation/],
  ];
  for (const [text, expected] of cases) assert.match(problemOf(text), expected, text);
});

Deno.test("yamlSyntaxProblem() words the parser's other reasons plainly", () => {
  const cases: [string, RegExp][] = [
    ["a:\n\tb: 1\n", /^2:1 a tab in the indentation: YAML indents with spaces only$/],
    ["a:\n  b: 1\n c: 2\n", /^3:2 this key does not line up with the keys above it/],
    ["a: b: c\n", /^1:5 .*or an unquoted value contains ": "/],
    ["a: 1\na: 2\n", /^2:1 this key appears twice in the same mapping$/],
    ["a: 1\nb\nc: 2\n", /^3:2 a line inside a mapping without "key: value"/],
    ["a: *x\n", /^1:5 the alias "\*x" has no anchor "&x" before it$/],
    ['a: "\\q"\n', /^1:6 an unknown "\\" escape/],
  ];
  for (const [text, expected] of cases) assert.match(problemOf(text), expected, text);
});
