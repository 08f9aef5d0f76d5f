/**
 * The steering section of bench/RESULTS.md: both generators, the bare ceilings per generator,
 * CPU per decision, the cold rate, cluster rounds and the verdict (naming the best configuration).
 * And the --log-ab line under a hot-cache table (edge-log / edge), absent without it.
 */
import t from 'tap'
import type { CompareResult, CompareWindow } from '../../../bench/lib/compare.ts'
import { renderResultsMarkdown, type BenchResults, type HerdResult, type HerdRound } from '../../../bench/lib/results.ts'
import type { SteeringResult, SteeringRound } from '../../../bench/scenarios/steering.ts'
import { benchResultsHeader } from '../../helpers/bench-results.ts'

const round = (accessLog: boolean, generator: 'autocannon' | 'wrk', decisionsPerSec: number, p99: number, workers?: number): SteeringRound => ({
  ...(workers === undefined ? {} : { workers }),
  accessLog,
  generator,
  firstPassDecisionsPerSec: accessLog ? 4100 : 4300,
  decisionsPerSec,
  requests: decisionsPerSec * 3,
  redirects: decisionsPerSec * 3 - 20,
  licenceDenials: 20,
  otherStatuses: 0,
  errors: 0,
  latencyP50Ms: 4,
  latencyP99Ms: p99,
  serverCpuPerSec: 0.98,
  serverCpuUsPerDecision: 81.5,
  generatorCpuPerSec: generator === 'wrk' ? 0.35 : 1,
  fastPathAnswered: 100_000,
  fastPathHandoffs: 2,
})

const steering: SteeringResult = {
  targetPerSec: 20_000,
  targetP99Ms: 5,
  generators: ['autocannon', 'wrk'],
  ceilings: [
    { server: 'node:http', generator: 'autocannon', requestsPerSec: 13_000, latencyP50Ms: 3, latencyP99Ms: 15, serverCpuPerSec: 0.6, serverCpuUsPerRequest: 46, generatorCpuPerSec: 1 },
    { server: 'node:http', generator: 'wrk', requestsPerSec: 21_000, latencyP50Ms: 2.6, latencyP99Ms: 10.6, serverCpuPerSec: 0.8, serverCpuUsPerRequest: 41.6, generatorCpuPerSec: 0.5 },
    { server: 'fast-front', generator: 'autocannon', requestsPerSec: 15_800, latencyP50Ms: 2, latencyP99Ms: 14, serverCpuPerSec: 0.57, serverCpuUsPerRequest: 36, generatorCpuPerSec: 0.98 },
    { server: 'fast-front', generator: 'wrk', requestsPerSec: 30_900, latencyP50Ms: 2, latencyP99Ms: 5.25, serverCpuPerSec: 0.9, serverCpuUsPerRequest: 32.1, generatorCpuPerSec: 0.58 },
  ],
  rounds: [round(true, 'autocannon', 7000, 20), round(true, 'wrk', 12_000, 19.6), round(false, 'autocannon', 7100, 18), round(false, 'wrk', 12_500, 15)],
  passed: false,
}

const base: BenchResults = benchResultsHeader()

t.test('the steering table has a row per ceiling and per round, each naming its generator', async (t) => {
  const md = renderResultsMarkdown({ ...base, steering })
  t.match(md, /## Steering decisions \(`steering`, issue 5\)/)
  t.match(md, /autocannon and wrk send GET \/v1\/steer/)
  t.match(md, /\| \| generator \| decisions\/s \| p50 ms \| p99 ms \| server CPU s\/s \| server CPU µs\/answer \| generator CPU s\/s \| 302 \| 451 \| other \| errors \|/)
  t.match(md, /\| bare node:http 302 \(ceiling\) \| wrk \| 21000 \| 2\.6 \| 10\.6 \| 0\.8 \| 41\.6 \| 0\.5 \| \| \| \| \|/)
  t.match(md, /\| bare fast-front 302 \(ceiling\) \| autocannon \| 15800 \|/)
  t.match(md, /\| one process, decision log on \| wrk \| 12000 \| 4 \| 19\.6 \| 0\.98 \| 81\.5 \| 0\.35 \| 35980 \| 20 \| 0 \| 0 \|/)
  t.match(md, /\| one process, decision log off \| autocannon \| 7100 \|/)
  t.match(md, /Cold first pass over every client address \(autocannon\): 4100\/s \(one process, decision log on\), 4300\/s \(one process, decision log off\)\./)
  t.match(md, /Ceilings \(best generator\): node:http 21000\/s, fast-front 30900\/s\./)
  t.match(md, /20000 decisions\/s with p99 < 5 ms, log on, in the best configuration: \*\*missed\*\*/)
})

t.test('cluster rounds are labelled with their worker count and the verdict names the best configuration', async (t) => {
  const cluster: SteeringResult = {
    ...steering,
    rounds: [...steering.rounds, round(true, 'wrk', 21_000, 4.2, 2)],
    best: { workers: 2, generator: 'wrk', decisionsPerSec: 21_000, latencyP99Ms: 4.2 },
    passed: true,
  }
  const md = renderResultsMarkdown({ ...base, steering: cluster })
  t.match(md, /\| 2 workers, decision log on \| wrk \| 21000 \| 4 \| 4\.2 \|/)
  t.match(md, /\| one process, decision log on \| wrk \| 12000 \|/, 'a single process is named as one')
  t.match(md, /log on, in the best configuration \(2 workers, wrk: 21000\/s, p99 4\.2 ms\): met\./)
})

t.test('a paced round is labelled with its pacing, and a paced best says so', async (t) => {
  const paced: SteeringResult = {
    ...steering,
    rounds: [...steering.rounds, { ...round(true, 'wrk', 20_500, 4.6, 2), paced: { connections: 160, delayMs: 5 } }],
    best: { workers: 2, generator: 'wrk', decisionsPerSec: 20_500, latencyP99Ms: 4.6, paced: true },
    passed: true,
  }
  const md = renderResultsMarkdown({ ...base, steering: paced })
  t.match(md, /\| 2 workers, decision log on, paced \(160 connections, 5 ms wait after each answer\) \| wrk \| 20500 \|/)
  t.match(md, /in the best configuration \(2 workers, wrk paced: 20500\/s, p99 4\.6 ms\): met\./)
})

t.test('latency-sweep rounds are labelled with their connections, and a best among them says so', async (t) => {
  const swept: SteeringResult = {
    ...steering,
    rounds: [...steering.rounds, { ...round(true, 'wrk', 20_300, 3.4), connections: 16 }],
    best: { workers: 1, generator: 'wrk', decisionsPerSec: 20_300, latencyP99Ms: 3.4, connections: 16 },
    passed: true,
  }
  const md = renderResultsMarkdown({ ...base, steering: swept })
  t.match(md, /\| one process, decision log on, 16 connections \| wrk \| 20300 \| 4 \| 3\.4 \|/)
  t.match(md, /in the best configuration \(one process, wrk, 16 connections: 20300\/s, p99 3\.4 ms\): met\./)
})

t.test('with autocannon alone the section says so and still renders', async (t) => {
  const only: SteeringResult = { ...steering, generators: ['autocannon'], ceilings: steering.ceilings.filter((c) => c.generator === 'autocannon'), rounds: steering.rounds.filter((r) => r.generator === 'autocannon'), passed: false }
  const md = renderResultsMarkdown({ ...base, steering: only })
  t.match(md, /; autocannon sends GET/)
  t.notMatch(md, /\| wrk \|/)
  t.match(md, /Ceilings \(best generator\): node:http 13000\/s, fast-front 15800\/s\./)
})

const playlistWindow = (round: number, target: CompareWindow['target'], generator: CompareWindow['generator'], rps: number, cpuMsPerKiloRequest: number): CompareWindow => ({
  round, target, generator, requests: rps * 4, durationS: 4, requestsPerSec: rps, bytes: rps * 4 * 1600, mbPerSec: rps * 0.0016, latencyP50Ms: 4, latencyP99Ms: 12,
  cpuSeconds: 4, cpuUserSeconds: 2.4, cpuSystemSeconds: 1.6, cpuSecondsPerGb: 30, cpuMsPerKiloRequest, loadGenCpuSeconds: 1, otherCpuSeconds: 0.1,
  originRequests: 0, originBytes: 0, non2xx: 0, errors: 0,
})

const playlist: CompareResult = {
  scenario: 'hot-playlist',
  title: 'Hot 1.5 KiB media playlist',
  config: { paths: 1, examplePath: '/vod/bench-long/v/index.m3u8', headers: {}, bodyBytes: 1536, connections: 100, warmupS: 1, measureS: 4, rounds: 2, costUnit: 'kreq', generators: ['wrk', 'autocannon'] },
  targets: ['edge', 'edge-log', 'bare'],
  windows: [playlistWindow(1, 'edge', 'wrk', 20_000, 50), playlistWindow(1, 'edge-log', 'wrk', 18_000, 55), playlistWindow(1, 'bare', 'wrk', 14_000, 60)],
  summaries: [
    { target: 'edge', generator: 'wrk', windows: 1, requestsPerSec: 20_000, mbPerSec: 32, latencyP50Ms: 4, latencyP99Ms: 12, cpuSecondsPerGb: 30, cpuMsPerKiloRequest: 50, originRequests: 0, originBytes: 0, byteHitRatio: 1, non2xx: 0, errors: 0, vsNginx: undefined },
    { target: 'edge-log', generator: 'wrk', windows: 1, requestsPerSec: 18_000, mbPerSec: 29, latencyP50Ms: 4, latencyP99Ms: 13, cpuSecondsPerGb: 33, cpuMsPerKiloRequest: 55, originRequests: 0, originBytes: 0, byteHitRatio: 1, non2xx: 0, errors: 0, vsNginx: undefined },
  ],
}

t.test('--log-ab: one line under the hot-cache table with edge-log / edge per generator, nothing else moved', async (t) => {
  const withAb: CompareResult = {
    ...playlist,
    accessLog: [
      { generator: 'wrk', rounds: 2, requestsPerSec: 0.9123, cpuMsPerKiloRequest: 1.0987 },
      { generator: 'autocannon', rounds: 1, requestsPerSec: 0.95, cpuMsPerKiloRequest: 1.05 },
    ],
  }
  const md = renderResultsMarkdown({ ...base, comparisons: [withAb] })
  const line = 'Access log (`--log-ab`): edge-log is edge with its access log on (`--log.access true`, one JSON line per request to a file; edge and every other row run with it off). ' +
    'edge-log / edge, medians of per-round ratios: wrk req/s **0.912**, CPU per 1000 requests **1.1** (2 rounds); autocannon req/s **0.95**, CPU per 1000 requests **1.05** (1 round).'
  t.ok(md.includes(`| edge-log | wrk | 18000 | 29 | 4 | 13 | 55 | 0 | – | – |\n\n${line}\n\n<details><summary>Per window</summary>`), 'under the summary table, before the per-window table')
  t.match(md, /\| 1 \| edge-log \| wrk \| 18000 \|/, 'edge-log windows are listed like any target\'s')
  const without = renderResultsMarkdown({ ...base, comparisons: [playlist] })
  t.notMatch(without, /Access log|--log-ab/, 'no line without --log-ab')
  t.equal(md.replace(`${line}\n\n`, ''), without, 'the line (and its blank line) is the only difference')
})

t.test('per-GB tables show server + client CPU with its ratio to nginx, and say why; per-request tables and old results do not', async (t) => {
  const segment: CompareResult = {
    ...playlist,
    scenario: 'hot-segment',
    title: 'Hot 2 MiB segment from memory',
    config: { ...playlist.config, bodyBytes: 2_097_140, costUnit: 'gb' },
    targets: ['edge', 'nginx'],
    summaries: [
      { ...playlist.summaries[0]!, cpuSecondsPerGb: 0.2, bothEndsCpuSecondsPerGb: 0.35, vsNginx: { requestsPerSec: 2.4, latencyP99Ms: 1, cpuSecondsPerGb: 2, cpuMsPerKiloRequest: 1, bothEndsCpuSecondsPerGb: 0.61 } },
      { ...playlist.summaries[0]!, target: 'nginx', cpuSecondsPerGb: 0.1, bothEndsCpuSecondsPerGb: 0.57, vsNginx: { requestsPerSec: 1, latencyP99Ms: 1, cpuSecondsPerGb: 1, cpuMsPerKiloRequest: 1, bothEndsCpuSecondsPerGb: 1 } },
    ],
  }
  const md = renderResultsMarkdown({ ...base, comparisons: [segment] })
  t.match(md, /\| req\/s vs nginx \| CPU vs nginx \| server \+ client CPU s\/GB \(vs nginx\) \|\n\|---\|---\|---:\|---:\|---:\|---:\|---:\|---:\|---:\|---:\|---:\|\n/)
  t.match(md, /\| edge \| wrk \| 20000 \| 32 \| 4 \| 12 \| 0\.2 \| 0 \| 2\.4 \| 2 \| 0\.35 \(0\.61×\) \|\n/)
  t.match(md, /\| nginx \| wrk \| .* \| 0\.57 \(1×\) \|\n/)
  t.match(md, /"server \+ client CPU s\/GB": the target's CPU and its load generator's together per GB/)
  const old = renderResultsMarkdown({ ...base, comparisons: [{ ...segment, summaries: segment.summaries.map(({ bothEndsCpuSecondsPerGb: _, ...x }) => x) }] })
  t.notMatch(old, /server \+ client/, 'results saved before the column render as they did')
  t.notMatch(renderResultsMarkdown({ ...base, comparisons: [playlist] }), /server \+ client/, 'per-request tables have no such column')
})

t.test('cold herd: the warm-up rounds are named in the text and listed first in the per-round table; older results say one', async (t) => {
  const herdRound = (round: number, target: 'edge' | 'stream', ttfbP99Ms: number): HerdRound => ({
    round, target, path: `/h-r${round}`, originRequests: target === 'edge' ? 1 : 0, clients: 200, complete: 200, ttfbP50Ms: ttfbP99Ms - 2, ttfbP99Ms, headP99Ms: ttfbP99Ms, totalP50Ms: 2010, totalP99Ms: 2020, connectMs: 20, sendSpreadMs: 1, serverCpuSeconds: 0.5, clientCpuSeconds: 0.7, otherCpuSeconds: 0, errors: [],
  })
  const medians = { ttfbP50Ms: 9, ttfbP99Ms: 11, headP99Ms: 11, totalP50Ms: 2010, totalP99Ms: 2020, serverCpuSeconds: 0.5 }
  const herd: HerdResult = {
    scenario: 'cold-herd',
    config: { clients: 200, bodyBytes: 8388560, originBytesPerSecond: 4194280, rounds: 1, warmupRounds: 2 },
    warmups: [herdRound(-1, 'edge', 31), herdRound(-1, 'stream', 15), herdRound(0, 'edge', 24), herdRound(0, 'stream', 12)],
    rounds: [herdRound(1, 'edge', 11), herdRound(1, 'stream', 10)],
    edge: medians,
    stream: medians,
    byTarget: [{ target: 'edge', ...medians, originRequestsMax: 1, complete: 200, clients: 200 }, { target: 'stream', ...medians, originRequestsMax: 0, complete: 200, clients: 200 }],
    originRequestsMax: 1,
    targets: { originRequests: { expected: 1, met: true }, ttfbP99: { maxMs: 25, met: true } },
  }
  const md = renderResultsMarkdown({ ...base, herd })
  t.match(md, /1 rounds after 2 unreported warm-up rounds \(a JIT optimises the join path during the second herd/)
  const rows = md.split('\n').filter((l) => /^\| (warm-up \d|\d) \| (edge|stream) \| /.test(l)).map((l) => l.split(' | ').slice(0, 2).join(' | ') + ` | ${l.split(' | ')[5]}`)
  t.same(rows, ['| warm-up 1 | edge | 31', '| warm-up 1 | stream | 15', '| warm-up 2 | edge | 24', '| warm-up 2 | stream | 12', '| 1 | edge | 11', '| 1 | stream | 10'])
  const { warmups: _, config: { warmupRounds: _w, ...olderConfig }, ...older } = herd
  const old = renderResultsMarkdown({ ...base, herd: { ...older, config: olderConfig } })
  t.match(old, /1 rounds after one unreported warm-up round,/)
  t.notMatch(old, /warm-up \d \|/)
})

t.test('per-window GC counts: a column for the targets that report them (– for the others), explained once; none in older results', async (t) => {
  const withGc: CompareResult = {
    ...playlist,
    windows: [{ ...playlist.windows[0]!, gcMinor: 41, gcMajor: 2 }, playlist.windows[1]!, playlist.windows[2]!],
  }
  const md = renderResultsMarkdown({ ...base, comparisons: [withGc] })
  t.match(md, /"GC minor \/ major": the scavenges and mark-compacts V8 ran in the target during the window/)
  t.match(md, /\| non-2xx \| errors \| GC minor \/ major \|\n\|---:\|---\|---\|---:\|---:\|---:\|---:\|---:\|---:\|---:\|---:\|---:\|---:\|---:\|---:\|---:\|\n/)
  t.match(md, /\| 1 \| edge \| wrk \| 20000 \|.* \| 41 \/ 2 \|\n/)
  t.match(md, /\| 1 \| bare \| wrk \| 14000 \|.* \| – \|\n/)
  const old = renderResultsMarkdown({ ...base, comparisons: [playlist] })
  t.notMatch(old, /GC minor/, 'results without GC counts render as they did')
})
