/**
 * Profiling a server under the same load as a measured window: the child runs under
 * `node --cpu-prof` with bench/lib/source-map-dump.js preloaded, the bench notes each
 * window on CLOCK_MONOTONIC (the clock V8 stamps samples with on Linux), and after the
 * child exits its main-thread profile is kept next to the results and summarised per
 * window, with TypeScript file:line locations.
 */
import { copyFile, readdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { REPO_ROOT } from './child-server.ts'
import { sourceMapLineResolver, summariseCpuProfile, type CpuProfile, type SourceMapDump } from './cpu-profile.ts'
import type { ProfiledRun } from './results.ts'

const SOURCE_MAP_DUMP = pathToFileURL(join(REPO_ROOT, 'bench/lib/source-map-dump.js')).href

/** Node flags that make a child write its CPU profile and source maps into `dir` when it exits. */
export function profileNodeArgs (dir: string): string[] {
  return ['--cpu-prof', '--cpu-prof-dir', dir, '--enable-source-maps', '--import', SOURCE_MAP_DUMP]
}

/** CLOCK_MONOTONIC in µs. */
export function monotonicUs (): number {
  return Number(process.hrtime.bigint() / 1000n)
}

/** One load window on a profiled server. */
export interface ProfileWindow {
  readonly fromUs: number
  readonly toUs: number
  readonly requests: number
  readonly requestsPerSec: number
}

/** Where a profile comes from and where it is kept. */
export interface ProfileSource {
  /** The --cpu-prof-dir the child wrote into (it must have exited). */
  readonly dir: string
  /** Where to keep the main-thread .cpuprofile (under bench/results, gitignored). */
  readonly keepAs: string
  /** Checkout the profiled code ran from (its prefix is cut from locations). */
  readonly root: string
  /** Entries in the top lists. */
  readonly top: number
}

/** Keeps the main thread's profile and summarises each window of it. */
export async function summariseProfile (source: ProfileSource, windows: readonly ProfileWindow[]): Promise<ProfiledRun[]> {
  // One file per thread, CPU.<date>.<time>.<pid>.<thread id>.<seq>.cpuprofile; thread 0 is the main thread.
  const files = (await readdir(source.dir)).filter((f) => f.endsWith('.cpuprofile')).sort()
  const main = files.find((f) => /\.\d+\.0\.\d+\.cpuprofile$/.test(f)) ?? files[0]
  if (main === undefined) throw new Error(`no .cpuprofile in ${source.dir}`)
  await copyFile(join(source.dir, main), source.keepAs)
  const profile = JSON.parse(await readFile(source.keepAs, 'utf8')) as CpuProfile
  const mapsText = await readFile(join(source.dir, 'source-maps.json'), 'utf8').catch(() => undefined)
  // Kept next to the profile (gitignored like it), so the profile can be re-sliced with TypeScript lines later.
  if (mapsText !== undefined) await writeFile(source.keepAs.replace(/\.cpuprofile$/, '.source-maps.json'), mapsText)
  const dump = mapsText === undefined ? undefined : JSON.parse(mapsText) as SourceMapDump
  const resolveLine = dump === undefined ? undefined : sourceMapLineResolver(dump)
  const rootUrl = pathToFileURL(source.root).href
  const file = source.keepAs.startsWith(REPO_ROOT) ? source.keepAs.slice(REPO_ROOT.length) : source.keepAs
  return windows.map((w) => {
    const summary = summariseCpuProfile(profile, { top: source.top, rootUrl, window: { fromUs: w.fromUs, toUs: w.toUs }, ...(resolveLine === undefined ? {} : { resolveLine }) })
    return { ...summary, file, requests: w.requests, requestsPerSec: w.requestsPerSec, window: { fromUs: w.fromUs, toUs: w.toUs } }
  })
}
