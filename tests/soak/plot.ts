/**
 * The soak report: a table of samples over time and an SVG line plot (one panel per series, each
 * scaled to its own maximum), without dependencies.
 * @module
 */

/** One sample of the soaked program. */
export interface SoakSample {
  /** Seconds since the start. */
  readonly seconds: number;
  readonly values: Readonly<Record<string, number>>;
}

/** The samples as a fixed-width text table, one row per sample. */
export function soakTable(samples: readonly SoakSample[], columns: readonly string[]): string {
  const header = ["seconds", ...columns];
  const rows = samples.map((sample) => [
    String(sample.seconds),
    ...columns.map((column) => formatValue(sample.values[column])),
  ]);
  const widths = header.map((title, index) =>
    Math.max(title.length, ...rows.map((row) => row[index]!.length))
  );
  const line = (cells: readonly string[]) =>
    cells.map((cell, index) => cell.padStart(widths[index]!)).join("  ");
  return [line(header), ...rows.map(line)].join("\n");
}

/** An SVG plot: one panel per column, time on the x axis, each panel scaled to 0..its maximum. */
export function soakSvg(samples: readonly SoakSample[], columns: readonly string[]): string {
  const width = 720;
  const panelHeight = 110;
  const left = 70;
  const right = 20;
  const lastSecond = Math.max(1, ...samples.map((sample) => sample.seconds));
  const x = (seconds: number) => left + (seconds / lastSecond) * (width - left - right);
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${
      columns.length * panelHeight + 30
    }" font-family="sans-serif" font-size="11">`,
    `<rect width="100%" height="100%" fill="white"/>`,
  ];
  columns.forEach((column, index) => {
    const top = 10 + index * panelHeight;
    const bottom = top + panelHeight - 30;
    const values = samples.map((sample) => sample.values[column] ?? 0);
    const max = Math.max(1e-9, ...values);
    const y = (value: number) => bottom - (value / max) * (bottom - top);
    const points = samples.map((sample, i) =>
      `${x(sample.seconds).toFixed(1)},${y(values[i]!).toFixed(1)}`
    );
    parts.push(
      `<text x="${left}" y="${top - 1}">${escape(column)} (max ${formatValue(max)})</text>`,
      `<line x1="${left}" y1="${bottom}" x2="${width - right}" y2="${bottom}" stroke="#999"/>`,
      `<line x1="${left}" y1="${top}" x2="${left}" y2="${bottom}" stroke="#999"/>`,
      `<text x="${left - 4}" y="${top + 8}" text-anchor="end">${formatValue(max)}</text>`,
      `<text x="${left - 4}" y="${bottom}" text-anchor="end">0</text>`,
      `<polyline fill="none" stroke="#1f77b4" stroke-width="1.5" points="${points.join(" ")}"/>`,
    );
  });
  const axis = 10 + columns.length * panelHeight;
  parts.push(
    `<text x="${left}" y="${axis}">0 s</text>`,
    `<text x="${width - right}" y="${axis}" text-anchor="end">${lastSecond} s</text>`,
    "</svg>",
  );
  return parts.join("\n");
}

function formatValue(value: number | undefined): string {
  if (value === undefined) return "-";
  if (Number.isInteger(value)) return String(value);
  return value >= 100 ? value.toFixed(0) : value.toPrecision(3);
}

function escape(text: string): string {
  return text.replaceAll("&", "&amp;").replaceAll("<", "&lt;");
}
