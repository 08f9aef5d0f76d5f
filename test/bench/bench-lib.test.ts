/**
 * Unit tests for the benchmark harness's pure helpers (bench/lib, summariseRound).
 * Benchmarks themselves are never run or asserted here.
 */
import t from 'tap'
import { DEFAULT_SCENARIOS, parseBenchArgs } from '../../bench/lib/args.ts'
import { cleanEnv, listeningUrl } from '../../bench/lib/child-server.ts'
import { summariseCpuProfile, type CpuProfile } from '../../bench/lib/cpu-profile.ts'
import { replayableHeaders } from '../../bench/lib/http-get.ts'
import { parseResponseHead } from '../../bench/lib/http-head.ts'
import { cpuSecondsBetween, parseProcStat, parseSystemStat, readProcessCpu } from '../../bench/lib/proc-cpu.ts'
import { fileStamp, fmt, renderResultsMarkdown, type BenchResults, type HotResult, type HerdResult } from '../../bench/lib/results.ts'
import { cpuSecondsPerGb, median, percentile, ratio, roundSignificant } from '../../bench/lib/stats.ts'
import { summariseRound } from '../../bench/scenarios/cold-herd.ts'
import { benchResultsHeader } from '../helpers/bench-results.ts'

t.test('median: odd and even counts, unsorted input left alone, empty is NaN', async (t) => {
  const input = [5, 1, 3]
  t.equal(median(input), 3)
  t.same(input, [5, 1, 3], 'input not sorted in place')
  t.equal(median([4, 1, 3, 2]), 2.5)
  t.equal(median([7]), 7)
  t.ok(Number.isNaN(median([])))
})

t.test('percentile is nearest-rank: always a real sample', async (t) => {
  const hundred = Array.from({ length: 100 }, (_, i) => 100 - i) // 100..1, unsorted
  t.equal(percentile(hundred, 50), 50)
  t.equal(percentile(hundred, 99), 99)
  t.equal(percentile(hundred, 100), 100)
  t.equal(percentile(hundred, 0), 1)
  const twoHundred = Array.from({ length: 200 }, (_, i) => i + 1)
  t.equal(percentile(twoHundred, 99), 198, 'p99 of 200 clients is the 198th')
  t.equal(percentile([1, 2, Number.POSITIVE_INFINITY], 99), Number.POSITIVE_INFINITY, 'a failed client (Infinity) shows up in the tail')
  t.ok(Number.isNaN(percentile([], 50)))
  t.throws(() => percentile([1], 101), TypeError)
  t.throws(() => percentile([1], Number.NaN), TypeError)
})

t.test('ratio, cpuSecondsPerGb and roundSignificant guard against empty denominators', async (t) => {
  t.equal(ratio(3, 2), 1.5)
  t.ok(Number.isNaN(ratio(1, 0)))
  t.ok(Number.isNaN(ratio(Number.NaN, 1)))
  t.equal(cpuSecondsPerGb(2, 4e9), 0.5)
  t.ok(Number.isNaN(cpuSecondsPerGb(1, 0)))
  t.equal(roundSignificant(0.123456), 0.123)
  t.equal(roundSignificant(123456, 2), 120000)
  t.ok(Number.isNaN(roundSignificant(Number.NaN)))
})

t.test('parseProcStat reads utime and stime after a comm with spaces and parentheses', async (t) => {
  const fields = Array.from({ length: 49 }, (_, i) => String(i + 3)) // fields 3..51
  fields[0] = 'S'
  fields[14 - 3] = '1234'
  fields[15 - 3] = '56'
  const text = `4242 (node (tsx) x) ${fields.join(' ')}\n`
  t.same(parseProcStat(text), { utimeTicks: 1234, stimeTicks: 56 })
  t.throws(() => parseProcStat('garbage'), TypeError)
  t.throws(() => parseProcStat('1 (x) S 1 2'), TypeError, 'too few fields')
})

t.test('readProcessCpu of this process is finite and never goes backwards', { skip: process.platform === 'linux' ? false : 'needs /proc' }, async (t) => {
  const before = readProcessCpu(process.pid)
  let x = 0
  for (let i = 0; i < 1e6; i++) x += i % 7
  t.ok(x > 0)
  const after = readProcessCpu(process.pid)
  t.ok(Number.isFinite(before.userSeconds) && before.userSeconds >= 0)
  t.ok(cpuSecondsBetween(before, after) >= 0)
})

t.test('parseSystemStat counts steal as busy and idle + iowait as not', async (t) => {
  const text = 'cpu  100 5 20 1000 30 1 2 7 50 0\ncpu0 50 2 10 500 15 0 1 3 0 0\nintr 1\n'
  t.same(parseSystemStat(text), { busyTicks: 100 + 5 + 20 + 1 + 2 + 7, totalTicks: 135 + 1000 + 30 })
  t.same(parseSystemStat('cpu 1 2 3 4\n'), { busyTicks: 6, totalTicks: 10 }, 'old kernels with four fields')
  t.throws(() => parseSystemStat('intr 1\n'), TypeError)
  t.throws(() => parseSystemStat('cpu a b c d\n'), TypeError)
})

t.test('parseResponseHead waits for the blank line, then parses status, fields and length', async (t) => {
  t.equal(parseResponseHead(Buffer.from('HTTP/1.1 200 OK\r\ncontent-length: 5\r\n')), undefined)
  const raw = Buffer.from('HTTP/1.1 206 Partial Content\r\nContent-Length: 5\r\nX-A: 1\r\nx-a: 2\r\n\r\nhello')
  const head = parseResponseHead(raw)
  t.ok(head)
  t.equal(head!.status, 206)
  t.equal(head!.contentLength, 5)
  t.equal(head!.headers['x-a'], '1, 2')
  t.equal(raw.subarray(head!.headBytes).toString(), 'hello')
  t.equal(parseResponseHead(Buffer.from('HTTP/1.1 200\r\n\r\n'))!.contentLength, undefined, 'no reason phrase, no length')
  t.equal(parseResponseHead(Buffer.from('HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n'))!.contentLength, undefined)
  t.throws(() => parseResponseHead(Buffer.from('ICY 200 OK\r\n\r\n')), TypeError)
  t.throws(() => parseResponseHead(Buffer.from('HTTP/1.1 200 OK\r\nno colon\r\n\r\n')), TypeError)
})

t.test('summariseCpuProfile charges each sample the time to the next and leaves idle out of the shares', async (t) => {
  const frame = (functionName: string, url = '', lineNumber = 0): CpuProfile['nodes'][number]['callFrame'] => ({ functionName, url, lineNumber })
  const profile: CpuProfile = {
    nodes: [
      { id: 1, callFrame: frame('(root)') },
      { id: 2, callFrame: frame('(idle)') },
      { id: 3, callFrame: frame('handle', 'file:///repo/edge/proxy/cache-proxy.ts', 79) },
      { id: 4, callFrame: frame('', 'file:///repo/edge/proxy/cache-proxy.ts', 0) },
      { id: 5, callFrame: frame('writev', 'node:internal/stream_base_commons', 120) },
      { id: 6, callFrame: frame('(garbage collector)') },
      { id: 7, callFrame: frame('handle', 'file:///repo/edge/proxy/cache-proxy.ts', 79) }, // same function, another call path
    ],
    startTime: 0,
    endTime: 10_000,
    samples: [2, 3, 5, 7, 4, 6, 2],
    // sample i lasts timeDeltas[i + 1] µs; the last one gets the mean (10000 / 7)
    timeDeltas: [0, 1000, 3000, 2000, 500, 500, 1000],
  }
  const s = summariseCpuProfile(profile, { top: 3, rootUrl: 'file:///repo/' })
  t.equal(s.samples, 7)
  t.equal(s.durationMs, 10)
  t.equal(s.idleMs, (1000 + 10_000 / 7) / 1000, 'idle: the first and the last sample')
  t.same(s.topFunctions.map((h) => [h.functionName, h.location, h.selfMs]), [
    ['handle', 'edge/proxy/cache-proxy.ts:80', 3.5],
    ['writev', 'node:internal/stream_base_commons:121', 2],
    ['(garbage collector)', '(garbage collector)', 1],
  ])
  t.equal(s.topFunctions.length, 3, 'top limits the list (the anonymous function is 4th)')
  t.equal(s.busyMs, 7, 'handle 3.5 + writev 2 + gc 1 + anonymous 0.5')
  t.equal(Math.round(s.topFunctions[0]!.selfPercent), 50)
  t.same(s.topFiles.map((f) => [f.location, f.selfMs]), [['edge/proxy/cache-proxy.ts', 4], ['node:internal/stream_base_commons', 2], ['(garbage collector)', 1]])

  // Sample timestamps: 0, 1000, 4000, 6000, 6500, 7000, 8000 µs.
  const all = summariseCpuProfile(profile, { rootUrl: 'file:///repo' })
  t.same(all.topFunctions.map((h) => h.location).slice(3), ['edge/proxy/cache-proxy.ts'], 'root without a trailing slash; line 0 (tsx output) is left out')
  const windowed = summariseCpuProfile(profile, { rootUrl: 'file:///repo/', window: { fromUs: 1000, toUs: 6500 } })
  t.equal(windowed.samples, 3, 'the samples at 1000, 4000 and 6000')
  t.equal(windowed.durationMs, 5.5)
  t.same(windowed.topFunctions.map((h) => [h.functionName, h.selfMs]), [['handle', 3.5], ['writev', 2]], 'startup and shutdown samples are left out')
  const byHits = summariseCpuProfile({ ...profile, samples: [], timeDeltas: [], nodes: profile.nodes.map((n) => ({ ...n, hitCount: n.id === 3 ? 3 : n.id === 2 ? 1 : 0 })) })
  t.equal(byHits.topFunctions[0]!.selfMs, 7.5, 'without a timeline, hit counts share the duration')
  t.equal(byHits.idleMs, 2.5)
})

t.test('listeningUrl picks the url of a "... listening" JSON line only', async (t) => {
  t.equal(listeningUrl('{"level":"info","msg":"edge listening","url":"http://127.0.0.1:1234"}'), 'http://127.0.0.1:1234')
  t.equal(listeningUrl('{"msg":"bare listening","url":"http://127.0.0.1:9"}'), 'http://127.0.0.1:9')
  t.equal(listeningUrl('{"msg":"stopped","url":"http://x"}'), undefined)
  t.equal(listeningUrl('{"msg":"edge listening"}'), undefined)
  t.equal(listeningUrl('{not json'), undefined)
  t.equal(listeningUrl('plain text listening'), undefined)
})

t.test('cleanEnv drops STREAMEDGE_* settings and BENCH_* knobs and keeps the rest', async (t) => {
  t.same(cleanEnv({ PATH: '/bin', STREAMEDGE_EDGE_ORIGIN: 'http://x', HOME: '/h' }), { PATH: '/bin', HOME: '/h' })
  t.same(cleanEnv({ PATH: '/bin', BENCH_PACER_DEFER_MS: '0' }), { PATH: '/bin' }, 'a developer\'s pacer knob does not leak into every scenario')
})

t.test('replayableHeaders keeps the entity headers and drops what a server adds itself', async (t) => {
  const raw = ['Content-Type', 'video/mp2t', 'Date', 'x', 'connection', 'keep-alive', 'Keep-Alive', 'timeout=5', 'cache-status', 'a; hit', 'Transfer-Encoding', 'chunked']
  t.same(replayableHeaders(raw), ['Content-Type', 'video/mp2t', 'cache-status', 'a; hit'])
})

t.test('parseBenchArgs: defaults, flags, and TypeErrors that name the flag', async (t) => {
  t.same(parseBenchArgs([]), { quick: false, only: undefined, peers: undefined, profile: 'auto', rounds: undefined, edgeRoot: undefined, edgeRef: undefined, quietWaitS: 0, render: undefined, floors: false, logAb: false })
  t.same(parseBenchArgs(['--quick', '--only', 'cold-herd', '--profile', 'never', '--rounds', '4', '--edge-root', '/tmp/head', '--quiet-wait', '30']),
    { quick: true, only: ['cold-herd'], peers: undefined, profile: 'never', rounds: 4, edgeRoot: '/tmp/head', edgeRef: undefined, quietWaitS: 30, render: undefined, floors: false, logAb: false })
  t.same(parseBenchArgs(['--only', 'cold-range, hot-segment']).only, ['hot-segment', 'cold-range'], 'a list, in suite order')
  t.same(parseBenchArgs(['--peers', 'varnish,nginx']).peers, ['nginx', 'varnish'])
  t.same(parseBenchArgs(['--peers', 'none']).peers, [])
  t.equal(parseBenchArgs(['--edge-ref', 'HEAD~1']).edgeRef, 'HEAD~1')
  t.equal(parseBenchArgs(['--render', 'bench/results/x.json']).render, 'bench/results/x.json')
  t.equal(parseBenchArgs(['--floors', '--only', 'ranges']).floors, true)
  t.equal(parseBenchArgs(['--log-ab']).logAb, true, 'the whole suite includes the hot-cache workloads')
  t.has(parseBenchArgs(['--only', 'hot-playlist', '--peers', 'none', '--log-ab', '--quick']), { only: ['hot-playlist'], peers: [], logAb: true, quick: true, floors: false })
  t.equal(parseBenchArgs(['--only', 'steering,ranges', '--log-ab']).logAb, true, 'one hot-cache workload is enough')
  t.throws(() => parseBenchArgs(['--only', 'steering,cold-herd', '--log-ab']), { name: 'TypeError', message: /--log-ab.*hot-playlist.*got --only cold-herd,steering/ })
  t.throws(() => parseBenchArgs(['--log-ab=yes']), 'a boolean flag takes no value')
  t.ok(!DEFAULT_SCENARIOS.includes('hot-memory') && DEFAULT_SCENARIOS.includes('steering'), 'the suite leaves out only the legacy hot-memory')
  t.throws(() => parseBenchArgs(['--edge-ref', 'HEAD', '--edge-root', '/x']), { name: 'TypeError', message: /at most one/ })
  t.throws(() => parseBenchArgs(['--edge-ref=--output=x']), { name: 'TypeError', message: /--edge-ref/ })
  t.throws(() => parseBenchArgs(['--quiet-wait', '-1']), { name: 'TypeError', message: /--quiet-wait/ })
  t.throws(() => parseBenchArgs(['--edge-root', 'relative/dir']), { name: 'TypeError', message: /--edge-root/ })
  t.throws(() => parseBenchArgs(['--only', 'warm']), { name: 'TypeError', message: /--only.*got warm/ })
  t.throws(() => parseBenchArgs(['--only', ',']), { name: 'TypeError', message: /--only/ })
  t.throws(() => parseBenchArgs(['--peers', 'squid']), { name: 'TypeError', message: /--peers.*got squid/ })
  t.throws(() => parseBenchArgs(['--profile', 'sometimes']), { name: 'TypeError', message: /--profile/ })
  t.throws(() => parseBenchArgs(['--rounds', '0']), { name: 'TypeError', message: /--rounds.*got 0/ })
  t.throws(() => parseBenchArgs(['--rounds', '2.5']), TypeError)
  t.throws(() => parseBenchArgs(['--nope']))
})

t.test('summariseRound: percentiles per round, failures count as infinitely slow', async (t) => {
  const ok = (ms: number): { status: number, headMs: number, firstByteMs: number, totalMs: number, bodyBytes: number, error: undefined } =>
    ({ status: 200, headMs: ms, firstByteMs: ms + 1, totalMs: ms + 2000, bodyBytes: 10, error: undefined })
  const clients = [...Array.from({ length: 99 }, (_, i) => ok(i + 1)), { status: undefined, headMs: undefined, firstByteMs: undefined, totalMs: undefined, bodyBytes: 0, error: 'reset' }]
  const base = { round: 2, target: 'edge' as const, path: '/p', originRequests: 1, serverCpuSeconds: 0.5, clientCpuSeconds: 1, otherCpuSeconds: 0 }
  const r = summariseRound({ ...base, report: { connectMs: 3, sendSpreadMs: 1, clients } })
  t.equal(r.round, 2)
  t.equal(r.clients, 100)
  t.equal(r.complete, 99)
  t.equal(r.ttfbP50Ms, 51)
  t.equal(r.ttfbP99Ms, 100)
  t.equal(percentile([r.totalP99Ms], 50), 2099)
  t.same(r.errors, ['reset'])
  t.equal(r.serverCpuSeconds, 0.5)
  t.equal(r.target, 'edge')
  t.equal(r.originRequests, 1)
  const failing = summariseRound({ ...base, report: { connectMs: 3, sendSpreadMs: 1, clients: [...clients.slice(0, 98), clients[99]!, clients[99]!] } })
  t.equal(failing.ttfbP99Ms, Number.POSITIVE_INFINITY, 'two failures out of 100 reach p99')
})

t.test('renderResultsMarkdown shows machine, both scenarios, ratios and verdicts', async (t) => {
  const hot: HotResult = {
    scenario: 'hot-memory',
    config: { path: '/synthetic/hot-2097140.ts', bodyBytes: 2097140, connections: 100, warmupS: 3, measureS: 10, rounds: 2 },
    rounds: [
      { round: 1, target: 'edge', requestsPerSec: 400, requests: 4000, latencyP50Ms: 200, latencyP99Ms: 600, bytes: 8.4e9, durationS: 10, cpuSeconds: 3.4, cpuUserSeconds: 0.6, cpuSystemSeconds: 2.8, cpuSecondsPerGb: 0.405, loadGenCpuSeconds: 10, otherCpuSeconds: 0.2, non2xx: 0, errors: 0 },
      { round: 1, target: 'bare', requestsPerSec: 450, requests: 4500, latencyP50Ms: 180, latencyP99Ms: 500, bytes: 9.4e9, durationS: 10, cpuSeconds: 3, cpuUserSeconds: 0.45, cpuSystemSeconds: 2.55, cpuSecondsPerGb: 0.319, loadGenCpuSeconds: 10, otherCpuSeconds: 0.1, non2xx: 0, errors: 0 },
    ],
    edge: { requestsPerSec: 400, latencyP99Ms: 600, cpuSecondsPerGb: 0.405, gbPerSec: 0.84, userUsPerRequest: 150, systemUsPerRequest: 700 },
    bare: { requestsPerSec: 450, latencyP99Ms: 500, cpuSecondsPerGb: 0.319, gbPerSec: 0.94, userUsPerRequest: 100, systemUsPerRequest: 567 },
    ratios: { requestsPerSec: 400 / 450, latencyP99: 1.2, cpuSecondsPerGb: 0.405 / 0.319 },
    target: { cpuPerGbRatioMax: 1.2, met: false },
    profile: {
      edge: {
        durationMs: 10_000, idleMs: 1000, busyMs: 4000, samples: 9000, file: 'bench/results/x-edge.cpuprofile', requests: 4000, requestsPerSec: 400, window: { fromUs: 0, toUs: 10_000_000 },
        topFunctions: [
          { functionName: 'writev', location: 'writev', selfMs: 2000, selfPercent: 50 },
          { functionName: 'handle', location: 'edge/proxy/cache-proxy.ts:80', selfMs: 400, selfPercent: 10 },
        ],
        topFiles: [{ functionName: 'edge/proxy/cache-proxy.ts', location: 'edge/proxy/cache-proxy.ts', selfMs: 400, selfPercent: 10 }],
      },
      bare: {
        durationMs: 10_000, idleMs: 2000, busyMs: 3000, samples: 8000, file: 'bench/results/x-bare.cpuprofile', requests: 5000, requestsPerSec: 500, window: { fromUs: 0, toUs: 10_000_000 },
        topFunctions: [{ functionName: 'writev', location: 'writev', selfMs: 2500, selfPercent: 83 }],
        topFiles: [],
      },
    },
  }
  const herd: HerdResult = {
    scenario: 'cold-herd',
    config: { clients: 200, bodyBytes: 8388560, originBytesPerSecond: 4194280, rounds: 1 },
    rounds: [
      { round: 1, target: 'edge', path: '/p', originRequests: 1, clients: 200, complete: 200, ttfbP50Ms: 12, ttfbP99Ms: 40, headP99Ms: 39, totalP50Ms: 2050, totalP99Ms: 2100, connectMs: 30, sendSpreadMs: 4, serverCpuSeconds: 1, clientCpuSeconds: 1.5, otherCpuSeconds: 0.1, errors: [] },
      { round: 1, target: 'stream', path: '/p', originRequests: 0, clients: 200, complete: 200, ttfbP50Ms: 10, ttfbP99Ms: 30, headP99Ms: 29, totalP50Ms: 2040, totalP99Ms: 2090, connectMs: 30, sendSpreadMs: 4, serverCpuSeconds: 0.7, clientCpuSeconds: 1.5, otherCpuSeconds: 0.1, errors: [] },
    ],
    edge: { ttfbP50Ms: 12, ttfbP99Ms: 40, headP99Ms: 39, totalP50Ms: 2050, totalP99Ms: 2100, serverCpuSeconds: 1 },
    stream: { ttfbP50Ms: 10, ttfbP99Ms: 30, headP99Ms: 29, totalP50Ms: 2040, totalP99Ms: 2090, serverCpuSeconds: 0.7 },
    originRequestsMax: 1,
    targets: { originRequests: { expected: 1, met: true }, ttfbP99: { maxMs: 50, met: true } },
  }
  const results: BenchResults = {
    ...benchResultsHeader({ uncommitted: [' M edge/x.ts'], wallSeconds: 150 }),
    hot,
    herd,
  }
  const md = renderResultsMarkdown(results)
  t.match(md, /2 × AMD EPYC, 24 GiB RAM/)
  t.match(md, /Node v20\.20\.2/)
  t.match(md, /commit abc123 plus 1 uncommitted change/)
  t.match(md, /\| server CPU s per GB \| 0\.405 \| 0\.319 \| \*\*1\.27\*\* \|/)
  t.match(md, /at most 1\.2× the bare server's: \*\*missed\*\*/)
  t.match(md, /\| server user CPU µs per response \| 150 \| 100 \| 1\.5 \|/)
  t.match(md, /\| 1 \| edge \| 400 \| 200 \| 600 \| 8\.4 \| 3\.4 \(0\.6 \+ 2\.8\) \|/)
  t.match(md, /Main-thread on-CPU time per request: edge \*\*1000 µs\*\*, bare \*\*600 µs\*\*/)
  t.match(md, /\| 1 \| `writev` \| writev \| 50 \| 500 \| 500 \|/, 'per-request self time next to the bare server\'s')
  t.match(md, /\| 2 \| `handle` \| edge\/proxy\/cache-proxy\.ts:80 \| 10 \| 100 \| – \|/, 'edge-only work has no bare counterpart')
  t.match(md, /\| edge\/proxy\/cache-proxy\.ts \| 10 \| 100 \| – \|/)
  t.match(md, /\| origin requests per round \(max\) \| 1 \| – \| 1: met \|/)
  t.match(md, /\| TTFB p99 \(ms\) \| 40 \| 30 \| < 50: met \|/, 'edge next to the ideal streamer')
  t.match(md, /\| 1 \| stream \| 0 \| 200\/200 \|/)
  t.notMatch(md, /--quick run/)
  const quickHerdOnly = renderResultsMarkdown({ ...results, quick: true, hot: undefined as never })
  t.match(quickHerdOnly, /--quick run/)
  t.notMatch(quickHerdOnly, /Hot segment/)
})

t.test('fmt and fileStamp', async (t) => {
  t.equal(fmt(0.123456), '0.123')
  t.equal(fmt(123456.7), '123457')
  t.equal(fmt(Number.NaN), 'n/a')
  t.equal(fmt(Number.POSITIVE_INFINITY), 'n/a')
  t.equal(fileStamp(new Date('2026-11-21T20:21:36.789Z')), '2026-11-21T20-21-36Z')
})
