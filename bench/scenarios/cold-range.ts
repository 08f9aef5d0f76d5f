/**
 * Scenario "cold-range" (issue 7): one player seeks into the middle of a segment nobody
 * has fetched yet, and the origin is slow (8 MiB at 4 MiB/s). A cache that fetches the
 * whole object first answers after about 1 s and pulls 8 MiB; one that forwards the range
 * (or a slice) answers in milliseconds. Measures time to first byte, and the bytes the
 * origin sent for it (through the meter, after the origin went idle, so background fills
 * count). Targets: edge, edge → shield, nginx, nginx with slice, Varnish; interleaved, a
 * fresh object for every request, after one unreported warm-up round.
 */
import { randomBytes } from 'node:crypto'
import http from 'node:http'
import { setTimeout as sleep } from 'node:timers/promises'
import { startOrigin, type Origin } from '../origin/origin-server.ts'
import { startPeer } from '../peers/start-peer.ts'
import type { BenchTarget, PeerAvailability, TargetName } from '../lib/bench-target.ts'
import { httpGet } from '../lib/http-get.ts'
import { startOriginMeter } from '../lib/origin-meter.ts'
import type { ColdRangeResult, ColdRangeRound, ColdRangeSummary } from '../lib/results.ts'
import { startEdgeShieldTarget, startEdgeTarget } from '../lib/start-target.ts'
import { median } from '../lib/stats.ts'
import { HERD_BODY_BYTES, HERD_ORIGIN_BYTES_PER_SECOND } from './cold-herd.ts'

/** Issue 7's targets for the edge: first byte within this, and at most this much pulled from the origin. */
export const COLD_RANGE_TTFB_MAX_MS = 50
export const COLD_RANGE_ORIGIN_MAX_BYTES = 2 * 2 ** 20
/** 64 KiB from the middle of the 8 MiB object. */
export const COLD_RANGE_OFFSET = 4 * 2 ** 20
export const COLD_RANGE_BYTES = 64 * 1024
const REQUEST_TIMEOUT_MS = 30_000
const ORIGIN_IDLE_WAIT_MS = 8000

/** Settings of {@link runColdRange}. */
export interface ColdRangeOptions {
  readonly peers: readonly PeerAvailability[]
  readonly rounds: number
  readonly edgeRoot: string | undefined
  readonly beforeWindow?: (() => Promise<unknown>) | undefined
  readonly log: (line: string) => void
}

/** Runs the scenario; every process it started is stopped when it returns. */
export async function runColdRange (o: ColdRangeOptions): Promise<ColdRangeResult> {
  const origin = await startOrigin()
  const meter = await startOriginMeter(origin.url)
  const targets: BenchTarget[] = []
  const range = `bytes=${COLD_RANGE_OFFSET}-${COLD_RANGE_OFFSET + COLD_RANGE_BYTES - 1}`
  const rounds: ColdRangeRound[] = []
  try {
    targets.push(await startEdgeTarget({ originUrl: meter.url, memoryMaxBytes: 256 * 2 ** 20, edgeRoot: o.edgeRoot }))
    targets.push(await startEdgeShieldTarget({ originUrl: meter.url, memoryMaxBytes: 256 * 2 ** 20, edgeRoot: o.edgeRoot }))
    for (const peer of o.peers) targets.push(await startPeer(peer, { originUrl: meter.url }))
    o.log(`cold-range: ${range} of an uncached ${HERD_BODY_BYTES}-byte segment at ${HERD_ORIGIN_BYTES_PER_SECOND} B/s; ${targets.map((t) => t.name).join(', ')}`)
    const runId = randomBytes(4).toString('hex')
    // Round 0 warms each target's code paths (JIT, upstream connection pools); it is not reported.
    for (let round = 0; round <= o.rounds; round++) {
      for (const target of targets) {
        const path = `/synthetic/crange-${runId}-r${round}-${target.name}-${HERD_BODY_BYTES}.ts`
        // Build the body in the origin first, so its generation is not in anyone's time to first byte.
        const full = await httpGet(origin.url + path)
        const expected = full.body.subarray(COLD_RANGE_OFFSET, COLD_RANGE_OFFSET + COLD_RANGE_BYTES)
        if (round > 0) await o.beforeWindow?.()
        const requests0 = origin.count(path)
        const bytes0 = meter.bytes()
        origin.setFault(path, { bytesPerSecond: HERD_ORIGIN_BYTES_PER_SECOND })
        const got = await timedGet(target.url + path, range)
        await originIdle(origin)
        origin.clearFaults()
        const r: ColdRangeRound = {
          round,
          target: target.name,
          status: got.status,
          bodyBytes: got.body.length,
          correct: got.status === 206 && got.body.equals(expected),
          headMs: got.headMs,
          ttfbMs: got.ttfbMs,
          totalMs: got.totalMs,
          originBytes: meter.bytes() - bytes0,
          originRequests: origin.count(path) - requests0,
          error: got.error,
        }
        if (round > 0) rounds.push(r)
        o.log(`  ${round === 0 ? 'warm-up' : `round ${round}`} ${target.name}: ${r.status}${r.correct ? '' : ' (WRONG BODY)'} TTFB ${r.ttfbMs.toFixed(1)} ms, total ${r.totalMs.toFixed(0)} ms, origin ${r.originRequests} req ${(r.originBytes / 2 ** 20).toFixed(2)} MiB${r.error === undefined ? '' : `, ${r.error}`}`)
      }
    }
  } finally {
    await Promise.all(targets.map((t) => t.stop()))
    await meter.close()
    await origin.close()
  }
  return {
    scenario: 'cold-range',
    config: { bodyBytes: HERD_BODY_BYTES, originBytesPerSecond: HERD_ORIGIN_BYTES_PER_SECOND, range, rounds: o.rounds },
    rounds,
    summaries: summariseColdRange(rounds),
  }
}

/** Medians per target; a failed request counts as infinitely slow. Pure. */
export function summariseColdRange (rounds: readonly ColdRangeRound[]): ColdRangeSummary[] {
  const names: TargetName[] = []
  for (const r of rounds) if (!names.includes(r.target)) names.push(r.target)
  return names.map((target) => {
    const mine = rounds.filter((r) => r.target === target)
    const ok = (r: ColdRangeRound, ms: number): number => r.correct ? ms : Number.POSITIVE_INFINITY
    return {
      target,
      ttfbMs: median(mine.map((r) => ok(r, r.ttfbMs))),
      totalMs: median(mine.map((r) => ok(r, r.totalMs))),
      originBytes: median(mine.map((r) => r.originBytes)),
      originRequests: median(mine.map((r) => r.originRequests)),
      allCorrect: mine.every((r) => r.correct),
    }
  })
}

interface TimedResponse {
  readonly status: number
  readonly body: Buffer
  readonly headMs: number
  readonly ttfbMs: number
  readonly totalMs: number
  readonly error: string | undefined
}

/** One GET with a Range header on a fresh connection, timed from the request write. */
function timedGet (url: string, range: string): Promise<TimedResponse> {
  return new Promise((resolve) => {
    const started = performance.now()
    const since = (): number => performance.now() - started
    let status = 0
    let headMs = Number.POSITIVE_INFINITY
    let ttfbMs = Number.POSITIVE_INFINITY
    const chunks: Buffer[] = []
    const done = (error: string | undefined): void => resolve({ status, body: Buffer.concat(chunks), headMs, ttfbMs, totalMs: error === undefined ? since() : Number.POSITIVE_INFINITY, error })
    const req = http.get(url, { agent: false, headers: { range }, timeout: REQUEST_TIMEOUT_MS }, (res) => {
      status = res.statusCode ?? 0
      headMs = since()
      res.on('data', (chunk: Buffer) => {
        if (chunks.length === 0) ttfbMs = since()
        chunks.push(chunk)
      })
      res.once('end', () => done(res.complete ? undefined : 'response cut short'))
      res.once('error', (err) => done(err.message))
    })
    req.once('timeout', () => req.destroy(new Error(`no response within ${REQUEST_TIMEOUT_MS} ms`)))
    req.once('error', (err) => done(err.message))
  })
}

/** Waits (bounded) until the origin has no request in flight: a cache may finish its fill after answering. */
async function originIdle (origin: Origin): Promise<void> {
  const deadline = performance.now() + ORIGIN_IDLE_WAIT_MS
  await sleep(50)
  while (origin.inFlight() > 0 && performance.now() < deadline) await sleep(50)
}
