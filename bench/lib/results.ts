/**
 * Result records of `npm run bench` and their two outputs: the full JSON
 * (`bench/results/<date>.json`, gitignored) and the markdown summary (`bench/RESULTS.md`).
 */
import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { cpus, release, totalmem } from 'node:os'
import type { SteeringResult, SteeringRound } from '../scenarios/steering.ts'
import type { BenchTarget, PeerAvailability, TargetName } from './bench-target.ts'
import type { AccessLogCost, CompareResult, CompareSummary } from './compare.ts'
import type { HotSpot, ProfileSummary } from './cpu-profile.ts'
import { steeringLabel } from './steering-label.ts'
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
  /** The edge, a peer, or the ideal streamer baseline. */
  readonly target: TargetName
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

/** Medians of one target's herd rounds. */
export interface HerdTargetSummary extends HerdMedians {
  readonly target: TargetName
  readonly originRequestsMax: number
  /** Clients that got the whole body, over all rounds, of `clients`. */
  readonly complete: number
  readonly clients: number
}

/** The cold-herd scenario. */
export interface HerdResult {
  readonly scenario: 'cold-herd'
  /** `warmupRounds` is absent in results from before it was 2 (there was 1). */
  readonly config: { readonly clients: number, readonly bodyBytes: number, readonly originBytesPerSecond: number, readonly rounds: number, readonly warmupRounds?: number }
  readonly rounds: readonly HerdRound[]
  /** The unreported warm-up rounds (round ≤ 0), in run order; absent in older results. */
  readonly warmups?: readonly HerdRound[]
  readonly edge: HerdMedians
  /** The ideal streamer baseline, same herd, interleaved. */
  readonly stream: HerdMedians
  /** Every target (edge, peers, stream), in run order; absent in results from before issue 7. */
  readonly byTarget?: readonly HerdTargetSummary[]
  readonly originRequestsMax: number
  readonly targets: {
    readonly originRequests: { readonly expected: number, readonly met: boolean }
    readonly ttfbP99: { readonly maxMs: number, readonly met: boolean }
  }
}

/** Issue 7's memory target: the edge's RSS at the end of a scenario stays under its memory-tier budget plus this. */
export const RSS_HEADROOM_BYTES = 150e6

/** One RSS reading against the budget. */
export interface MemoryCheck {
  readonly scenario: string
  readonly target: TargetName
  readonly budgetBytes: number
  readonly rssBytes: number
  readonly limitBytes: number
  readonly met: boolean
}

/** Reads a target's RSS now (call it before stopping the target); undefined for targets without a budget. */
export function memoryCheck (scenario: string, target: BenchTarget): MemoryCheck | undefined {
  if (target.memoryBudgetBytes === undefined) return undefined
  const rssBytes = target.rssBytes()
  const limitBytes = target.memoryBudgetBytes + RSS_HEADROOM_BYTES
  return { scenario, target: target.name, budgetBytes: target.memoryBudgetBytes, rssBytes, limitBytes, met: rssBytes < limitBytes }
}

/** Profiles of one workload: a fresh edge and a fresh bare server under the same load. */
export interface WorkloadProfile {
  readonly scenario: string
  /** The generator that drove the profiled windows. */
  readonly generator: string
  readonly edge: ProfiledRun
  readonly bare: ProfiledRun | undefined
}

/** The larger-than-memory working set. */
export interface WorkingSetResult {
  readonly comparison: CompareResult
  readonly objects: number
  readonly objectBytes: number
  /** Memory tier (edge) and malloc storage (Varnish) budget. */
  readonly memoryBudgetBytes: number
  /** The edge's cache lookups during its measured windows, from its /metrics (undefined if unreadable). */
  readonly edgeLookups: { readonly memoryHits: number, readonly diskHits: number, readonly misses: number } | undefined
}

/** One cold mid-file range request. */
export interface ColdRangeRound {
  readonly round: number
  readonly target: TargetName
  readonly status: number
  readonly bodyBytes: number
  /** The body matched the origin's bytes for the range. */
  readonly correct: boolean
  readonly headMs: number
  readonly ttfbMs: number
  readonly totalMs: number
  /** Bytes the origin sent (through the meter) for this request, fills the cache finished in the background included. */
  readonly originBytes: number
  readonly originRequests: number
  readonly error: string | undefined
}

/** Medians of one target's cold-range rounds. */
export interface ColdRangeSummary {
  readonly target: TargetName
  readonly ttfbMs: number
  readonly totalMs: number
  readonly originBytes: number
  readonly originRequests: number
  readonly allCorrect: boolean
}

/** The cold-range scenario. */
export interface ColdRangeResult {
  readonly scenario: 'cold-range'
  readonly config: { readonly bodyBytes: number, readonly originBytesPerSecond: number, readonly range: string, readonly rounds: number }
  readonly rounds: readonly ColdRangeRound[]
  readonly summaries: readonly ColdRangeSummary[]
}

/** Tools and peers found on the machine. */
export interface ToolInfo {
  readonly autocannon: string
  readonly wrk: string | undefined
  readonly peers: readonly PeerAvailability[]
}

/** One of issue 7's targets, judged from a run. */
export interface Verdict {
  readonly id: string
  readonly target: string
  /** What was measured, as text for the table. */
  readonly measured: string
  /** undefined: not measured in this run (scenario skipped, peer absent). */
  readonly met: boolean | undefined
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
  /** Of the wall time, seconds spent waiting for a quiet machine (--quiet-wait). */
  readonly quietWaitedSeconds?: number
  /** Scenarios run (`--only`), in order. */
  readonly scenarios?: readonly string[]
  readonly tools?: ToolInfo
  readonly hot?: HotResult
  readonly herd?: HerdResult
  /** Warm-cache comparisons: hot segment, hot playlist, ranges. */
  readonly comparisons?: readonly CompareResult[]
  readonly profiles?: readonly WorkloadProfile[]
  readonly workingSet?: WorkingSetResult
  readonly coldRange?: ColdRangeResult
  readonly steering?: SteeringResult
  readonly memory?: readonly MemoryCheck[]
  readonly verdicts?: readonly Verdict[]
  /** Scenarios that threw (the rest of the suite still ran). */
  readonly failures?: ReadonlyArray<{ readonly scenario: string, readonly error: string }>
  /** Sections rendered by the scenarios themselves (offload, revalidation), and their raw results. */
  readonly extra?: Readonly<Record<string, { readonly result: unknown, readonly markdown: string }>>
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
    `- Wall time: ${fmt(r.wallSeconds)} s${r.quietWaitS > 0 ? `; each window first waited up to ${r.quietWaitS} s for the machine to be idle (< 0.2 busy cores)${r.quietWaitedSeconds === undefined ? '' : `, ${fmt(r.quietWaitedSeconds)} s in all, so the suite itself took ${fmt(r.wallSeconds - r.quietWaitedSeconds)} s`}` : ''}`,
    '- "other CPU" columns: machine-wide busy CPU (/proc/stat) minus the processes measured, i.e. other tenants plus kernel network time not charged to any process; high values mean a noisy window',
    '',
  ]
  if (r.tools !== undefined) out.splice(out.length - 1, 0, ...toolLines(r.tools))
  if (r.scenarios !== undefined) out.splice(out.length - 1, 0, `- Scenarios: ${r.scenarios.join(', ')}`)
  if (r.failures !== undefined && r.failures.length > 0) {
    out.push('## Failed scenarios', '', ...r.failures.map((f) => `- \`${f.scenario}\`: ${f.error.split('\n')[0] ?? ''}`), '')
  }
  if (r.verdicts !== undefined && r.verdicts.length > 0) out.push(...verdictSection(r.verdicts))
  for (const c of r.comparisons ?? []) {
    out.push(...compareSection(c))
    const profile = r.profiles?.find((p) => p.scenario === c.scenario)
    if (profile !== undefined && profile.bare !== undefined) out.push(...profileSection({ edge: profile.edge, bare: profile.bare }, `### Where the edge spends its CPU on ${c.scenario} (\`node --cpu-prof\`, ${profile.generator}, same load)`))
  }
  if (r.workingSet !== undefined) out.push(...workingSetSection(r.workingSet))
  if (r.herd !== undefined) out.push(...(r.herd.byTarget === undefined ? herdSection(r.herd) : herdTargetsSection(r.herd, r.herd.byTarget)))
  if (r.coldRange !== undefined) out.push(...coldRangeSection(r.coldRange))
  if (r.steering !== undefined) out.push(...steeringSection(r.steering))
  if (r.memory !== undefined && r.memory.length > 0) out.push(...memorySection(r.memory))
  for (const [name, section] of Object.entries(r.extra ?? {})) out.push(`<!-- ${name} -->`, section.markdown.trimEnd(), '')
  if (r.hot !== undefined) out.push(...hotSection(r.hot))
  return `${out.join('\n')}\n`
}

function toolLines (t: ToolInfo): string[] {
  const peers = t.peers.map((p) => p.available ? `${p.name}: ${p.version ?? 'version unknown'}` : `${p.name}: **absent** (${p.reason ?? 'not found'})`)
  return [
    `- Load generators: autocannon ${t.autocannon} (in the bench process) and ${t.wrk === undefined ? 'wrk **absent** (autocannon only)' : `${t.wrk} (one thread, child process)`}`,
    `- Peers: ${peers.join('; ')}`,
  ]
}

function verdictSection (verdicts: readonly Verdict[]): string[] {
  const mark = (met: boolean | undefined): string => met === undefined ? 'not measured' : verdict(met)
  return [
    '## Issue 7 targets',
    '',
    'Medians of per-round ratios in this run (edge and peer windows of the same round and generator).',
    '',
    '| target | goal | measured | verdict |',
    '|---|---|---|---|',
    ...verdicts.map((v) => `| ${v.id} | ${v.target} | ${v.measured} | ${mark(v.met)} |`),
    '',
  ]
}

/** Why the per-GB tables also show the client's CPU (CompareSummary.bothEndsCpuSecondsPerGb). */
export const BOTH_ENDS_NOTE = '"server + client CPU s/GB": the target\'s CPU and its load generator\'s together per GB. On loopback the kernel\'s delivery work lands on whichever end runs it: a server that copies pays for the copy in its own write, while sendfile\'s page-cache fragments cost the receiving client more (and on a real network the receiver is another machine). The issue\'s target is the server column; this one is what a GB costs the machine.'

function compareSection (c: CompareResult): string[] {
  const k = c.config
  const costLabel = k.costUnit === 'gb' ? 'CPU s/GB' : 'CPU ms/1k req'
  const cost = (x: { cpuSecondsPerGb: number, cpuMsPerKiloRequest: number }): number => k.costUnit === 'gb' ? x.cpuSecondsPerGb : x.cpuMsPerKiloRequest
  const headers = Object.entries(k.headers).map(([n, v]) => `${n}: ${v}`).join(', ')
  const showHit = c.scenario === 'working-set'
  // Per GB only: what the served bytes cost both ends of the loopback (CompareSummary.bothEndsCpuSecondsPerGb).
  const showBoth = k.costUnit === 'gb' && c.summaries.some((x) => x.bothEndsCpuSecondsPerGb !== undefined)
  const both = (x: CompareSummary): string => {
    const vs = x.vsNginx?.bothEndsCpuSecondsPerGb
    return ` ${fmt(x.bothEndsCpuSecondsPerGb ?? Number.NaN)}${vs === undefined ? '' : ` (${fmt(vs)}×)`} |`
  }
  // results saved before GC counts were read have none
  const showGc = c.windows.some((w) => w.gcMinor !== undefined)
  return [
    `## ${c.title} (\`${c.scenario}\`)`,
    '',
    `GET ${k.paths === 1 ? `\`${k.examplePath}\`` : `${k.paths} paths at random (e.g. \`${k.examplePath}\`)`}${headers === '' ? '' : ` with \`${headers}\``}, ${k.bodyBytes}-byte bodies, ${k.connections} connections; per window ${k.warmupS} s warm-up + ${k.measureS} s measured; targets ${c.targets.join(', ')} interleaved for ${k.rounds} rounds with ${k.generators.join(' and ')}; medians. CPU is each target's whole process tree. "vs nginx": median of per-round ratios to nginx with the same generator.`,
    '',
    `| target | generator | req/s | MB/s | p50 ms | p99 ms | ${costLabel} | origin requests |${showHit ? ' byte hit ratio |' : ''} req/s vs nginx | CPU vs nginx |${showBoth ? ' server + client CPU s/GB (vs nginx) |' : ''}`,
    `|---|---|---:|---:|---:|---:|---:|---:|${showHit ? '---:|' : ''}---:|---:|${showBoth ? '---:|' : ''}`,
    ...c.summaries.map((x) => `| ${x.target} | ${x.generator} | ${fmt(x.requestsPerSec)} | ${fmt(x.mbPerSec)} | ${fmt(x.latencyP50Ms)} | ${fmt(x.latencyP99Ms)} | ${fmt(cost(x))} | ${x.originRequests} |${showHit ? ` ${fmt(x.byteHitRatio, 4)} |` : ''} ${x.vsNginx === undefined ? '–' : fmt(x.vsNginx.requestsPerSec)} | ${x.vsNginx === undefined ? '–' : fmt(cost(x.vsNginx))} |${showBoth ? both(x) : ''}`),
    '',
    // explained once, under the first per-GB table of a full run (bench/README.md explains it too)
    ...(showBoth && c.scenario === 'hot-segment' ? [BOTH_ENDS_NOTE, ''] : []),
    ...(c.accessLog === undefined ? [] : [accessLogLine(c.accessLog), '']),
    '<details><summary>Per window</summary>',
    '',
    ...(showGc ? [GC_NOTE, ''] : []),
    `| round | target | generator | req/s | p50 ms | p99 ms | MB | CPU s (user + sys) | ${costLabel} | load-gen CPU s | other CPU s | origin req | origin MB | non-2xx | errors |${showGc ? ' GC minor / major |' : ''}`,
    `|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|${showGc ? '---:|' : ''}`,
    ...c.windows.map((w) => `| ${w.round} | ${w.target} | ${w.generator} | ${fmt(w.requestsPerSec)} | ${fmt(w.latencyP50Ms)} | ${fmt(w.latencyP99Ms)} | ${fmt(w.bytes / 1e6)} | ${fmt(w.cpuSeconds)} (${fmt(w.cpuUserSeconds)} + ${fmt(w.cpuSystemSeconds)}) | ${fmt(cost(w))} | ${fmt(w.loadGenCpuSeconds)} | ${fmt(w.otherCpuSeconds)} | ${w.originRequests} | ${fmt(w.originBytes / 1e6)} | ${w.non2xx} | ${w.errors} |${showGc ? ` ${w.gcMinor === undefined ? '–' : `${w.gcMinor} / ${w.gcMajor ?? 0}`} |` : ''}`),
    '',
    '</details>',
    '',
  ]
}

/** Says what the per-window GC column counts. */
const GC_NOTE = '"GC minor / major": the scavenges and mark-compacts V8 ran in the target during the window (its `/metrics`, read before and after: the edge\'s and the shield\'s, – for targets without one).'

/** The --log-ab sentence under a hot-cache table: what the access log costs, per generator. */
function accessLogLine (costs: readonly AccessLogCost[]): string {
  const each = costs.map((x) => `${x.generator} req/s **${fmt(x.requestsPerSec)}**, CPU per 1000 requests **${fmt(x.cpuMsPerKiloRequest)}** (${x.rounds} round${x.rounds === 1 ? '' : 's'})`)
  return `Access log (\`--log-ab\`): edge-log is edge with its access log on (\`--log.access true\`, one JSON line per request to a file; edge and every other row run with it off). edge-log / edge, medians of per-round ratios: ${each.join('; ')}.`
}

function workingSetSection (ws: WorkingSetResult): string[] {
  const l = ws.edgeLookups
  const lookups = l === undefined
    ? 'The edge\'s tier counters were not readable from /metrics.'
    : `The edge's lookups in its measured windows (/metrics): ${l.memoryHits} memory hits, ${l.diskHits} disk hits, ${l.misses} misses (${fmt((100 * l.diskHits) / Math.max(1, l.memoryHits + l.diskHits + l.misses))}% from disk).`
  return [
    ...compareSection(ws.comparison).slice(0, 3),
    `${ws.objects} objects of ${ws.objectBytes} bytes (${fmt((ws.objects * ws.objectBytes) / 2 ** 20)} MiB) against a ${fmt(ws.memoryBudgetBytes / 2 ** 20)} MiB memory tier (Varnish: the same malloc size; nginx: proxy_cache files and the page cache). Byte hit ratio = 1 - origin bytes / bytes served in the measured windows, through a byte meter in front of the origin. ${lookups}`,
    '',
    ...compareSection(ws.comparison).slice(3),
  ]
}

function herdTargetsSection (h: HerdResult, all: readonly HerdTargetSummary[]): string[] {
  const c = h.config
  const row = (label: string, pick: (m: HerdTargetSummary) => string): string => `| ${label} | ${all.map(pick).join(' | ')} |`
  return [
    '## Cold herd (`cold-herd`)',
    '',
    `${c.clients} clients (raw sockets in one separate process, each connection opened and answered once, a HEAD of a small object, as a player's is once it has its playlist) send the same GET at once for an uncached ${c.bodyBytes}-byte .ts; the origin streams it at ${c.originBytesPerSecond} B/s (about 2 s). Fresh key each round; ${c.rounds} rounds after ${warmupText(c.warmupRounds)}, targets interleaved; medians of the per-round percentiles. TTFB = request written → first body byte. *stream* is an ideal streamer (bench/peers/stream-server.ts: one paced producer fanned out by plain node:http, no cache): what this machine allows at all.`,
    '',
    `| | ${all.map((m) => m.target).join(' | ')} |`,
    `|---|${all.map(() => '---:').join('|')}|`,
    row('origin requests per round (max)', (m) => m.target === 'stream' ? '–' : String(m.originRequestsMax)),
    row('clients complete', (m) => `${m.complete}/${m.clients}`),
    row('TTFB p50 (ms)', (m) => fmt(m.ttfbP50Ms)),
    row('TTFB p99 (ms)', (m) => fmt(m.ttfbP99Ms)),
    row('response head p99 (ms)', (m) => fmt(m.headP99Ms)),
    row('total time p50 (ms)', (m) => fmt(m.totalP50Ms)),
    row('total time p99 (ms)', (m) => fmt(m.totalP99Ms)),
    row('server CPU s per round', (m) => fmt(m.serverCpuSeconds)),
    '',
    `Edge targets: ${h.targets.originRequests.expected} origin request per herd: ${verdict(h.targets.originRequests.met)}; TTFB p99 < ${h.targets.ttfbP99.maxMs} ms: ${verdict(h.targets.ttfbP99.met)}.`,
    '',
    ...herdRoundsTable(h),
  ]
}

/** How the herd text names its warm-up rounds (1 in results from before `warmupRounds`). */
function warmupText (rounds = 1): string {
  return rounds === 1
    ? 'one unreported warm-up round'
    : `${rounds} unreported warm-up rounds (a JIT optimises the join path during the second herd a process sees: bench/scenarios/cold-herd.ts HERD_WARMUP_ROUNDS; they are in the per-round table)`
}

/** Every herd round of every target (warm-ups first), folded away. */
function herdRoundsTable (h: HerdResult): string[] {
  return [
    '<details><summary>Per round</summary>',
    '',
    '| round | server | origin requests | complete | TTFB p50 | TTFB p99 | head p99 | total p50 | total p99 | connect ms | send spread ms | server CPU s | client CPU s | other CPU s | errors |',
    '|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|',
    ...[...h.warmups ?? [], ...h.rounds].map((x) => `| ${x.round > 0 ? x.round : `warm-up ${x.round + (h.config.warmupRounds ?? 1)}`} | ${x.target} | ${x.originRequests} | ${x.complete}/${x.clients} | ${fmt(x.ttfbP50Ms)} | ${fmt(x.ttfbP99Ms)} | ${fmt(x.headP99Ms)} | ${fmt(x.totalP50Ms)} | ${fmt(x.totalP99Ms)} | ${fmt(x.connectMs)} | ${fmt(x.sendSpreadMs)} | ${fmt(x.serverCpuSeconds)} | ${fmt(x.clientCpuSeconds)} | ${fmt(x.otherCpuSeconds)} | ${x.errors.join('; ')} |`),
    '',
    '</details>',
    '',
  ]
}

function coldRangeSection (r: ColdRangeResult): string[] {
  const c = r.config
  return [
    '## Cold mid-file range (`cold-range`)',
    '',
    `One GET with \`Range: ${c.range}\` for an uncached ${c.bodyBytes}-byte .ts that the origin sends at ${c.originBytesPerSecond} B/s; a fresh object per request, ${c.rounds} rounds, targets interleaved; medians. Origin bytes are counted by a byte meter in front of the origin after the origin went idle, so a fill that a cache finishes in the background counts.`,
    '',
    '| target | TTFB ms | total ms | origin requests | origin MiB | body correct |',
    '|---|---:|---:|---:|---:|---|',
    ...r.summaries.map((s) => `| ${s.target} | ${fmt(s.ttfbMs)} | ${fmt(s.totalMs)} | ${fmt(s.originRequests)} | ${fmt(s.originBytes / 2 ** 20)} | ${s.allCorrect ? 'yes' : '**no**'} |`),
    '',
    '<details><summary>Per request</summary>',
    '',
    '| round | target | status | body bytes | head ms | TTFB ms | total ms | origin requests | origin bytes | error |',
    '|---:|---|---:|---:|---:|---:|---:|---:|---:|---|',
    ...r.rounds.map((x) => `| ${x.round} | ${x.target} | ${x.status} | ${x.bodyBytes} | ${fmt(x.headMs)} | ${fmt(x.ttfbMs)} | ${fmt(x.totalMs)} | ${x.originRequests} | ${x.originBytes} | ${x.error ?? ''} |`),
    '',
    '</details>',
    '',
  ]
}

function steeringSection (s: SteeringResult): string[] {
  const generators = s.generators.join(' and ')
  const best = (server: string): number => Math.max(0, ...s.ceilings.filter((c) => c.server === server).map((c) => c.requestsPerSec))
  return [
    '## Steering decisions (`steering`, issue 5)',
    '',
    `The control plane through the real CLI with the embedded DB-IP database, 12 edges in 6 groups, coverage zones and licensing rules; ${generators} ${s.generators.length > 1 ? 'send' : 'sends'} GET /v1/steer/... from 50,000 client addresses (bench/scenarios/steering.ts). The bare rows answer the same 302 to the same requests with no decision (node:http, and the control plane's own fast path, lib/http/fast-front.ts): this machine's ceilings with each generator. A generator at ~1.0 CPU s/s is itself the limit; server CPU µs per decision does not depend on it. Rows with fewer connections are the latency sweep: each connection waits for its answer, so p99 at full load is mostly the queue of one event-loop turn, and the verdict takes the best rate among windows whose p99 meets the target.`,
    '',
    '| | generator | decisions/s | p50 ms | p99 ms | server CPU s/s | server CPU µs/answer | generator CPU s/s | 302 | 451 | other | errors |',
    '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...s.ceilings.map((c) => `| bare ${c.server} 302 (ceiling) | ${c.generator} | ${fmt(c.requestsPerSec)} | ${fmt(c.latencyP50Ms)} | ${fmt(c.latencyP99Ms)} | ${fmt(c.serverCpuPerSec)} | ${fmt(c.serverCpuUsPerRequest)} | ${fmt(c.generatorCpuPerSec)} | | | | |`),
    ...s.rounds.map((x) => `| ${steeringLabel(x.workers ?? 1, x.accessLog)}${windowShape(x)} | ${x.generator} | ${fmt(x.decisionsPerSec)} | ${fmt(x.latencyP50Ms)} | ${fmt(x.latencyP99Ms)} | ${fmt(x.serverCpuPerSec)} | ${fmt(x.serverCpuUsPerDecision)} | ${fmt(x.generatorCpuPerSec)} | ${x.redirects} | ${x.licenceDenials} | ${x.otherStatuses} | ${x.errors} |`),
    '',
    `Cold first pass over every client address (autocannon): ${s.rounds.filter((x) => x.generator === 'autocannon').map((x) => `${fmt(x.firstPassDecisionsPerSec)}/s (${steeringLabel(x.workers ?? 1, x.accessLog)})`).join(', ')}. Ceilings (best generator): node:http ${fmt(best('node:http'))}/s, fast-front ${fmt(best('fast-front'))}/s.`,
    '',
    `Target (issue 5): ${fmt(s.targetPerSec)} decisions/s with p99 < ${s.targetP99Ms} ms, log on, in the best configuration${s.best === undefined ? '' : ` (${steeringLabel(s.best.workers)}, ${s.best.generator}${s.best.paced === true ? ' paced' : ''}${s.best.connections === undefined ? '' : `, ${s.best.connections} connections`}: ${fmt(s.best.decisionsPerSec)}/s, p99 ${fmt(s.best.latencyP99Ms)} ms)`}: ${verdict(s.passed)}.`,
    '',
  ]
}

/** A steering round's load beyond its configuration: its connections, or an old run's pacing. */
function windowShape (x: SteeringRound): string {
  if (x.paced !== undefined) return `, paced (${x.paced.connections} connections, ${x.paced.delayMs} ms wait after each answer)`
  return x.connections === undefined ? '' : `, ${x.connections} connections`
}

function memorySection (checks: readonly MemoryCheck[]): string[] {
  return [
    '## Memory',
    '',
    `RSS of the edge (its whole process) at the end of each scenario, against its memory-tier budget + ${fmt(RSS_HEADROOM_BYTES / 1e6)} MB.`,
    '',
    '| scenario | target | memory budget MB | RSS MB | limit MB | verdict |',
    '|---|---|---:|---:|---:|---|',
    ...checks.map((m) => `| ${m.scenario} | ${m.target} | ${fmt(m.budgetBytes / 1e6)} | ${fmt(m.rssBytes / 1e6)} | ${fmt(m.limitBytes / 1e6)} | ${verdict(m.met)} |`),
    '',
  ]
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

function profileSection (p: NonNullable<HotResult['profile']>, heading = '### Where the edge spends its CPU (`node --cpu-prof`, same load)'): string[] {
  const { edge, bare } = p
  const perReq = (ms: number, run: ProfiledRun): number => run.requests > 0 ? (ms * 1000) / run.requests : Number.NaN
  const bareFn = new Map(bare.topFunctions.map((s) => [`${s.functionName}\0${s.location}`, s]))
  const bareFile = new Map(bare.topFiles.map((s) => [s.location, s]))
  const bareCell = (s: HotSpot | undefined): string => s === undefined ? '–' : fmt(perReq(s.selfMs, bare))
  return [
    heading,
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
    `${c.clients} clients (raw sockets in one separate process, each connection opened and answered once, a HEAD of a small object, as a player's is once it has its playlist) send the same GET at once for an uncached ${c.bodyBytes}-byte .ts; the origin streams it at ${c.originBytesPerSecond} B/s (about 2 s). Fresh key each round; ${c.rounds} rounds after ${warmupText(c.warmupRounds)}; medians of the per-round percentiles. TTFB = request written → first body byte. Each round also runs the same herd against an *ideal streamer* (bench/peers/stream-server.ts: one paced producer fanned out by plain node:http, no cache), interleaved, to show what this machine allows.`,
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
    ...herdRoundsTable(h),
  ]
}
