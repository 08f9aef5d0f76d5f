/**
 * Scenario "steering": steering decisions per second and their latency, issue 5's benchmark.
 *
 * The control plane runs as a child process through the real CLI (`streamedge control-plane`)
 * with the embedded DB-IP City database, 12 edges in 6 cache groups (tiny local servers that
 * answer /readyz), coverage zones and licensing rules. The load sends `GET /v1/steer/...` for
 * 1000 titles from 50,000 client addresses (public IPv4 and IPv6, so GeoIP does real work and
 * the decision cache sees many prefixes) through X-Forwarded-For from the trusted 127.0.0.1.
 * Every answer must be a 302 (or a 451 from the licensing rules). Runs with the per-decision
 * log line on (the shipped default) and off, each after one pass over every client address
 * (its rate is reported as the cold rate), for each worker count (`controlPlane.workers`;
 * default 1 and 2, the log-off round only for the smallest), and a latency sweep with fewer
 * connections on the smallest worker count with the log on (`latencySweep`). Server CPU is the
 * whole process tree: a cluster's primary and workers.
 *
 * Two generators, when wrk is installed: autocannon (JavaScript, one thread; at ~1.0 CPU s/s
 * it, not the server, is the limit) and wrk (C, bench/lib/wrk.ts, the same prebuilt requests
 * sent in turn from a Lua rotation). Each also measures two bare servers answering the same
 * 302 to the same requests, node:http and lib/http/fast-front.ts (the control plane's own
 * HTTP path with no decision): the ceilings this machine allows the control plane with that
 * generator on the other core, so a result can be judged on a busy or slow box too. Server
 * CPU per decision (user + system µs) is the figure that does not depend on the generator.
 *
 * Target: 20,000 decisions/s with p99 < 5 ms; floor 8,000/s (Traffic Control's harness).
 * Alone: `node --import tsx bench/scenarios/steering.ts [--quick] [--no-wrk | --generator wrk|autocannon]
 * [--no-ceilings] [--workers 1,2] [--connections N] [--sweep N,N] [--root CHECKOUT] [--node-arg FLAG]... [--profile DIR] [--gc] [--heap-promoted DIR]`
 * (--profile DIR gets each single-process control plane's `.cpuprofile`, summarised per measured window; --gc runs them
 * under `--trace-gc-nvp` and summarises each window's collections, bench/lib/gc-trace.ts; --heap-promoted DIR gets a
 * promoted-bytes heap profile of each window, bench/lib/heap-promoted.ts; --root runs another checkout's control
 * plane, for A/B runs); `--help` lists them.
 */
import { once } from 'node:events'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join, resolve as resolvePath } from 'node:path'
import { fileURLToPath } from 'node:url'
import autocannon from 'autocannon'
import { stringify as toYaml } from 'yaml'
import { FastFront } from '../../lib/http/fast-front.ts'
import { REPO_ROOT, startChildServer, type ChildServer } from '../lib/child-server.ts'
import { findExecutable } from '../lib/executables.ts'
import { formatGcSummary, GcTraceFile, gcTraceNodeArgs, summariseGcWindowUs, type GcWindowSummary } from '../lib/gc-trace.ts'
import { formatHeapPromoted, heapPromotedChild, HeapPromotedSampler, summariseHeapPromoted, type HeapPromotedSummary } from '../lib/heap-promoted.ts'
import { httpGet } from '../lib/http-get.ts'
import { cpuSecondsBetween, readProcessTreeCpu, readReapedChildrenCpu } from '../lib/proc-cpu.ts'
import { promSum, promValue } from '../lib/prometheus-text.ts'
import { monotonicUs, profileNodeArgs, summariseProfile, type ProfileWindow } from '../lib/profile-run.ts'
import type { ProfiledRun } from '../lib/results.ts'
import { steeringLabel } from '../lib/steering-label.ts'
import { runWrk, type WrkRequest } from '../lib/wrk.ts'
import { serveBaseline } from '../peers/baseline-server.ts'

/** The load generators the scenario can use. */
export type SteeringGenerator = 'autocannon' | 'wrk'

/** Settings of {@link runSteering}. */
export interface SteeringBenchOptions {
  /** Measured seconds per window. */
  readonly durationS: number
  readonly warmupS?: number
  readonly connections: number
  readonly log: (line: string) => void
  /** When set, the control planes run under `node --cpu-prof` writing into this directory. */
  readonly profileDir?: string
  /** The wrk binary; found on PATH when undefined; null measures with autocannon alone. */
  readonly wrkCommand?: string | null
  /** Generators to use (default both, wrk when found). */
  readonly generators?: readonly SteeringGenerator[]
  /** Measure the bare 302 ceilings (default true). */
  readonly ceilings?: boolean
  /** Checkout whose `bin/streamedge.js` runs the control plane (default this one): A/B runs against another tree. */
  readonly root?: string
  /** Extra node flags for the control plane (V8 heap settings, say). */
  readonly nodeArgs?: readonly string[]
  /** Control-plane worker counts to measure (`controlPlane.workers`), default [1, 2]; the log-off round runs for the smallest only. */
  readonly workers?: readonly number[]
  /**
   * Connection counts of extra wrk windows against the smallest worker count with the log on
   * (default {@link LATENCY_SWEEP_CONNECTIONS}; [] for none). With `connections` clients each
   * waiting for its answer, a turn of the event loop answers up to that many requests, so p99
   * at full load is mostly that queue: fewer connections trade a little throughput (smaller
   * write batches) for latency, and the verdict takes the best rate whose p99 meets the target.
   */
  readonly latencySweep?: readonly number[]
  /**
   * Run the single-process control planes under `--trace-gc-nvp` and add each measured
   * window's collections to its round (`gc`): scavenges, pauses, promoted bytes, mark-compacts.
   */
  readonly gcTrace?: boolean
  /** When set, a promoted-bytes heap profile of each single-process measured window goes into this directory (round's `heapPromoted`). */
  readonly heapPromotedDir?: string
}

/**
 * The latency sweep's connection counts (see `latencySweep`). It replaced a paced window (160
 * wrk connections, each waiting 5 ms after every answer): wrk fires those waits in bursts, and
 * at 13,000-15,600 decisions/s its p99 (15-35 ms) was worse than at saturation.
 */
export const LATENCY_SWEEP_CONNECTIONS: readonly number[] = [16, 32]

/** A bare 302 server (no decision) under the same load: a ceiling. */
export interface BareResult {
  /** `node:http`, or `fast-front` (lib/http/fast-front.ts below node:http, the control plane's path). */
  readonly server: 'node:http' | 'fast-front'
  readonly generator: SteeringGenerator
  readonly requestsPerSec: number
  readonly latencyP50Ms: number
  readonly latencyP99Ms: number
  readonly serverCpuPerSec: number
  /** Server CPU (user + system) per answer, µs. */
  readonly serverCpuUsPerRequest: number
  /** The generator's own CPU seconds per second (1.0 = its one thread is saturated). */
  readonly generatorCpuPerSec: number
}

/** One measured window against a control plane. */
export interface SteeringRound {
  /** Control-plane processes serving (`controlPlane.workers`; 1 = no cluster; absent in results from before cluster mode). */
  readonly workers?: number
  /** The window's connections (absent in results from before the latency sweep). */
  readonly connections?: number
  /** A paced window, in results from before the latency sweep replaced it: wrk connections each waiting `delayMs` after every answer. */
  readonly paced?: { readonly connections: number, readonly delayMs: number }
  readonly accessLog: boolean
  readonly generator: SteeringGenerator
  /** Answers per second of the first pass over all client addresses (cold prefix, plan and token caches; autocannon, once per process). */
  readonly firstPassDecisionsPerSec: number
  readonly decisionsPerSec: number
  readonly requests: number
  readonly redirects: number
  readonly licenceDenials: number
  readonly otherStatuses: number
  readonly errors: number
  readonly latencyP50Ms: number
  readonly latencyP99Ms: number
  /** Control-plane CPU seconds per second of wall time, every process of it (1.0 = one core busy). */
  readonly serverCpuPerSec: number
  /** Control-plane CPU (user + system) per decision, µs. */
  readonly serverCpuUsPerDecision: number
  /** The generator's own CPU seconds per second (1.0 = the generator is saturated). */
  readonly generatorCpuPerSec: number
  /** Requests the HTTP fast path answered, and connections it handed to node:http (whole process life, warm-up included). */
  readonly fastPathAnswered: number
  readonly fastPathHandoffs: number
  /** The control plane's garbage collections over the window (with `gcTrace`, single process). */
  readonly gc?: GcWindowSummary
  /** What survived the young generation over the window (with `heapPromotedDir`, single process). */
  readonly heapPromoted?: HeapPromotedSummary
}

/** The control plane's CPU profile over one measured window. */
export interface SteeringProfile {
  readonly workers: number
  readonly accessLog: boolean
  readonly generator: SteeringGenerator
  readonly profile: ProfiledRun
}

/** The scenario's result. */
export interface SteeringResult {
  readonly targetPerSec: number
  readonly targetP99Ms: number
  /** Generators used, in the order they ran. */
  readonly generators: readonly SteeringGenerator[]
  /** The bare 302 servers, per server and generator: this machine's ceilings. */
  readonly ceilings: readonly BareResult[]
  readonly rounds: readonly SteeringRound[]
  /** Each measured window's CPU profile (with `profileDir`). */
  readonly profiles?: readonly SteeringProfile[]
  /** The decision-log-on round with the most decisions/s among those meeting the p99 target (else the most overall): the verdict's configuration. */
  readonly best?: { readonly workers: number, readonly generator: SteeringGenerator, readonly decisionsPerSec: number, readonly latencyP99Ms: number, readonly connections?: number, readonly paced?: boolean }
  /** The target met (decision log on) in the best configuration. */
  readonly passed: boolean
}

/** Issue 5's targets. */
export const STEERING_TARGET_PER_SEC = 20_000
export const STEERING_TARGET_P99_MS = 5

const GROUPS = [
  { id: 'eu-central', lat: 50.11, lon: 8.68 },
  { id: 'eu-west', lat: 51.51, lon: -0.13 },
  { id: 'us-east', lat: 39.04, lon: -77.49 },
  { id: 'us-west', lat: 37.34, lon: -121.89 },
  { id: 'ap-northeast', lat: 35.68, lon: 139.77 },
  { id: 'sa-east', lat: -23.55, lon: -46.63 },
]
const TITLES = 1000
const CLIENTS = 50_000

/** The control planes to measure: every worker count with the decision log on, the smallest also with it off. */
export function steeringConfigs (workers: readonly number[]): Array<{ readonly workers: number, readonly accessLog: boolean }> {
  if (workers.length === 0 || workers.some((w) => !Number.isSafeInteger(w) || w < 1 || w > 64)) throw new TypeError(`Expected workers to be integers in 1..64, got ${JSON.stringify(workers)}`)
  const smallest = Math.min(...workers)
  return [...new Set(workers)].flatMap((w) => w === smallest ? [{ workers: w, accessLog: true }, { workers: w, accessLog: false }] : [{ workers: w, accessLog: true }])
}

/** Runs the scenario: for each configuration ({@link steeringConfigs}), one control plane. Stops everything it started. */
export async function runSteering (o: SteeringBenchOptions): Promise<SteeringResult> {
  const dir = await mkdtemp(join(tmpdir(), 'streamedge-bench-steering-'))
  const fleet: http.Server[] = []
  let child: ChildServer | undefined
  try {
    const nodes = []
    for (let i = 0; i < GROUPS.length * 2; i++) {
      const server = http.createServer((_req, res) => res.end('ready\n'))
      server.listen(0, '127.0.0.1')
      await once(server, 'listening')
      fleet.push(server)
      const group = GROUPS[i % GROUPS.length]!
      nodes.push({ id: `edge-${i}`, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, group: group.id, lat: group.lat, lon: group.lon, capacity: { connections: 1_000_000, mbps: 100_000 } })
    }
    await writeFile(join(dir, 'nodes.yaml'), toYaml({ nodes }))
    await writeFile(join(dir, 'licensing.yaml'), toYaml({ rules: [{ prefix: '/vod/title-7/', allow: ['US', 'CA'] }, { prefix: '/vod/title-9', deny: ['CN'], unknown: 'allow' }] }))
    await writeFile(join(dir, 'zones.json'), JSON.stringify({ coverageZones: { 'eu-central': { network: ['100.64.0.0/10'], country: 'DE' } } }))
    const requests = steerRequests(clientAddresses(CLIENTS))
    const wrk = o.wrkCommand === null ? undefined : o.wrkCommand ?? findExecutable('wrk')
    if (wrk === undefined) o.log('steering: wrk absent, measuring with autocannon only')
    const generators = (o.generators ?? ['autocannon', 'wrk']).filter((g) => g !== 'wrk' || wrk !== undefined)
    if (generators.length === 0) throw new TypeError(`Expected a usable generator, got ${JSON.stringify(o.generators)} without wrk installed`)
    const warmupS = o.warmupS ?? 2
    const load = (url: string, generator: SteeringGenerator, durationS: number, connections = o.connections): Promise<LoadWindow> =>
      generator === 'wrk'
        ? wrkWindow(wrk!, url, requests, connections, durationS)
        : autocannonWindow(url, requests, connections, durationS)
    // checked before minutes of ceilings run
    const configs = steeringConfigs(o.workers ?? [1, 2])
    const minWorkers = Math.min(...configs.map((c) => c.workers))
    const sweep = o.latencySweep ?? LATENCY_SWEEP_CONNECTIONS
    if (sweep.some((c) => !Number.isSafeInteger(c) || c < 1)) throw new TypeError(`Expected latencySweep to be positive integers, got ${JSON.stringify(sweep)}`)

    const ceilings: BareResult[] = []
    for (const server of o.ceilings === false ? [] : ['node:http', 'fast-front'] as const) {
      const bare = await startChildServer({ label: `bare-302-${server}`, nodeArgs: ['--import', 'tsx'], script: fileURLToPath(import.meta.url), args: ['--serve-bare-302', server === 'fast-front' ? 'fast' : 'http'] })
      child = bare
      for (const generator of generators) {
        if (warmupS > 0) await load(bare.url, generator, warmupS)
        const m = await measureWithCpu(bare.pid, generator, () => load(bare.url, generator, o.durationS))
        const result: BareResult = {
          server,
          generator,
          requestsPerSec: Math.round(m.result.requests / m.result.durationS),
          latencyP50Ms: m.result.latencyP50Ms,
          latencyP99Ms: m.result.latencyP99Ms,
          serverCpuPerSec: round2(m.serverCpuSeconds / m.wallS),
          serverCpuUsPerRequest: round1(m.serverCpuSeconds / Math.max(1, m.result.requests) * 1e6),
          generatorCpuPerSec: round2(m.generatorCpuSeconds / m.wallS),
        }
        ceilings.push(result)
        o.log(`steering: bare ${server} 302, ${generator}: ${result.requestsPerSec} req/s, p50 ${result.latencyP50Ms} ms, p99 ${result.latencyP99Ms} ms, server ${result.serverCpuPerSec} CPU s/s (${result.serverCpuUsPerRequest} µs/answer, ${round1(m.serverSystemSeconds / Math.max(1, m.result.requests) * 1e6)} of them system), ${generator} ${result.generatorCpuPerSec} CPU s/s`)
      }
      await bare.stop()
      child = undefined
    }

    const rounds: SteeringRound[] = []
    const profiles: SteeringProfile[] = []
    for (const { workers, accessLog } of configs) {
      const label = steeringLabel(workers, accessLog)
      // One profile per process would not add up to one window's figures, and a cluster's
      // processes share one stdout: profile and trace single processes only.
      const rawProfileDir = o.profileDir === undefined || workers > 1 ? undefined : join(o.profileDir, `steering-${Date.now()}`)
      if (rawProfileDir !== undefined) await mkdir(rawProfileDir, { recursive: true })
      const gcTraced = o.gcTrace === true && workers === 1
      // absolute: the child runs in the checkout's directory
      const promotedDir = workers === 1 && o.heapPromotedDir !== undefined ? resolvePath(o.heapPromotedDir) : undefined
      if (promotedDir !== undefined) await mkdir(promotedDir, { recursive: true })
      const promoted = promotedDir === undefined ? undefined : heapPromotedChild(promotedDir)
      const logFile = join(dir, `control-plane-${workers}w-${accessLog ? 'log' : 'nolog'}.jsonl`)
      const nodeArgs = [...o.nodeArgs ?? [], ...rawProfileDir === undefined ? [] : profileNodeArgs(rawProfileDir), ...gcTraced ? gcTraceNodeArgs() : [], ...promoted?.nodeArgs ?? []]
      const cp = await startControlPlaneProcess(o.root ?? REPO_ROOT, dir, accessLog, workers, logFile, nodeArgs, promoted?.env)
      child = cp
      const gcFile = gcTraced ? new GcTraceFile(logFile) : undefined
      const sampler = promotedDir === undefined ? undefined : new HeapPromotedSampler(cp.pid, promotedDir)
      o.log(`steering: control plane pid ${cp.pid} ${cp.url}, ${label}`)
      // One pass over every client address first (each connection sends its slice once): the
      // measured windows then show the steady state, every prefix, plan and token seen before,
      // and the pass itself shows the cold rate.
      const first = await autocannonWindow(cp.url, requests, o.connections, 0, requests.length)
      const firstPassDecisionsPerSec = Math.round(first.requests / first.durationS)
      const windows: ProfileWindow[] = []
      const runs = generators.map((generator) => ({ generator, connections: o.connections, swept: false }))
      // the sweep's windows follow a warm saturation window: no warm-up of their own
      if (generators.includes('wrk') && accessLog && workers === minWorkers) runs.push(...sweep.map((connections) => ({ generator: 'wrk' as const, connections, swept: true })))
      for (const { generator, connections, swept } of runs) {
        if (warmupS > 0 && !swept) await load(cp.url, generator, warmupS)
        await sampler?.start()
        const before = await decisionCounts(cp.url)
        const fromUs = monotonicUs()
        const m = await measureWithCpu(cp.pid, generator, () => load(cp.url, generator, o.durationS, connections))
        const toUs = monotonicUs()
        const capture = await sampler?.stop()
        const metrics = (await httpGet(`${cp.url}/metrics`)).body.toString()
        const after = countsOf(metrics)
        if (!swept) windows.push({ fromUs, toUs, requests: m.result.requests, requestsPerSec: m.result.requests / m.result.durationS })
        // autocannon counts statuses itself; wrk only counts non-2xx/3xx, so 302 and 451 come
        // from the control plane's own counters over the window
        const redirects = m.result.statuses?.redirects ?? after.redirects - before.redirects
        const licenceDenials = m.result.statuses?.licenceDenials ?? after.licenceDenials - before.licenceDenials
        const otherStatuses = m.result.statuses?.other ?? Math.max(0, m.result.statusErrors - licenceDenials)
        const decisions = m.result.statuses === undefined ? m.result.requests - otherStatuses : redirects + licenceDenials
        const gc = gcFile === undefined ? undefined : summariseGcWindowUs(await gcFile.update(), fromUs, toUs)
        if (gcFile !== undefined && gc === undefined) o.log('steering: no gc-clock line in the control plane\'s output, so no GC summary (bench/lib/gc-clock-preload.mjs did not run?)')
        const heapPromoted = capture === undefined ? undefined : await summariseHeapPromoted(capture, { root: o.root ?? REPO_ROOT })
        const round: SteeringRound = {
          workers,
          connections,
          accessLog,
          generator,
          firstPassDecisionsPerSec,
          decisionsPerSec: Math.round(decisions / m.result.durationS),
          requests: m.result.requests,
          redirects,
          licenceDenials,
          otherStatuses,
          errors: m.result.errors,
          latencyP50Ms: m.result.latencyP50Ms,
          latencyP99Ms: m.result.latencyP99Ms,
          serverCpuPerSec: round2(m.serverCpuSeconds / m.wallS),
          serverCpuUsPerDecision: round1(m.serverCpuSeconds / Math.max(1, decisions) * 1e6),
          generatorCpuPerSec: round2(m.generatorCpuSeconds / m.wallS),
          fastPathAnswered: promValue(metrics, 'streamedge_cp_fast_path_requests_total'),
          fastPathHandoffs: promValue(metrics, 'streamedge_cp_fast_path_handoffs_total'),
          ...gc === undefined ? {} : { gc },
          ...heapPromoted === undefined ? {} : { heapPromoted },
        }
        rounds.push(round)
        o.log(`  ${generator}, ${connections} connections: first pass (cold) ${round.firstPassDecisionsPerSec}/s; measured ${round.decisionsPerSec} decisions/s, p50 ${round.latencyP50Ms} ms, p99 ${round.latencyP99Ms} ms, ${round.redirects} × 302, ${round.licenceDenials} × 451, ${round.otherStatuses} other, ${round.errors} errors, server ${round.serverCpuPerSec} CPU s/s (${round.serverCpuUsPerDecision} µs/decision, ${round1(m.serverSystemSeconds / Math.max(1, decisions) * 1e6)} of them system), ${generator} ${round.generatorCpuPerSec} CPU s/s, fast path ${round.fastPathAnswered} answered, ${round.fastPathHandoffs} handoffs, decision cache ${Math.round(100 * (after.cacheHits - before.cacheHits) / Math.max(1, after.cacheHits - before.cacheHits + after.cacheMisses - before.cacheMisses))} % hits`)
        if (gc !== undefined) o.log(`    ${formatGcSummary(gc, decisions)}`)
        if (heapPromoted !== undefined) for (const line of formatHeapPromoted(heapPromoted, { decisions })) o.log(`    ${line}`)
      }
      await cp.stop()
      child = undefined
      if (rawProfileDir !== undefined) {
        const profiled = await summariseProfile({ dir: rawProfileDir, keepAs: join(o.profileDir!, `steering-log-${accessLog ? 'on' : 'off'}-${Date.now()}.cpuprofile`), root: REPO_ROOT, top: 30 }, windows)
        for (const [i, p] of profiled.entries()) {
          profiles.push({ workers, accessLog, generator: generators[i]!, profile: p })
          o.log(`steering: profile (${label}, ${generators[i]}): busy ${Math.round(p.busyMs)} ms of ${Math.round(p.durationMs)} ms, ${round1(p.busyMs * 1000 / Math.max(1, p.requests))} µs main-thread CPU per request; ${p.file}`)
          for (const f of p.topFunctions) o.log(`    ${f.selfPercent.toFixed(1).padStart(5)} %  ${f.functionName}  ${f.location}`)
        }
      }
    }
    const logOn = rounds.filter((r) => r.accessLog && r.otherStatuses === 0)
    const withinP99 = logOn.filter((r) => r.latencyP99Ms < STEERING_TARGET_P99_MS)
    const bestRound = (withinP99.length > 0 ? withinP99 : logOn).reduce<SteeringRound | undefined>((a, r) => a === undefined || r.decisionsPerSec > a.decisionsPerSec ? r : a, undefined)
    const passed = bestRound !== undefined && bestRound.decisionsPerSec >= STEERING_TARGET_PER_SEC && bestRound.latencyP99Ms < STEERING_TARGET_P99_MS
    if (bestRound !== undefined) o.log(`steering: best with the decision log on: ${steeringLabel(bestRound.workers ?? 1)}, ${bestRound.generator}, ${bestRound.connections} connections: ${bestRound.decisionsPerSec} decisions/s, p99 ${bestRound.latencyP99Ms} ms: target ${passed ? 'met' : 'missed'}`)
    return {
      targetPerSec: STEERING_TARGET_PER_SEC,
      targetP99Ms: STEERING_TARGET_P99_MS,
      generators,
      ceilings,
      rounds,
      ...(profiles.length === 0 ? {} : { profiles }),
      ...(bestRound === undefined ? {} : { best: { workers: bestRound.workers ?? 1, generator: bestRound.generator, decisionsPerSec: bestRound.decisionsPerSec, latencyP99Ms: bestRound.latencyP99Ms, ...(bestRound.connections === undefined ? {} : { connections: bestRound.connections }) } }),
      passed,
    }
  } finally {
    await child?.stop()
    await Promise.all(fleet.map((s) => new Promise<void>((resolve) => { s.closeAllConnections(); s.close(() => resolve()) })))
    await rm(dir, { recursive: true, force: true })
  }
}

/** The scenario under the name bench/run.ts registrations use. */
export const run = runSteering

/** One load window, whichever generator ran it. */
interface LoadWindow {
  readonly requests: number
  readonly durationS: number
  readonly latencyP50Ms: number
  readonly latencyP99Ms: number
  /** Socket errors and timeouts. */
  readonly errors: number
  /** Answers with a status outside 2xx and 3xx. */
  readonly statusErrors: number
  /** Answers by status, when the generator counts them (autocannon). */
  readonly statuses?: { readonly redirects: number, readonly licenceDenials: number, readonly other: number }
}

/**
 * Runs one load window and charges it: the server's CPU (user + system, from /proc, of the
 * process and every process below it: a cluster's primary and workers; a bare server is one
 * process, its own tree) and the generator's (autocannon runs in this process; wrk is a child
 * reaped at the end of its run).
 */
async function measureWithCpu<T> (pid: number, generator: SteeringGenerator, run: () => Promise<T>): Promise<{ result: T, wallS: number, serverCpuSeconds: number, serverSystemSeconds: number, generatorCpuSeconds: number }> {
  const serverBefore = readProcessTreeCpu(pid)
  const ownBefore = process.cpuUsage()
  const childrenBefore = readReapedChildrenCpu()
  const started = performance.now()
  const result = await run()
  const wallS = (performance.now() - started) / 1000
  const serverAfter = readProcessTreeCpu(pid)
  const serverCpuSeconds = cpuSecondsBetween(serverBefore, serverAfter)
  const own = process.cpuUsage(ownBefore)
  const generatorCpuSeconds = generator === 'wrk' ? cpuSecondsBetween(childrenBefore, readReapedChildrenCpu()) : (own.user + own.system) / 1e6
  return { result, wallS, serverCpuSeconds, serverSystemSeconds: serverAfter.systemSeconds - serverBefore.systemSeconds, generatorCpuSeconds }
}

/**
 * Starts `streamedge control-plane` with stdout going to a file, as a service's log would:
 * piping 20,000 lines a second into the load generator's process would measure the pipe.
 */
function startControlPlaneProcess (root: string, dir: string, accessLog: boolean, workers: number, stdoutFile: string, nodeArgs: readonly string[], env?: Readonly<Record<string, string>>): Promise<ChildServer> {
  return startChildServer({
    label: 'control plane',
    nodeArgs,
    script: join(root, 'bin', 'streamedge.js'),
    args: controlPlaneArgs(dir, accessLog, workers),
    cwd: root,
    stdoutFile,
    ...env === undefined ? {} : { env },
    readyTimeoutMs: 30_000,
  })
}

function controlPlaneArgs (dir: string, accessLog: boolean, workers: number): string[] {
  return [
    'control-plane',
    '--nodes', join(dir, 'nodes.yaml'),
    '--licensing', join(dir, 'licensing.yaml'),
    '--zones', join(dir, 'zones.json'),
    '--listen', '127.0.0.1:0',
    '--controlPlane.id', 'bench-cp',
    '--controlPlane.tokenKeys', 'bench:bench-secret-0123456789abcdef',
    '--controlPlane.trustedProxies', '127.0.0.1',
    '--log.level', 'info',
    '--log.access', String(accessLog),
    // only when asked: a checkout from before cluster mode (--root) knows no such setting
    ...(workers === 1 ? [] : ['--controlPlane.workers', String(workers)]),
  ]
}

/** Request `i` goes from client address `i` for title `(i · 7919) mod TITLES`. */
function steerRequests (clients: readonly string[]): WrkRequest[] {
  return clients.map((ip, i) => ({ path: `/v1/steer/vod/title-${(i * 7919) % TITLES}/master.m3u8`, headers: { 'x-forwarded-for': ip } }))
}

/**
 * One autocannon window. Every connection gets its own prebuilt list of requests (the `k`-th
 * slice), so the generator spends nothing per request on building them (a per-request
 * `setupRequest` costs autocannon more than a fast server spends answering), every client
 * address is used, and the bare baselines see the same requests.
 */
async function autocannonWindow (url: string, requests: readonly WrkRequest[], connections: number, durationS: number, amount?: number): Promise<LoadWindow> {
  const perConnection = Math.ceil(requests.length / connections)
  const lists: autocannon.Request[][] = []
  for (let k = 0; k < connections; k++) {
    lists.push(requests.slice(k * perConnection, (k + 1) * perConnection).map((r) => ({ method: 'GET', path: r.path, headers: { ...r.headers } })))
  }
  let next = 0
  const result = await autocannon({
    url,
    connections,
    ...(amount === undefined ? { duration: durationS } : { amount }),
    setupClient: (client) => {
      client.setRequests(lists[next++ % lists.length] ?? [])
    },
  })
  const status = (code: string): number => result.statusCodeStats?.[code as `${number}`]?.count ?? 0
  const redirects = status('302')
  const licenceDenials = status('451')
  let statusErrors = 0
  for (const [code, stat] of Object.entries(result.statusCodeStats ?? {})) if (Number(code) >= 400) statusErrors += stat?.count ?? 0
  return {
    requests: result.requests.total,
    durationS: result.duration,
    latencyP50Ms: result.latency.p50,
    latencyP99Ms: result.latency.p99,
    errors: result.errors + result.timeouts,
    statusErrors,
    statuses: { redirects, licenceDenials, other: result.requests.total - redirects - licenceDenials },
  }
}

/** One wrk window over the same requests, sent in turn by bench/lib/wrk.ts's Lua rotation. */
async function wrkWindow (command: string, url: string, requests: readonly WrkRequest[], connections: number, durationS: number, delayMs?: number): Promise<LoadWindow> {
  const r = await runWrk({ command, url, requests, connections, durationS, ...(delayMs === undefined ? {} : { delayMs }) })
  return {
    requests: r.requests,
    durationS: r.durationS,
    latencyP50Ms: round2(r.latencyP50Ms),
    latencyP99Ms: round2(r.latencyP99Ms),
    errors: r.connectErrors + r.readErrors + r.writeErrors + r.timeouts,
    statusErrors: r.statusErrors,
  }
}

function round1 (n: number): number {
  return Math.round(n * 10) / 10
}

function round2 (n: number): number {
  return Math.round(n * 100) / 100
}

/** Steering answers counted by the control plane so far: 302s and 451s. */
async function decisionCounts (url: string): Promise<ReturnType<typeof countsOf>> {
  return countsOf((await httpGet(`${url}/metrics`)).body.toString())
}

function countsOf (metrics: string): { redirects: number, licenceDenials: number, cacheHits: number, cacheMisses: number } {
  return {
    redirects: promSum(metrics, 'streamedge_cp_decisions_total', { outcome: 'redirect' }),
    licenceDenials: promSum(metrics, 'streamedge_cp_decisions_total', { outcome: 'denied-licence' }),
    cacheHits: promSum(metrics, 'streamedge_cp_decision_cache_total', { result: 'hit' }),
    cacheMisses: promSum(metrics, 'streamedge_cp_decision_cache_total', { result: 'miss' }),
  }
}

/** Deterministic public-looking addresses: 90 % IPv4 outside private and special ranges, 10 % IPv6 in 2a00::/12. */
export function clientAddresses (count: number): string[] {
  let seed = 0x5eed
  const next = (): number => {
    seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0
    return seed
  }
  const out: string[] = []
  while (out.length < count) {
    const r = next()
    if (out.length % 10 === 9) {
      out.push(`2a0${((r >>> 28) & 0xf).toString(16)}:${(r & 0xffff).toString(16)}:${(next() & 0xffff).toString(16)}::${(next() & 0xffff).toString(16)}`)
      continue
    }
    const a = 1 + ((r >>> 24) % 223)
    const b = (r >>> 16) & 0xff
    if (a === 10 || a === 127 || (a === 100 && b >= 64 && b < 128) || (a === 169 && b === 254) || (a === 172 && b >= 16 && b < 32) || (a === 192 && b === 168)) continue
    out.push(`${a}.${b}.${(r >>> 8) & 0xff}.${next() & 0xff}`)
  }
  return out
}

/**
 * The baselines: node:http answering every request with a 302 of the same size and fields,
 * nothing else; or (`fast`) lib/http/fast-front.ts answering it below node:http. The
 * headers timeout is node's default, 60 s.
 */
function serveBare302 (kind: string): void {
  const location = `http://127.0.0.1:8081/t/${'x'.repeat(170)}/vod/title-1/master.m3u8`
  const headers = { 'access-control-allow-origin': '*', 'access-control-expose-headers': 'location, retry-after', location, 'cache-control': 'no-store', 'content-length': '0' }
  const server = serveBaseline('bare', { keepAliveTimeoutMs: 5000, headersTimeoutMs: 60_000 }, (_req, res) => {
    res.writeHead(302, headers)
    res.end()
  })
  if (kind === 'fast') {
    const head = `HTTP/1.1 302 Found\r\n${Object.entries(headers).map(([name, value]) => `${name}: ${value}\r\n`).join('')}`
    new FastFront({ keepAliveTimeoutMs: 5000, handler: () => ({ head }) }).attach(server)
  }
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1] && process.argv.includes('--serve-bare-302')) {
  serveBare302(process.argv[process.argv.indexOf('--serve-bare-302') + 1] ?? 'http')
} else if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1] && process.argv.includes('--help')) {
  process.stdout.write(`Usage: node --import tsx bench/scenarios/steering.ts [options]

  --quick                  3 s windows (1 s warm-up) instead of 10 s (3 s)
  --workers N[,N...]       control-plane worker counts to measure (controlPlane.workers), default 1,2;
                           the decision-log-off round runs for the smallest only
  --generator G            wrk or autocannon (default both, wrk when installed)
  --no-wrk                 autocannon only
  --no-ceilings            skip the bare 302 servers
  --connections N          connections of the saturation windows (default 64)
  --sweep N[,N...]         connections of the latency sweep's windows (default 16,32; 0 for none)
  --root CHECKOUT          run another checkout's control plane (A/B runs)
  --node-arg FLAG          extra node flag for the control plane (repeatable)
  --profile DIR            CPU profiles of single-process control planes into DIR
  --gc                     single-process control planes under --trace-gc-nvp: each window's
                           scavenges, pauses, promoted bytes and mark-compacts
  --heap-promoted DIR      promoted-bytes heap profile of each single-process window into DIR
`)
} else if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const quick = process.argv.includes('--quick')
  const value = (flag: string): string | undefined => {
    const at = process.argv.indexOf(flag)
    return at === -1 ? undefined : process.argv[at + 1]
  }
  const profileDir = value('--profile')
  const heapPromotedDir = value('--heap-promoted')
  const root = value('--root')
  const generator = value('--generator')
  const nodeArgs = process.argv.flatMap((arg, i) => arg === '--node-arg' && process.argv[i + 1] !== undefined ? [process.argv[i + 1]!] : [])
  const workers = value('--workers')?.split(',').map(Number)
  const latencySweep = value('--sweep')?.split(',').map(Number).filter((c) => c !== 0)
  runSteering({ ...(workers === undefined ? {} : { workers }), durationS: quick ? 3 : 10, warmupS: quick ? 1 : 3, connections: Number(value('--connections') ?? 64), ...(latencySweep === undefined ? {} : { latencySweep }), ...(profileDir === undefined ? {} : { profileDir }), ...(process.argv.includes('--no-wrk') ? { wrkCommand: null } : {}), ...(generator === undefined ? {} : { generators: [generator as SteeringGenerator] }), ...(root === undefined ? {} : { root }), ...(process.argv.includes('--no-ceilings') ? { ceilings: false } : {}), ...(nodeArgs.length === 0 ? {} : { nodeArgs }), ...(process.argv.includes('--gc') ? { gcTrace: true } : {}), ...(heapPromotedDir === undefined ? {} : { heapPromotedDir }), log: (line) => process.stderr.write(`${line}\n`) }).then((result) => {
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`)
    process.exit(0)
  }, (err: unknown) => {
    process.stderr.write(`steering bench failed: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`)
    process.exit(1)
  })
}
