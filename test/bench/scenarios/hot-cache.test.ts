/**
 * accessLogCost: the --log-ab figures of a hot-cache comparison, per generator, as medians of
 * per-round ratios edge-log / edge (windows of the same round and generator only).
 */
import t from 'tap'
import type { TargetName } from '../../../bench/lib/bench-target.ts'
import type { CompareResult, CompareWindow, GeneratorName } from '../../../bench/lib/compare.ts'
import { accessLogCost } from '../../../bench/scenarios/hot-cache.ts'

function w (round: number, target: TargetName, generator: GeneratorName, rps: number, cpuMsPerKiloRequest: number): CompareWindow {
  return {
    round, target, generator, requests: rps * 4, durationS: 4, requestsPerSec: rps, bytes: rps * 4 * 1600, mbPerSec: rps * 0.0016, latencyP50Ms: 1, latencyP99Ms: 10,
    cpuSeconds: 1, cpuUserSeconds: 0.6, cpuSystemSeconds: 0.4, cpuSecondsPerGb: 1, cpuMsPerKiloRequest, loadGenCpuSeconds: 1, otherCpuSeconds: 0,
    originRequests: 0, originBytes: 0, non2xx: 0, errors: 0,
  }
}

const config = (generators: GeneratorName[]): CompareResult['config'] =>
  ({ paths: 1, examplePath: '/vod/p.m3u8', headers: {}, bodyBytes: 1536, connections: 100, warmupS: 1, measureS: 4, rounds: 3, costUnit: 'kreq', generators })

t.test('per generator: medians of the per-round ratios, not ratios of medians', async (t) => {
  const windows = [
    w(1, 'edge', 'wrk', 20_000, 50), w(1, 'edge-log', 'wrk', 18_000, 55), w(1, 'nginx', 'wrk', 26_000, 30),
    w(2, 'edge', 'wrk', 10_000, 100), w(2, 'edge-log', 'wrk', 5000, 200), w(2, 'nginx', 'wrk', 26_000, 30),
    w(3, 'edge', 'wrk', 20_000, 50), w(3, 'edge-log', 'wrk', 19_000, 52), w(3, 'nginx', 'wrk', 26_000, 30),
    w(1, 'edge', 'autocannon', 10_000, 80), w(1, 'edge-log', 'autocannon', 9000, 88),
  ]
  const cost = accessLogCost({ config: config(['wrk', 'autocannon']), windows })
  t.ok(cost !== undefined)
  t.same(cost!.map((c) => [c.generator, c.rounds]), [['wrk', 3], ['autocannon', 1]], 'in generator order, with the rounds that had both windows')
  t.equal(cost![0]!.requestsPerSec, 0.9, 'median of 0.9, 0.5, 0.95 (the ratio of medians would be 0.95)')
  t.equal(cost![0]!.cpuMsPerKiloRequest, 1.1, 'median of 1.1, 2, 1.04')
  t.equal(cost![1]!.requestsPerSec, 0.9, 'autocannon windows pair with autocannon')
  t.ok(Math.abs(cost![1]!.cpuMsPerKiloRequest - 1.1) < 1e-9)
})

t.test('a round where one side is missing is left out; no edge-log windows: undefined', async (t) => {
  const windows = [w(1, 'edge', 'wrk', 20_000, 50), w(1, 'edge-log', 'wrk', 16_000, 60), w(2, 'edge-log', 'wrk', 1000, 900)]
  const cost = accessLogCost({ config: config(['wrk']), windows })
  t.same(cost, [{ generator: 'wrk', rounds: 1, requestsPerSec: 0.8, cpuMsPerKiloRequest: 1.2 }])
  t.equal(accessLogCost({ config: config(['wrk']), windows: [w(1, 'edge', 'wrk', 1, 1), w(1, 'nginx', 'wrk', 1, 1)] }), undefined, 'a default run carries no access-log figures')
})
