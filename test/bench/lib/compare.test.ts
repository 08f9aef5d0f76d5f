/**
 * summariseWindows: medians per target and generator, and ratios to nginx as medians of
 * per-round ratios with the same generator.
 */
import t from 'tap'
import { summariseWindows, type CompareWindow } from '../../../bench/lib/compare.ts'
import type { TargetName } from '../../../bench/lib/bench-target.ts'

function w (round: number, target: TargetName, generator: 'wrk' | 'autocannon', rps: number, cpuPerGb: number, extra: Partial<CompareWindow> = {}): CompareWindow {
  return {
    round, target, generator, requests: rps * 4, durationS: 4, requestsPerSec: rps, bytes: rps * 4 * 1e6, mbPerSec: rps, latencyP50Ms: 1, latencyP99Ms: 10,
    cpuSeconds: 1, cpuUserSeconds: 0.5, cpuSystemSeconds: 0.5, cpuSecondsPerGb: cpuPerGb, cpuMsPerKiloRequest: cpuPerGb * 2, loadGenCpuSeconds: 1, otherCpuSeconds: 0,
    originRequests: 0, originBytes: 0, non2xx: 0, errors: 0, ...extra,
  }
}

t.test('server + client CPU per GB: the target and its load generator together, ratio paired by round', async (t) => {
  // edge: 1 s server + 1 s generator over 400 MB and 600 MB; nginx: 0.2 s + 2 s over 400 MB
  const windows = [
    w(1, 'edge', 'wrk', 100, 2.5), w(1, 'nginx', 'wrk', 100, 0.5, { cpuSeconds: 0.2, loadGenCpuSeconds: 2 }),
    w(2, 'edge', 'wrk', 150, 1.67), w(2, 'nginx', 'wrk', 100, 0.5, { cpuSeconds: 0.2, loadGenCpuSeconds: 2 }),
  ]
  const [edge, nginx] = summariseWindows(windows)
  t.ok(Math.abs(edge!.bothEndsCpuSecondsPerGb! - (5 + 2 / 0.6) / 2) < 1e-9, 'median of 2 s / 0.4 GB and 2 s / 0.6 GB')
  t.ok(Math.abs(nginx!.bothEndsCpuSecondsPerGb! - 5.5) < 1e-9, '2.2 s / 0.4 GB')
  t.ok(Math.abs(edge!.vsNginx!.bothEndsCpuSecondsPerGb! - (5 / 5.5 + (2 / 0.6) / 5.5) / 2) < 1e-9, 'median of the per-round ratios')
  t.ok(edge!.cpuSecondsPerGb > nginx!.cpuSecondsPerGb, 'while the server-only figure ranks them the other way')
})

t.test('ratios pair windows of the same round and generator', async (t) => {
  const windows = [
    w(1, 'edge', 'wrk', 100, 0.3), w(1, 'nginx', 'wrk', 200, 0.1), w(1, 'edge', 'autocannon', 50, 0.4), w(1, 'nginx', 'autocannon', 50, 0.2),
    w(2, 'edge', 'wrk', 150, 0.2), w(2, 'nginx', 'wrk', 100, 0.2), w(2, 'edge', 'autocannon', 60, 0.4), w(2, 'nginx', 'autocannon', 40, 0.2),
    w(3, 'edge', 'wrk', 90, 0.3, { originRequests: 2, originBytes: 1e6 }), w(3, 'nginx', 'wrk', 100, 0.1),
  ]
  const s = summariseWindows(windows)
  t.same(s.map((x) => `${x.target}/${x.generator}`), ['edge/wrk', 'nginx/wrk', 'edge/autocannon', 'nginx/autocannon'], 'first-seen order')
  const edgeWrk = s[0]!
  t.equal(edgeWrk.windows, 3)
  t.equal(edgeWrk.requestsPerSec, 100, 'median of 100, 150, 90')
  t.equal(edgeWrk.vsNginx!.requestsPerSec, 0.9, 'median of 0.5, 1.5, 0.9')
  t.ok(Math.abs(edgeWrk.vsNginx!.cpuSecondsPerGb - 3) < 1e-9, 'median of 3, 1, 3')
  t.equal(edgeWrk.originRequests, 2, 'origin requests are summed')
  t.equal(edgeWrk.byteHitRatio, 1 - 1e6 / (100 * 4e6 + 150 * 4e6 + 90 * 4e6))
  t.equal(s[2]!.vsNginx!.requestsPerSec, 1.25, 'autocannon windows pair with autocannon: median of 1 and 1.5')
  t.same(s[1]!.vsNginx, { requestsPerSec: 1, latencyP99Ms: 1, cpuSecondsPerGb: 1, cpuMsPerKiloRequest: 1, bothEndsCpuSecondsPerGb: 1 })
  const noNginx = summariseWindows([w(1, 'edge', 'wrk', 1, 1)])
  t.equal(noNginx[0]!.vsNginx, undefined)
})
