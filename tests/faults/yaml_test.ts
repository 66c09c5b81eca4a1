/**
 * Fault suite, point 3 of issue 12: an alias bomb or an oversized file is refused, quickly and with a
 * message that says why.
 */
import assert from "node:assert/strict";
import { parseConfigOffThread } from "../../lib/config_parse.ts";
import { ConfigError, FileSource, MAX_YAML_ALIASES, parseConfig } from "../../lib/file_source.ts";
import { configError, proxyDocument, tcpDocument, withTempDir } from "./_config.ts";

/** "Billion laughs": 9 levels of 9 aliases, under 2 KB, 9^9 strings once expanded. */
function aliasBomb(): string {
  const levels = "abcdefghi";
  const lines = ['lol0: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]'];
  for (let i = 1; i < levels.length; i++) {
    const previous = `*${levels[i - 1]}`;
    lines.push(`lol${i}: &${levels[i]} [${Array(9).fill(previous).join(",")}]`);
  }
  return `${tcpDocument("bomb", 8000, 80)}${lines.join("\n")}\n`;
}

Deno.test("a YAML alias bomb is refused before it expands, naming the alias limit", () => {
  const text = aliasBomb();
  assert.ok(text.length < 2048, `${text.length} bytes`);
  const started = performance.now();
  const error = configError(text);
  const elapsedMs = performance.now() - started;
  assert.equal(error.problems[0]?.field, "YAML aliases");
  assert.match(error.message, new RegExp(`more than ${MAX_YAML_ALIASES} aliases`));
  // Not a timing assertion on speed: an expansion would take seconds and gigabytes.
  assert.ok(elapsedMs < 2000, `took ${elapsedMs} ms`);
});

Deno.test("a few aliases, as people share settings, still work", () => {
  const text = proxyDocument(
    "both",
    "tcp: &same { listenPort: 7000, targetPort: 7001, targetHost: h }, udp: *same",
  );
  const [spec] = parseConfig("c.yaml", text);
  assert.equal(spec?.udp?.listenPort, 7000);
  assert.equal(spec?.tcp?.listenPort, 7000);
});

Deno.test("a config file over --config-max-bytes is refused unread, at start and on reload", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/proxies.yaml`;
    await Deno.writeTextFile(path, `${tcpDocument("a", 8000, 80)}# ${"x".repeat(2000)}\n`);
    const refused = await FileSource.open(path, { maxBytes: 1024 }).then(
      () => assert.fail("accepted"),
      (error: unknown) => error,
    );
    assert.ok(refused instanceof ConfigError);
    assert.match(
      refused.message,
      /is \d+ bytes, more than --config-max-bytes=1024; refused unread/,
    );
    await Deno.writeTextFile(path, tcpDocument("a", 8000, 80));
    const source = await FileSource.open(path, { maxBytes: 1024 });
    assert.equal(source.description, `file ${path}`);
  });
});

/** A valid file of `count` documents (about 190 bytes each). */
function manyDocuments(count: number): string {
  return Array.from(
    { length: count },
    (_, i) => tcpDocument(`p${i}`, 1 + (i % 60000), 80),
  ).join("---\n");
}

Deno.test("parseConfigOffThread() gives parseConfig()'s specs and errors", async () => {
  const text = manyDocuments(50);
  assert.deepEqual(await parseConfigOffThread("c.yaml", text), parseConfig("c.yaml", text));
  const bad = `${text}---\n${tcpDocument("p1", 0, 80)}`;
  const expected = configError(bad);
  const error = await parseConfigOffThread("c.yaml", bad).then(
    () => assert.fail("accepted"),
    (error: unknown) => error,
  );
  assert.ok(error instanceof ConfigError);
  assert.deepEqual(error.problems, expected.problems);
  assert.equal(error.message, expected.message);
});

Deno.test("parsing a large file off the main thread lets its timers (forwarding) run meanwhile", async () => {
  const text = manyDocuments(15_000); // ~3 MB, some hundred milliseconds of parsing
  let ticks = 0;
  const ticker = setInterval(() => ticks++, 5);
  try {
    const specs = await parseConfigOffThread("c.yaml", text);
    assert.equal(specs.length, 15_000);
  } finally {
    clearInterval(ticker);
  }
  // A parse on this thread would let no timer run until it returned.
  assert.ok(ticks > 0, `${ticks} ticks`);
});
