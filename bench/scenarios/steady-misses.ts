/**
 * Scenario "steady-misses": fill-served traffic that is not a herd. The shared-fill pacer
 * (edge/cache/shared-fill.ts) holds bulk writes back while readers keep joining, which is
 * what a cold herd needs; this scenario checks that steady miss traffic does not pay for it.
 *
 * a. distinct misses: N keep-alive clients each loop over never-requested 2 MiB segments
 *    from a fast origin (a unique query per request: every one is a miss at the edge, the
 *    origin serves one prebuilt body). Edge MB/s, req/s, TTFB and total p50/p99, edge CPU
 *    s/GB, origin requests. Then the same with 16 more clients looping over distinct small
 *    (1.5 KB) misses: many more fills start per second, each one a reader joining.
 * b. live joins: segments streamed by the origin over about 2 s each, a new one every
 *    second, with viewers joining each at a steady rate over its whole fill (a live event):
 *    per-client TTFB and total p50/p99, how long after the origin's last byte they finish,
 *    and MB/s delivered.
 *
 * Variants run interleaved in one run: this checkout's edge, the same edge with
 * `BENCH_PACER_DEFER_MS=0` (no deferral; passed to that edge alone, while the others never
 * see the knob: cleanEnv strips BENCH_* from a developer's shell), and with --ref the edge
 * as committed at a git ref. The load runs in a child process (this file, over IPC), so its CPU and the
 * origin's (here) are not the edge's.
 *
 *   node --import tsx bench/scenarios/steady-misses.ts [--quick] [--ref HEAD] [--root /abs/checkout] [--rounds N] [--clients N] [--quiet-wait S]
 */
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { connect, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { startOrigin, type Origin } from '../origin/origin-server.ts'
import { isHit, type BenchTarget } from '../lib/bench-target.ts'
import { REPO_ROOT, startIpcWorker, type IpcWorker } from '../lib/child-server.ts'
import { startEdgeTarget } from '../lib/start-target.ts'
import { exportRef, type EdgeSnapshot } from '../lib/edge-snapshot.ts'
import { httpGet } from '../lib/http-get.ts'
import { waitForQuiet } from '../lib/quiet.ts'
import { ResponseReader } from '../lib/response-reader.ts'
import { cpuSecondsBetween } from '../lib/proc-cpu.ts'
import { cpuSecondsPerGb, median, percentile } from '../lib/stats.ts'
import { TimedClient } from '../lib/timed-client.ts'

/** 2 MiB rounded down to whole 188-byte TS packets (the edge refuses partial packets). */
export const MISS_BODY_BYTES = Math.floor(2 * 1024 * 1024 / 188) * 188
/** Small objects (8 TS packets) missed alongside the segments in (a)'s mixed window. */
export const SMALL_BODY_BYTES = 8 * 188
/** Live segments: about 4 MiB, streamed by the origin over {@link LIVE_SEGMENT_MS}. */
export const LIVE_BODY_BYTES = Math.floor(4 * 1024 * 1024 / 188) * 188
export const LIVE_SEGMENT_MS = 2000
/** A new live segment starts this often, so two fills overlap (and their joiners). */
export const LIVE_SEGMENT_EVERY_MS = 1000
const MEMORY_BYTES = 256 * 2 ** 20
const SMALL_CLIENTS = 16
/** Before each live event: the edges finish storing (a)'s last fills. */
const SETTLE_MS = 1000
const SELF = fileURLToPath(import.meta.url)

/** Settings of {@link runSteadyMisses}. */
export interface SteadyMissesOptions {
  readonly quick: boolean
  /** Interleaved rounds (default: 1 quick, 2 full). */
  readonly rounds?: number | undefined
  /** Keep-alive clients in (a) (default 32). */
  readonly clients?: number | undefined
  /** Checkout whose edge runs (default: this one). */
  readonly edgeRoot?: string | undefined
  /** Also run the edge as committed at this git ref (git archive into a temp dir). */
  readonly ref?: string | undefined
  /** Body of each (a) segment miss (default {@link MISS_BODY_BYTES}); whole 188-byte packets. */
  readonly missBodyBytes?: number | undefined
  /** Body of each (b) live segment (default {@link LIVE_BODY_BYTES}); whole 188-byte packets. */
  readonly liveBodyBytes?: number | undefined
  /** Viewers joining each live segment (default 60). */
  readonly joinsPerSegment?: number | undefined
  /** Multiplies every window, pause and live timing (default 1; tests shrink a run with 0.1). */
  readonly timeScale?: number | undefined
  readonly beforeWindow?: () => Promise<unknown>
  readonly log: (line: string) => void
}

/** One variant's (a) window. */
export interface MissWindow {
  readonly variant: string
  readonly round: number
  /** Keep-alive clients looping over distinct small misses at the same time (0: segments only). */
  readonly smallClients: number
  /** Small misses per second, and their total p99 (NaN without small clients). */
  readonly smallReqPerS: number
  readonly smallTotalP99Ms: number
  readonly seconds: number
  readonly requests: number
  readonly mbPerS: number
  readonly reqPerS: number
  readonly ttfbP50Ms: number
  readonly ttfbP99Ms: number
  readonly totalP50Ms: number
  readonly totalP99Ms: number
  readonly edgeCpuSPerGb: number
  /** Requests the origin saw from start to stop of the load, and requests the clients sent. */
  readonly originRequests: number
  readonly clientRequests: number
  /** Responses that said hit (should be 0) and failed ones. */
  readonly hits: number
  readonly errors: number
}

/** One variant's (b) event. */
export interface LiveWindow {
  readonly variant: string
  readonly round: number
  readonly clients: number
  readonly complete: number
  readonly ttfbP50Ms: number
  readonly ttfbP99Ms: number
  readonly totalP50Ms: number
  readonly totalP99Ms: number
  /** How long after the origin's last byte of its segment a viewer had the whole segment. */
  readonly lagP50Ms: number
  readonly lagP99Ms: number
  /** Median per-viewer MB/s (body bytes over its total time). */
  readonly clientMbPerSP50: number
  /** All body bytes over the event's wall time. */
  readonly mbPerS: number
  readonly edgeCpuSPerGb: number
  readonly originRequests: number
  readonly segments: number
}

/** What the scenario returns. */
export interface SteadyMissesResult {
  readonly scenario: 'steady-misses'
  readonly config: Record<string, number | string | boolean>
  readonly variants: readonly string[]
  readonly misses: readonly MissWindow[]
  readonly live: readonly LiveWindow[]
}

interface Variant {
  readonly name: string
  readonly target: BenchTarget
}

/** Runs the scenario; every process it starts is stopped before it returns. */
export async function runSteadyMisses (o: SteadyMissesOptions): Promise<SteadyMissesResult> {
  const rounds = o.rounds ?? (o.quick ? 1 : 2)
  const clients = o.clients ?? 32
  const missBodyBytes = o.missBodyBytes ?? MISS_BODY_BYTES
  const liveBodyBytes = o.liveBodyBytes ?? LIVE_BODY_BYTES
  const joinsPerSegment = o.joinsPerSegment ?? 60
  const scale = o.timeScale ?? 1
  if (!Number.isSafeInteger(rounds) || rounds < 1) throw new TypeError(`Expected options.rounds to be a positive integer, got ${String(o.rounds)}`)
  if (!Number.isSafeInteger(clients) || clients < 1) throw new TypeError(`Expected options.clients to be a positive integer, got ${String(o.clients)}`)
  if (!isWholePackets(missBodyBytes)) throw new TypeError(`Expected options.missBodyBytes to be a positive multiple of 188 (whole TS packets), got ${String(o.missBodyBytes)}`)
  if (!isWholePackets(liveBodyBytes)) throw new TypeError(`Expected options.liveBodyBytes to be a positive multiple of 188 (whole TS packets), got ${String(o.liveBodyBytes)}`)
  if (!Number.isSafeInteger(joinsPerSegment) || joinsPerSegment < 1) throw new TypeError(`Expected options.joinsPerSegment to be a positive integer, got ${String(o.joinsPerSegment)}`)
  if (!(Number.isFinite(scale) && scale > 0)) throw new TypeError(`Expected options.timeScale to be a positive number, got ${String(o.timeScale)}`)
  const warmupMs = 1000 * scale
  const measureMs = (o.quick ? 3000 : 5000) * scale
  const liveSegments = o.quick ? 3 : 4
  const live: LiveTiming = { bodyBytes: liveBodyBytes, segmentMs: LIVE_SEGMENT_MS * scale, everyMs: LIVE_SEGMENT_EVERY_MS * scale, joinsPerSegment, afterMs: 500 * scale }
  const origin = await startOrigin()
  const load = startIpcWorker<LoadRequest, LoadReply>(SELF)
  const variants: Variant[] = []
  let snapshot: EdgeSnapshot | undefined
  const misses: MissWindow[] = []
  const events: LiveWindow[] = []
  try {
    const root = o.edgeRoot ?? REPO_ROOT
    const startEdge = (edgeRoot: string, env?: Readonly<Record<string, string>>): Promise<BenchTarget> =>
      startEdgeTarget({ originUrl: origin.url, memoryMaxBytes: MEMORY_BYTES, edgeRoot, ...(env === undefined ? {} : { env }) })
    variants.push({ name: 'edge', target: await startEdge(root) })
    variants.push({ name: 'edge, defer 0', target: await startEdge(root, { BENCH_PACER_DEFER_MS: '0' }) })
    if (o.ref !== undefined) {
      snapshot = await exportRef(REPO_ROOT, o.ref)
      variants.push({ name: `${o.ref} (${snapshot.commit.slice(0, 7)})`, target: await startEdge(snapshot.dir) })
    }
    const runId = randomBytes(4).toString('hex')
    const missPath = `/synthetic/steady-miss-${runId}-${missBodyBytes}.ts`
    const smallPath = `/synthetic/steady-small-${runId}-${SMALL_BODY_BYTES}.ts`
    await prebuild(origin, missPath, missBodyBytes)
    await prebuild(origin, smallPath, SMALL_BODY_BYTES)
    o.log(`steady-misses: ${variants.map((v) => `${v.name} ${v.target.url}`).join(', ')}`)
    o.log(`  (a) ${clients} keep-alive clients, distinct ${missBodyBytes}-byte misses, ${warmupMs} ms warm-up + ${measureMs} ms; (b) ${liveSegments} segments of ${liveBodyBytes} bytes over ${live.segmentMs} ms, one every ${live.everyMs} ms, ${joinsPerSegment} viewers joining each over its fill`)
    // Round 0 warms the JIT of the edges and of the load process; it is not reported.
    for (let round = 0; round <= rounds; round++) {
      const tag = round === 0 ? 'warm-up' : `round ${round}`
      // Rotated each round, so no variant always runs right after another's heaviest window.
      const order = variants.map((_, i) => variants[(i + round) % variants.length]!)
      for (const v of order) {
        if (round > 0) await o.beforeWindow?.()
        for (const small of [0, SMALL_CLIENTS]) {
          const w = await missWindow(v, round, origin, load, { clients, path: missPath, small, smallPath, prefix: `${runId}-${round}-${variants.indexOf(v)}-${small}`, warmupMs: round === 0 ? 500 * scale : warmupMs, measureMs: round === 0 ? 1000 * scale : measureMs, storeMs: 200 * scale })
          o.log(`  ${tag} (a${small === 0 ? '' : ' + small'}) ${v.name}: ${w.mbPerS.toFixed(0)} MB/s, ${w.reqPerS.toFixed(0)} req/s, TTFB p50 ${w.ttfbP50Ms.toFixed(1)} p99 ${w.ttfbP99Ms.toFixed(1)} ms, total p50 ${w.totalP50Ms.toFixed(1)} p99 ${w.totalP99Ms.toFixed(1)} ms, edge CPU ${w.edgeCpuSPerGb.toFixed(2)} s/GB, origin ${w.originRequests}/${w.clientRequests} requests, hits ${w.hits}, errors ${w.errors}${small === 0 ? '' : `; small ${w.smallReqPerS.toFixed(0)} req/s, total p99 ${w.smallTotalP99Ms.toFixed(1)} ms`}`)
          if (round > 0) misses.push(w)
        }
      }
      for (const v of order) {
        await sleep(SETTLE_MS * scale)
        if (round > 0) await o.beforeWindow?.()
        const segments = round === 0 ? 2 : liveSegments
        const w = await liveEvent(v, round, origin, load, live, { segments, prefix: `${runId}-${round}-${variants.indexOf(v)}` })
        o.log(`  ${tag} (b) ${v.name}: complete ${w.complete}/${w.clients}, TTFB p50 ${w.ttfbP50Ms.toFixed(1)} p99 ${w.ttfbP99Ms.toFixed(1)} ms, total p50 ${w.totalP50Ms.toFixed(0)} p99 ${w.totalP99Ms.toFixed(0)} ms, after origin end p50 ${w.lagP50Ms.toFixed(0)} p99 ${w.lagP99Ms.toFixed(0)} ms, viewer ${w.clientMbPerSP50.toFixed(1)} MB/s, all ${w.mbPerS.toFixed(0)} MB/s, edge CPU ${w.edgeCpuSPerGb.toFixed(2)} s/GB, origin ${w.originRequests}/${w.segments}`)
        if (round > 0) events.push(w)
      }
    }
  } finally {
    await load.stop()
    await Promise.all(variants.map((v) => v.target.stop()))
    await snapshot?.remove()
    await origin.close()
  }
  return {
    scenario: 'steady-misses',
    config: { clients, missBodyBytes, measureMs, liveSegments, liveBodyBytes, liveSegmentMs: live.segmentMs, joinsPerSegment, rounds, ...scale === 1 ? {} : { timeScale: scale } },
    variants: variants.map((v) => v.name),
    misses,
    live: events,
  }
}

function isWholePackets (bytes: number): boolean {
  return Number.isSafeInteger(bytes) && bytes > 0 && bytes % 188 === 0
}

/** (b)'s settings, scaled. */
interface LiveTiming {
  readonly bodyBytes: number
  /** The origin streams each segment over this long; viewers join over the same span. */
  readonly segmentMs: number
  readonly everyMs: number
  readonly joinsPerSegment: number
  /** Pause after an event, while the edge stores the last segments. */
  readonly afterMs: number
}

/** Builds the synthetic body in the origin first, so its one-off cost is in nobody's times. */
async function prebuild (origin: Origin, path: string, bytes: number): Promise<void> {
  const direct = await httpGet(origin.url + path)
  if (direct.status !== 200 || direct.body.length !== bytes) throw new Error(`origin pre-build of ${path}: ${direct.status}, ${direct.body.length} bytes`)
}

async function missWindow (v: Variant, round: number, origin: Origin, load: IpcWorker<LoadRequest, LoadReply>, w: { clients: number, path: string, small: number, smallPath: string, prefix: string, warmupMs: number, measureMs: number, storeMs: number }): Promise<MissWindow> {
  const origin0 = origin.count(w.path)
  const groups = [{ path: w.path, clients: w.clients }, ...w.small === 0 ? [] : [{ path: w.smallPath, clients: w.small }]]
  await load.call({ kind: 'misses-start', url: v.target.url, groups, prefix: w.prefix }, 20_000)
  await sleep(w.warmupMs)
  const cpu0 = v.target.cpu()
  // NaN (no samples) crosses IPC as null.
  const reports = (await load.call({ kind: 'misses-measure', ms: w.measureMs }, w.measureMs + 20_000) as MissReports).groups
    .map((g) => Object.fromEntries(Object.entries(g).map(([k, x]) => [k, x ?? Number.NaN])) as unknown as MissReport)
  const cpuSeconds = cpuSecondsBetween(cpu0, v.target.cpu())
  const stopped = await load.call({ kind: 'misses-stop' }, 30_000) as MissStopReport
  await sleep(w.storeMs) // the edge finishes storing the last fills
  return summariseMissWindow({ variant: v.name, round, smallClients: w.small, reports, cpuSeconds, originRequests: origin.count(w.path) - origin0, stopped })
}

/**
 * One (a) window's figures from the load's reports: `reports[0]` is the segment clients',
 * `reports[1]` (when there were small-miss clients) theirs. Edge CPU is charged to the bytes of both.
 */
export function summariseMissWindow (w: { readonly variant: string, readonly round: number, readonly smallClients: number, readonly reports: readonly MissReport[], readonly cpuSeconds: number, readonly originRequests: number, readonly stopped: MissStopReport }): MissWindow {
  const m = w.reports[0]
  if (m === undefined) throw new TypeError('Expected a report of the segment clients, got none')
  const small = w.reports[1]
  const seconds = m.elapsedMs / 1000
  return {
    variant: w.variant,
    round: w.round,
    smallClients: w.smallClients,
    smallReqPerS: small === undefined ? Number.NaN : small.requests / (small.elapsedMs / 1000),
    smallTotalP99Ms: small?.totalP99Ms ?? Number.NaN,
    seconds,
    requests: m.requests,
    mbPerS: m.bytes / 1e6 / seconds,
    reqPerS: m.requests / seconds,
    ttfbP50Ms: m.ttfbP50Ms,
    ttfbP99Ms: m.ttfbP99Ms,
    totalP50Ms: m.totalP50Ms,
    totalP99Ms: m.totalP99Ms,
    edgeCpuSPerGb: cpuSecondsPerGb(w.cpuSeconds, w.reports.reduce((sum, r) => sum + r.bytes, 0)),
    originRequests: w.originRequests,
    clientRequests: w.stopped.sent,
    hits: w.stopped.hits,
    errors: w.stopped.errors,
  }
}

async function liveEvent (v: Variant, round: number, origin: Origin, load: IpcWorker<LoadRequest, LoadReply>, live: LiveTiming, w: { segments: number, prefix: string }): Promise<LiveWindow> {
  const paths = Array.from({ length: w.segments }, (_, i) => `/synthetic/steady-live-${w.prefix}-s${i}-${live.bodyBytes}.ts`)
  for (const path of paths) await prebuild(origin, path, live.bodyBytes)
  const before = paths.map((p) => origin.count(p))
  for (const path of paths) origin.setFault(path, { bytesPerSecond: Math.round(live.bodyBytes / (live.segmentMs / 1000)) })
  const cpu0 = v.target.cpu()
  const started = performance.now()
  const segments = paths.map((path, i) => ({ path, atMs: i * live.everyMs }))
  const r = await load.call({ kind: 'live', url: v.target.url, segments, joinsPerSegment: live.joinsPerSegment, spreadMs: live.segmentMs, segmentMs: live.segmentMs, timeoutMs: 40_000 }, 60_000) as LiveReport
  const wallS = (performance.now() - started) / 1000
  const cpuSeconds = cpuSecondsBetween(cpu0, v.target.cpu())
  origin.clearFaults()
  await sleep(live.afterMs)
  const originRequests = paths.reduce((s, p, i) => s + origin.count(p) - before[i]!, 0)
  return summariseLiveEvent({ variant: v.name, round, clients: r.clients, wallS, cpuSeconds, originRequests, segments: w.segments })
}

/**
 * One (b) event's figures from its viewers: one that never had its whole segment counts as
 * infinitely slow in the percentiles and as 0 MB/s in the viewer median.
 */
export function summariseLiveEvent (e: { readonly variant: string, readonly round: number, readonly clients: readonly LiveClient[], readonly wallS: number, readonly cpuSeconds: number, readonly originRequests: number, readonly segments: number }): LiveWindow {
  const c = e.clients
  const inf = (x: number | undefined): number => x ?? Number.POSITIVE_INFINITY
  const bytes = c.reduce((s, x) => s + x.bodyBytes, 0)
  return {
    variant: e.variant,
    round: e.round,
    clients: c.length,
    complete: c.filter((x) => x.totalMs !== undefined).length,
    ttfbP50Ms: percentile(c.map((x) => inf(x.firstByteMs)), 50),
    ttfbP99Ms: percentile(c.map((x) => inf(x.firstByteMs)), 99),
    totalP50Ms: percentile(c.map((x) => inf(x.totalMs)), 50),
    totalP99Ms: percentile(c.map((x) => inf(x.totalMs)), 99),
    lagP50Ms: percentile(c.map((x) => inf(x.lagMs)), 50),
    lagP99Ms: percentile(c.map((x) => inf(x.lagMs)), 99),
    clientMbPerSP50: median(c.map((x) => x.totalMs === undefined ? 0 : x.bodyBytes / 1e3 / x.totalMs)),
    mbPerS: bytes / 1e6 / e.wallS,
    edgeCpuSPerGb: cpuSecondsPerGb(e.cpuSeconds, bytes),
    originRequests: e.originRequests,
    segments: e.segments,
  }
}

/** Medians per variant of (a) and (b) as a markdown section (bench/RESULTS.md "extra"). */
export function renderSteadyMissesMarkdown (r: SteadyMissesResult): string {
  const med = <T>(rows: readonly T[], pick: (x: T) => number): number => median(rows.map(pick))
  const lines = [
    '## Steady misses (shared-fill pacer under non-herd traffic)',
    '',
    `(a) ${String(r.config.clients)} keep-alive clients, each request a distinct ${String(r.config.missBodyBytes)}-byte miss from a fast origin; ${String(r.config.rounds)} interleaved round(s), medians.`,
    '',
    `Second row per edge: ${SMALL_CLIENTS} more clients loop over distinct ${SMALL_BODY_BYTES}-byte misses meanwhile (segment figures; small misses per second in the last column).`,
    '',
    '| edge | small-miss clients | MB/s | req/s | TTFB p50 / p99 ms | total p50 / p99 ms | edge CPU s/GB | origin / client segment requests | small req/s |',
    '|---|---:|---:|---:|---|---|---:|---|---:|',
  ]
  for (const name of r.variants) {
    for (const small of [...new Set(r.misses.map((x) => x.smallClients))]) {
      const m = r.misses.filter((x) => x.variant === name && x.smallClients === small)
      lines.push(`| ${name} | ${small} | ${med(m, (x) => x.mbPerS).toFixed(0)} | ${med(m, (x) => x.reqPerS).toFixed(0)} | ${med(m, (x) => x.ttfbP50Ms).toFixed(1)} / ${med(m, (x) => x.ttfbP99Ms).toFixed(1)} | ${med(m, (x) => x.totalP50Ms).toFixed(1)} / ${med(m, (x) => x.totalP99Ms).toFixed(1)} | ${med(m, (x) => x.edgeCpuSPerGb).toFixed(2)} | ${m.map((x) => `${x.originRequests}/${x.clientRequests}`).join(', ')} | ${small === 0 ? '' : med(m, (x) => x.smallReqPerS).toFixed(0)} |`)
    }
  }
  lines.push('', `(b) live: ${String(r.config.liveSegments)} segments of ${String(r.config.liveBodyBytes)} bytes, each streamed by the origin over ${String(r.config.liveSegmentMs)} ms, one every ${LIVE_SEGMENT_EVERY_MS * Number(r.config.timeScale ?? 1)} ms, ${String(r.config.joinsPerSegment)} viewers joining each at a steady rate over its fill.`, '',
    '| edge | complete | TTFB p50 / p99 ms | total p50 / p99 ms | done after origin end p50 / p99 ms | viewer MB/s p50 | all MB/s | edge CPU s/GB | origin requests |',
    '|---|---|---|---|---|---:|---:|---:|---|')
  for (const name of r.variants) {
    const l = r.live.filter((x) => x.variant === name)
    lines.push(`| ${name} | ${l.map((x) => `${x.complete}/${x.clients}`).join(', ')} | ${med(l, (x) => x.ttfbP50Ms).toFixed(1)} / ${med(l, (x) => x.ttfbP99Ms).toFixed(1)} | ${med(l, (x) => x.totalP50Ms).toFixed(0)} / ${med(l, (x) => x.totalP99Ms).toFixed(0)} | ${med(l, (x) => x.lagP50Ms).toFixed(0)} / ${med(l, (x) => x.lagP99Ms).toFixed(0)} | ${med(l, (x) => x.clientMbPerSP50).toFixed(1)} | ${med(l, (x) => x.mbPerS).toFixed(0)} | ${med(l, (x) => x.edgeCpuSPerGb).toFixed(2)} | ${l.map((x) => `${x.originRequests}/${x.segments}`).join(', ')} |`)
  }
  lines.push('')
  return lines.join('\n')
}

// ---- the load process (this file over IPC) -----------------------------------------

type LoadRequest =
  | { readonly kind: 'misses-start', readonly url: string, readonly groups: ReadonlyArray<{ readonly path: string, readonly clients: number }>, readonly prefix: string }
  | { readonly kind: 'misses-measure', readonly ms: number }
  | { readonly kind: 'misses-stop' }
  | { readonly kind: 'live', readonly url: string, readonly segments: ReadonlyArray<{ readonly path: string, readonly atMs: number }>, readonly joinsPerSegment: number, readonly spreadMs: number, readonly segmentMs: number, readonly timeoutMs: number }

/** What the load reports of one client group's (a) window (NaN percentiles cross IPC as null). */
export interface MissReport {
  readonly elapsedMs: number
  readonly requests: number
  readonly bytes: number
  readonly ttfbP50Ms: number
  readonly ttfbP99Ms: number
  readonly totalP50Ms: number
  readonly totalP99Ms: number
}

interface MissReports { readonly groups: readonly MissReport[] }

/** Requests the segment clients sent, and hits and failures of every group, when (a)'s load stops. */
export interface MissStopReport { readonly sent: number, readonly hits: number, readonly errors: number }

/** One (b) viewer, as the load reports it. */
export interface LiveClient {
  readonly firstByteMs: number | undefined
  readonly totalMs: number | undefined
  /** Done time minus the origin's planned end of the segment. */
  readonly lagMs: number | undefined
  readonly bodyBytes: number
  readonly error: string | undefined
}

interface LiveReport { readonly clients: readonly LiveClient[] }

type LoadReply = { readonly ok: true } | MissReports | MissStopReport | LiveReport

/** (a): keep-alive clients, each sending its next distinct miss when the last one ended. */
class MissLoad {
  #running = true
  #sent = 0
  #hits = 0
  #errors = 0
  #bytes = 0
  #ttfb: number[] = []
  #total: number[] = []
  #sockets: Socket[] = []
  #inFlight = 0
  #idle: (() => void) | undefined

  constructor (readonly url: URL, readonly path: string, readonly prefix: string) {}

  async start (clients: number): Promise<void> {
    const port = Number(this.url.port)
    this.#sockets = await Promise.all(Array.from({ length: clients }, () => new Promise<Socket>((resolve, reject) => {
      const s = connect({ host: this.url.hostname, port, noDelay: true })
      s.once('connect', () => { s.off('error', reject); resolve(s) })
      s.once('error', reject)
    })))
    for (const [i, s] of this.#sockets.entries()) this.#loop(s, i)
  }

  measure (ms: number): Promise<MissReport> {
    this.#bytes = 0
    this.#ttfb = []
    this.#total = []
    const t0 = performance.now()
    return sleep(ms).then(() => {
      const elapsedMs = performance.now() - t0
      return { elapsedMs, requests: this.#total.length, bytes: this.#bytes, ttfbP50Ms: percentile(this.#ttfb, 50), ttfbP99Ms: percentile(this.#ttfb, 99), totalP50Ms: percentile(this.#total, 50), totalP99Ms: percentile(this.#total, 99) }
    })
  }

  async stop (): Promise<MissStopReport> {
    this.#running = false
    if (this.#inFlight > 0) await new Promise<void>((resolve) => { this.#idle = resolve })
    for (const s of this.#sockets) s.destroy()
    return { sent: this.#sent, hits: this.#hits, errors: this.#errors }
  }

  #loop (socket: Socket, client: number): void {
    let seq = 0
    let reader: ResponseReader | undefined
    const next = (): void => {
      if (!this.#running) {
        if (this.#inFlight === 0) this.#idle?.()
        return
      }
      this.#sent++
      this.#inFlight++
      reader = new ResponseReader(performance.now())
      socket.write(`GET ${this.path}?u=${this.prefix}-${client}-${seq++} HTTP/1.1\r\nHost: ${this.url.host}\r\nUser-Agent: streamedge-bench-steady\r\n\r\n`)
    }
    const settle = (): void => {
      this.#inFlight--
      reader = undefined
      next()
    }
    socket.on('data', (chunk: Buffer) => {
      const r = reader
      if (r === undefined) return
      const now = performance.now()
      try {
        this.#bytes += r.feed(chunk, now)
      } catch {
        // a malformed head: this connection stops ('close' counts the error), the others go on
        socket.destroy()
        return
      }
      if (r.doneAt === undefined) return
      if (r.head?.status !== 200) this.#errors++
      if (r.head !== undefined && isHit('cache-status', r.head)) this.#hits++
      this.#ttfb.push((r.firstByteAt ?? now) - r.sentAt)
      this.#total.push(r.doneAt - r.sentAt)
      settle()
    })
    socket.on('error', () => {})
    socket.once('close', () => {
      if (reader === undefined) return
      this.#errors++
      this.#inFlight--
      reader = undefined
      if (this.#inFlight === 0 && !this.#running) this.#idle?.()
    })
    next()
  }
}

/** (b): viewers joining each segment at a steady rate over its fill, one connection each. */
async function runLive (req: Extract<LoadRequest, { kind: 'live' }>): Promise<LiveReport> {
  const url = new URL(req.url)
  const port = Number(url.port)
  const t0 = performance.now()
  const joins: Array<Promise<LiveClient>> = []
  const plan = req.segments.flatMap((seg) => Array.from({ length: req.joinsPerSegment }, (_, j) => ({ seg, atMs: seg.atMs + j * req.spreadMs / req.joinsPerSegment })))
  plan.sort((a, b) => a.atMs - b.atMs)
  for (const p of plan) {
    const wait = t0 + p.atMs - performance.now()
    if (wait > 1) await sleep(wait)
    joins.push(watch(url, port, p.seg.path, req.timeoutMs, t0 + p.seg.atMs + req.segmentMs))
  }
  return { clients: await Promise.all(joins) }
}

/** One viewer: its own connection (Connection: close), the request written once connected. */
async function watch (url: URL, port: number, path: string, timeoutMs: number, originEndAt: number): Promise<LiveClient> {
  const socket = connect({ host: url.hostname, port, noDelay: true })
  const client = new TimedClient(socket)
  const timer = setTimeout(() => client.abort('timeout'), timeoutMs)
  socket.once('connect', () => client.send(`GET ${path} HTTP/1.1\r\nHost: ${url.host}\r\nUser-Agent: streamedge-bench-steady\r\nConnection: close\r\n\r\n`))
  await client.done
  clearTimeout(timer)
  socket.destroy()
  const r = client.result()
  const doneAt = client.doneAt
  return { firstByteMs: r.firstByteMs, totalMs: r.totalMs, lagMs: doneAt === undefined ? undefined : doneAt - originEndAt, bodyBytes: r.bodyBytes, error: r.error }
}

function serveLoad (): void {
  let misses: MissLoad[] = []
  const handle = async (req: LoadRequest): Promise<LoadReply> => {
    switch (req.kind) {
      case 'misses-start':
        misses = req.groups.map((g, i) => new MissLoad(new URL(req.url), g.path, `${req.prefix}-g${i}`))
        await Promise.all(misses.map((m, i) => m.start(req.groups[i]!.clients)))
        return { ok: true }
      case 'misses-measure':
        return { groups: await Promise.all(misses.map((m) => m.measure(req.ms))) }
      case 'misses-stop': {
        const r = await Promise.all(misses.map((m) => m.stop()))
        misses = []
        return { sent: r[0]?.sent ?? 0, hits: r.reduce((s, x) => s + x.hits, 0), errors: r.reduce((s, x) => s + x.errors, 0) }
      }
      case 'live':
        return await runLive(req)
    }
  }
  process.on('message', (message) => {
    handle(message as LoadRequest).then((reply) => process.send!(reply), (err: unknown) => {
      process.stderr.write(`steady-misses load failed: ${String(err)}\n`)
      process.exit(1)
    })
  })
  process.once('disconnect', () => process.exit(0))
}

/** The standalone script's flags (see the file's comment); rounds and clients are checked by {@link runSteadyMisses}. */
export interface SteadyMissesArgs {
  readonly quick: boolean
  readonly rounds: number | undefined
  readonly clients: number | undefined
  readonly edgeRoot: string | undefined
  readonly ref: string | undefined
  /** Wait up to this long for an idle machine before each measured window (0: do not wait). */
  readonly quietWaitS: number
}

/** Reads the standalone script's flags from `argv` (throws TypeError on a bad --quiet-wait). */
export function parseSteadyMissesArgs (argv: readonly string[]): SteadyMissesArgs {
  const flag = (name: string): string | undefined => {
    const at = argv.indexOf(name)
    return at === -1 ? undefined : argv[at + 1]
  }
  const rounds = flag('--rounds')
  const clients = flag('--clients')
  const quietWaitS = Number(flag('--quiet-wait') ?? 0)
  if (!(quietWaitS >= 0)) throw new TypeError(`Expected --quiet-wait to be a non-negative number of seconds, got ${String(flag('--quiet-wait'))}`)
  return {
    quick: argv.includes('--quick'),
    rounds: rounds === undefined ? undefined : Number(rounds),
    clients: clients === undefined ? undefined : Number(clients),
    edgeRoot: flag('--root'),
    ref: flag('--ref'),
    quietWaitS,
  }
}

if (process.argv[1] !== undefined && SELF === process.argv[1]) {
  if (process.send !== undefined) {
    serveLoad()
  } else {
    const { quietWaitS, ...args } = parseSteadyMissesArgs(process.argv)
    const result = await runSteadyMisses({
      beforeWindow: () => quietWaitS > 0 ? waitForQuiet({ maxWaitMs: quietWaitS * 1000 }) : Promise.resolve(),
      ...args,
      log: (line) => process.stderr.write(`${line}\n`),
    })
    process.stdout.write(renderSteadyMissesMarkdown(result))
  }
}
