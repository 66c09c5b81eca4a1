import assert from "node:assert/strict";
import { soakSvg, soakTable } from "./plot.ts";

const samples = [
  { seconds: 0, values: { rss_mb: 60, fds: 30 } },
  { seconds: 10, values: { rss_mb: 80.5, fds: 130 } },
];

Deno.test("soakTable() aligns one row per sample under the column names", () => {
  assert.equal(
    soakTable(samples, ["rss_mb", "fds"]),
    ["seconds  rss_mb  fds", "      0      60   30", "     10    80.5  130"].join("\n"),
  );
});

Deno.test("soakSvg() draws one panel per column, scaled to its maximum", () => {
  const svg = soakSvg(samples, ["rss_mb", "fds"]);
  assert.equal(svg.match(/<polyline/g)?.length, 2);
  assert.match(svg, /rss_mb \(max 80\.5\)/);
  // The last fds point (its maximum) is at the top of its panel (y 120), at the right edge.
  assert.match(svg, /points="70\.0,[\d.]+ 700\.0,120\.0"/);
});
