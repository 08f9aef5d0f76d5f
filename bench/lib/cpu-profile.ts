/**
 * Summarises a V8 `.cpuprofile` (written by `node --cpu-prof`) into self-time hot spots:
 * per function and per source file, as a share of the non-idle time.
 * @see https://chromedevtools.github.io/devtools-protocol/tot/Profiler/#type-Profile
 */
import { SourceMap, type SourceMapPayload } from 'node:module'

/** The parts of a V8 CPU profile this module reads. */
export interface CpuProfile {
  readonly nodes: ReadonlyArray<{
    readonly id: number
    readonly callFrame: { readonly functionName: string, readonly url: string, readonly lineNumber: number, readonly columnNumber?: number }
    readonly hitCount?: number
  }>
  /** Start and end, in microseconds. */
  readonly startTime: number
  readonly endTime: number
  readonly samples?: readonly number[]
  /** Microseconds between consecutive samples (the first is from startTime). */
  readonly timeDeltas?: readonly number[]
}

/** One hot spot. */
export interface HotSpot {
  readonly functionName: string
  /**
   * `path:line` (repo-relative when under `rootUrl`), or the V8 pseudo-frame name. Code
   * compiled by tsx reports line 0 for every function, so those get the path alone.
   */
  readonly location: string
  readonly selfMs: number
  /** Share of the non-idle time, 0..100. */
  readonly selfPercent: number
}

/** The summary. */
export interface ProfileSummary {
  readonly durationMs: number
  readonly idleMs: number
  readonly busyMs: number
  readonly samples: number
  readonly topFunctions: readonly HotSpot[]
  /** Same, aggregated by source file (functionName holds the file). */
  readonly topFiles: readonly HotSpot[]
}

const IDLE = '(idle)'

/**
 * Maps a generated position (0-based line and column, as V8 reports them) to the 0-based
 * line of the original source, or undefined when unknown.
 */
export type LineResolver = (url: string, line: number, column: number) => number | undefined

/** The source maps written by bench/lib/source-map-dump.js: payloads by file URL. */
export type SourceMapDump = Readonly<Record<string, SourceMapPayload>>

/** A {@link LineResolver} over the source maps a profiled process dumped at exit. */
export function sourceMapLineResolver (dump: SourceMapDump): LineResolver {
  const maps = new Map<string, SourceMap | undefined>()
  return (url, line, column) => {
    if (!maps.has(url)) {
      const payload = dump[url]
      maps.set(url, payload === undefined ? undefined : new SourceMap(payload))
    }
    const entry = maps.get(url)?.findEntry(line, column)
    return entry !== undefined && 'originalLine' in entry && typeof entry.originalLine === 'number' ? entry.originalLine : undefined
  }
}

/**
 * Self time per function: each sample is charged the time until the next sample
 * (the last one the mean interval), which is how DevTools computes self time.
 * `rootUrl` (e.g. `file:///work/main/`) is cut from locations. `window` keeps only the
 * samples taken in [fromUs, toUs): V8 stamps samples with the monotonic clock that
 * `process.hrtime()` reads on Linux, so another process can name its load window.
 */
export function summariseCpuProfile (profile: CpuProfile, options: { top?: number, rootUrl?: string, window?: { fromUs: number, toUs: number }, resolveLine?: LineResolver } = {}): ProfileSummary {
  const top = options.top ?? 10
  const byId = new Map(profile.nodes.map((n) => [n.id, n]))
  const selfUs = new Map<number, number>()
  const samples = profile.samples ?? []
  const deltas = profile.timeDeltas ?? []
  const fromUs = Math.max(profile.startTime, options.window?.fromUs ?? profile.startTime)
  const toUs = Math.min(profile.endTime, options.window?.toUs ?? profile.endTime)
  const durationUs = Math.max(0, toUs - fromUs)
  let counted = 0
  if (samples.length > 0 && deltas.length === samples.length) {
    const meanUs = (profile.endTime - profile.startTime) / samples.length
    let at = profile.startTime
    for (let i = 0; i < samples.length; i++) {
      at += deltas[i]!
      if (at < fromUs || at >= toUs) continue
      const weight = i + 1 < deltas.length ? deltas[i + 1]! : meanUs
      selfUs.set(samples[i]!, (selfUs.get(samples[i]!) ?? 0) + Math.max(0, weight))
      counted++
    }
  } else {
    // No sample timeline (and so no window): hit counts spread evenly over the duration.
    const hits = profile.nodes.reduce((sum, n) => sum + (n.hitCount ?? 0), 0)
    for (const n of profile.nodes) if ((n.hitCount ?? 0) > 0 && hits > 0) selfUs.set(n.id, (n.hitCount! / hits) * durationUs)
    counted = hits
  }
  const fns = new Map<string, { functionName: string, location: string, us: number }>()
  const files = new Map<string, number>()
  let idleUs = 0
  let busyUs = 0
  for (const [id, us] of selfUs) {
    const node = byId.get(id)
    if (node === undefined) continue
    const frame = node.callFrame
    if (frame.functionName === IDLE) {
      idleUs += us
      continue
    }
    busyUs += us
    const file = frame.url === '' ? frame.functionName : shortUrl(frame.url, options.rootUrl)
    const sourceLine = frame.url === '' ? undefined : options.resolveLine?.(frame.url, frame.lineNumber, frame.columnNumber ?? 0)
    const location = frame.url === ''
      ? frame.functionName
      : sourceLine !== undefined ? `${file}:${sourceLine + 1}` : frame.lineNumber > 0 ? `${file}:${frame.lineNumber + 1}` : file
    const name = frame.functionName === '' ? '(anonymous)' : frame.functionName
    const key = `${name}\0${location}`
    const entry = fns.get(key) ?? { functionName: name, location, us: 0 }
    entry.us += us
    fns.set(key, entry)
    files.set(file, (files.get(file) ?? 0) + us)
  }
  const spot = (functionName: string, location: string, us: number): HotSpot => ({
    functionName,
    location,
    selfMs: us / 1000,
    selfPercent: busyUs > 0 ? (us / busyUs) * 100 : 0,
  })
  const topFunctions = [...fns.values()].sort((a, b) => b.us - a.us).slice(0, top).map((e) => spot(e.functionName, e.location, e.us))
  const topFiles = [...files].sort((a, b) => b[1] - a[1]).slice(0, top).map(([file, us]) => spot(file, file, us))
  return { durationMs: durationUs / 1000, idleMs: idleUs / 1000, busyMs: busyUs / 1000, samples: counted, topFunctions, topFiles }
}

/** A profile's script URL relative to `rootUrl` (or from node_modules/ on, or as a path). */
export function shortUrl (url: string, rootUrl: string | undefined): string {
  const root = rootUrl === undefined || rootUrl.endsWith('/') ? rootUrl : `${rootUrl}/`
  if (root !== undefined && url.startsWith(root)) return url.slice(root.length)
  const nm = url.lastIndexOf('/node_modules/')
  if (nm >= 0) return url.slice(nm + 1)
  return url.startsWith('file://') ? url.slice('file://'.length) : url
}
