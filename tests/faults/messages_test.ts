/**
 * Fault suite, point 7 of issue 12: config errors say what the user wrote and stay short.
 */
import assert from "node:assert/strict";
import { configError, proxyDocument } from "./_config.ts";

Deno.test("a .inf port is shown as .inf, not null", () => {
  const error = configError(
    proxyDocument("a", "tcp: { listenPort: .inf, targetPort: -.inf, targetHost: h }"),
  );
  assert.match(error.message, /spec\.tcp\.listenPort = \.inf: must be an integer/);
  assert.match(error.message, /spec\.tcp\.targetPort = -\.inf: must be an integer/);
  assert.doesNotMatch(error.message, /null/);
});

Deno.test("a URL or host:port as targetHost is named as such, not as a bad IPv6 address", () => {
  for (
    const [host, why] of [
      ["http://127.0.0.1/", /not a URL/],
      ["127.0.0.1:80", /without a port/],
      ["db.example:5432", /without a port/],
      ["fe80::zz", /not a valid IPv6 address/],
    ] as const
  ) {
    const error = configError(
      proxyDocument("a", `tcp: { listenPort: 1, targetPort: 2, targetHost: "${host}" }`),
    );
    assert.match(error.message, why, host);
    if (!host.startsWith("fe80")) assert.doesNotMatch(error.message, /IPv6/, host);
  }
});

Deno.test("a huge invalid file is summarized after the first problems", () => {
  const documents = Array.from(
    { length: 10_000 },
    (_, i) => proxyDocument(`p${i}`, "tcp: { listenPort: 0, targetPort: 0, targetHost: h }"),
  );
  const error = configError(documents.join("---\n"));
  assert.equal(error.problems.length, 20_000);
  assert.ok(error.message.length < 3000, `message of ${error.message.length} characters`);
  assert.match(error.message, /and 19990 more problem\(s\)$/);
  assert.equal(error.firstProblems.length, 10);
});
