/**
 * Scenario "hls-audience" (issue 6): a simulated audience watching HLS through the real
 * cache nodes, with and without next-segment prefetch.
 *
 *   origin (VOD catalogue + one live channel, with a first-byte latency)
 *     → 1 shield → 2 edges (HLS runtime on both tiers) → players
 *
 * Players follow playlists like a real client: VOD players pick a title by popularity
 * (Zipf), a rendition (mostly the top one), fetch the master and media playlists, then
 * segments one after another at `speed` × real time after a short start-up buffer; live
 * players poll their media playlist every half target duration and fetch each new segment.
 * Reported per run: edge hit ratio (of player segment requests, from Cache-Status), shield
 * hit ratio (of the shield's lookups), origin requests, and player segment time-to-first-byte
 * p50/p99; plus prefetch counters.
 *
 * Everything runs in this process on 127.0.0.1 (the players in a worker thread, so their own
 * work does not queue behind the cache nodes); it measures cache behaviour, not throughput.
 *
 *   npx tsx bench/scenarios/hls-audience.ts [--quick]
 */
import { once } from 'node:events'
import { mkdtemp, rm } from 'node:fs/promises'
import http, { type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { RunningCacheNode } from '../../edge/cache-node.ts'
import { HlsRuntime } from '../../edge/hls/hls-runtime.ts'
import type { BreakerSettings } from '../../edge/proxy/circuit-breaker.ts'
import { UpstreamChain } from '../../edge/proxy/upstream-chain.ts'
import { HttpUpstream, type Upstream } from '../../edge/proxy/upstream.ts'
import { silentLogger } from '../../lib/log.ts'
import { OriginPool } from '../../shield/origin-pool.ts'
import { startInProcessNode } from '../lib/in-process-node.ts'
import { percentile } from '../lib/stats.ts'
import { syntheticBody } from '../origin/synthetic-body.ts'
import { runPlayers, runPlayersInWorker } from './hls-audience-players.ts'

/** Settings of {@link run}; every field has a default. */
export interface HlsAudienceOptions {
  /** Players in total (default 500). */
  readonly players?: number
  /** Share of players watching the live channel, in percent (default 20). */
  readonly livePercent?: number
  /** VOD titles in the catalogue (default 20). */
  readonly titles?: number
  /** Segments per VOD rendition (default 30). */
  readonly segmentsPerTitle?: number
  /** Media seconds per segment (default 4). */
  readonly segmentSeconds?: number
  /** Playback speed: 4 means a 4 s segment is consumed every second (default 4). */
  readonly speed?: number
  /** Wall-clock length of a run in ms (default 30000). */
  readonly durationMs?: number
  /** Players start evenly spread over this many ms (default 5000). */
  readonly rampMs?: number
  /** Origin delay before each response head, in ms (default 30). */
  readonly originLatencyMs?: number
  /** Segments prefetched ahead in the prefetch run (default 2). */
  readonly prefetchSegments?: number
  /** Zipf exponent of title popularity (default 1). */
  readonly zipfExponent?: number
  readonly seed?: number
  /** Run the players in a worker thread, off the cache nodes' event loop (default true). */
  readonly playersInWorker?: boolean
  readonly log?: (line: string) => void
}

/** One run of the audience over fresh caches. */
export interface HlsAudienceRun {
  readonly prefetchSegments: number
  readonly players: number
  readonly segmentRequests: number
  readonly playlistRequests: number
  readonly failed: number
  /** Failed player requests by status (`error <code>` when the connection failed). */
  readonly failures: Readonly<Record<string, number>>
  /** Player segment requests answered from the edge cache (Cache-Status hit). */
  readonly edgeHitRatio: number
  /** Shield lookups that hit (requests from edges, prefetches included). */
  readonly shieldHitRatio: number
  readonly originRequests: number
  readonly originSegmentRequests: number
  readonly originPlaylistRequests: number
  readonly segmentTtfbP50Ms: number
  readonly segmentTtfbP99Ms: number
  readonly prefetched: number
  readonly prefetchHits: number
  readonly prefetchWasted: number
  readonly wallSeconds: number
}

/** What {@link run} reports. */
export interface HlsAudienceResult {
  readonly scenario: 'hls-audience'
  readonly config: Required<Omit<HlsAudienceOptions, 'log'>> & { readonly edges: number, readonly shields: number }
  readonly withoutPrefetch: HlsAudienceRun
  readonly withPrefetch: HlsAudienceRun
}

type Config = HlsAudienceResult['config']

const EDGES = 2
const TIMEOUTS = { connectTimeoutMs: 3000, firstByteTimeoutMs: 15_000, idleTimeoutMs: 15_000, keepAliveTimeoutMs: 30_000 }
const BREAKER: BreakerSettings = { failureThreshold: 20, errorRatePercent: 90, minRequests: 100, windowMs: 10_000, coolDownMs: 1000 }
const RENDITIONS = [{ name: 'hi', bandwidth: 1_200_000, packets: 600 }, { name: 'lo', bandwidth: 500_000, packets: 250 }] as const
const LIVE_WINDOW = 6

/** Runs the audience twice (without, then with prefetch); every server and temp dir is gone when it returns. */
export async function run (options: HlsAudienceOptions = {}): Promise<HlsAudienceResult> {
  const config: Config = {
    players: options.players ?? 500,
    livePercent: options.livePercent ?? 20,
    titles: options.titles ?? 20,
    segmentsPerTitle: options.segmentsPerTitle ?? 30,
    segmentSeconds: options.segmentSeconds ?? 4,
    speed: options.speed ?? 4,
    durationMs: options.durationMs ?? 30_000,
    rampMs: options.rampMs ?? 5000,
    originLatencyMs: options.originLatencyMs ?? 30,
    prefetchSegments: options.prefetchSegments ?? 2,
    zipfExponent: options.zipfExponent ?? 1,
    seed: options.seed ?? 1,
    playersInWorker: options.playersInWorker ?? true,
    edges: EDGES,
    shields: 1,
  }
  const log = options.log ?? (() => {})
  const withoutPrefetch = await audience(config, 0, log)
  const withPrefetch = await audience(config, config.prefetchSegments, log)
  return { scenario: 'hls-audience', config, withoutPrefetch, withPrefetch }
}

interface Stack {
  readonly origin: BenchOrigin
  readonly shield: RunningCacheNode
  readonly edges: readonly RunningCacheNode[]
  readonly runtimes: readonly HlsRuntime[]
  close (): Promise<void>
}

async function audience (config: Config, prefetchSegments: number, log: (line: string) => void): Promise<HlsAudienceRun> {
  const stack = await startStack(config, prefetchSegments)
  try {
    log(`hls-audience: ${config.players} players (${config.livePercent}% live) on ${EDGES} edges → shield → origin, prefetch ${prefetchSegments}, ${config.durationMs / 1000} s at ${config.speed}× speed`)
    const startedMs = performance.now()
    const edgeUrls = stack.edges.map((e) => e.url)
    const samples = config.playersInWorker ? await runPlayersInWorker(edgeUrls, config) : await runPlayers(edgeUrls, config)
    const wallSeconds = (performance.now() - startedMs) / 1000
    const shieldHits = await stack.shield.metrics.lookups.value({ result: 'hit' })
    const shieldLookups = await stack.shield.metrics.lookups.value({})
    let prefetched = 0
    let prefetchHits = 0
    let prefetchWasted = 0
    for (const r of stack.runtimes.slice(0, EDGES)) {
      prefetched += await r.metrics.prefetches.value({ outcome: 'filled' })
      prefetchHits += await r.metrics.prefetchUse.value({ outcome: 'hit' })
      prefetchWasted += await r.metrics.prefetchUse.value({ outcome: 'wasted' })
    }
    const result: HlsAudienceRun = {
      prefetchSegments,
      players: config.players,
      segmentRequests: samples.segmentRequests,
      playlistRequests: samples.playlistRequests,
      failed: samples.failed,
      failures: samples.failures,
      edgeHitRatio: samples.segmentRequests === 0 ? Number.NaN : samples.segmentHits / samples.segmentRequests,
      shieldHitRatio: shieldLookups === 0 ? Number.NaN : shieldHits / shieldLookups,
      originRequests: stack.origin.requests,
      originSegmentRequests: stack.origin.segmentRequests,
      originPlaylistRequests: stack.origin.requests - stack.origin.segmentRequests,
      segmentTtfbP50Ms: percentile(samples.segmentTtfbMs, 50),
      segmentTtfbP99Ms: percentile(samples.segmentTtfbMs, 99),
      prefetched,
      prefetchHits,
      prefetchWasted,
      wallSeconds,
    }
    log(`  ${result.segmentRequests} segment and ${result.playlistRequests} playlist requests, ${result.failed} failed ${JSON.stringify(result.failures)}; edge hit ${pct(result.edgeHitRatio)}, shield hit ${pct(result.shieldHitRatio)}; ` +
      `origin ${result.originRequests} requests (${result.originPlaylistRequests} playlists); segment TTFB p50 ${result.segmentTtfbP50Ms.toFixed(1)} ms, p99 ${result.segmentTtfbP99Ms.toFixed(1)} ms; ` +
      `prefetched ${prefetched}, hit ${prefetchHits}, wasted ${prefetchWasted}`)
    return result
  } finally {
    await stack.close()
  }
}

// ---- the stack ---------------------------------------------------------------------------------

async function startStack (config: Config, prefetchSegments: number): Promise<Stack> {
  const origin = await startBenchOrigin(config)
  const dir = await mkdtemp(join(tmpdir(), 'streamedge-bench-hls-'))
  const nodes: RunningCacheNode[] = []
  const runtimes: HlsRuntime[] = []
  const close = async (): Promise<void> => {
    for (const r of runtimes) await r.close()
    for (const n of [...nodes].reverse()) await n.close()
    await origin.close()
    await rm(dir, { recursive: true, force: true })
  }
  try {
    const pool = new OriginPool({ origins: [{ url: origin.url }], timeouts: TIMEOUTS, maxConcurrent: 256, maxQueue: 4096, queueTimeoutMs: 15_000, retries: 1, breaker: BREAKER })
    const shield = await node('shield-1', 'shield', pool, join(dir, 'shield-1'), 0, runtimes)
    nodes.push(shield)
    const edges: RunningCacheNode[] = []
    for (let i = 0; i < EDGES; i++) {
      const chain = new UpstreamChain({ shields: [{ id: shield.url, upstream: http1(shield.url) }], origin: http1(origin.url), breaker: BREAKER })
      const edge = await node(`edge-${i + 1}`, 'edge', chain, join(dir, `edge-${i + 1}`), prefetchSegments, runtimes)
      edges.push(edge)
      nodes.push(edge)
    }
    // The shield's runtime was made first; edges' runtimes follow in edge order.
    runtimes.push(runtimes.shift()!)
    return { origin, shield, edges, runtimes, close }
  } catch (err) {
    await close()
    throw err
  }
}

function http1 (url: string): HttpUpstream {
  return new HttpUpstream({ url, ...TIMEOUTS, connections: 256 })
}

async function node (id: string, role: 'edge' | 'shield', upstream: Upstream, cacheDir: string, prefetchSegments: number, runtimes: HlsRuntime[]): Promise<RunningCacheNode> {
  const hls = new HlsRuntime({ nodeId: id, logger: silentLogger(), stripQueryParams: [], prefetch: { segments: prefetchSegments } })
  runtimes.push(hls)
  const running = await startInProcessNode({ id, role, upstream, cacheDir, memoryMaxBytes: 1024 * 1024 * 1024, contentPolicy: hls.contentPolicyFor })
  hls.attach(running)
  return running
}

// ---- the origin --------------------------------------------------------------------------------

interface BenchOrigin {
  readonly url: string
  readonly requests: number
  readonly segmentRequests: number
  close (): Promise<void>
}

/** A catalogue of VOD titles and one live channel (a sliding window on the scaled clock). */
async function startBenchOrigin (config: Config): Promise<BenchOrigin> {
  let requests = 0
  let segmentRequests = 0
  const startedMs = performance.now()
  const segmentMs = (config.segmentSeconds * 1000) / config.speed
  // The live channel has been running for a while, so its window is full from the start.
  const liveMsn = (): number => 100 + Math.floor((performance.now() - startedMs) / segmentMs)
  const liveTargetSeconds = Math.max(1, Math.ceil(segmentMs / 1000))
  const bodies = new Map<string, Buffer>()
  const segmentBody = (key: string, packets: number): Buffer => {
    let body = bodies.get(key)
    if (body === undefined) {
      body = syntheticBody(key, 188 * packets, 'ts')
      bodies.set(key, body)
    }
    return body
  }
  const playlistType = { 'content-type': 'application/vnd.apple.mpegurl' }
  const answer = (res: ServerResponse, headers: Record<string, string>, body: Buffer | string): void => {
    const bytes = typeof body === 'string' ? Buffer.from(body) : body
    setTimeout(() => {
      res.writeHead(200, { ...headers, 'content-length': bytes.length })
      res.end(bytes)
    }, config.originLatencyMs)
  }
  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    requests++
    const path = (req.url ?? '/').split('?')[0] ?? '/'
    const master = /^\/(vod\/t\d+|live\/ch)\/master\.m3u8$/.exec(path)
    if (master !== null) {
      const lines = ['#EXTM3U', '#EXT-X-VERSION:3']
      for (const r of RENDITIONS) lines.push(`#EXT-X-STREAM-INF:BANDWIDTH=${r.bandwidth}`, `${r.name}/index.m3u8`)
      return answer(res, { ...playlistType, 'cache-control': 'max-age=300' }, lines.join('\n') + '\n')
    }
    const vod = /^\/vod\/(t\d+)\/(hi|lo)\/index\.m3u8$/.exec(path)
    if (vod !== null) {
      const lines = ['#EXTM3U', '#EXT-X-VERSION:3', `#EXT-X-TARGETDURATION:${config.segmentSeconds}`, '#EXT-X-PLAYLIST-TYPE:VOD']
      for (let i = 0; i < config.segmentsPerTitle; i++) lines.push(`#EXTINF:${config.segmentSeconds}.0,`, `seg-${i}.ts`)
      lines.push('#EXT-X-ENDLIST')
      return answer(res, { ...playlistType, 'cache-control': 'max-age=300' }, lines.join('\n') + '\n')
    }
    const live = /^\/live\/ch\/(hi|lo)\/index\.m3u8$/.exec(path)
    if (live !== null) {
      // The live channel runs on the wall clock: its segments last segmentSeconds / speed, as its playlist says.
      const first = liveMsn() - LIVE_WINDOW + 1
      const lines = ['#EXTM3U', '#EXT-X-VERSION:3', `#EXT-X-TARGETDURATION:${liveTargetSeconds}`, `#EXT-X-MEDIA-SEQUENCE:${first}`]
      for (let msn = first; msn < first + LIVE_WINDOW; msn++) lines.push(`#EXTINF:${(segmentMs / 1000).toFixed(3)},`, `seg-${msn}.ts`)
      // max-age=0, as many packagers send: the HLS policy gives live playlists their lifetime.
      return answer(res, { ...playlistType, 'cache-control': 'max-age=0' }, lines.join('\n') + '\n')
    }
    const seg = /^\/(vod\/t\d+|live\/ch)\/(hi|lo)\/seg-(\d+)\.ts$/.exec(path)
    if (seg !== null) {
      const [, base = '', rendition = 'hi', n = '0'] = seg
      const msn = Number(n)
      const known = base === 'live/ch' ? msn <= liveMsn() : msn < config.segmentsPerTitle
      if (!known) {
        res.writeHead(404, { 'content-type': 'text/plain' })
        res.end('not published\n')
        return
      }
      segmentRequests++
      const packets = RENDITIONS.find((r) => r.name === rendition)?.packets ?? 250
      return answer(res, { 'content-type': 'video/mp2t', 'cache-control': 'public, max-age=31536000, immutable' }, segmentBody(`${base.replace("/", "-")}-${rendition}-${n}`, packets))
    }
    res.writeHead(404, { 'content-type': 'text/plain' })
    res.end('not found\n')
  }
  const server = http.createServer({ keepAliveTimeout: 30_000 }, handle)
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    get requests () { return requests },
    get segmentRequests () { return segmentRequests },
    async close () {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()))
      server.closeAllConnections()
      await closed
    },
  }
}

// ---- helpers and report ------------------------------------------------------------------------

function pct (ratio: number): string {
  return Number.isNaN(ratio) ? 'n/a' : `${(ratio * 100).toFixed(1)}%`
}

/** The result as a markdown section for bench/RESULTS.md. */
export function renderHlsAudienceMarkdown (r: HlsAudienceResult): string {
  const c = r.config
  const row = (x: HlsAudienceRun): string =>
    `| ${x.prefetchSegments === 0 ? 'off' : `${x.prefetchSegments} segments`} | ${x.segmentRequests} | ${pct(x.edgeHitRatio)} | ${pct(x.shieldHitRatio)} | ` +
    `${x.originRequests} (${x.originSegmentRequests} segments) | ${x.segmentTtfbP50Ms.toFixed(1)} | ${x.segmentTtfbP99Ms.toFixed(1)} | ` +
    `${x.prefetched} / ${x.prefetchHits} / ${x.prefetchWasted} | ${x.failed} |`
  return [
    '## HLS audience (issue 6)',
    '',
    `${c.players} players (${c.livePercent}% on one live channel, the rest on ${c.titles} VOD titles with Zipf s = ${c.zipfExponent} popularity, ` +
      `${c.segmentsPerTitle} × ${c.segmentSeconds} s segments in 2 renditions) on ${c.edges} edges → ${c.shields} shield → origin ` +
      `(${c.originLatencyMs} ms to first byte), playing at ${c.speed}× real time for ${c.durationMs / 1000} s, players starting over ${c.rampMs / 1000} s. ` +
      `One process on 127.0.0.1${c.playersInWorker ? ', players in a worker thread' : ''}; TTFB includes the shared CPU's queueing, so compare the two rows, not absolute numbers.`,
    '',
    '| prefetch | player segment requests | edge hit ratio | shield hit ratio | origin requests | segment TTFB p50 (ms) | p99 (ms) | prefetched / hit / wasted | failed |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    row(r.withoutPrefetch),
    row(r.withPrefetch),
    '',
  ].join('\n')
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const quick = process.argv.includes('--quick')
  run({ ...(quick ? { players: 100, durationMs: 8000, rampMs: 2000 } : {}), log: (line) => process.stderr.write(`${line}\n`) }).then((result) => {
    process.stdout.write(renderHlsAudienceMarkdown(result))
    process.exitCode = result.withPrefetch.failed + result.withoutPrefetch.failed === 0 ? 0 : 1
  }, (err: unknown) => {
    process.stderr.write(`hls-audience failed: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`)
    process.exitCode = 1
  })
}

/** Alias for bench/run.ts, which names scenarios `run<Name>`. */
export { run as runHlsAudience }
