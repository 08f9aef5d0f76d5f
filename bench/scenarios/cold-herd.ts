/**
 * Scenario "cold-herd": 200 clients ask the edge for the same uncached 8 MiB segment at
 * once while the origin streams it over about 2 s. A shared fill must send the origin one
 * request and give every waiter its first bytes as soon as they exist (Varnish: ~50 ms
 * TTFB here; nginx's cache lock: ~2.1 s, the whole object).
 *
 * Each round runs the same herd against every target, interleaved: the edge, optionally
 * edge → shield, the peers (nginx, nginx with slice, Varnish) when installed, and an "ideal
 * streamer" (bench/peers/stream-server.ts: one paced producer fanned out by plain node:http,
 * no cache), so the edge's TTFB can be read against what this machine allows at all.
 */
import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { startOrigin } from '../origin/origin-server.ts'
import type { HerdConfig, HerdReport } from '../peers/herd-client.ts'
import { startPeer } from '../peers/start-peer.ts'
import { benchTarget, type BenchTarget, type PeerAvailability } from '../lib/bench-target.ts'
import { REPO_ROOT, startChildServer, startIpcWorker, type IpcWorker } from '../lib/child-server.ts'
import { cpuSecondsBetween, readProcessCpu, readSystemBusySeconds } from '../lib/proc-cpu.ts'
import { httpGet } from '../lib/http-get.ts'
import { memoryCheck, type HerdMedians, type HerdResult, type HerdRound, type MemoryCheck } from '../lib/results.ts'
import { startEdgeShieldTarget, startEdgeTarget } from '../lib/start-target.ts'
import { median, percentile } from '../lib/stats.ts'

/** Settings of {@link runColdHerd}. */
export interface ColdHerdOptions {
  readonly clients: number
  readonly rounds: number
  /** Unreported rounds first (default {@link HERD_WARMUP_ROUNDS}). */
  readonly warmupRounds?: number
  /** Checkout whose edge runs (default: this one). */
  readonly edgeRoot?: string | undefined
  /** Available peers to run the same herd against (none: edge and ideal streamer only). */
  readonly peers?: readonly PeerAvailability[]
  /** Also run edge → shield → origin (default false). */
  readonly shield?: boolean
  /** Awaited before each measured window (e.g. to wait for a quiet machine). */
  readonly beforeWindow?: () => Promise<unknown>
  readonly log: (line: string) => void
}

/** About 8 MiB, a whole number of 188-byte TS packets (the edge refuses partial packets). */
export const HERD_BODY_BYTES = Math.floor(8 * 1024 * 1024 / 188) * 188
/** The origin sends the body over about 2 s. */
export const HERD_ORIGIN_BYTES_PER_SECOND = Math.round(HERD_BODY_BYTES / 2)
/**
 * Unreported herds before the measured ones. One is not enough to warm a JIT: a fresh edge
 * compiles its join path lazily during the first herd it sees and optimises it (TurboFan, on
 * a background thread) during the second; on two cores that compiling takes CPU from the herd
 * client and from the edge's own thread, in exactly the milliseconds TTFB measures. A cache
 * node serves a herd every segment duration, so the measured rounds are its steady state.
 * The warm-up rounds stay in the results (`warmups`) and in the per-round table.
 */
export const HERD_WARMUP_ROUNDS = 2
/** Issue 7's target for the waiters' time to first byte (issue 2 had 50 ms). */
export const HERD_TTFB_P99_MAX_MS = 25
/**
 * What each herd connection asks for with HEAD before the herd (bench/peers/herd-client.ts
 * HerdConfig.warmPath): a small object, so every connection is open at the server, as a
 * player's is once it has its playlist, when the herd's times start.
 */
export const HERD_WARM_PATH = '/synthetic/herd-warm-1504.ts'
const HERD_SCRIPT = join(REPO_ROOT, 'bench/peers/herd-client.ts')
const STREAM_SCRIPT = join(REPO_ROOT, 'bench/peers/stream-server.ts')
const ROUND_TIMEOUT_MS = 60_000
const SETTLE_MS = 1000
const HERD_MEMORY_BYTES = 256 * 2 ** 20

/** Runs the scenario; every process it starts is stopped before it returns. */
export async function runColdHerd (o: ColdHerdOptions): Promise<HerdResult & { memory: MemoryCheck[] }> {
  const origin = await startOrigin()
  const herd = startIpcWorker<HerdConfig, HerdReport>(HERD_SCRIPT)
  const targets: BenchTarget[] = []
  const rounds: HerdRound[] = []
  const warmups: HerdRound[] = []
  const warmupRounds = o.warmupRounds ?? HERD_WARMUP_ROUNDS
  const memory: MemoryCheck[] = []
  try {
    const edgeRoot = o.edgeRoot === undefined ? {} : { edgeRoot: o.edgeRoot }
    targets.push(await startEdgeTarget({ originUrl: origin.url, memoryMaxBytes: HERD_MEMORY_BYTES, ...edgeRoot }))
    if (o.shield === true) targets.push(await startEdgeShieldTarget({ originUrl: origin.url, memoryMaxBytes: HERD_MEMORY_BYTES, ...edgeRoot }))
    for (const peer of o.peers ?? []) targets.push(await startPeer(peer, { originUrl: origin.url, memoryMaxBytes: HERD_MEMORY_BYTES }))
    const stream = await startChildServer({
      label: 'stream',
      nodeArgs: ['--import', 'tsx'],
      script: STREAM_SCRIPT,
      args: [JSON.stringify({ name: 'herd', bytes: HERD_BODY_BYTES, bytesPerSecond: HERD_ORIGIN_BYTES_PER_SECOND, keepAliveTimeoutMs: 5000, headersTimeoutMs: 10000 })],
    })
    targets.push(benchTarget('stream', [stream], { hit: 'always' }))
    o.log(`cold-herd: ${targets.map((t) => `${t.name} ${t.url}`).join(', ')}; ${o.clients} clients, ${HERD_BODY_BYTES} bytes at ${HERD_ORIGIN_BYTES_PER_SECOND} B/s`)
    const runId = randomBytes(4).toString('hex')
    // The first rounds warm the JITs of the servers and of the client (HERD_WARMUP_ROUNDS); they are not reported.
    for (let round = 1 - warmupRounds; round <= o.rounds; round++) {
      const path = `/synthetic/herd-${runId}-r${round}-${HERD_BODY_BYTES}.ts`
      // Build the synthetic body in the origin first, so its one-off generation cost is not in anyone's TTFB.
      const direct = await httpGet(origin.url + path)
      if (direct.status !== 200 || direct.body.length !== HERD_BODY_BYTES) throw new Error(`origin pre-build of ${path}: ${direct.status}, ${direct.body.length} bytes`)
      for (const target of targets) {
        const before = origin.count(path)
        if (target.name !== 'stream') origin.setFault(path, { bytesPerSecond: HERD_ORIGIN_BYTES_PER_SECOND })
        if (round > 0) await o.beforeWindow?.()
        const r = await herdRound(target, herd, round, path, o.clients)
        origin.clearFaults()
        const result = { ...r, originRequests: origin.count(path) - before }
        o.log(`  ${round <= 0 ? `warm-up ${round + warmupRounds}` : `round ${round}`} ${target.name}: origin requests ${result.originRequests}, complete ${r.complete}/${r.clients}, TTFB p50 ${r.ttfbP50Ms.toFixed(1)} ms p99 ${r.ttfbP99Ms.toFixed(1)} ms, total p99 ${r.totalP99Ms.toFixed(0)} ms; CPU s: server ${r.serverCpuSeconds.toFixed(2)}, client ${r.clientCpuSeconds.toFixed(2)}, other ${r.otherCpuSeconds.toFixed(2)}`)
        if (round > 0) rounds.push(result)
        else warmups.push(result)
        await sleep(SETTLE_MS) // let the caches finish writing the object before the next herd
      }
    }
    const check = memoryCheck('cold-herd', targets[0]!)
    if (check !== undefined) memory.push(check)
  } finally {
    await herd.stop()
    await Promise.all(targets.map((t) => t.stop()))
    await origin.close()
  }
  const edgeRounds = rounds.filter((r) => r.target === 'edge')
  const edge = mediansOf(edgeRounds)
  const allComplete = edgeRounds.every((r) => r.complete === r.clients)
  const names = [...new Set(rounds.map((r) => r.target))]
  return {
    scenario: 'cold-herd',
    config: { clients: o.clients, bodyBytes: HERD_BODY_BYTES, originBytesPerSecond: HERD_ORIGIN_BYTES_PER_SECOND, rounds: o.rounds, warmupRounds },
    rounds,
    warmups,
    edge,
    stream: mediansOf(rounds.filter((r) => r.target === 'stream')),
    byTarget: names.map((target) => {
      const mine = rounds.filter((r) => r.target === target)
      return { target, ...mediansOf(mine), originRequestsMax: Math.max(...mine.map((r) => r.originRequests)), complete: mine.reduce((s, r) => s + r.complete, 0), clients: mine.reduce((s, r) => s + r.clients, 0) }
    }),
    originRequestsMax: Math.max(...edgeRounds.map((r) => r.originRequests)),
    targets: {
      originRequests: { expected: 1, met: edgeRounds.every((r) => r.originRequests === 1) },
      ttfbP99: { maxMs: HERD_TTFB_P99_MAX_MS, met: allComplete && edge.ttfbP99Ms < HERD_TTFB_P99_MAX_MS },
    },
    memory,
  }
}

/** One herd against one target, with the CPU every party used meanwhile. */
async function herdRound (target: BenchTarget, herd: IpcWorker<HerdConfig, HerdReport>, round: number, path: string, clients: number): Promise<HerdRound> {
  const server0 = target.cpu()
  const client0 = readProcessCpu(herd.pid)
  const self0 = process.cpuUsage()
  const system0 = readSystemBusySeconds()
  const report = await herd.call({ url: target.url, path, clients, timeoutMs: ROUND_TIMEOUT_MS - 10_000, warmPath: HERD_WARM_PATH }, ROUND_TIMEOUT_MS)
  const serverCpuSeconds = cpuSecondsBetween(server0, target.cpu())
  const clientCpuSeconds = cpuSecondsBetween(client0, readProcessCpu(herd.pid))
  const self = process.cpuUsage(self0)
  const otherCpuSeconds = Math.max(0, readSystemBusySeconds() - system0 - serverCpuSeconds - clientCpuSeconds - (self.user + self.system) / 1e6)
  return summariseRound({ round, target: target.name, path, originRequests: 0, report, serverCpuSeconds, clientCpuSeconds, otherCpuSeconds })
}

function mediansOf (rounds: readonly HerdRound[]): HerdMedians {
  return {
    ttfbP50Ms: median(rounds.map((r) => r.ttfbP50Ms)),
    ttfbP99Ms: median(rounds.map((r) => r.ttfbP99Ms)),
    headP99Ms: median(rounds.map((r) => r.headP99Ms)),
    totalP50Ms: median(rounds.map((r) => r.totalP50Ms)),
    totalP99Ms: median(rounds.map((r) => r.totalP99Ms)),
    serverCpuSeconds: median(rounds.map((r) => r.serverCpuSeconds)),
  }
}

/** What {@link summariseRound} needs besides the client report. */
export interface RoundInput {
  readonly round: number
  readonly target: HerdRound['target']
  readonly path: string
  readonly originRequests: number
  readonly report: HerdReport
  readonly serverCpuSeconds: number
  readonly clientCpuSeconds: number
  readonly otherCpuSeconds: number
}

/**
 * Percentiles of one round. A client without a first byte (error before any body) counts
 * as infinitely slow, so failures push the percentiles up instead of vanishing.
 */
export function summariseRound (input: RoundInput): HerdRound {
  const { report, ...rest } = input
  const c = report.clients
  const times = (pick: (x: HerdReport['clients'][number]) => number | undefined): number[] => c.map((x) => pick(x) ?? Number.POSITIVE_INFINITY)
  const errors = [...new Set(c.flatMap((x) => x.error === undefined ? [] : [x.error]))].slice(0, 3)
  return {
    ...rest,
    clients: c.length,
    complete: c.filter((x) => x.status === 200 && x.error === undefined && x.totalMs !== undefined).length,
    ttfbP50Ms: percentile(times((x) => x.firstByteMs), 50),
    ttfbP99Ms: percentile(times((x) => x.firstByteMs), 99),
    headP99Ms: percentile(times((x) => x.headMs), 99),
    totalP50Ms: percentile(times((x) => x.totalMs), 50),
    totalP99Ms: percentile(times((x) => x.totalMs), 99),
    connectMs: report.connectMs,
    sendSpreadMs: report.sendSpreadMs,
    errors,
  }
}
