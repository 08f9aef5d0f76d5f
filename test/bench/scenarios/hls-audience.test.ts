/**
 * The hls-audience scenario end to end at a tiny size (players in-process and in a worker):
 * every request succeeds, the report has both runs, and prefetch is used when it is on.
 * The numbers a full run reports are never asserted.
 */
import t from 'tap'
import { renderHlsAudienceMarkdown, run } from '../../../bench/scenarios/hls-audience.ts'

t.test('a tiny audience with and without prefetch', async (t) => {
  const result = await run({ players: 12, titles: 3, segmentsPerTitle: 8, durationMs: 2500, rampMs: 300, speed: 8, originLatencyMs: 5, playersInWorker: false })
  t.equal(result.withoutPrefetch.failed, 0)
  t.equal(result.withPrefetch.failed, 0)
  t.ok(result.withoutPrefetch.segmentRequests > 12, `${result.withoutPrefetch.segmentRequests} segment requests`)
  t.equal(result.withoutPrefetch.prefetched, 0)
  t.ok(result.withPrefetch.prefetched > 0, 'prefetch ran')
  t.ok(result.withPrefetch.prefetchHits > 0, 'and players used what it fetched')
  t.ok(result.withPrefetch.originRequests > 0)
  t.ok(result.withPrefetch.edgeHitRatio >= 0 && result.withPrefetch.edgeHitRatio <= 1)
  t.ok(Number.isFinite(result.withPrefetch.segmentTtfbP99Ms))
  t.match(renderHlsAudienceMarkdown(result), /\| 2 segments \| \d+ \|/)
})

t.test('players in a worker thread', async (t) => {
  const result = await run({ players: 6, titles: 2, segmentsPerTitle: 6, durationMs: 1500, rampMs: 200, speed: 8, originLatencyMs: 5, playersInWorker: true })
  t.equal(result.withPrefetch.failed, 0)
  t.ok(result.withPrefetch.segmentRequests > 6)
})
