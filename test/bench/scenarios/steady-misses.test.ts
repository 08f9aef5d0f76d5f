/**
 * The steady-misses scenario: its option checks, the figures it derives from the load's
 * reports, its markdown, its command line, and one tiny run end to end (real origin, two real
 * edges, the load in its own process). The speeds a run reports are never asserted; that every
 * request was a miss and every live viewer got its whole segment from one fill is, because
 * the scenario's figures mean nothing otherwise.
 */
import t from 'tap'
import {
  parseSteadyMissesArgs,
  renderSteadyMissesMarkdown,
  runSteadyMisses,
  summariseLiveEvent,
  summariseMissWindow,
  type LiveClient,
  type MissReport,
  type SteadyMissesOptions,
  type SteadyMissesResult,
} from '../../../bench/scenarios/steady-misses.ts'

t.test('options are checked before anything starts, naming the field and the value', async (t) => {
  const lines: string[] = []
  const base: SteadyMissesOptions = { quick: true, log: (line) => lines.push(line) }
  const bad: Array<[Partial<SteadyMissesOptions>, RegExp]> = [
    [{ rounds: 0 }, /^Expected options\.rounds to be a positive integer, got 0$/],
    [{ rounds: Number.NaN }, /options\.rounds .* got NaN$/],
    [{ clients: 1.5 }, /^Expected options\.clients to be a positive integer, got 1\.5$/],
    [{ missBodyBytes: 1000 }, /^Expected options\.missBodyBytes to be a positive multiple of 188 \(whole TS packets\), got 1000$/],
    [{ liveBodyBytes: 0 }, /^Expected options\.liveBodyBytes to be a positive multiple of 188 .*, got 0$/],
    [{ joinsPerSegment: -1 }, /^Expected options\.joinsPerSegment to be a positive integer, got -1$/],
    [{ timeScale: 0 }, /^Expected options\.timeScale to be a positive number, got 0$/],
    [{ timeScale: Number.POSITIVE_INFINITY }, /options\.timeScale .* got Infinity$/],
  ]
  for (const [options, message] of bad) {
    await t.rejects(runSteadyMisses({ ...base, ...options }), { name: 'TypeError', message }, JSON.stringify(options))
  }
  t.same(lines, [], 'nothing started, nothing logged')
})

const report = (over: Partial<MissReport> = {}): MissReport => ({ elapsedMs: 2000, requests: 100, bytes: 400e6, ttfbP50Ms: 1, ttfbP99Ms: 4, totalP50Ms: 10, totalP99Ms: 40, ...over })

t.test('summariseMissWindow: rates over the segment clients\' own elapsed time, CPU over every group\'s bytes', async (t) => {
  const stopped = { sent: 130, hits: 1, errors: 2 }
  const alone = summariseMissWindow({ variant: 'edge', round: 1, smallClients: 0, reports: [report()], cpuSeconds: 0.8, originRequests: 130, stopped })
  t.match(alone, { variant: 'edge', round: 1, smallClients: 0, seconds: 2, requests: 100, mbPerS: 200, reqPerS: 50, ttfbP50Ms: 1, ttfbP99Ms: 4, totalP50Ms: 10, totalP99Ms: 40, edgeCpuSPerGb: 2, originRequests: 130, clientRequests: 130, hits: 1, errors: 2 })
  t.ok(Number.isNaN(alone.smallReqPerS) && Number.isNaN(alone.smallTotalP99Ms), 'no small clients: NaN, not 0')

  const mixed = summariseMissWindow({ variant: 'edge', round: 2, smallClients: 16, reports: [report(), report({ elapsedMs: 1000, requests: 500, bytes: 100e6, totalP99Ms: 3 })], cpuSeconds: 1, originRequests: 130, stopped })
  t.equal(mixed.smallReqPerS, 500)
  t.equal(mixed.smallTotalP99Ms, 3)
  t.equal(mixed.requests, 100, 'requests, MB/s and req/s are the segment clients\' alone')
  t.equal(mixed.mbPerS, 200)
  t.equal(mixed.edgeCpuSPerGb, 2, '1 CPU s over 0.5 GB of segments and small misses')

  t.throws(() => summariseMissWindow({ variant: 'edge', round: 1, smallClients: 0, reports: [], cpuSeconds: 1, originRequests: 0, stopped }), TypeError)
})

t.test('summariseLiveEvent: a viewer that never finished is infinitely slow, and 0 MB/s', async (t) => {
  const viewer = (totalMs: number | undefined, over: Partial<LiveClient> = {}): LiveClient => ({ firstByteMs: 5, totalMs, lagMs: totalMs === undefined ? undefined : totalMs - 1000, bodyBytes: 2e6, error: totalMs === undefined ? 'timeout' : undefined, ...over })
  const clients = [viewer(1000), viewer(2000), viewer(4000), viewer(undefined, { firstByteMs: undefined, bodyBytes: 0 })]
  const e = summariseLiveEvent({ variant: 'edge', round: 1, clients, wallS: 4, cpuSeconds: 0.06, originRequests: 2, segments: 2 })
  t.match(e, { variant: 'edge', round: 1, clients: 4, complete: 3, originRequests: 2, segments: 2 })
  t.equal(e.ttfbP50Ms, 5)
  t.equal(e.ttfbP99Ms, Number.POSITIVE_INFINITY, 'the viewer with no byte at all')
  t.equal(e.totalP50Ms, 2000)
  t.equal(e.totalP99Ms, Number.POSITIVE_INFINITY)
  t.equal(e.lagP50Ms, 1000)
  t.equal(e.clientMbPerSP50, 0.75, 'median of 2, 1, 0.5 and 0 MB/s')
  t.equal(e.mbPerS, 1.5, '6 MB over 4 s')
  t.ok(Math.abs(e.edgeCpuSPerGb - 10) < 1e-9, '0.06 CPU s over 6 MB')
  t.ok(Number.isNaN(summariseLiveEvent({ variant: 'x', round: 1, clients: [], wallS: 1, cpuSeconds: 1, originRequests: 0, segments: 1 }).ttfbP50Ms), 'no viewers: NaN')
})

t.test('renderSteadyMissesMarkdown: medians per edge and per small-miss load, origin/client lists', async (t) => {
  // 5 CPU s per GB of segments in every window without small misses
  const miss = (variant: string, round: number, smallClients: number, mbPerS: number) => summariseMissWindow({ variant, round, smallClients, reports: smallClients === 0 ? [report({ bytes: mbPerS * 2e6 })] : [report({ bytes: mbPerS * 2e6 }), report({ requests: 900 })], cpuSeconds: mbPerS * 2e6 / 1e9 * 5, originRequests: 100 + round, stopped: { sent: 100 + round, hits: 0, errors: 0 } })
  const live = (variant: string, round: number, totalMs: number) => summariseLiveEvent({ variant, round, clients: [{ firstByteMs: 3, totalMs, lagMs: 50, bodyBytes: 4e6, error: undefined }], wallS: 4, cpuSeconds: 0.2, originRequests: 3, segments: 3 })
  const result: SteadyMissesResult = {
    scenario: 'steady-misses',
    config: { clients: 32, missBodyBytes: 2097108, measureMs: 5000, liveSegments: 4, liveBodyBytes: 4194280, liveSegmentMs: 2000, joinsPerSegment: 60, rounds: 2 },
    variants: ['edge', 'edge, defer 0'],
    misses: [miss('edge', 1, 0, 100), miss('edge', 2, 0, 300), miss('edge', 1, 16, 50), miss('edge', 2, 16, 70), miss('edge, defer 0', 1, 0, 90), miss('edge, defer 0', 1, 16, 40)],
    live: [live('edge', 1, 2000), live('edge', 2, 2400), live('edge, defer 0', 1, 2100)],
  }
  const md = renderSteadyMissesMarkdown(result)
  t.match(md, /^## Steady misses \(shared-fill pacer under non-herd traffic\)\n/)
  t.match(md, /\(a\) 32 keep-alive clients, each request a distinct 2097108-byte miss from a fast origin; 2 interleaved round\(s\), medians\./)
  t.match(md, /\n\| edge \| 0 \| 200 \| 50 \| 1\.0 \/ 4\.0 \| 10\.0 \/ 40\.0 \| 5\.00 \| 101\/101, 102\/102 \|  \|\n/, 'median of 100 and 300 MB/s; no small req/s without small clients')
  t.match(md, /\n\| edge \| 16 \| 60 \| 50 \| .* \| 101\/101, 102\/102 \| 450 \|\n/, 'median of 50 and 70 MB/s; 900 small misses in 2 s')
  t.match(md, /\n\| edge, defer 0 \| 0 \| 90 \| .* \| 101\/101 \|  \|\n/)
  t.match(md, /\(b\) live: 4 segments of 4194280 bytes, each streamed by the origin over 2000 ms, one every 1000 ms, 60 viewers joining each/)
  t.match(md, /\n\| edge \| 1\/1, 1\/1 \| 3\.0 \/ 3\.0 \| 2200 \/ 2200 \| 50 \/ 50 \| 1\.8 \| 1 \| 50\.00 \| 3\/3, 3\/3 \|\n/, 'viewer MB/s: median of 2 and 1.67')
  t.match(md, /\n\| edge, defer 0 \| 1\/1 \| .* \| 3\/3 \|\n/)
  t.notMatch(md, /NaN/)
  const scaled = renderSteadyMissesMarkdown({ ...result, config: { ...result.config, liveSegmentMs: 200, timeScale: 0.1 } })
  t.match(scaled, /over 200 ms, one every 100 ms,/, 'a scaled run says what it ran')
})

t.test('parseSteadyMissesArgs: the standalone script\'s flags', async (t) => {
  t.same(parseSteadyMissesArgs(['node', 'steady-misses.ts']), { quick: false, rounds: undefined, clients: undefined, edgeRoot: undefined, ref: undefined, quietWaitS: 0 })
  t.same(parseSteadyMissesArgs(['node', 'steady-misses.ts', '--quick', '--rounds', '3', '--clients', '8', '--root', '/src/other', '--ref', 'HEAD~1', '--quiet-wait', '30']),
    { quick: true, rounds: 3, clients: 8, edgeRoot: '/src/other', ref: 'HEAD~1', quietWaitS: 30 })
  t.throws(() => parseSteadyMissesArgs(['node', 'x', '--quiet-wait', 'soon']), { name: 'TypeError', message: 'Expected --quiet-wait to be a non-negative number of seconds, got soon' })
  t.throws(() => parseSteadyMissesArgs(['node', 'x', '--quiet-wait', '-1']), TypeError)
})

t.test('a tiny run: every (a) request a miss, every (b) viewer served whole from one fill per segment', async (t) => {
  const lines: string[] = []
  const result = await runSteadyMisses({ quick: true, rounds: 1, clients: 2, missBodyBytes: 188 * 100, liveBodyBytes: 188 * 1000, joinsPerSegment: 4, timeScale: 0.1, log: (line) => lines.push(line) })
  t.same(result.variants, ['edge', 'edge, defer 0'])
  t.match(result.config, { clients: 2, missBodyBytes: 18800, liveBodyBytes: 188000, liveSegments: 3, liveSegmentMs: 200, joinsPerSegment: 4, rounds: 1, timeScale: 0.1 })
  t.equal(result.misses.length, 4, 'two edges, alone and with small misses, one round (the warm-up round is not reported)')
  for (const m of result.misses) {
    const label = `${m.variant}, ${m.smallClients} small-miss clients`
    t.ok(m.requests > 0, `${label}: ${m.requests} requests measured`)
    t.equal(m.errors, 0, `${label}: no errors`)
    t.equal(m.hits, 0, `${label}: no hits`)
    t.equal(m.originRequests, m.clientRequests, `${label}: the origin saw every segment request`)
    t.equal(Number.isNaN(m.smallReqPerS), m.smallClients === 0, `${label}: small req/s only with small clients`)
  }
  t.equal(result.live.length, 2)
  for (const l of result.live) {
    t.equal(l.clients, 12, `${l.variant}: 3 segments x 4 viewers`)
    t.equal(l.complete, 12, `${l.variant}: every viewer got its whole segment`)
    t.equal(l.originRequests, 3, `${l.variant}: one origin request per segment`)
    t.ok(Number.isFinite(l.totalP99Ms) && Number.isFinite(l.lagP99Ms), `${l.variant}: finite times`)
  }
  t.ok(lines.some((l) => l.startsWith('  warm-up (a) edge:')) && lines.some((l) => l.startsWith('  round 1 (b) edge, defer 0:')), 'it logs each window')
  t.match(renderSteadyMissesMarkdown(result), /\n\| edge, defer 0 \| 12\/12 \|/)
})
