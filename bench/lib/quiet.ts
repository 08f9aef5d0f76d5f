/**
 * Waiting for a quiet machine: on a shared box (CI jobs, other tenants) a window
 * measured while something else burns CPU says little about the server. Before each
 * window the bench can wait, bounded, until machine-wide busy CPU drops below a threshold.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import { readSystemBusySeconds } from './proc-cpu.ts'

/** What a wait found. */
export interface QuietWait {
  readonly waitedMs: number
  /** Busy cores in the last sample. */
  readonly busyCores: number
  readonly quiet: boolean
}

/** Settings of {@link waitForQuiet}. */
export interface QuietOptions {
  /** Give up (and measure anyway) after this long; 0 measures at once. */
  readonly maxWaitMs: number
  /** Busy CPU (in cores, all processes) below which the machine counts as quiet. */
  readonly thresholdCores?: number
  readonly sampleMs?: number
}

/** Samples /proc/stat until busy CPU is below the threshold or maxWaitMs has passed. */
export async function waitForQuiet (o: QuietOptions): Promise<QuietWait> {
  const threshold = o.thresholdCores ?? 0.2
  const sampleMs = o.sampleMs ?? 1000
  const started = performance.now()
  let busyCores = Number.NaN
  if (o.maxWaitMs <= 0) return { waitedMs: 0, busyCores, quiet: false }
  for (;;) {
    const before = readSystemBusySeconds()
    await sleep(sampleMs)
    busyCores = (readSystemBusySeconds() - before) / (sampleMs / 1000)
    const waitedMs = performance.now() - started
    if (busyCores < threshold) return { waitedMs, busyCores, quiet: true }
    if (waitedMs >= o.maxWaitMs) return { waitedMs, busyCores, quiet: false }
  }
}
