/**
 * Issue 7's verdicts from a run's results, and the markdown of the suite's sections.
 * Synthetic results: the numbers are made up, the arithmetic and the wording are tested.
 */
import t from 'tap'
import type { TargetName } from '../../../bench/lib/bench-target.ts'
import { summariseWindows, type CompareResult, type CompareWindow, type GeneratorName } from '../../../bench/lib/compare.ts'
import { renderResultsMarkdown, type BenchResults, type HerdResult } from '../../../bench/lib/results.ts'
import { issue7Verdicts, pairedRatio } from '../../../bench/lib/verdicts.ts'
import { summariseColdRange } from '../../../bench/scenarios/cold-range.ts'
import { parseLookups } from '../../../bench/scenarios/working-set.ts'
import { benchResultsHeader } from '../../helpers/bench-results.ts'

function w (round: number, target: TargetName, generator: GeneratorName, rps: number, cpuPerGb: number, cpuPerK: number, originBytes = 0): CompareWindow {
  return {
    round, target, generator, requests: rps * 4, durationS: 4, requestsPerSec: rps, bytes: rps * 4 * 2e6, mbPerSec: rps * 2, latencyP50Ms: 2, latencyP99Ms: 20,
    cpuSeconds: 1, cpuUserSeconds: 0.4, cpuSystemSeconds: 0.6, cpuSecondsPerGb: cpuPerGb, cpuMsPerKiloRequest: cpuPerK, loadGenCpuSeconds: 1, otherCpuSeconds: 0.1,
    originRequests: originBytes > 0 ? 3 : 0, originBytes, non2xx: 0, errors: 0,
  }
}

function comparison (scenario: string, costUnit: 'gb' | 'kreq', windows: CompareWindow[]): CompareResult {
  return {
    scenario,
    title: `Title of ${scenario}`,
    config: { paths: 1, examplePath: '/p.ts', headers: {}, bodyBytes: 2e6, connections: 100, warmupS: 1, measureS: 4, rounds: 2, costUnit, generators: ['wrk', 'autocannon'] },
    targets: [...new Set(windows.map((x) => x.target))],
    windows,
    summaries: summariseWindows(windows),
  }
}

t.test('pairedRatio takes the median of same-round, same-generator ratios', async (t) => {
  const ws = [w(1, 'edge', 'wrk', 100, 0.2, 0), w(1, 'nginx', 'wrk', 50, 0.1, 0), w(2, 'edge', 'wrk', 100, 0.3, 0), w(2, 'nginx', 'wrk', 100, 0.1, 0), w(2, 'edge', 'autocannon', 10, 1, 0)]
  t.equal(pairedRatio(ws, 'edge', 'nginx', (x) => x.requestsPerSec), 1.5, 'median of 2 and 1; the unpaired autocannon window is left out')
  t.ok(Number.isNaN(pairedRatio(ws, 'edge', 'nginx', (x) => x.requestsPerSec, 'autocannon')), 'no nginx autocannon window: NaN')
})

const segment = comparison('hot-segment', 'gb', [
  w(1, 'edge', 'wrk', 500, 0.18, 0), w(1, 'nginx', 'wrk', 450, 0.15, 0), w(1, 'varnish', 'wrk', 520, 0.3, 0),
  w(2, 'edge', 'wrk', 510, 0.19, 0), w(2, 'nginx', 'wrk', 460, 0.15, 0), w(2, 'varnish', 'wrk', 505, 0.3, 0),
])
const playlist = comparison('hot-playlist', 'kreq', [
  w(1, 'edge', 'wrk', 20000, 0, 40), w(1, 'nginx', 'wrk', 30000, 0, 25), w(2, 'edge', 'wrk', 21000, 0, 38), w(2, 'nginx', 'wrk', 29000, 0, 26),
])
const setComparison = comparison('working-set', 'gb', [
  w(1, 'edge', 'wrk', 800, 0.3, 0), w(1, 'nginx', 'wrk', 700, 0.3, 0), w(1, 'varnish', 'wrk', 300, 0.5, 0, 8e8),
])
const herd: HerdResult = {
  scenario: 'cold-herd',
  config: { clients: 200, bodyBytes: 8388560, originBytesPerSecond: 4194280, rounds: 1 },
  rounds: [
    { round: 1, target: 'edge', path: '/p', originRequests: 1, clients: 200, complete: 200, ttfbP50Ms: 5, ttfbP99Ms: 20, headP99Ms: 19, totalP50Ms: 2010, totalP99Ms: 2020, connectMs: 30, sendSpreadMs: 4, serverCpuSeconds: 1, clientCpuSeconds: 1.5, otherCpuSeconds: 0.1, errors: [] },
    { round: 1, target: 'nginx', path: '/p', originRequests: 1, clients: 200, complete: 200, ttfbP50Ms: 2100, ttfbP99Ms: 2150, headP99Ms: 2100, totalP50Ms: 2110, totalP99Ms: 2160, connectMs: 30, sendSpreadMs: 4, serverCpuSeconds: 0.4, clientCpuSeconds: 1.5, otherCpuSeconds: 0.1, errors: [] },
  ],
  edge: { ttfbP50Ms: 5, ttfbP99Ms: 20, headP99Ms: 19, totalP50Ms: 2010, totalP99Ms: 2020, serverCpuSeconds: 1 },
  stream: { ttfbP50Ms: Number.NaN, ttfbP99Ms: Number.NaN, headP99Ms: Number.NaN, totalP50Ms: Number.NaN, totalP99Ms: Number.NaN, serverCpuSeconds: Number.NaN },
  byTarget: [
    { target: 'edge', ttfbP50Ms: 5, ttfbP99Ms: 20, headP99Ms: 19, totalP50Ms: 2010, totalP99Ms: 2020, serverCpuSeconds: 1, originRequestsMax: 1, complete: 200, clients: 200 },
    { target: 'nginx', ttfbP50Ms: 2100, ttfbP99Ms: 2150, headP99Ms: 2100, totalP50Ms: 2110, totalP99Ms: 2160, serverCpuSeconds: 0.4, originRequestsMax: 1, complete: 200, clients: 200 },
  ],
  originRequestsMax: 1,
  targets: { originRequests: { expected: 1, met: true }, ttfbP99: { maxMs: 25, met: true } },
}
const coldRounds = [
  { round: 1, target: 'edge' as const, status: 206, bodyBytes: 65536, correct: true, headMs: 3, ttfbMs: 4, totalMs: 20, originBytes: 65900, originRequests: 1, error: undefined },
  { round: 2, target: 'edge' as const, status: 206, bodyBytes: 65536, correct: true, headMs: 5, ttfbMs: 6, totalMs: 22, originBytes: 65900, originRequests: 1, error: undefined },
  { round: 1, target: 'varnish' as const, status: 206, bodyBytes: 65536, correct: true, headMs: 990, ttfbMs: 1000, totalMs: 1010, originBytes: 8388900, originRequests: 1, error: undefined },
  { round: 2, target: 'varnish' as const, status: 0, bodyBytes: 0, correct: false, headMs: Number.POSITIVE_INFINITY, ttfbMs: Number.POSITIVE_INFINITY, totalMs: Number.POSITIVE_INFINITY, originBytes: 8388900, originRequests: 1, error: 'socket hang up' },
]
const results: BenchResults = {
  ...benchResultsHeader({ quietWaitS: 60, wallSeconds: 500 }),
  scenarios: ['hot-segment', 'hot-playlist', 'working-set', 'cold-herd', 'cold-range'],
  tools: {
    autocannon: '9.0.0',
    wrk: 'wrk 4.1.0',
    peers: [
      { name: 'nginx', available: true, command: '/usr/sbin/nginx', version: 'nginx version: nginx/1.22.1', reason: undefined },
      { name: 'nginx-slice', available: false, command: undefined, version: undefined, reason: 'nginx built without --with-http_slice_module' },
      { name: 'varnish', available: true, command: '/usr/sbin/varnishd', version: 'varnishd (varnish-7.1.1)', reason: undefined },
    ],
  },
  comparisons: [segment, playlist],
  workingSet: { comparison: setComparison, objects: 160, objectBytes: 1048476, memoryBudgetBytes: 64 * 2 ** 20, edgeLookups: { memoryHits: 100, diskHits: 300, misses: 0 } },
  herd,
  coldRange: { scenario: 'cold-range', config: { bodyBytes: 8388560, originBytesPerSecond: 4194280, range: 'bytes=4194304-4259839', rounds: 2 }, rounds: coldRounds, summaries: summariseColdRange(coldRounds) },
  memory: [{ scenario: 'hot-cache', target: 'edge', budgetBytes: 268435456, rssBytes: 300e6, limitBytes: 268435456 + 150e6, met: true }],
  failures: [{ scenario: 'steering', error: 'control plane did not start\nstack' }],
  extra: { offload: { result: {}, markdown: '## Origin offload (issue 4)\n\nbody\n' } },
}

t.test('issue7Verdicts judges each target from the run', async (t) => {
  const v = issue7Verdicts(results)
  const by = new Map(v.map((x) => [x.id, x]))
  t.same(v.map((x) => x.id), [
    'hot segment: CPU', 'hot segment: req/s', 'hot playlist: CPU', 'hot playlist: req/s', 'working set: req/s', 'working set: byte hit ratio',
    'cold herd: origin requests', 'cold herd: TTFB p99', 'cold range: first byte', 'cold range: origin bytes', 'memory (hot-cache)',
  ])
  t.equal(by.get('hot segment: CPU')!.met, true, '0.18/0.15 and 0.19/0.15: median 1.23 is within 1.3×')
  t.match(by.get('hot segment: CPU')!.measured, /^1\.23× \(edge 0\.185, nginx 0\.15 s\/GB/)
  t.equal(by.get('hot segment: req/s')!.met, false, 'varnish is the best peer and a bit faster')
  t.match(by.get('hot segment: req/s')!.measured, /× varnish/)
  t.equal(by.get('hot playlist: CPU')!.met, false, '40/25 and 38/26 are well over 1.3×')
  t.equal(by.get('hot playlist: req/s')!.met, false)
  t.equal(by.get('working set: req/s')!.met, true)
  t.equal(by.get('working set: byte hit ratio')!.met, true)
  t.match(by.get('working set: byte hit ratio')!.measured, /varnish 0\.667/)
  t.equal(by.get('cold herd: TTFB p99')!.met, true)
  t.equal(by.get('cold range: first byte')!.met, true)
  t.match(by.get('cold range: first byte')!.measured, /^5 ms/)
  t.equal(by.get('cold range: origin bytes')!.met, true)
  t.equal(by.get('memory (hot-cache)')!.met, true)
  t.same(issue7Verdicts({ ...results, comparisons: [], workingSet: undefined as never, herd: undefined as never, coldRange: undefined as never, memory: [] }), [], 'nothing measured, nothing judged')
})

t.test('summariseColdRange: medians, and a failed request counts as infinitely slow', async (t) => {
  const s = summariseColdRange(coldRounds)
  t.same(s.map((x) => x.target), ['edge', 'varnish'])
  t.equal(s[0]!.ttfbMs, 5)
  t.equal(s[0]!.allCorrect, true)
  t.equal(s[1]!.ttfbMs, Number.POSITIVE_INFINITY)
  t.equal(s[1]!.allCorrect, false)
  t.equal(s[1]!.originBytes, 8388900)
})

t.test('parseLookups sums the edge\'s lookup counters by tier', async (t) => {
  const text = [
    '# HELP streamedge_cache_lookups_total Cache lookups',
    'streamedge_cache_lookups_total{result="hit",tier="memory"} 10',
    'streamedge_cache_lookups_total{result="hit",tier="disk"} 30',
    'streamedge_cache_lookups_total{result="miss",tier="none"} 2',
    'streamedge_requests_total{phase="hit",status="200"} 40',
  ].join('\n')
  t.same(parseLookups(text), { memoryHits: 10, diskHits: 30, misses: 2 })
  t.equal(parseLookups('other_metric 1\n'), undefined)
})

t.test('renderResultsMarkdown: tools, verdicts, comparisons, working set, herd, cold range, memory, failures, extras', async (t) => {
  const md = renderResultsMarkdown({ ...results, verdicts: issue7Verdicts(results) })
  t.match(md, /- Load generators: autocannon 9\.0\.0 \(in the bench process\) and wrk 4\.1\.0/)
  t.match(md, /nginx-slice: \*\*absent\*\* \(nginx built without --with-http_slice_module\)/)
  t.match(md, /varnish: varnishd \(varnish-7\.1\.1\)/)
  t.match(md, /## Failed scenarios\n\n- `steering`: control plane did not start\n/)
  t.match(md, /## Issue 7 targets/)
  t.match(md, /\| hot playlist: CPU \| CPU per 1000 requests ≤ 1\.3× nginx \| .* \| \*\*missed\*\* \|/)
  t.match(md, /## Title of hot-segment \(`hot-segment`\)/)
  t.match(md, /\| target \| generator \| req\/s \| MB\/s \| p50 ms \| p99 ms \| CPU s\/GB \| origin requests \| req\/s vs nginx \| CPU vs nginx \|/)
  t.match(md, /\| edge \| wrk \| 505 \| 1010 \| 2 \| 20 \| 0\.185 \| 0 \| 1\.11 \| 1\.23 \|/)
  t.match(md, /\| CPU ms\/1k req \|/, 'the playlist is costed per 1000 requests')
  t.match(md, /160 objects of 1048476 bytes .* 300 disk hits, 0 misses \(75% from disk\)/)
  t.match(md, /byte hit ratio \|/)
  t.match(md, /\| varnish \| wrk \| 300 \| .* \| 0\.6667 \|/, 'varnish fetched from the origin: byte hit ratio under 1')
  t.match(md, /\| \| edge \| nginx \|\n/, 'herd table has a column per target')
  t.match(md, /\| TTFB p99 \(ms\) \| 20 \| 2150 \|/)
  t.match(md, /## Cold mid-file range/)
  t.match(md, /\| varnish \| n\/a \| n\/a \| 1 \| 8 \| \*\*no\*\* \|/)
  t.match(md, /\| hot-cache \| edge \| 268 \| 300 \| 418 \| met \|/)
  t.match(md, /## Origin offload \(issue 4\)\n\nbody\n/)
})
