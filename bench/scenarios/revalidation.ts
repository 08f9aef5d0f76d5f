/**
 * Scenario "revalidation" (issue 3): revalidation must not cost throughput.
 *
 * 1. Hot hits on a plain cacheable object vs hot hits on a `no-cache` object whose origin
 *    answers 304: every request needs a validation, but concurrent requests share one
 *    conditional request (the shared fill), so req/s should stay close to the plain case.
 *    Targets interleaved A B A B; medians; the ratio is the figure.
 * 2. stale-while-revalidate under 100 connections: `max-age=1, stale-while-revalidate=30`
 *    for the whole window; the origin should see about one request per second (one
 *    background refresh per expiry), never one per client request.
 *
 * The edge runs as a child process through the real CLI; the origin (it answers 304 to
 * If-None-Match) and autocannon run here. Loopback only, bounded in time.
 *
 *   npx tsx bench/scenarios/revalidation.ts [--quick]
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { startOrigin } from '../origin/origin-server.ts'
import { startEdgeProcess } from '../lib/child-server.ts'
import { loadTest } from '../lib/load.ts'
import { median, ratio } from '../lib/stats.ts'

export interface RevalidationOptions {
  readonly connections?: number
  readonly durationS?: number
  readonly rounds?: number
  readonly log?: (line: string) => void
}

export interface RevalidationResult {
  readonly connections: number
  readonly durationS: number
  readonly rounds: number
  readonly plainReqPerS: number
  readonly noCacheReqPerS: number
  /** noCache / plain req/s (target: close to 1). */
  readonly throughputRatio: number
  /** Conditional requests the origin saw per client request in the no-cache windows (coalescing keeps it well below 1). */
  readonly noCacheOriginPerRequest: number
  readonly swrReqPerS: number
  /** Origin requests during the stale-while-revalidate window, and per second (target: about 1/s for max-age=1). */
  readonly swrOriginRequests: number
  readonly swrOriginPerSecond: number
}

const BODY_BYTES = 16 * 1024
const PLAIN = `/synthetic/reval-plain-${BODY_BYTES}.bin`
const NO_CACHE = `/synthetic/reval-nocache-${BODY_BYTES}.bin`
const SWR = `/synthetic/reval-swr-${BODY_BYTES}.bin`

/** Runs the scenario; every server it starts is stopped before it returns. */
export async function run (options: RevalidationOptions = {}): Promise<RevalidationResult> {
  const connections = options.connections ?? 100
  const durationS = options.durationS ?? 10
  const rounds = options.rounds ?? 2
  const log = options.log ?? (() => {})
  const origin = await startOrigin()
  const cacheDir = await mkdtemp(join(tmpdir(), 'streamedge-bench-reval-'))
  const edge = await startEdgeProcess({ originUrl: origin.url, cacheDir, id: 'bench-reval' })
  try {
    origin.setFault(NO_CACHE, { headers: { 'cache-control': 'no-cache' } })
    origin.setFault(SWR, { headers: { 'cache-control': 'max-age=1, stale-while-revalidate=30' } })
    for (const path of [PLAIN, NO_CACHE, SWR]) await loadTest({ url: edge.url + path, connections: 4, durationS: 1 })
    const plain: number[] = []
    const noCache: number[] = []
    let noCacheRequests = 0
    let noCacheOrigin = 0
    for (let round = 1; round <= rounds; round++) {
      const a = await loadTest({ url: edge.url + PLAIN, connections, durationS })
      plain.push(a.requests.average)
      log(`revalidation: round ${round} plain ${a.requests.average.toFixed(0)} req/s`)
      const before = origin.count(NO_CACHE)
      const b = await loadTest({ url: edge.url + NO_CACHE, connections, durationS })
      noCache.push(b.requests.average)
      noCacheRequests += b.requests.total
      noCacheOrigin += origin.count(NO_CACHE) - before
      log(`revalidation: round ${round} no-cache ${b.requests.average.toFixed(0)} req/s, ${origin.count(NO_CACHE) - before} conditional requests upstream`)
    }
    const swrBefore = origin.count(SWR)
    const swr = await loadTest({ url: edge.url + SWR, connections, durationS })
    const swrOrigin = origin.count(SWR) - swrBefore
    log(`revalidation: stale-while-revalidate ${swr.requests.average.toFixed(0)} req/s, ${swrOrigin} origin requests in ${durationS} s`)
    const plainMedian = median(plain)
    const noCacheMedian = median(noCache)
    return {
      connections,
      durationS,
      rounds,
      plainReqPerS: plainMedian,
      noCacheReqPerS: noCacheMedian,
      throughputRatio: ratio(noCacheMedian, plainMedian),
      noCacheOriginPerRequest: noCacheRequests === 0 ? 0 : noCacheOrigin / noCacheRequests,
      swrReqPerS: swr.requests.average,
      swrOriginRequests: swrOrigin,
      swrOriginPerSecond: swrOrigin / durationS,
    }
  } finally {
    await edge.stop()
    await origin.close()
    await rm(cacheDir, { recursive: true, force: true })
  }
}

/** The result as a markdown section for bench/RESULTS.md. */
export function renderRevalidationMarkdown (r: RevalidationResult): string {
  return [
    '## Revalidation and stale-while-revalidate',
    '',
    `${r.connections} connections, ${r.durationS} s windows, ${r.rounds} interleaved rounds (medians); ${BODY_BYTES}-byte object.`,
    '',
    '| | req/s | origin requests |',
    '|---|---:|---|',
    `| hot hit, max-age=3600 | ${r.plainReqPerS.toFixed(0)} | 0 |`,
    `| hot hit, no-cache, origin answers 304 | ${r.noCacheReqPerS.toFixed(0)} | ${r.noCacheOriginPerRequest.toFixed(4)} per client request |`,
    `| max-age=1, stale-while-revalidate=30 | ${r.swrReqPerS.toFixed(0)} | ${r.swrOriginRequests} in ${r.durationS} s (${r.swrOriginPerSecond.toFixed(2)}/s) |`,
    '',
    `no-cache / plain throughput: **${r.throughputRatio.toFixed(2)}**. Stale-while-revalidate target about 1 origin request per second: ${r.swrOriginPerSecond <= 1.5 ? 'met' : '**missed**'}.`,
    '',
  ].join('\n')
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const quick = process.argv.includes('--quick')
  const result = await run({ durationS: quick ? 3 : 10, rounds: quick ? 1 : 2, log: (l) => process.stderr.write(l + '\n') })
  process.stdout.write(renderRevalidationMarkdown(result))
}
