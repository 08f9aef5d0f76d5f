/**
 * Result records of `npm run bench` and their two outputs: the full JSON
 * (`bench/results/<date>.json`, gitignored) and the markdown summary (`bench/RESULTS.md`).
 */
import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { cpus, release, totalmem } from 'node:os'
import type { HotSpot, ProfileSummary } from './cpu-profile.ts'
import { clockTicksPerSecond } from './proc-cpu.ts'
import { ratio } from './stats.ts'

/** The machine the numbers came from. */
export interface MachineInfo {
  readonly cpus: number
  readonly cpuModel: string
  readonly memoryBytes: number
  readonly nodeVersion: string
  readonly kernel: string
  readonly clockTicksPerSecond: number
}

/** Which code was measured: the commit, and the uncommitted changes under the measured folders. */
export interface SourceInfo {
  /** Checkout the edge ran from. */
  readonly root: string
  readonly commit: string
  /** `git status --porcelain` lines for bin/ config/ edge/ lib/ (empty when clean). */
  readonly uncommitted: readonly string[]
}

/** One measured window of the hot-segment scenario. */
export interface HotRound {
  readonly round: number
  readonly target: 'edge' | 'bare'
  readonly requestsPerSec: number
  /** Completed 2xx responses in the window. */
  readonly requests: number
  readonly latencyP50Ms: number
  readonly latencyP99Ms: number
  /** autocannon totalBytes: every byte read for 2xx responses, status line and headers included. */
  readonly bytes: number
  readonly durationS: number
  /** utime + stime of the server process over the window, and the two parts. */
  readonly cpuSeconds: number
  readonly cpuUserSeconds: number
  readonly cpuSystemSeconds: number
  readonly cpuSecondsPerGb: number
  /** CPU of the bench process (autocannon) over the window, to show load-generator saturation. */
  readonly loadGenCpuSeconds: number
  /** Machine-wide busy CPU (/proc/stat) minus server and load generator: other processes, the kernel's share we could not attribute, steal. */
  readonly otherCpuSeconds: number
  readonly non2xx: number
  readonly errors: number
}

/** Medians of one target across rounds. */
export interface HotMedians {
  readonly requestsPerSec: number
  readonly latencyP99Ms: number
  readonly cpuSecondsPerGb: number
  readonly gbPerSec: number
  /** Server CPU per response, split: user time is mostly JS (the cache's own work), system time mostly the socket writes. */
  readonly userUsPerRequest: number
  readonly systemUsPerRequest: number
}

/** The hot-segment scenario: edge memory hit vs a bare node:http server. */
export interface HotResult {
  readonly scenario: 'hot-memory'
  readonly config: { readonly path: string, readonly bodyBytes: number, readonly connections: number, readonly warmupS: number, readonly measureS: number, readonly rounds: number }
  readonly rounds: readonly HotRound[]
  readonly edge: HotMedians
  readonly bare: HotMedians
  /** edge / bare, from the medians. */
  readonly ratios: { readonly requestsPerSec: number, readonly latencyP99: number, readonly cpuSecondsPerGb: number }
  readonly target: { readonly cpuPerGbRatioMax: number, readonly met: boolean }
  /** Present when the target was missed (or --profile always): both servers profiled under the same load. */
  readonly profile?: { readonly edge: ProfiledRun, readonly bare: ProfiledRun }
}

/** A profile of one server's measured window. */
export interface ProfiledRun extends ProfileSummary {
  /** Where the .cpuprofile was kept (repo-relative when inside the repo). */
  readonly file: string
  /** Requests completed in the window, to express CPU per request. */
  readonly requests: number
  readonly requestsPerSec: number
  /** The measured window on CLOCK_MONOTONIC (µs), to re-slice the kept profile later. */
  readonly window: { readonly fromUs: number, readonly toUs: number }
}

/** One cold-herd round against one server. */
export interface HerdRound {
  readonly round: number
  /** The edge, or the ideal streamer baseline. */
  readonly target: 'edge' | 'stream'
  readonly path: string
  /** Requests the origin saw for the path during the round (the streamer never asks it: 0). */
  readonly originRequests: number
  readonly clients: number
  /** Clients that got a 200 with the whole body. */
  readonly complete: number
  readonly ttfbP50Ms: number
  readonly ttfbP99Ms: number
  readonly headP99Ms: number
  readonly totalP50Ms: number
  readonly totalP99Ms: number
  readonly connectMs: number
  readonly sendSpreadMs: number
  /** CPU used during the round by the server, by the herd client, and by everything else on the machine. */
  readonly serverCpuSeconds: number
  readonly clientCpuSeconds: number
  readonly otherCpuSeconds: number
  /** Distinct client error messages (at most a few). */
  readonly errors: readonly string[]
}

/** Medians across rounds of one server's per-round figures. */
export interface HerdMedians {
  readonly ttfbP50Ms: number
  readonly ttfbP99Ms: number
  readonly headP99Ms: number
  readonly totalP50Ms: number
  readonly totalP99Ms: number
  readonly serverCpuSeconds: number
}

/** The cold-herd scenario. */
export interface HerdResult {
  readonly scenario: 'cold-herd'
  readonly config: { readonly clients: number, readonly bodyBytes: number, readonly originBytesPerSecond: number, readonly rounds: number }
  readonly rounds: readonly HerdRound[]
  readonly edge: HerdMedians
  /** The ideal streamer baseline, same herd, interleaved. */
  readonly stream: HerdMedians
  readonly originRequestsMax: number
  readonly targets: {
    readonly originRequests: { readonly expected: number, readonly met: boolean }
    readonly ttfbP99: { readonly maxMs: number, readonly met: boolean }
  }
}

/** Everything one `npm run bench` produced. */
export interface BenchResults {
  readonly date: string
  readonly quick: boolean
  /** Seconds each window waited at most for an idle machine (0: no waiting). */
  readonly quietWaitS: number
  readonly machine: MachineInfo
  readonly source: SourceInfo
  readonly wallSeconds: number
  readonly hot?: HotResult
  readonly herd?: HerdResult
}

/** Reads the machine description (CPU model from /proc/cpuinfo where available). */
export function machineInfo (): MachineInfo {
  const list = cpus()
  let model = list[0]?.model ?? 'unknown'
  try {
    const line = readFileSync('/proc/cpuinfo', 'utf8').split('\n').find((l) => l.startsWith('model name'))
    if (line !== undefined) model = line.slice(line.indexOf(':') + 1).trim()
  } catch {
    // not Linux: os.cpus() is the best we have
  }
  return { cpus: list.length, cpuModel: model, memoryBytes: totalmem(), nodeVersion: process.version, kernel: release(), clockTicksPerSecond: clockTicksPerSecond() }
}

/** The commit and uncommitted changes of the code under test (read-only git commands; unknown outside a checkout). */
export function sourceInfo (repoRoot: string): SourceInfo {
  const git = (args: string[]): string => execFileSync('git', args, { cwd: repoRoot, encoding: 'utf8', timeout: 10_000, stdio: ['ignore', 'pipe', 'ignore'] })
  try {
    const commit = git(['rev-parse', '--short=12', 'HEAD']).trim()
    const uncommitted = git(['status', '--porcelain', '--', 'bin', 'config', 'edge', 'lib']).split('\n').filter((l) => l.trim() !== '')
    return { root: repoRoot, commit, uncommitted }
  } catch {
    return { root: repoRoot, commit: 'unknown (not a git checkout)', uncommitted: [] }
  }
}

/** `2026-11-21T20-21-36Z`: an ISO date-time that is safe in file names. */
export function fileStamp (date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z').replaceAll(':', '-')
}

/** Formats a number for a table: 3 significant digits, `n/a` when not finite. */
export function fmt (value: number, digits = 3): string {
  if (!Number.isFinite(value)) return 'n/a'
  if (Math.abs(value) >= 10 ** digits) return String(Math.round(value))
  return String(Number(value.toPrecision(digits)))
}

function verdict (met: boolean): string {
  return met ? 'met' : '**missed**'
}

/** The markdown summary written to bench/RESULTS.md. */
export function renderResultsMarkdown (r: BenchResults): string {
  const m = r.machine
  const out: string[] = [
    '# streamedge benchmark results',
    '',
    '<!-- Generated by `npm run bench` (bench/run.ts). Do not edit by hand; full data in bench/results/*.json. -->',
    '',
    `- Date: ${r.date}${r.quick ? ' (**--quick run: short windows, indicative only**)' : ''}`,
    `- Machine: ${m.cpus} × ${m.cpuModel}, ${fmt(m.memoryBytes / 2 ** 30)} GiB RAM, Linux ${m.kernel}`,
    `- Node ${m.nodeVersion}; load generator autocannon 9 in the bench process (its per-response body-to-string copy disabled, see bench/lib/load.ts); servers under test are child processes, CPU from /proc/<pid>/stat (CLK_TCK ${m.clockTicksPerSecond})`,
    `- Edge code: ${r.source.root}, commit ${r.source.commit}${r.source.uncommitted.length === 0 ? '' : ` plus ${r.source.uncommitted.length} uncommitted change(s) under bin/ config/ edge/ lib/ (listed in the JSON)`}`,
    `- Wall time: ${fmt(r.wallSeconds)} s${r.quietWaitS > 0 ? `; each window first waited up to ${r.quietWaitS} s for the machine to be idle (< 0.2 busy cores)` : ''}`,
    '- "other CPU" columns: machine-wide busy CPU (/proc/stat) minus the processes measured, i.e. other tenants plus kernel network time not charged to any process; high values mean a noisy window',
    '',
  ]
  if (r.hot !== undefined) out.push(...hotSection(r.hot))
  if (r.herd !== undefined) out.push(...herdSection(r.herd))
  return `${out.join('\n')}\n`
}

function hotSection (h: HotResult): string[] {
  const c = h.config
  const lines = [
    '## Hot segment from memory',
    '',
    `${c.connections} connections, GET \`${c.path}\` (${c.bodyBytes} bytes, a memory hit on the edge); ${c.warmupS} s warm-up + ${c.measureS} s measured per window; targets interleaved edge, bare, edge, bare… for ${c.rounds} rounds; medians.`,
    'The bare server is a node:http server sending the same preallocated body with the same headers. Bytes are autocannon\'s totalBytes (body plus status line and headers, ~0.02% here).',
    '',
    '| | edge | bare node:http | edge / bare |',
    '|---|---:|---:|---:|',
    `| req/s | ${fmt(h.edge.requestsPerSec)} | ${fmt(h.bare.requestsPerSec)} | ${fmt(h.ratios.requestsPerSec)} |`,
    `| GB/s served | ${fmt(h.edge.gbPerSec)} | ${fmt(h.bare.gbPerSec)} | |`,
    `| latency p99 (ms) | ${fmt(h.edge.latencyP99Ms)} | ${fmt(h.bare.latencyP99Ms)} | ${fmt(h.ratios.latencyP99)} |`,
    `| server CPU s per GB | ${fmt(h.edge.cpuSecondsPerGb)} | ${fmt(h.bare.cpuSecondsPerGb)} | **${fmt(h.ratios.cpuSecondsPerGb)}** |`,
    `| server user CPU µs per response | ${fmt(h.edge.userUsPerRequest)} | ${fmt(h.bare.userUsPerRequest)} | ${fmt(ratio(h.edge.userUsPerRequest, h.bare.userUsPerRequest))} |`,
    `| server system CPU µs per response | ${fmt(h.edge.systemUsPerRequest)} | ${fmt(h.bare.systemUsPerRequest)} | ${fmt(ratio(h.edge.systemUsPerRequest, h.bare.systemUsPerRequest))} |`,
    '',
    `Target: CPU per GB at most ${h.target.cpuPerGbRatioMax}× the bare server's: ${verdict(h.target.met)}.`,
    '',
    '<details><summary>Per window</summary>',
    '',
    '| round | target | req/s | p50 ms | p99 ms | GB | server CPU s (user + sys) | CPU s/GB | load-gen CPU s | other CPU s | non-2xx | errors |',
    '|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...h.rounds.map((x) => `| ${x.round} | ${x.target} | ${fmt(x.requestsPerSec)} | ${fmt(x.latencyP50Ms)} | ${fmt(x.latencyP99Ms)} | ${fmt(x.bytes / 1e9)} | ${fmt(x.cpuSeconds)} (${fmt(x.cpuUserSeconds)} + ${fmt(x.cpuSystemSeconds)}) | ${fmt(x.cpuSecondsPerGb)} | ${fmt(x.loadGenCpuSeconds)} | ${fmt(x.otherCpuSeconds)} | ${x.non2xx} | ${x.errors} |`),
    '',
    '</details>',
    '',
  ]
  if (h.profile !== undefined) lines.push(...profileSection(h.profile))
  return lines
}

function profileSection (p: NonNullable<HotResult['profile']>): string[] {
  const { edge, bare } = p
  const perReq = (ms: number, run: ProfiledRun): number => run.requests > 0 ? (ms * 1000) / run.requests : Number.NaN
  const bareFn = new Map(bare.topFunctions.map((s) => [`${s.functionName}\0${s.location}`, s]))
  const bareFile = new Map(bare.topFiles.map((s) => [s.location, s]))
  const bareCell = (s: HotSpot | undefined): string => s === undefined ? '–' : fmt(perReq(s.selfMs, bare))
  return [
    '### Where the edge spends its CPU (`node --cpu-prof`, same load)',
    '',
    `A fresh edge and a fresh bare server under \`node --cpu-prof\` with the same warm-up and load; only each measured window (${fmt(edge.durationMs / 1000)} s) is summarised. Main-thread on-CPU time per request: edge **${fmt(perReq(edge.busyMs, edge))} µs**, bare **${fmt(perReq(bare.busyMs, bare))} µs** (${edge.requests} and ${bare.requests} requests; ${fmt(edge.requestsPerSec)} and ${fmt(bare.requestsPerSec)} req/s under the profiler). Self time; \`writev\` is the native socket write (the bytes themselves). Profiles: \`${edge.file}\`, \`${bare.file}\` (Chrome DevTools or speedscope). "–": not in the bare server's top ${bare.topFunctions.length}.`,
    '',
    '| # | edge function | location | self % | edge µs/req | bare µs/req |',
    '|---:|---|---|---:|---:|---:|',
    ...edge.topFunctions.map((s, i) => `| ${i + 1} | \`${s.functionName}\` | ${s.location} | ${fmt(s.selfPercent, 2)} | ${fmt(perReq(s.selfMs, edge))} | ${bareCell(bareFn.get(`${s.functionName}\0${s.location}`))} |`),
    '',
    '| file | edge self % | edge µs/req | bare µs/req |',
    '|---|---:|---:|---:|',
    ...edge.topFiles.map((s) => `| ${s.location} | ${fmt(s.selfPercent, 2)} | ${fmt(perReq(s.selfMs, edge))} | ${bareCell(bareFile.get(s.location))} |`),
    '',
  ]
}

function herdSection (h: HerdResult): string[] {
  const c = h.config
  const row = (label: string, pick: (m: HerdMedians) => number, target = ''): string =>
    `| ${label} | ${fmt(pick(h.edge))} | ${fmt(pick(h.stream))} | ${target} |`
  return [
    '## Cold herd',
    '',
    `${c.clients} clients (pre-connected raw sockets in one separate process) send the same GET at once for an uncached ${c.bodyBytes}-byte .ts; the origin streams it at ${c.originBytesPerSecond} B/s (about 2 s). Fresh key each round; ${c.rounds} rounds after one unreported warm-up round; medians of the per-round percentiles. TTFB = request written → first body byte. Each round also runs the same herd against an *ideal streamer* (bench/peers/stream-server.ts: one paced producer fanned out by plain node:http, no cache), interleaved, to show what this machine allows.`,
    '',
    '| | edge | ideal streamer | edge target |',
    '|---|---:|---:|---|',
    `| origin requests per round (max) | ${h.originRequestsMax} | – | ${h.targets.originRequests.expected}: ${verdict(h.targets.originRequests.met)} |`,
    row('TTFB p50 (ms)', (m) => m.ttfbP50Ms),
    row('TTFB p99 (ms)', (m) => m.ttfbP99Ms, `< ${h.targets.ttfbP99.maxMs}: ${verdict(h.targets.ttfbP99.met)}`),
    row('response head p99 (ms)', (m) => m.headP99Ms),
    row('total time p50 (ms)', (m) => m.totalP50Ms),
    row('total time p99 (ms)', (m) => m.totalP99Ms),
    row('server CPU s per round', (m) => m.serverCpuSeconds),
    '',
    'For comparison (docs/anchors): Varnish streams waiters and reaches ~50 ms TTFB here; nginx `proxy_cache_lock` makes them wait ~2.1 s for the whole object.',
    '',
    '<details><summary>Per round</summary>',
    '',
    '| round | server | origin requests | complete | TTFB p50 | TTFB p99 | head p99 | total p50 | total p99 | connect ms | send spread ms | server CPU s | client CPU s | other CPU s | errors |',
    '|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|',
    ...h.rounds.map((x) => `| ${x.round} | ${x.target} | ${x.originRequests} | ${x.complete}/${x.clients} | ${fmt(x.ttfbP50Ms)} | ${fmt(x.ttfbP99Ms)} | ${fmt(x.headP99Ms)} | ${fmt(x.totalP50Ms)} | ${fmt(x.totalP99Ms)} | ${fmt(x.connectMs)} | ${fmt(x.sendSpreadMs)} | ${fmt(x.serverCpuSeconds)} | ${fmt(x.clientCpuSeconds)} | ${fmt(x.otherCpuSeconds)} | ${x.errors.join('; ')} |`),
    '',
    '</details>',
    '',
  ]
}
