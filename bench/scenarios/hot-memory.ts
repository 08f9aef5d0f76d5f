/**
 * Scenario "hot-memory": a 2 MiB .ts segment served from the edge's memory tier to 100
 * keep-alive connections, against a bare node:http server sending the same bytes with
 * the same headers. Both are child processes; the figure that matters on a small box is
 * each server's CPU seconds per GB served, because autocannon saturates first.
 */
import { createHash } from 'node:crypto'
import { copyFile, mkdtemp, readdir, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import type autocannon from 'autocannon'
import { startOrigin } from '../origin/origin-server.ts'
import { REPO_ROOT, startChildServer, startEdgeProcess, type ChildServer } from '../lib/child-server.ts'
import { summariseCpuProfile, type CpuProfile } from '../lib/cpu-profile.ts'
import { httpGet, replayableHeaders } from '../lib/http-get.ts'
import { loadTest } from '../lib/load.ts'
import { cpuSecondsBetween, readProcessCpu, readSystemBusySeconds } from '../lib/proc-cpu.ts'
import type { HotMedians, HotResult, HotRound, ProfiledRun } from '../lib/results.ts'
import { cpuSecondsPerGb, median, ratio } from '../lib/stats.ts'

/** Settings of {@link runHotMemory}. */
export interface HotMemoryOptions {
  readonly connections: number
  readonly warmupS: number
  readonly measureS: number
  readonly rounds: number
  /** Profile the edge under the same load: always, never, or only when the CPU/GB target is missed. */
  readonly profile: 'auto' | 'always' | 'never'
  /** Where a kept .cpuprofile goes (gitignored). */
  readonly resultsDir: string
  readonly stamp: string
  /** Checkout whose edge runs (default: this one). */
  readonly edgeRoot?: string | undefined
  /** Awaited before each measured window (e.g. to wait for a quiet machine). */
  readonly beforeWindow?: () => Promise<unknown>
  readonly log: (line: string) => void
}

/** The largest whole number of 188-byte TS packets in 2 MiB: the edge's integrity gate refuses partial packets. */
export const HOT_BODY_BYTES = Math.floor(2 * 1024 * 1024 / 188) * 188
/** Issue 2's target: the edge may spend at most this multiple of the bare server's CPU per GB. */
export const CPU_PER_GB_RATIO_MAX = 1.2
const HOT_NAME = 'hot'
const HOT_PATH = `/synthetic/${HOT_NAME}-${HOT_BODY_BYTES}.ts`
const BARE_SCRIPT = join(REPO_ROOT, 'bench/peers/bare-server.ts')
// The edge's NodeServer defaults (config edge.server.*), so the baseline runs the same http.Server settings.
const KEEP_ALIVE_TIMEOUT_MS = 5000
const HEADERS_TIMEOUT_MS = 10000

interface Target { readonly name: 'edge' | 'bare', readonly server: ChildServer }

/** Runs the scenario; every server it starts is stopped before it returns. */
export async function runHotMemory (o: HotMemoryOptions): Promise<HotResult> {
  const origin = await startOrigin()
  const dirs: string[] = []
  const servers: ChildServer[] = []
  const tempDir = async (prefix: string): Promise<string> => {
    const dir = await mkdtemp(join(tmpdir(), prefix))
    dirs.push(dir)
    return dir
  }
  const startPair = async (profDir?: string): Promise<Target[]> => {
    const prof = (name: string): string[] => profDir === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', join(profDir, name)]
    const edge = await startEdgeProcess({ originUrl: origin.url, cacheDir: await tempDir('streamedge-bench-edge-'), nodeArgs: prof('edge'), ...edgeRootOf(o) })
    servers.push(edge)
    const hit = await warmEdge(edge.url)
    const bare = await startChildServer({
      label: 'bare',
      nodeArgs: [...prof('bare'), '--import', 'tsx'],
      script: BARE_SCRIPT,
      args: [JSON.stringify({ name: HOT_NAME, bytes: HOT_BODY_BYTES, ext: 'ts', headers: replayableHeaders(hit.rawHeaders), keepAliveTimeoutMs: KEEP_ALIVE_TIMEOUT_MS, headersTimeoutMs: HEADERS_TIMEOUT_MS })],
    })
    servers.push(bare)
    await checkSameBody(bare.url, hit.body)
    return [{ name: 'edge', server: edge }, { name: 'bare', server: bare }]
  }
  try {
    const targets = await startPair()
    o.log(`hot-memory: ${targets.map((t) => `${t.name} pid ${t.server.pid} ${t.server.url}`).join(', ')}, body ${HOT_BODY_BYTES} bytes`)
    const rounds: HotRound[] = []
    for (let round = 1; round <= o.rounds; round++) {
      for (const target of targets) {
        const r = await measure(target, round, o)
        rounds.push(r)
        o.log(`  round ${round} ${target.name}: ${r.requestsPerSec.toFixed(0)} req/s, p99 ${r.latencyP99Ms} ms, ${r.cpuSecondsPerGb.toFixed(3)} CPU s/GB; CPU s/s: server ${(r.cpuSeconds / r.durationS).toFixed(2)}, load-gen ${(r.loadGenCpuSeconds / r.durationS).toFixed(2)}, other ${(r.otherCpuSeconds / r.durationS).toFixed(2)}`)
      }
    }
    const edgeMedians = mediansOf(rounds, 'edge')
    const bareMedians = mediansOf(rounds, 'bare')
    const cpuRatio = ratio(edgeMedians.cpuSecondsPerGb, bareMedians.cpuSecondsPerGb)
    const met = cpuRatio <= CPU_PER_GB_RATIO_MAX
    const result: HotResult = {
      scenario: 'hot-memory',
      config: { path: HOT_PATH, bodyBytes: HOT_BODY_BYTES, connections: o.connections, warmupS: o.warmupS, measureS: o.measureS, rounds: o.rounds },
      rounds,
      edge: edgeMedians,
      bare: bareMedians,
      ratios: {
        requestsPerSec: ratio(edgeMedians.requestsPerSec, bareMedians.requestsPerSec),
        latencyP99: ratio(edgeMedians.latencyP99Ms, bareMedians.latencyP99Ms),
        cpuSecondsPerGb: cpuRatio,
      },
      target: { cpuPerGbRatioMax: CPU_PER_GB_RATIO_MAX, met },
    }
    await Promise.all(servers.splice(0).map((s) => s.stop()))
    if (o.profile === 'never' || (o.profile === 'auto' && met)) return result
    o.log(`hot-memory: CPU/GB ratio ${cpuRatio.toFixed(3)} (target ≤ ${CPU_PER_GB_RATIO_MAX}); profiling edge and bare under the same load`)
    // A fresh pair under --cpu-prof (profiling slows both, so these runs are not the measured ones).
    const profDir = await tempDir('streamedge-bench-prof-')
    const pair = await startPair(profDir)
    const windows = []
    for (const target of pair) windows.push(await profiledLoad(target, o))
    await Promise.all(servers.splice(0).map((s) => s.stop())) // each writes its profile as it exits
    const [edgeRun, bareRun] = await Promise.all(windows.map((w) => summariseRun(w, profDir, o)))
    return { ...result, profile: { edge: edgeRun!, bare: bareRun! } }
  } finally {
    await Promise.all(servers.map((s) => s.stop()))
    await origin.close()
    await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })))
  }
}

function edgeRootOf (o: HotMemoryOptions): { edgeRoot?: string } {
  return o.edgeRoot === undefined ? {} : { edgeRoot: o.edgeRoot }
}

/** Fills the edge's memory tier and returns the hit (whose headers the bare server copies). */
async function warmEdge (url: string): Promise<Awaited<ReturnType<typeof httpGet>>> {
  const miss = await httpGet(url + HOT_PATH)
  if (miss.status !== 200 || miss.body.length !== HOT_BODY_BYTES) throw new Error(`edge warm-up: got ${miss.status} with ${miss.body.length} bytes`)
  // The store admits the body when the fill ends; poll briefly for the hit.
  for (let i = 0; i < 50; i++) {
    const res = await httpGet(url + HOT_PATH)
    if (/;\s*hit/.test(String(res.headers['cache-status'])) && res.body.equals(miss.body)) return res
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  throw new Error(`edge warm-up: ${HOT_PATH} never became a hit`)
}

async function checkSameBody (url: string, expected: Buffer): Promise<void> {
  const res = await httpGet(url + HOT_PATH)
  const digest = (b: Buffer): string => createHash('sha256').update(b).digest('hex')
  if (res.status !== 200 || digest(res.body) !== digest(expected)) throw new Error('bare server body differs from the edge\'s')
}

function cannon (url: string, connections: number, durationS: number): Promise<autocannon.Result> {
  return loadTest({ url: url + HOT_PATH, connections, durationS })
}

async function measure (target: Target, round: number, o: HotMemoryOptions): Promise<HotRound> {
  const { server } = target
  await o.beforeWindow?.()
  await cannon(server.url, o.connections, o.warmupS)
  const cpu0 = readProcessCpu(server.pid)
  const self0 = process.cpuUsage()
  const system0 = readSystemBusySeconds()
  const result = await cannon(server.url, o.connections, o.measureS)
  const cpu1 = readProcessCpu(server.pid)
  const self = process.cpuUsage(self0)
  const systemSeconds = readSystemBusySeconds() - system0
  const cpuSeconds = cpuSecondsBetween(cpu0, cpu1)
  const requests = result.requests.total
  const loadGenCpuSeconds = (self.user + self.system) / 1e6
  const bytes = result.throughput.total
  return {
    round,
    target: target.name,
    requestsPerSec: requests / result.duration,
    requests,
    latencyP50Ms: result.latency.p50,
    latencyP99Ms: result.latency.p99,
    bytes,
    durationS: result.duration,
    cpuSeconds,
    cpuUserSeconds: cpu1.userSeconds - cpu0.userSeconds,
    cpuSystemSeconds: cpu1.systemSeconds - cpu0.systemSeconds,
    cpuSecondsPerGb: cpuSecondsPerGb(cpuSeconds, bytes),
    loadGenCpuSeconds,
    otherCpuSeconds: Math.max(0, systemSeconds - cpuSeconds - loadGenCpuSeconds),
    non2xx: result.non2xx,
    errors: result.errors,
  }
}

function perRequestUs (seconds: number, requests: number): number {
  return requests > 0 ? (seconds * 1e6) / requests : Number.NaN
}

function mediansOf (rounds: readonly HotRound[], target: 'edge' | 'bare'): HotMedians {
  const mine = rounds.filter((r) => r.target === target)
  return {
    requestsPerSec: median(mine.map((r) => r.requestsPerSec)),
    latencyP99Ms: median(mine.map((r) => r.latencyP99Ms)),
    cpuSecondsPerGb: median(mine.map((r) => r.cpuSecondsPerGb)),
    gbPerSec: median(mine.map((r) => r.bytes / 1e9 / r.durationS)),
    userUsPerRequest: median(mine.map((r) => perRequestUs(r.cpuUserSeconds, r.requests))),
    systemUsPerRequest: median(mine.map((r) => perRequestUs(r.cpuSystemSeconds, r.requests))),
  }
}

// CLOCK_MONOTONIC in µs, the clock V8 stamps profile samples with (see summariseCpuProfile).
function monotonicUs (): number {
  return Number(process.hrtime.bigint() / 1000n)
}

interface ProfiledWindow {
  readonly target: Target['name']
  readonly fromUs: number
  readonly toUs: number
  readonly requests: number
  readonly requestsPerSec: number
}

/** Warm-up and measured load on a server running under --cpu-prof, remembering the measured window. */
async function profiledLoad (target: Target, o: HotMemoryOptions): Promise<ProfiledWindow> {
  await o.beforeWindow?.()
  await cannon(target.server.url, o.connections, o.warmupS)
  const fromUs = monotonicUs()
  const result = await cannon(target.server.url, o.connections, o.measureS)
  return { target: target.name, fromUs, toUs: monotonicUs(), requests: result.requests.total, requestsPerSec: result.requests.total / result.duration }
}

/** Keeps the profile next to the results and summarises its measured window only (not start-up or warm-up). */
async function summariseRun (w: ProfiledWindow, profDir: string, o: HotMemoryOptions): Promise<ProfiledRun> {
  const dir = join(profDir, w.target)
  // One file per thread, CPU.<date>.<time>.<pid>.<thread id>.<seq>.cpuprofile; thread 0 is the main thread
  // (others are workers, e.g. tsx's module loader).
  const files = (await readdir(dir)).filter((f) => f.endsWith('.cpuprofile')).sort()
  const main = files.find((f) => /\.\d+\.0\.\d+\.cpuprofile$/.test(f)) ?? files[0]
  if (main === undefined) throw new Error(`${w.target} wrote no .cpuprofile into ${dir}`)
  const kept = join(o.resultsDir, `${o.stamp}-${w.target}.cpuprofile`)
  await copyFile(join(dir, main), kept)
  const profile = JSON.parse(await readFile(kept, 'utf8')) as CpuProfile
  const rootUrl = pathToFileURL(w.target === 'edge' ? o.edgeRoot ?? REPO_ROOT : REPO_ROOT).href
  // The bare server's list is longer so that most of the edge's hot spots can be looked up in it.
  const summary = summariseCpuProfile(profile, { top: w.target === 'edge' ? 10 : 40, rootUrl, window: { fromUs: w.fromUs, toUs: w.toUs } })
  return { ...summary, file: kept.startsWith(REPO_ROOT) ? kept.slice(REPO_ROOT.length) : kept, requests: w.requests, requestsPerSec: w.requestsPerSec, window: { fromUs: w.fromUs, toUs: w.toUs } }
}
