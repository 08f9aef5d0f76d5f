/**
 * The run description every bench/RESULTS.md test starts from (date, machine, source, wall
 * time), so a test spells out only the sections it renders and the fields it varies.
 */
import type { BenchResults } from '../../bench/lib/results.ts'

/** The header fields of a {@link BenchResults}: a full (not --quick) run on a 2-core box at commit abc123. */
export type BenchResultsHeader = Pick<BenchResults, 'date' | 'quick' | 'quietWaitS' | 'machine' | 'source' | 'wallSeconds'>

/** {@link BenchResultsHeader} with `overrides`; `uncommitted` replaces the source's list of uncommitted changes. */
export function benchResultsHeader (overrides: Partial<Omit<BenchResultsHeader, 'source'>> & { readonly uncommitted?: readonly string[] } = {}): BenchResultsHeader {
  const { uncommitted = [], ...rest } = overrides
  return {
    date: '2026-01-02T03:04:05.000Z',
    quick: false,
    quietWaitS: 0,
    machine: { cpus: 2, cpuModel: 'AMD EPYC', memoryBytes: 24 * 2 ** 30, nodeVersion: 'v20.20.2', kernel: '6.1', clockTicksPerSecond: 100 },
    source: { root: '/work/main/', commit: 'abc123', uncommitted: [...uncommitted] },
    wallSeconds: 60,
    ...rest,
  }
}
