/**
 * The prefetcher with a scripted warm: N+1..N+k of the same rendition, never past a live
 * playlist's last published segment, bounded concurrency and queue, the unused-bytes
 * limit, and the hit / wasted accounting.
 */
import t, { type Test } from 'tap'
import { parsePlaylist, type MediaPlaylistInfo } from '../../../edge/hls/playlist.ts'
import { Prefetcher, PREFETCH_DEFAULTS, type PrefetchSettings } from '../../../edge/hls/prefetcher.ts'
import { RenditionIndex } from '../../../edge/hls/rendition-index.ts'
import type { WarmOutcome } from '../../../edge/hls/warm.ts'
import { silentLogger } from '../../../lib/log.ts'
import { HlsMetrics } from '../../../lib/metrics.ts'

function playlist (url: string, first: number, count: number, live: boolean): MediaPlaylistInfo {
  const lines = ['#EXTM3U', '#EXT-X-TARGETDURATION:4', `#EXT-X-MEDIA-SEQUENCE:${first}`]
  for (let i = first; i < first + count; i++) lines.push('#EXTINF:4,', `seg-${i}.ts`)
  if (!live) lines.push('#EXT-X-ENDLIST')
  return parsePlaylist(lines.join('\n') + '\n', url) as MediaPlaylistInfo
}

interface Harness {
  readonly prefetcher: Prefetcher
  readonly metrics: HlsMetrics
  readonly index: RenditionIndex
  readonly warmed: string[]
  /** Pending warms by URL; resolve them to finish. */
  readonly pending: Map<string, (outcome: WarmOutcome) => void>
  now: number
}

function harness (t: Test, settings: Partial<PrefetchSettings> = {}, auto?: WarmOutcome, isCached?: (url: string) => boolean): Harness {
  const index = new RenditionIndex({ maxRenditions: 10, maxSegments: 1000 })
  const metrics = new HlsMetrics()
  const warmed: string[] = []
  const pending = new Map<string, (outcome: WarmOutcome) => void>()
  const h: Harness = { index, metrics, warmed, pending, now: 0, prefetcher: undefined as unknown as Prefetcher }
  ;(h as { prefetcher: Prefetcher }).prefetcher = new Prefetcher({
    ...PREFETCH_DEFAULTS,
    ...settings,
    index,
    metrics,
    logger: silentLogger(),
    now: () => h.now,
    isCached,
    warm: async (url) => {
      warmed.push(url)
      if (auto !== undefined) return auto
      return await new Promise<WarmOutcome>((resolve) => pending.set(url, resolve))
    },
  })
  t.teardown(() => h.prefetcher.close())
  return h
}

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))

t.test('serving segment N warms N+1..N+k of the same rendition, once each', async (t) => {
  const h = harness(t, { segments: 3 }, { result: 'filled', status: 200, bytes: 100 })
  h.index.recordMedia('/vod/t/360p/index.m3u8', playlist('/vod/t/360p/index.m3u8', 0, 10, false), 0)
  h.index.recordMedia('/vod/t/180p/index.m3u8', playlist('/vod/t/180p/index.m3u8', 0, 10, false), 0)
  h.prefetcher.onServed('/vod/t/360p/seg-2.ts', 200)
  await tick()
  t.same(h.warmed, ['/vod/t/360p/seg-3.ts', '/vod/t/360p/seg-4.ts', '/vod/t/360p/seg-5.ts'])
  h.prefetcher.onServed('/vod/t/360p/seg-3.ts', 200)
  await tick()
  t.same(h.warmed.slice(3), ['/vod/t/360p/seg-6.ts'], 'what is already prefetched is not warmed again')
  t.equal(await h.metrics.prefetchUse.value({ outcome: 'hit' }), 1, 'seg-3 was prefetched, then asked for')
  t.equal(await h.metrics.prefetches.value({ outcome: 'filled' }), 4)
  t.equal(await h.metrics.prefetchBytes.value(), 400)
  t.equal(h.prefetcher.unusedBytes, 300)
})

t.test('never past the last segment a live playlist has published, nor past a VOD end', async (t) => {
  const h = harness(t, { segments: 5 }, { result: 'filled', status: 200, bytes: 1 })
  h.index.recordMedia('/live/s/index.m3u8', playlist('/live/s/index.m3u8', 100, 4, true), 0)
  h.prefetcher.onServed('/live/s/seg-101.ts', 200)
  await tick()
  t.same(h.warmed, ['/live/s/seg-102.ts', '/live/s/seg-103.ts'], 'the live edge is seg-103')
  h.prefetcher.onServed('/live/s/seg-103.ts', 200)
  await tick()
  t.equal(h.warmed.length, 2, 'nothing beyond the edge')
})

t.test('nothing for errors, unknown URLs, playlists or k = 0', async (t) => {
  const h = harness(t, { segments: 2 }, { result: 'filled', status: 200, bytes: 1 })
  h.index.recordMedia('/vod/t/index.m3u8', playlist('/vod/t/index.m3u8', 0, 5, false), 0)
  h.prefetcher.onServed('/vod/t/seg-0.ts', 404)
  h.prefetcher.onServed('/vod/t/seg-9.ts', 200)
  h.prefetcher.onServed('/vod/t/index.m3u8', 200)
  await tick()
  t.same(h.warmed, [])
  const off = harness(t, { segments: 0 }, { result: 'filled', status: 200, bytes: 1 })
  off.index.recordMedia('/vod/t/index.m3u8', playlist('/vod/t/index.m3u8', 0, 5, false), 0)
  off.prefetcher.onServed('/vod/t/seg-0.ts', 200)
  await tick()
  t.same(off.warmed, [])
})

t.test('concurrency and queue bounds; the oldest waiting prefetch is dropped', async (t) => {
  const h = harness(t, { segments: 4, concurrency: 2, maxQueue: 3 })
  h.index.recordMedia('/vod/t/index.m3u8', playlist('/vod/t/index.m3u8', 0, 20, false), 0)
  h.prefetcher.onServed('/vod/t/seg-0.ts', 200) // 1..4
  h.prefetcher.onServed('/vod/t/seg-10.ts', 200) // 11..14
  await tick()
  t.same(h.warmed, ['/vod/t/seg-1.ts', '/vod/t/seg-2.ts'], 'two at once')
  t.equal(h.prefetcher.inFlight, 2)
  t.equal(h.prefetcher.queued, 3)
  t.equal(await h.metrics.prefetches.value({ outcome: 'dropped' }), 3, 'queue of 3: seg-3, seg-4 and seg-11 were dropped')
  h.pending.get('/vod/t/seg-1.ts')?.({ result: 'filled', status: 200, bytes: 10 })
  await tick()
  await tick()
  t.same(h.warmed.slice(2), ['/vod/t/seg-12.ts'], 'a finished warm frees a slot for the next in line')
  h.pending.get('/vod/t/seg-2.ts')?.({ result: 'joined', status: 200, bytes: 10 })
  await tick()
  await tick()
  t.equal(h.prefetcher.unusedBytes, 10, 'a joined fill had a client already: not counted as prefetched')
})

t.test('prefetch pauses at maxUnusedBytes and resumes when clients catch up', async (t) => {
  const h = harness(t, { segments: 3, maxUnusedBytes: 250 }, { result: 'filled', status: 200, bytes: 100 })
  h.index.recordMedia('/vod/t/index.m3u8', playlist('/vod/t/index.m3u8', 0, 20, false), 0)
  h.prefetcher.onServed('/vod/t/seg-0.ts', 200)
  for (let i = 0; i < 5; i++) await tick()
  t.same(h.warmed, ['/vod/t/seg-1.ts', '/vod/t/seg-2.ts', '/vod/t/seg-3.ts'], 'the third starts while 200 bytes are unused')
  h.prefetcher.onServed('/vod/t/seg-5.ts', 200)
  for (let i = 0; i < 5; i++) await tick()
  t.equal(h.warmed.length, 3, 'paused: 300 unused bytes')
  h.prefetcher.onServed('/vod/t/seg-1.ts', 200)
  h.prefetcher.onServed('/vod/t/seg-2.ts', 200)
  for (let i = 0; i < 5; i++) await tick()
  t.ok(h.warmed.length > 3, 'resumed once clients used what was prefetched')
})

t.test('a prefetched segment nobody asks for in time counts as wasted', async (t) => {
  const h = harness(t, { segments: 1, wastedAfterMs: 10_000 }, { result: 'filled', status: 200, bytes: 7 })
  h.index.recordMedia('/vod/t/index.m3u8', playlist('/vod/t/index.m3u8', 0, 20, false), 0)
  h.prefetcher.onServed('/vod/t/seg-0.ts', 200)
  await tick()
  await tick()
  h.now = 10_001
  h.prefetcher.onServed('/other', 200)
  t.equal(await h.metrics.prefetchUse.value({ outcome: 'wasted' }), 1)
  t.equal(h.prefetcher.unusedBytes, 0)
  h.prefetcher.onServed('/vod/t/seg-1.ts', 200)
  t.equal(await h.metrics.prefetchUse.value({ outcome: 'hit' }), 0, 'too late to count as a hit')
})

t.test('warm failures are counted; close aborts and stops', async (t) => {
  const index = new RenditionIndex({ maxRenditions: 10, maxSegments: 1000 })
  index.recordMedia('/vod/t/index.m3u8', playlist('/vod/t/index.m3u8', 0, 20, false), 0)
  const metrics = new HlsMetrics()
  let signal: AbortSignal | undefined
  const prefetcher = new Prefetcher({
    ...PREFETCH_DEFAULTS,
    segments: 2,
    index,
    metrics,
    logger: silentLogger(),
    warm: async (url, opts) => {
      signal = opts.signal
      if (url.endsWith('seg-1.ts')) throw new Error('boom')
      return await new Promise<WarmOutcome>(() => {})
    },
  })
  prefetcher.onServed('/vod/t/seg-0.ts', 200)
  await tick()
  await tick()
  t.equal(await metrics.prefetches.value({ outcome: 'failed' }), 1)
  prefetcher.close()
  t.equal(signal?.aborted, true)
  prefetcher.onServed('/vod/t/seg-5.ts', 200)
  t.equal(prefetcher.queued, 0)
  t.throws(() => new Prefetcher({ ...PREFETCH_DEFAULTS, concurrency: 0, index, metrics, logger: silentLogger(), warm: async () => ({ result: 'cached', bytes: 0 }) }), /options\.concurrency/)
})

t.test('segments already fresh in cache are counted as cached without a warm', async (t) => {
  const cached = new Set(['/vod/t/360p/seg-3.ts', '/vod/t/360p/seg-4.ts'])
  const asked: string[] = []
  const h = harness(t, { segments: 3 }, { result: 'filled', status: 200, bytes: 10 }, (url) => {
    asked.push(url)
    return cached.has(url)
  })
  h.index.recordMedia('/vod/t/360p/index.m3u8', playlist('/vod/t/360p/index.m3u8', 0, 10, false), 0)
  h.prefetcher.onServed('/vod/t/360p/seg-2.ts', 200)
  await tick()
  t.same(h.warmed, ['/vod/t/360p/seg-5.ts'], 'only the segment not cached is warmed')
  t.equal(await h.metrics.prefetches.value({ outcome: 'cached' }), 2)
  t.equal(await h.metrics.prefetches.value({ outcome: 'filled' }), 1)
  h.prefetcher.onServed('/vod/t/360p/seg-3.ts', 200)
  await tick()
  t.notOk(asked.slice(3).includes('/vod/t/360p/seg-5.ts'), 'a segment this prefetcher fetched is not looked up again')
  t.same(h.warmed, ['/vod/t/360p/seg-5.ts', '/vod/t/360p/seg-6.ts'])
})
