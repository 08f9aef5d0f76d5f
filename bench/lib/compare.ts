/**
 * The throughput comparison every warm-cache scenario shares: the same workload against
 * several targets (edge, nginx, Varnish, a bare baseline), interleaved A B C A B C for N
 * rounds, with one or two load generators per window. Each window records the target's
 * CPU (its whole process tree, from /proc), the load generator's, the rest of the
 * machine's, and what reached the origin; summaries are medians over rounds, and ratios
 * to nginx are medians of the per-round ratios (the pairs measured closest in time).
 */
import type autocannon from 'autocannon'
import type { BenchTarget, PeerAvailability, TargetName } from './bench-target.ts'
import { loadTest } from './load.ts'
import { cpuSecondsBetween, readReapedChildrenCpu, readSystemBusySeconds } from './proc-cpu.ts'
import { cpuSecondsPerGb, median, ratio } from './stats.ts'
import { runWrk, type WrkReport } from './wrk.ts'

/** The load generators. */
export type GeneratorName = 'autocannon' | 'wrk'

/** What is requested in a comparison. */
export interface Workload {
  /** Scenario id (`hot-segment`). */
  readonly name: string
  readonly title: string
  /** Paths requested; several: uniform random access (seeded). */
  readonly paths: readonly string[]
  readonly headers?: Readonly<Record<string, string>>
  /** Body bytes of one response, for the report. */
  readonly bodyBytes: number
  readonly connections: number
  /** How CPU is normalised: per GB served, or per 1000 requests (small bodies). */
  readonly costUnit: 'gb' | 'kreq'
}

/** One measured window. */
export interface CompareWindow {
  readonly round: number
  readonly target: TargetName
  readonly generator: GeneratorName
  /** Responses completed (any status; see non2xx). */
  readonly requests: number
  readonly durationS: number
  readonly requestsPerSec: number
  /** Bytes the generator read, heads included. */
  readonly bytes: number
  /** 10^6 bytes per second. */
  readonly mbPerSec: number
  readonly latencyP50Ms: number
  readonly latencyP99Ms: number
  readonly cpuSeconds: number
  readonly cpuUserSeconds: number
  readonly cpuSystemSeconds: number
  readonly cpuSecondsPerGb: number
  readonly cpuMsPerKiloRequest: number
  /** CPU of the load generator: autocannon is this process, wrk a reaped child. */
  readonly loadGenCpuSeconds: number
  /** Machine-wide busy CPU minus the target and the generator (other tenants, unattributed kernel time). */
  readonly otherCpuSeconds: number
  readonly originRequests: number
  readonly originBytes: number
  readonly non2xx: number
  readonly errors: number
  /** Young-generation and full-heap collections in the target during the window (targets with a /metrics only: the edge's). */
  readonly gcMinor?: number
  readonly gcMajor?: number
}

/** Medians of one target with one generator. */
export interface CompareSummary {
  readonly target: TargetName
  readonly generator: GeneratorName
  readonly windows: number
  readonly requestsPerSec: number
  readonly mbPerSec: number
  readonly latencyP50Ms: number
  readonly latencyP99Ms: number
  readonly cpuSecondsPerGb: number
  readonly cpuMsPerKiloRequest: number
  /**
   * The target's and its load generator's CPU together per GB served, median over windows
   * (absent in results saved before it was reported). On loopback the kernel's delivery work
   * lands on whichever end runs it: a server that copies pays for its copy in its own write,
   * while sendfile's page-cache fragments cost the receiving client more. This is what
   * serving a GB costs the machine, whoever is charged.
   */
  readonly bothEndsCpuSecondsPerGb?: number
  /** Summed over the measured windows. */
  readonly originRequests: number
  readonly originBytes: number
  /** 1 - origin bytes / bytes served, over the measured windows. */
  readonly byteHitRatio: number
  readonly non2xx: number
  readonly errors: number
  /** Medians of per-round ratios to nginx with the same generator; undefined without nginx. */
  readonly vsNginx: { readonly requestsPerSec: number, readonly latencyP99Ms: number, readonly cpuSecondsPerGb: number, readonly cpuMsPerKiloRequest: number, readonly bothEndsCpuSecondsPerGb?: number } | undefined
}

/** One comparison's report. */
export interface CompareResult {
  readonly scenario: string
  readonly title: string
  readonly config: {
    readonly paths: number
    readonly examplePath: string
    readonly headers: Readonly<Record<string, string>>
    readonly bodyBytes: number
    readonly connections: number
    readonly warmupS: number
    readonly measureS: number
    readonly rounds: number
    readonly costUnit: 'gb' | 'kreq'
    readonly generators: readonly GeneratorName[]
  }
  readonly targets: readonly TargetName[]
  readonly windows: readonly CompareWindow[]
  readonly summaries: readonly CompareSummary[]
  /** Hot-cache workloads run with --log-ab only: what the edge's access log costs, per generator. */
  readonly accessLog?: readonly AccessLogCost[]
}

/** The access log's cost with one generator: `edge-log` (log on) against `edge` (log off). */
export interface AccessLogCost {
  readonly generator: GeneratorName
  /** Rounds with both windows. */
  readonly rounds: number
  /** Medians of per-round ratios edge-log / edge (windows of the same round and generator). */
  readonly requestsPerSec: number
  readonly cpuMsPerKiloRequest: number
}

/** Counters of the origin (through the meter) sampled around each window. */
export interface OriginCounters {
  readonly requests: number
  readonly bytes: number
}

/** Settings of {@link runComparison}. */
export interface CompareOptions {
  readonly workload: Workload
  readonly targets: readonly BenchTarget[]
  readonly generators: readonly GeneratorName[]
  /** Path of wrk; required when generators include wrk. */
  readonly wrkCommand?: string | undefined
  readonly rounds: number
  readonly warmupS: number
  readonly measureS: number
  readonly origin: () => OriginCounters
  readonly beforeWindow?: (() => Promise<unknown>) | undefined
  readonly log: (line: string) => void
  /** Called after the warm-up, just before a measured window (e.g. to read the edge's tier counters). */
  readonly beforeMeasure?: (target: BenchTarget) => Promise<void>
  /** Called after each measured window. */
  readonly afterWindow?: (target: BenchTarget, window: CompareWindow) => Promise<void>
}

/** What bench/run.ts gives every scenario that compares the edge with its peers in wrk/autocannon windows (hot-cache, working-set). */
export interface ComparisonRunOptions {
  /** Available peers to compare with. */
  readonly peers: readonly PeerAvailability[]
  readonly wrkCommand: string | undefined
  readonly connections: number
  readonly rounds: number
  readonly warmupS: number
  readonly measureS: number
  readonly edgeRoot: string | undefined
  readonly beforeWindow?: (() => Promise<unknown>) | undefined
  readonly log: (line: string) => void
}

/** Runs the interleaved rounds; the targets must already be warm. */
export async function runComparison (o: CompareOptions): Promise<CompareResult> {
  if (o.generators.includes('wrk') && o.wrkCommand === undefined) throw new TypeError('Expected options.wrkCommand when generators include wrk, got undefined')
  const windows: CompareWindow[] = []
  for (let round = 1; round <= o.rounds; round++) {
    for (const target of o.targets) {
      for (const generator of o.generators) {
        await o.beforeWindow?.()
        // One warm-up per target and round: the second generator's window follows the first's on a warm target.
        if (o.warmupS > 0 && generator === o.generators[0]) await generate(generator, target, o, o.warmupS)
        await o.beforeMeasure?.(target)
        const w = await measureWindow(round, target, generator, o)
        windows.push(w)
        await o.afterWindow?.(target, w)
        const cost = o.workload.costUnit === 'gb' ? `${w.cpuSecondsPerGb.toFixed(3)} CPU s/GB` : `${w.cpuMsPerKiloRequest.toFixed(1)} CPU ms/1k req`
        o.log(`  ${o.workload.name} round ${round} ${target.name} ${generator}: ${w.requestsPerSec.toFixed(0)} req/s, ${w.mbPerSec.toFixed(0)} MB/s, p99 ${w.latencyP99Ms.toFixed(1)} ms, ${cost}; ` +
          `CPU s/s: server ${(w.cpuSeconds / w.durationS).toFixed(2)}, load-gen ${(w.loadGenCpuSeconds / w.durationS).toFixed(2)}, other ${(w.otherCpuSeconds / w.durationS).toFixed(2)}` +
          `${w.originRequests > 0 ? `; origin ${w.originRequests} req` : ''}${w.non2xx + w.errors > 0 ? `; ${w.non2xx} non-2xx, ${w.errors} errors` : ''}`)
      }
    }
  }
  const wl = o.workload
  return {
    scenario: wl.name,
    title: wl.title,
    config: {
      paths: wl.paths.length,
      examplePath: wl.paths[0] ?? '',
      headers: { ...wl.headers },
      bodyBytes: wl.bodyBytes,
      connections: wl.connections,
      warmupS: o.warmupS,
      measureS: o.measureS,
      rounds: o.rounds,
      costUnit: wl.costUnit,
      generators: [...o.generators],
    },
    targets: o.targets.map((t) => t.name),
    windows,
    summaries: summariseWindows(windows),
  }
}

interface GeneratorRun {
  readonly requests: number
  readonly durationS: number
  readonly bytes: number
  readonly latencyP50Ms: number
  readonly latencyP99Ms: number
  readonly non2xx: number
  readonly errors: number
}

async function generate (generator: GeneratorName, target: BenchTarget, o: CompareOptions, durationS: number): Promise<GeneratorRun> {
  const wl = o.workload
  if (generator === 'wrk') {
    const r = await runWrk({ command: o.wrkCommand!, url: target.url, paths: wl.paths, ...(wl.headers === undefined ? {} : { headers: wl.headers }), connections: wl.connections, durationS })
    return fromWrk(r)
  }
  const r = await loadTest({ url: target.url, paths: wl.paths, ...(wl.headers === undefined ? {} : { headers: wl.headers }), connections: wl.connections, durationS })
  return fromAutocannon(r)
}

function fromWrk (r: WrkReport): GeneratorRun {
  return {
    requests: r.requests,
    durationS: r.durationS,
    bytes: r.bytes,
    latencyP50Ms: r.latencyP50Ms,
    latencyP99Ms: r.latencyP99Ms,
    non2xx: r.statusErrors,
    errors: r.connectErrors + r.readErrors + r.writeErrors + r.timeouts,
  }
}

function fromAutocannon (r: autocannon.Result): GeneratorRun {
  return {
    requests: r.requests.total,
    durationS: r.duration,
    bytes: r.throughput.total,
    latencyP50Ms: r.latency.p50,
    latencyP99Ms: r.latency.p99,
    non2xx: r.non2xx,
    errors: r.errors,
  }
}

async function measureWindow (round: number, target: BenchTarget, generator: GeneratorName, o: CompareOptions): Promise<CompareWindow> {
  // read outside the CPU window: answering /metrics is not the workload's
  const gc0 = await target.gcCounts?.()
  const cpu0 = target.cpu()
  const self0 = process.cpuUsage()
  const reaped0 = readReapedChildrenCpu()
  const system0 = readSystemBusySeconds()
  const origin0 = o.origin()
  const run = await generate(generator, target, o, o.measureS)
  const cpu1 = target.cpu()
  const self = process.cpuUsage(self0)
  const reaped = cpuSecondsBetween(reaped0, readReapedChildrenCpu())
  const systemSeconds = readSystemBusySeconds() - system0
  const origin1 = o.origin()
  const gc1 = gc0 === undefined ? undefined : await target.gcCounts?.()
  const cpuSeconds = cpuSecondsBetween(cpu0, cpu1)
  const selfSeconds = (self.user + self.system) / 1e6
  const loadGenCpuSeconds = generator === 'wrk' ? reaped : selfSeconds
  const benchSeconds = generator === 'wrk' ? selfSeconds : 0
  return {
    round,
    target: target.name,
    generator,
    requests: run.requests,
    durationS: run.durationS,
    requestsPerSec: run.durationS > 0 ? run.requests / run.durationS : Number.NaN,
    bytes: run.bytes,
    mbPerSec: run.durationS > 0 ? run.bytes / 1e6 / run.durationS : Number.NaN,
    latencyP50Ms: run.latencyP50Ms,
    latencyP99Ms: run.latencyP99Ms,
    cpuSeconds,
    cpuUserSeconds: cpu1.userSeconds - cpu0.userSeconds,
    cpuSystemSeconds: cpu1.systemSeconds - cpu0.systemSeconds,
    cpuSecondsPerGb: cpuSecondsPerGb(cpuSeconds, run.bytes),
    cpuMsPerKiloRequest: run.requests > 0 ? (cpuSeconds * 1000) / (run.requests / 1000) : Number.NaN,
    loadGenCpuSeconds,
    otherCpuSeconds: Math.max(0, systemSeconds - cpuSeconds - loadGenCpuSeconds - benchSeconds),
    originRequests: origin1.requests - origin0.requests,
    originBytes: origin1.bytes - origin0.bytes,
    non2xx: run.non2xx,
    errors: run.errors,
    ...(gc0 === undefined || gc1 === undefined ? {} : { gcMinor: gc1.minor - gc0.minor, gcMajor: gc1.major - gc0.major }),
  }
}

/** Medians per target and generator, and the median per-round ratios to nginx; pure. */
export function summariseWindows (windows: readonly CompareWindow[]): CompareSummary[] {
  const keys: Array<[TargetName, GeneratorName]> = []
  for (const w of windows) if (!keys.some(([t, g]) => t === w.target && g === w.generator)) keys.push([w.target, w.generator])
  return keys.map(([target, generator]) => {
    const mine = windows.filter((w) => w.target === target && w.generator === generator)
    const nginx = windows.filter((w) => w.target === 'nginx' && w.generator === generator)
    const perRound = (pick: (w: CompareWindow) => number): number => {
      const ratios = mine.flatMap((w) => {
        const peer = nginx.find((n) => n.round === w.round)
        return peer === undefined ? [] : [ratio(pick(w), pick(peer))]
      })
      return median(ratios)
    }
    const bothEnds = (w: CompareWindow): number => cpuSecondsPerGb(w.cpuSeconds + w.loadGenCpuSeconds, w.bytes)
    const bytes = mine.reduce((s, w) => s + w.bytes, 0)
    const originBytes = mine.reduce((s, w) => s + w.originBytes, 0)
    return {
      target,
      generator,
      windows: mine.length,
      requestsPerSec: median(mine.map((w) => w.requestsPerSec)),
      mbPerSec: median(mine.map((w) => w.mbPerSec)),
      latencyP50Ms: median(mine.map((w) => w.latencyP50Ms)),
      latencyP99Ms: median(mine.map((w) => w.latencyP99Ms)),
      cpuSecondsPerGb: median(mine.map((w) => w.cpuSecondsPerGb)),
      cpuMsPerKiloRequest: median(mine.map((w) => w.cpuMsPerKiloRequest)),
      bothEndsCpuSecondsPerGb: median(mine.map(bothEnds)),
      originRequests: mine.reduce((s, w) => s + w.originRequests, 0),
      originBytes,
      byteHitRatio: bytes > 0 ? Math.max(0, 1 - originBytes / bytes) : Number.NaN,
      non2xx: mine.reduce((s, w) => s + w.non2xx, 0),
      errors: mine.reduce((s, w) => s + w.errors, 0),
      vsNginx: nginx.length === 0
        ? undefined
        : {
            requestsPerSec: perRound((w) => w.requestsPerSec),
            latencyP99Ms: perRound((w) => w.latencyP99Ms),
            cpuSecondsPerGb: perRound((w) => w.cpuSecondsPerGb),
            cpuMsPerKiloRequest: perRound((w) => w.cpuMsPerKiloRequest),
            bothEndsCpuSecondsPerGb: perRound(bothEnds),
          },
    }
  })
}
