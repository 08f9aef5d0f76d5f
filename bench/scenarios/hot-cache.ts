/**
 * Scenarios "hot-segment", "hot-playlist" and "ranges" (issue 7): warm-cache throughput
 * of the edge against nginx (proxy_cache, and with the slice module for ranges), Varnish
 * and a bare node:http baseline, all in front of the same origin.
 *
 * - hot-segment: a 2 MiB .ts from memory; the figure is the cache's CPU seconds per GB
 *   (on 2 cores the generator saturates first) and wrk's req/s
 * - hot-playlist: a ~1.5 KiB VOD media playlist; CPU ms per 1000 requests and req/s
 * - ranges: the first 64 KiB and a mid-file 64 KiB of the warm 2 MiB segment; req/s
 *
 * Targets run interleaved A B C A B C for N rounds, each window measured with wrk and
 * autocannon. When the edge misses a CPU target (or with --profile always) a fresh edge
 * and bare server are profiled under the same load. With --log-ab every workload also runs
 * `edge-log`, the edge with its access log on (the `edge` target has it off, as the peers do).
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startOrigin } from '../origin/origin-server.ts'
import { startPeer } from '../peers/start-peer.ts'
import type { BenchTarget, TargetName } from '../lib/bench-target.ts'
import { REPO_ROOT } from '../lib/child-server.ts'
import { runComparison, type AccessLogCost, type CompareResult, type ComparisonRunOptions, type GeneratorName, type Workload } from '../lib/compare.ts'
import { httpGet, replayableHeaders } from '../lib/http-get.ts'
import { loadTest } from '../lib/load.ts'
import { startOriginMeter } from '../lib/origin-meter.ts'
import { writePlaylistTitle } from '../lib/playlist-title.ts'
import { monotonicUs, profileNodeArgs, summariseProfile, type ProfileWindow } from '../lib/profile-run.ts'
import { memoryCheck, type MemoryCheck, type WorkloadProfile } from '../lib/results.ts'
import { startBareTarget, startEdgeTarget } from '../lib/start-target.ts'
import { pairedRatio } from '../lib/verdicts.ts'
import { checkBody, warmUntilHit } from '../lib/warm-target.ts'
import { runWrk } from '../lib/wrk.ts'
import { HOT_BODY_BYTES } from './hot-memory.ts'

/** The scenario names this module runs. */
export const HOT_CACHE_SCENARIOS = ['hot-segment', 'hot-playlist', 'ranges'] as const
/** One of them. */
export type HotCacheScenario = typeof HOT_CACHE_SCENARIOS[number]

/** Issue 7: the edge's CPU per GB (segment) or per 1000 requests (playlist) at most this multiple of nginx's. */
export const CPU_VS_NGINX_MAX = 1.3
/** The edge's memory tier budget in these scenarios (the edge.cache.memory.maxBytes default), and Varnish's malloc size. */
export const HOT_MEMORY_BYTES = 256 * 2 ** 20
/** Bytes of each range request. */
export const RANGE_BYTES = 64 * 1024
const SEGMENT_PATH = `/synthetic/segment-${HOT_BODY_BYTES}.ts`
const MID_OFFSET = Math.floor(HOT_BODY_BYTES / 2)
const PLAYLIST_TARGET_BYTES = 1536

/** Settings of {@link runHotCache}. */
export interface HotCacheOptions extends ComparisonRunOptions {
  readonly scenarios: readonly HotCacheScenario[]
  readonly profile: 'auto' | 'always' | 'never'
  readonly resultsDir: string
  readonly stamp: string
  /**
   * Also measure the floors in every workload, ranges included: the edge's own response bytes
   * sent by a bare node:http server (`bare`) and by a bare fast path (`bare-fast`,
   * lib/http/fast-front.ts with no cache work at all). Off by default (it adds about a minute).
   */
  readonly floors?: boolean
  /**
   * Also run `edge-log` in every workload: an edge started like `edge` but with its access log
   * on (one JSON line per request, to a file), interleaved with the rest; each comparison then
   * carries {@link AccessLogCost}s. Off by default.
   */
  readonly logAb?: boolean
}

/** What {@link runHotCache} reports. */
export interface HotCacheResult {
  readonly comparisons: readonly CompareResult[]
  readonly profiles: readonly WorkloadProfile[]
  readonly memory: readonly MemoryCheck[]
}

interface Bodies {
  readonly segment: Buffer
  readonly playlist: Buffer
  readonly playlistPath: string
  readonly playlistFile: string
  /** Where range floors keep the bytes they send. */
  readonly dir: string
}

/** Runs the selected scenarios; every process and temp dir it made is gone when it returns. */
export async function runHotCache (o: HotCacheOptions): Promise<HotCacheResult> {
  const mediaDir = await mkdtemp(join(tmpdir(), 'streamedge-bench-media-'))
  const title = await writePlaylistTitle(mediaDir, 'bench-long', PLAYLIST_TARGET_BYTES)
  const origin = await startOrigin({ mediaDir })
  // VOD playlists carry max-age=300, shorter than a run with --quiet-wait: keep the measured windows hits.
  origin.setFault(title.playlistPath, { headers: { 'cache-control': 'public, max-age=3600' } })
  const meter = await startOriginMeter(origin.url)
  const targets: BenchTarget[] = []
  const wants = (s: HotCacheScenario): boolean => o.scenarios.includes(s)
  try {
    const segment = (await httpGet(origin.url + SEGMENT_PATH)).body
    const playlist = (await httpGet(origin.url + title.playlistPath)).body
    const bodies: Bodies = { segment, playlist, playlistPath: title.playlistPath, playlistFile: join(mediaDir, 'vod/bench-long/v/index.m3u8'), dir: mediaDir }
    const edge = await startEdgeTarget({ originUrl: meter.url, memoryMaxBytes: HOT_MEMORY_BYTES, edgeRoot: o.edgeRoot })
    targets.push(edge)
    // Next to `edge` in every round, so each pair is measured as close in time as any.
    if (o.logAb === true) targets.push(await startEdgeTarget({ originUrl: meter.url, memoryMaxBytes: HOT_MEMORY_BYTES, edgeRoot: o.edgeRoot, accessLog: true }))
    // server.sendfile's trade on the segment: the server's copy saved, the loopback client's cost
    if (wants('hot-segment')) targets.push(await startEdgeTarget({ originUrl: meter.url, memoryMaxBytes: HOT_MEMORY_BYTES, edgeRoot: o.edgeRoot, sendfile: true }))
    for (const peer of o.peers) {
      if (peer.name === 'nginx-slice' && !wants('ranges')) continue
      targets.push(await startPeer(peer, { originUrl: meter.url, memoryMaxBytes: HOT_MEMORY_BYTES }))
    }
    o.log(`hot-cache: ${targets.map((t) => `${t.name} ${t.url}`).join(', ')}; segment ${segment.length} B, playlist ${playlist.length} B`)
    for (const t of targets) await warmAndCheck(t, bodies, wants('hot-playlist'))
    const comparisons: CompareResult[] = []
    const generators: GeneratorName[] = o.wrkCommand === undefined ? ['autocannon'] : ['wrk', 'autocannon']
    const compare = async (workload: Workload, names: readonly TargetName[], bares: readonly BenchTarget[], gens = generators): Promise<CompareResult> => {
      const list = [...targets.filter((t) => names.includes(t.name)), ...bares]
      const result = await runComparison({
        workload, targets: list, generators: gens, wrkCommand: o.wrkCommand, rounds: o.rounds, warmupS: o.warmupS, measureS: o.measureS,
        origin: () => ({ requests: origin.totalRequests(), bytes: meter.bytes() }), beforeWindow: o.beforeWindow, log: o.log,
      })
      const accessLog = accessLogCost(result)
      const reported = accessLog === undefined ? result : { ...result, accessLog }
      comparisons.push(reported)
      return reported
    }
    const hotNames: TargetName[] = ['edge', 'edge-log', 'nginx', 'varnish']
    // The baselines of one workload: bare node:http always for the segment and the playlist (the
    // issue's reference), and with --floors both bare servers everywhere.
    const withBares = async (what: BareBody, nodeHttp: boolean, run: (bares: readonly BenchTarget[]) => Promise<unknown>): Promise<void> => {
      const bares: BenchTarget[] = []
      try {
        if (nodeHttp || o.floors === true) bares.push(await startBare(edge, what, bodies))
        if (o.floors === true) bares.push(await startBare(edge, what, bodies, [], true))
        await run(bares)
      } finally {
        await Promise.all(bares.map((b) => b.stop()))
      }
    }
    if (wants('hot-segment')) await withBares('segment', true, (bares) => compare(segmentWorkload(o.connections), [...hotNames, 'edge-sendfile'], bares))
    if (wants('hot-playlist')) await withBares('playlist', true, (bares) => compare(playlistWorkload(o.connections, bodies.playlistPath, playlist.length), hotNames, bares))
    if (wants('ranges')) {
      // Ranges are small and many: wrk alone (autocannon would measure itself).
      const rangeGens: GeneratorName[] = o.wrkCommand === undefined ? ['autocannon'] : ['wrk']
      for (const workload of rangeWorkloads(o.connections)) {
        await withBares(workload, false, (bares) => compare(workload, ['edge', 'edge-log', 'nginx', 'nginx-slice', 'varnish'], bares, rangeGens))
      }
    }
    const memory = [memoryCheck('hot-cache', edge)].filter((m) => m !== undefined)
    await Promise.all(targets.splice(0).map((t) => t.stop()))
    const profiles = await profileIfNeeded(o, comparisons, bodies, meter.url)
    return { comparisons, profiles, memory }
  } finally {
    await Promise.all(targets.map((t) => t.stop()))
    await meter.close()
    await origin.close()
    await rm(mediaDir, { recursive: true, force: true })
  }
}

function segmentWorkload (connections: number): Workload {
  return { name: 'hot-segment', title: 'Hot 2 MiB segment from memory', paths: [SEGMENT_PATH], bodyBytes: HOT_BODY_BYTES, connections, costUnit: 'gb' }
}

function playlistWorkload (connections: number, path: string, bytes: number): Workload {
  return { name: 'hot-playlist', title: `Hot ${(bytes / 1024).toFixed(1)} KiB media playlist`, paths: [path], bodyBytes: bytes, connections, costUnit: 'kreq' }
}

/** The two range workloads on the warm segment: its first 64 KiB and 64 KiB from its middle. */
export function rangeWorkloads (connections: number): Workload[] {
  const range = (from: number): string => `bytes=${from}-${from + RANGE_BYTES - 1}`
  return [
    { name: 'range-first', title: 'Range: first 64 KiB of a warm 2 MiB segment', paths: [SEGMENT_PATH], headers: { range: range(0) }, bodyBytes: RANGE_BYTES, connections, costUnit: 'gb' },
    { name: 'range-mid', title: 'Range: 64 KiB from the middle of a warm 2 MiB segment', paths: [SEGMENT_PATH], headers: { range: range(MID_OFFSET) }, bodyBytes: RANGE_BYTES, connections, costUnit: 'gb' },
  ]
}

/** Fills the target with the segment (and playlist) and checks the bytes it serves, ranges included. */
async function warmAndCheck (t: BenchTarget, bodies: Bodies, playlist: boolean): Promise<void> {
  checkBody(t, 'segment', await warmUntilHit(t, SEGMENT_PATH), 200, bodies.segment)
  for (const from of [0, MID_OFFSET]) {
    const headers = { range: `bytes=${from}-${from + RANGE_BYTES - 1}` }
    checkBody(t, `range ${headers.range}`, await warmUntilHit(t, SEGMENT_PATH, headers), 206, bodies.segment.subarray(from, from + RANGE_BYTES))
  }
  if (playlist) checkBody(t, 'playlist', await warmUntilHit(t, bodies.playlistPath), 200, bodies.playlist)
}

/** What a bare baseline sends: the whole segment, the playlist, or a range workload's 206. */
type BareBody = 'segment' | 'playlist' | Workload

/**
 * A bare baseline for one body, sending the edge's own status, headers and body for it
 * (node:http, or with `fast` lib/http/fast-front.ts). A range's floor answers every request with
 * that range's 206, whatever it asks for.
 */
async function startBare (edge: BenchTarget, what: BareBody, bodies: Bodies, nodeArgs: readonly string[] = [], fast = false): Promise<BenchTarget> {
  const path = what === 'playlist' ? bodies.playlistPath : SEGMENT_PATH
  const rangeHeaders = typeof what === 'string' ? undefined : what.headers
  const hit = await warmUntilHit(edge, path, rangeHeaders)
  let bodyFile: string | undefined = what === 'playlist' ? bodies.playlistFile : undefined
  if (typeof what !== 'string') {
    bodyFile = join(bodies.dir, `floor-${what.name}.bin`)
    await writeFile(bodyFile, hit.body)
  }
  const label = typeof what === 'string' ? what : what.name
  const bare = await startBareTarget({
    name: 'segment',
    bytes: HOT_BODY_BYTES,
    ext: 'ts',
    ...(bodyFile === undefined ? {} : { bodyFile }),
    ...(hit.status === 200 ? {} : { status: hit.status }),
    headers: replayableHeaders(hit.rawHeaders),
    fast,
    nodeArgs,
  })
  try {
    const expected = what === 'segment' ? bodies.segment : what === 'playlist' ? bodies.playlist : hit.body
    checkBody(bare, label, await httpGet(bare.url + path, 30_000, rangeHeaders), hit.status, expected)
  } catch (err) {
    await bare.stop()
    throw err
  }
  return bare
}

/**
 * The access log's cost in a comparison that ran `edge-log` (log on) beside `edge` (log off):
 * per generator, medians of per-round ratios edge-log / edge; undefined without edge-log windows.
 */
export function accessLogCost (c: Pick<CompareResult, 'config' | 'windows'>): AccessLogCost[] | undefined {
  if (!c.windows.some((w) => w.target === 'edge-log')) return undefined
  return c.config.generators.map((generator) => {
    const rounds = new Set(c.windows.filter((w) => w.target === 'edge' && w.generator === generator).map((w) => w.round))
    return {
      generator,
      rounds: c.windows.filter((w) => w.target === 'edge-log' && w.generator === generator && rounds.has(w.round)).length,
      requestsPerSec: pairedRatio(c.windows, 'edge-log', 'edge', (w) => w.requestsPerSec, generator),
      cpuMsPerKiloRequest: pairedRatio(c.windows, 'edge-log', 'edge', (w) => w.cpuMsPerKiloRequest, generator),
    }
  })
}

/** The edge's cost ratio to nginx for a workload (the wrk windows when there are any). */
export function edgeCostVsNginx (c: CompareResult): number | undefined {
  const edge = c.summaries.filter((s) => s.target === 'edge')
  const pick = edge.find((s) => s.generator === 'wrk') ?? edge[0]
  const v = pick?.vsNginx
  if (v === undefined) return undefined
  return c.config.costUnit === 'gb' ? v.cpuSecondsPerGb : v.cpuMsPerKiloRequest
}

async function profileIfNeeded (o: HotCacheOptions, comparisons: readonly CompareResult[], bodies: Bodies, originUrl: string): Promise<WorkloadProfile[]> {
  if (o.profile === 'never') return []
  const chosen = comparisons.filter((c) => (c.scenario === 'hot-segment' || c.scenario === 'hot-playlist') &&
    (o.profile === 'always' || (edgeCostVsNginx(c) ?? Number.POSITIVE_INFINITY) > CPU_VS_NGINX_MAX))
  if (chosen.length === 0) return []
  o.log(`hot-cache: profiling a fresh edge and bare server on ${chosen.map((c) => c.scenario).join(', ')}`)
  const profDir = await mkdtemp(join(tmpdir(), 'streamedge-bench-prof-'))
  const started: BenchTarget[] = []
  try {
    const edge = await startEdgeTarget({ originUrl, memoryMaxBytes: HOT_MEMORY_BYTES, edgeRoot: o.edgeRoot, nodeArgs: profileNodeArgs(join(profDir, 'edge')) })
    started.push(edge)
    const edgeWindows: ProfileWindow[] = []
    const bareRuns: Array<{ scenario: string, dir: string, window: ProfileWindow }> = []
    const generator: GeneratorName = o.wrkCommand === undefined ? 'autocannon' : 'wrk'
    for (const c of chosen) {
      const what = c.scenario === 'hot-segment' ? 'segment' : 'playlist'
      const path = what === 'segment' ? SEGMENT_PATH : bodies.playlistPath
      await warmUntilHit(edge, path)
      const bareDir = join(profDir, `bare-${what}`)
      const bare = await startBare(edge, what, bodies, profileNodeArgs(bareDir))
      started.push(bare)
      edgeWindows.push(await profiledWindow(edge, path, generator, o))
      bareRuns.push({ scenario: c.scenario, dir: bareDir, window: await profiledWindow(bare, path, generator, o) })
    }
    await Promise.all(started.splice(0).map((t) => t.stop())) // each writes its profile as it exits
    const keep = (name: string): string => join(o.resultsDir, `${o.stamp}-${name}.cpuprofile`)
    const edgeRuns = await summariseProfile({ dir: join(profDir, 'edge'), keepAs: keep('edge'), root: o.edgeRoot ?? REPO_ROOT, top: 12 }, edgeWindows)
    const profiles: WorkloadProfile[] = []
    for (const [i, run] of bareRuns.entries()) {
      const [bare] = await summariseProfile({ dir: run.dir, keepAs: keep(`bare-${run.scenario}`), root: REPO_ROOT, top: 40 }, [run.window])
      profiles.push({ scenario: run.scenario, generator, edge: edgeRuns[i]!, bare })
    }
    return profiles
  } finally {
    await Promise.all(started.map((t) => t.stop()))
    await rm(profDir, { recursive: true, force: true })
  }
}

/** Warm-up and one measured window on a profiled server, remembering the window on the profile's clock. */
async function profiledWindow (t: BenchTarget, path: string, generator: GeneratorName, o: HotCacheOptions): Promise<ProfileWindow> {
  await o.beforeWindow?.()
  const run = async (durationS: number): Promise<{ requests: number, durationS: number }> => {
    if (generator === 'wrk') {
      const r = await runWrk({ command: o.wrkCommand!, url: t.url, paths: [path], connections: o.connections, durationS })
      return { requests: r.requests, durationS: r.durationS }
    }
    const r = await loadTest({ url: t.url + path, connections: o.connections, durationS })
    return { requests: r.requests.total, durationS: r.duration }
  }
  await run(Math.max(1, o.warmupS))
  const fromUs = monotonicUs()
  const r = await run(o.measureS)
  return { fromUs, toUs: monotonicUs(), requests: r.requests, requestsPerSec: r.requests / r.durationS }
}
