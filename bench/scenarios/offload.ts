/**
 * Scenario "offload" (issue 4): replay a skewed (Zipf) request mix for 1000 segments over
 * 2 edges and 2 shields, and report how much of it reached the origin: origin requests per
 * client request and origin bytes per byte served. Target: the origin sees each object at
 * most once (each object has one owning shield, and the shield coalesces the edges' fills).
 * The same replay straight from 2 edges to the origin is the baseline: there each edge
 * fetches every object it serves, so the origin sees up to one request per edge.
 *
 * Everything runs in this process on 127.0.0.1 with the real cache nodes (the engine the
 * CLI runs); this measures offload, not throughput, so sharing a CPU is harmless.
 *
 *   npx tsx bench/scenarios/offload.ts [--quick]
 */
import { mkdtemp, rm } from 'node:fs/promises'
import http from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { startOrigin, type Origin } from '../origin/origin-server.ts'
import type { RunningCacheNode } from '../../edge/cache-node.ts'
import type { BreakerSettings } from '../../edge/proxy/circuit-breaker.ts'
import { UpstreamChain } from '../../edge/proxy/upstream-chain.ts'
import { HttpUpstream, type Upstream } from '../../edge/proxy/upstream.ts'
import { OriginPool } from '../../shield/origin-pool.ts'
import { startInProcessNode } from '../lib/in-process-node.ts'
import { mulberry32 } from '../lib/seeded-random.ts'

/** Re-exported for the HLS audience's players, which draw from the same generator. */
export { mulberry32 }

/** Settings of {@link run}; every field has a default. */
export interface OffloadOptions {
  /** Distinct segments in the catalogue (default 1000). */
  readonly segments?: number
  /** Client requests replayed (default 10000). */
  readonly requests?: number
  /** Zipf exponent s: P(rank k) ∝ 1/k^s (default 1). */
  readonly zipfExponent?: number
  /** Requests in flight at once, spread over the edges (default 64). */
  readonly concurrency?: number
  /** Size of each segment, a whole number of 188-byte TS packets (default 188 × 512). */
  readonly segmentBytes?: number
  /** Seed of the request mix, so runs replay the same sequence (default 1). */
  readonly seed?: number
  /** Also replay without shields, edges straight to the origin (default true). */
  readonly baseline?: boolean
  readonly log?: (line: string) => void
}

/** One replay over one topology. */
export interface OffloadRun {
  readonly topology: string
  readonly clientRequests: number
  readonly clientBytes: number
  /** Client requests that did not get a complete 200. */
  readonly failed: number
  readonly distinctObjects: number
  readonly originRequests: number
  readonly originBytes: number
  readonly originRequestsPerClientRequest: number
  readonly originBytesPerByteServed: number
  /** The most origin requests any one object caused (target: 1). */
  readonly maxOriginRequestsPerObject: number
  readonly objectsFetchedMoreThanOnce: number
  /** Client requests answered from an edge's cache. */
  readonly edgeHitRatio: number
  readonly wallSeconds: number
}

/** What {@link run} reports. */
export interface OffloadResult {
  readonly scenario: 'offload'
  readonly config: Required<Omit<OffloadOptions, 'log' | 'baseline'>> & { readonly edges: number, readonly shields: number }
  readonly shielded: OffloadRun
  readonly direct: OffloadRun | undefined
  readonly target: { readonly maxOriginRequestsPerObject: 1, readonly met: boolean }
}

const EDGES = 2
const SHIELDS = 2
const TIMEOUTS = { connectTimeoutMs: 3000, firstByteTimeoutMs: 10_000, idleTimeoutMs: 10_000, keepAliveTimeoutMs: 30_000 }
const BREAKER: BreakerSettings = { failureThreshold: 5, errorRatePercent: 50, minRequests: 20, windowMs: 10_000, coolDownMs: 5000 }

/** Runs the scenario; every server and temp dir is gone when it returns. */
export async function run (options: OffloadOptions = {}): Promise<OffloadResult> {
  const config = {
    segments: options.segments ?? 1000,
    requests: options.requests ?? 10_000,
    zipfExponent: options.zipfExponent ?? 1,
    concurrency: options.concurrency ?? 64,
    segmentBytes: options.segmentBytes ?? 188 * 512,
    seed: options.seed ?? 1,
  }
  const log = options.log ?? (() => {})
  const sample = zipfSampler(config.segments, config.zipfExponent, mulberry32(config.seed))
  const sequence = Array.from({ length: config.requests }, () => sample())
  const paths = Array.from({ length: config.segments }, (_, i) => `/synthetic/offload-${i}-${config.segmentBytes}.ts`)
  const shielded = await replay('2 edges → 2 shields → origin', true, sequence, paths, config, log)
  const direct = options.baseline === false ? undefined : await replay('2 edges → origin (baseline)', false, sequence, paths, config, log)
  return {
    scenario: 'offload',
    config: { ...config, edges: EDGES, shields: SHIELDS },
    shielded,
    direct,
    target: { maxOriginRequestsPerObject: 1, met: shielded.maxOriginRequestsPerObject <= 1 && shielded.failed === 0 },
  }
}

type Config = Required<Omit<OffloadOptions, 'log' | 'baseline'>>

async function replay (topology: string, withShields: boolean, sequence: readonly number[], paths: readonly string[], config: Config, log: (line: string) => void): Promise<OffloadRun> {
  const origin = await startOrigin({ syntheticCacheMaxBytes: Math.max(256 * 1024 * 1024, config.segments * config.segmentBytes * 2) })
  const dir = await mkdtemp(join(tmpdir(), 'streamedge-bench-offload-'))
  const nodes: RunningCacheNode[] = []
  const agent = new http.Agent({ keepAlive: true, maxSockets: config.concurrency })
  try {
    const shields: RunningCacheNode[] = []
    if (withShields) {
      for (let i = 0; i < SHIELDS; i++) {
        const pool = new OriginPool({ origins: [{ url: origin.url }], timeouts: TIMEOUTS, maxConcurrent: 64, maxQueue: 1024, queueTimeoutMs: 10_000, retries: 1, breaker: BREAKER })
        shields.push(await node(`shield-${i + 1}`, 'shield', pool, join(dir, `shield-${i + 1}`), config))
      }
      nodes.push(...shields)
    }
    const edges: RunningCacheNode[] = []
    for (let i = 0; i < EDGES; i++) {
      const upstream: Upstream = withShields
        ? new UpstreamChain({ shields: shields.map((s) => ({ id: s.url, upstream: http1(s.url) })), origin: http1(origin.url), breaker: BREAKER })
        : http1(origin.url)
      edges.push(await node(`edge-${i + 1}`, 'edge', upstream, join(dir, `edge-${i + 1}`), config))
    }
    nodes.push(...edges)
    log(`offload: ${topology}: ${sequence.length} requests over ${paths.length} segments of ${config.segmentBytes} B, concurrency ${config.concurrency}`)
    const startedMs = performance.now()
    let next = 0
    let clientBytes = 0
    let failed = 0
    const worker = async (): Promise<void> => {
      for (let i = next++; i < sequence.length; i = next++) {
        const edge = edges[i % edges.length]!
        const got = await getBytes(edge.url + paths[sequence[i]!]!, agent)
        if (got.status === 200 && got.bytes === config.segmentBytes) clientBytes += got.bytes
        else failed++
      }
    }
    await Promise.all(Array.from({ length: config.concurrency }, worker))
    const wallSeconds = (performance.now() - startedMs) / 1000
    const requested = new Set(sequence)
    let originRequests = 0
    let maxPerObject = 0
    let repeated = 0
    for (const index of requested) {
      const n = origin.count(paths[index]!)
      originRequests += n
      maxPerObject = Math.max(maxPerObject, n)
      if (n > 1) repeated++
    }
    let hits = 0
    for (const e of edges) hits += await e.metrics.requests.value({ phase: 'hit' })
    const originBytes = originRequests * config.segmentBytes
    const result: OffloadRun = {
      topology,
      clientRequests: sequence.length,
      clientBytes,
      failed,
      distinctObjects: requested.size,
      originRequests,
      originBytes,
      originRequestsPerClientRequest: originRequests / sequence.length,
      originBytesPerByteServed: clientBytes === 0 ? Number.NaN : originBytes / clientBytes,
      maxOriginRequestsPerObject: maxPerObject,
      objectsFetchedMoreThanOnce: repeated,
      edgeHitRatio: hits / sequence.length,
      wallSeconds,
    }
    log(`  origin requests ${originRequests} for ${requested.size} distinct objects (max ${maxPerObject} per object, ${repeated} fetched more than once); ` +
      `${result.originRequestsPerClientRequest.toFixed(4)} origin requests per client request, ${result.originBytesPerByteServed.toFixed(4)} origin bytes per byte served; ` +
      `edge hit ratio ${(result.edgeHitRatio * 100).toFixed(1)}%; ${failed} failed; ${wallSeconds.toFixed(1)} s`)
    return result
  } finally {
    agent.destroy()
    for (const n of nodes.reverse()) await n.close()
    await origin.close()
    await rm(dir, { recursive: true, force: true })
  }
}

function http1 (url: string): HttpUpstream {
  return new HttpUpstream({ url, ...TIMEOUTS, connections: 64 })
}

async function node (id: string, role: 'edge' | 'shield', upstream: Upstream, cacheDir: string, config: Config): Promise<RunningCacheNode> {
  const memoryMaxBytes = Math.max(64 * 1024 * 1024, config.segments * config.segmentBytes * 2)
  return await startInProcessNode({ id, role, upstream, cacheDir, memoryMaxBytes })
}

function getBytes (url: string, agent: http.Agent): Promise<{ status: number, bytes: number }> {
  return new Promise((resolve) => {
    const req = http.get(url, { agent }, (res) => {
      let bytes = 0
      res.on('data', (chunk: Buffer) => { bytes += chunk.length })
      res.once('end', () => resolve({ status: res.complete ? res.statusCode ?? 0 : 0, bytes }))
      res.once('error', () => resolve({ status: 0, bytes }))
    })
    req.once('error', () => resolve({ status: 0, bytes: 0 }))
  })
}

/** Samples ranks 0..n-1 with P(k) ∝ 1/(k+1)^s, by binary search over the cumulative weights. */
export function zipfSampler (n: number, s: number, random: () => number): () => number {
  if (!Number.isSafeInteger(n) || n < 1) throw new TypeError(`Expected n to be a positive integer, got ${String(n)}`)
  if (!Number.isFinite(s) || s < 0) throw new TypeError(`Expected s to be a non-negative number, got ${String(s)}`)
  const cdf = new Float64Array(n)
  let total = 0
  for (let k = 0; k < n; k++) {
    total += 1 / Math.pow(k + 1, s)
    cdf[k] = total
  }
  return () => {
    const u = random() * total
    let lo = 0
    let hi = n - 1
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (cdf[mid]! < u) lo = mid + 1
      else hi = mid
    }
    return lo
  }
}

/** The result as a markdown section for bench/RESULTS.md. */
export function renderOffloadMarkdown (r: OffloadResult): string {
  const row = (x: OffloadRun): string =>
    `| ${x.topology} | ${x.clientRequests} | ${x.distinctObjects} | ${x.originRequests} | ${x.originRequestsPerClientRequest.toFixed(4)} | ` +
    `${x.originBytesPerByteServed.toFixed(4)} | ${x.maxOriginRequestsPerObject} | ${(x.edgeHitRatio * 100).toFixed(1)}% | ${x.failed} |`
  return [
    '## Origin offload (issue 4)',
    '',
    `Zipf (s = ${r.config.zipfExponent}) replay of ${r.config.requests} requests over ${r.config.segments} segments of ${r.config.segmentBytes} B, ` +
      `${r.config.concurrency} in flight, ${r.config.edges} edges${r.direct === undefined ? '' : ', with and without'} ${r.config.shields} shields (in-process, 127.0.0.1).`,
    '',
    '| topology | client requests | distinct objects | origin requests | origin req / client req | origin bytes / byte served | max origin req per object | edge hit ratio | failed |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    row(r.shielded),
    ...(r.direct === undefined ? [] : [row(r.direct)]),
    '',
    `Target: the origin sees each object at most once: ${r.target.met ? 'met' : 'NOT met'}.`,
    '',
  ].join('\n')
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const quick = process.argv.includes('--quick')
  run({ ...(quick ? { requests: 2000, segments: 300 } : {}), log: (line) => process.stderr.write(`${line}\n`) }).then((result) => {
    process.stdout.write(renderOffloadMarkdown(result))
    process.exitCode = result.target.met ? 0 : 1
  }, (err: unknown) => {
    process.stderr.write(`offload failed: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`)
    process.exitCode = 1
  })
}

/** Alias for bench/run.ts, which names scenarios `run<Name>`. */
export { run as runOffload }
