/**
 * Pure statistics for the benchmark harness: percentiles of one run, and medians, ranges and ratios
 * across repetitions.
 * @module
 */

/** Median with its range over repetitions; `n` is how many repetitions had a value. */
export interface Summary {
  readonly median: number;
  readonly min: number;
  readonly max: number;
  readonly n: number;
}

/**
 * The `p`-th percentile (0–100) of `values` by linear interpolation between closest ranks.
 * @throws {RangeError} when `values` is empty or `p` is outside 0–100.
 */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) throw new RangeError("Cannot take a percentile of no values");
  if (!(p >= 0 && p <= 100)) throw new RangeError(`Percentile must be within 0–100, got ${p}`);
  const sorted = [...values].sort((a, b) => a - b);
  const rank = (p / 100) * (sorted.length - 1);
  const low = Math.floor(rank);
  const high = Math.ceil(rank);
  const lowValue = sorted[low] ?? 0;
  return lowValue + ((sorted[high] ?? lowValue) - lowValue) * (rank - low);
}

/** Median, minimum and maximum of the defined, finite values; `undefined` when there are none. */
export function summarize(values: readonly (number | undefined)[]): Summary | undefined {
  const finite = values.filter((v): v is number => v !== undefined && Number.isFinite(v));
  if (finite.length === 0) return undefined;
  return {
    median: percentile(finite, 50),
    min: Math.min(...finite),
    max: Math.max(...finite),
    n: finite.length,
  };
}

/** `value / base`, or `undefined` when either is missing or the base is zero. */
export function ratio(value: number | undefined, base: number | undefined): number | undefined {
  if (value === undefined || base === undefined || base === 0) return undefined;
  return value / base;
}

/** Work per forwarder core: `value` divided by the cores used (`cpuPercent / 100`). */
export function perCore(
  value: number | undefined,
  cpuPercent: number | undefined,
): number | undefined {
  if (cpuPercent === undefined || cpuPercent <= 0) return undefined;
  return ratio(value, cpuPercent / 100);
}
