/**
 * Small, pure statistics for benchmark reports: medians across rounds, percentiles of
 * per-client samples, ratios against a baseline, and CPU cost per byte served.
 */

/** Median of a list (mean of the middle two for an even count); NaN for an empty list. */
export function median (values: readonly number[]): number {
  if (values.length === 0) return Number.NaN
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}

/**
 * Nearest-rank percentile (`p` in 0..100): the smallest sample with at least p% of the
 * samples at or below it. NaN for an empty list. Nearest-rank never interpolates, so a
 * p99 of 200 clients is the 198th fastest client, a time someone really saw.
 */
export function percentile (values: readonly number[], p: number): number {
  if (!Number.isFinite(p) || p < 0 || p > 100) throw new TypeError(`Expected p to be a number between 0 and 100, got ${String(p)}`)
  if (values.length === 0) return Number.NaN
  const sorted = [...values].sort((a, b) => a - b)
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length))
  return sorted[rank - 1]!
}

/** `value / baseline`, or NaN when the baseline is zero or either side is not finite. */
export function ratio (value: number, baseline: number): number {
  if (!Number.isFinite(value) || !Number.isFinite(baseline) || baseline === 0) return Number.NaN
  return value / baseline
}

/** CPU seconds spent per 10^9 bytes served; NaN when nothing was served. */
export function cpuSecondsPerGb (cpuSeconds: number, bytesServed: number): number {
  if (!(bytesServed > 0)) return Number.NaN
  return cpuSeconds / (bytesServed / 1e9)
}

/** Rounds to `digits` significant digits for reports (NaN and infinities pass through). */
export function roundSignificant (value: number, digits = 3): number {
  if (!Number.isFinite(value) || value === 0) return value
  return Number(value.toPrecision(digits))
}
