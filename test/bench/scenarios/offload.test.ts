/**
 * The offload scenario's request mix (seeded, Zipf-skewed) and one tiny replay end to end.
 * The numbers a full run reports are never asserted; the "each object at most once"
 * property is, because it is a correctness property of the shield tier.
 */
import t from 'tap'
import { mulberry32, run, zipfSampler } from '../../../bench/scenarios/offload.ts'

t.test('mulberry32 is seeded and uniform enough', async (t) => {
  const a = mulberry32(42)
  const b = mulberry32(42)
  const xs = Array.from({ length: 10_000 }, () => a())
  t.same(xs.slice(0, 5), Array.from({ length: 5 }, () => b()), 'same seed, same sequence')
  t.ok(xs.every((x) => x >= 0 && x < 1))
  const mean = xs.reduce((s, x) => s + x, 0) / xs.length
  t.ok(Math.abs(mean - 0.5) < 0.02, `mean ${mean.toFixed(3)}`)
})

t.test('zipfSampler: rank 1 is about twice rank 2 for s = 1, and s = 0 is uniform', async (t) => {
  const counts = new Array<number>(100).fill(0)
  const sample = zipfSampler(100, 1, mulberry32(7))
  for (let i = 0; i < 50_000; i++) counts[sample()]!++
  const ratio = counts[0]! / counts[1]!
  t.ok(ratio > 1.8 && ratio < 2.2, `P(1)/P(2) = ${ratio.toFixed(2)}`)
  t.ok(counts[0]! > counts[49]! * 20, 'the head is much hotter than the middle')
  const flat = new Array<number>(10).fill(0)
  const uniform = zipfSampler(10, 0, mulberry32(7))
  for (let i = 0; i < 10_000; i++) flat[uniform()]!++
  t.ok(flat.every((n) => Math.abs(n - 1000) < 150), 's = 0 spreads evenly')
  t.throws(() => zipfSampler(0, 1, Math.random), { name: 'TypeError' })
})

t.test('a tiny replay through 2 edges and 2 shields fetches each object from the origin once', async (t) => {
  const result = await run({ requests: 300, segments: 40, concurrency: 8, segmentBytes: 1880, baseline: false })
  t.equal(result.shielded.failed, 0)
  t.equal(result.shielded.clientRequests, 300)
  t.equal(result.shielded.originRequests, result.shielded.distinctObjects)
  t.equal(result.shielded.maxOriginRequestsPerObject, 1)
  t.ok(result.target.met)
  t.equal(result.direct, undefined)
})
