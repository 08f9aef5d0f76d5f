/**
 * Reading counters out of a `/metrics` answer (the Prometheus text exposition format that
 * prom-client writes): enough for the scenarios that compare counters before and after a
 * window, not a general parser (no escapes in label values, no timestamps).
 * @see https://prometheus.io/docs/instrumenting/exposition_formats/#text-based-format
 */

/** One sample line of a series. */
export interface PromSample {
  /** The label set as written (`{result="hit",tier="memory"}`), '' when the sample has none. */
  readonly labels: string
  /** The value (NaN when it does not parse as a number). */
  readonly value: number
}

/** Every sample of the series `name` (that exact name, with or without labels), in order. */
export function promSamples (text: string, name: string): PromSample[] {
  const out: PromSample[] = []
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue
    const next = line[name.length]
    if (next !== '{' && next !== ' ') continue
    const space = line.lastIndexOf(' ')
    out.push({ labels: line.slice(name.length, next === '{' ? line.lastIndexOf('}', space) + 1 : name.length), value: Number(line.slice(space + 1)) })
  }
  return out
}

/** True when `sample`'s label set holds `label="value"` for every entry of `match`. */
export function promLabelsMatch (sample: PromSample, match: Readonly<Record<string, string>>): boolean {
  return Object.entries(match).every(([label, value]) => sample.labels.includes(`${label}="${value}"`))
}

/** The first sample's value of the series `name` (0 when it has none). */
export function promValue (text: string, name: string): number {
  return promSamples(text, name)[0]?.value ?? 0
}

/** The sum of the series `name` over every label set that matches `match` ({@link promLabelsMatch}). */
export function promSum (text: string, name: string, match: Readonly<Record<string, string>> = {}): number {
  let sum = 0
  for (const s of promSamples(text, name)) if (promLabelsMatch(s, match)) sum += s.value
  return sum
}
