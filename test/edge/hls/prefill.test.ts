/**
 * Prefill jobs with a scripted warm on a fake clock: master → renditions → segments,
 * rendition choice, resuming (cached segments skipped), errors, the rate cap, the daily
 * window, cancelling, and the job list.
 */
import t from 'tap'
import { parsePlaylist, type PlaylistInfo } from '../../../edge/hls/playlist.ts'
import { chooseRenditions, msUntilOpen, Prefiller, PREFILL_DEFAULTS, type PrefillerOptions } from '../../../edge/hls/prefill.ts'
import type { WarmOutcome } from '../../../edge/hls/warm.ts'
import { silentLogger } from '../../../lib/log.ts'
import { HlsMetrics } from '../../../lib/metrics.ts'
import type { PrefillJobStatus } from '../../../lib/protocol/prefill.ts'

const MASTER = `#EXTM3U
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="a",NAME="en",URI="audio/index.m3u8"
#EXT-X-STREAM-INF:BANDWIDTH=80000,AUDIO="a"
hi/index.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=40000,AUDIO="a"
lo/index.m3u8
#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=8000,URI="iframes.m3u8"
`
function media (segments: number, map = false): string {
  const lines = ['#EXTM3U', '#EXT-X-TARGETDURATION:1', '#EXT-X-PLAYLIST-TYPE:VOD']
  if (map) lines.push('#EXT-X-MAP:URI="init.mp4"')
  for (let i = 0; i < segments; i++) lines.push('#EXTINF:1,', `seg-${i}.m4s`)
  lines.push('#EXT-X-ENDLIST')
  return lines.join('\n') + '\n'
}

const CATALOG: Record<string, string> = {
  '/vod/t/master.m3u8': MASTER,
  '/vod/t/hi/index.m3u8': media(4, true),
  '/vod/t/lo/index.m3u8': media(4, true),
  '/vod/t/audio/index.m3u8': media(4),
  '/vod/t/iframes.m3u8': media(2),
}

interface Harness {
  readonly prefiller: Prefiller
  readonly metrics: HlsMetrics
  readonly warmed: string[]
  ms: number
}

function harness (t: Tap, options: Partial<PrefillerOptions> & { outcome?: (url: string) => WarmOutcome, startMs?: number } = {}): Harness {
  const metrics = new HlsMetrics()
  const warmed: string[] = []
  const h: Harness = { metrics, warmed, ms: options.startMs ?? 0, prefiller: undefined as unknown as Prefiller }
  const outcome = options.outcome ?? ((url: string): WarmOutcome => url in CATALOG || url.endsWith('.m4s') || url.endsWith('.mp4') ? { result: 'filled', status: 200, bytes: 1000 } : { result: 'not-stored', status: 404, bytes: 0 })
  ;(h as { prefiller: Prefiller }).prefiller = new Prefiller({
    ...PREFILL_DEFAULTS,
    warm: async (url) => {
      warmed.push(url)
      await Promise.resolve()
      return outcome(url)
    },
    readPlaylist: async (url): Promise<PlaylistInfo | undefined> => {
      const text = CATALOG[url]
      return text === undefined ? undefined : parsePlaylist(text, url)
    },
    metrics,
    logger: silentLogger(),
    clock: () => h.ms,
    now: () => h.ms,
    sleep: async (ms, signal) => {
      signal?.throwIfAborted()
      h.ms += ms
      await Promise.resolve()
    },
    ...options,
  })
  t.teardown(() => h.prefiller.close())
  return h
}
type Tap = { teardown (fn: () => unknown): void }

async function settle (h: Harness, id: string): Promise<PrefillJobStatus> {
  for (let i = 0; i < 10_000; i++) {
    const status = h.prefiller.get(id)
    if (status !== undefined && status.finishedAtMs !== undefined) return status
    await new Promise((resolve) => setImmediate(resolve))
  }
  throw new Error(`job ${id} did not finish`)
}

t.test('a title: master, every rendition (audio and I-frames included) and every segment and init section', async (t) => {
  const h = harness(t)
  const job = h.prefiller.start({ titles: ['/vod/t/'] })
  t.equal(job.state, 'waiting')
  const done = await settle(h, job.id)
  t.match(done, { state: 'done', playlists: 4, segmentsTotal: 16, segmentsDone: 16, segmentsFilled: 16, segmentsCached: 0, segmentsFailed: 0, bytes: 16_000, errors: [] })
  t.ok(h.warmed.includes('/vod/t/master.m3u8'), 'a title ending in / means its master.m3u8')
  t.ok(h.warmed.includes('/vod/t/hi/init.mp4') && h.warmed.includes('/vod/t/audio/seg-3.m4s') && h.warmed.includes('/vod/t/seg-1.m4s'))
  t.equal(new Set(h.warmed).size, h.warmed.length, 'nothing warmed twice')
  t.equal(await h.metrics.prefillSegments.value({ outcome: 'filled' }), 16)
  t.equal(await h.metrics.prefillBytes.value(), 16_000)
})

t.test('resuming: segments already cached are skipped without fetching', async (t) => {
  const h = harness(t, { outcome: (url) => ({ result: 'cached', status: 200, bytes: 0 }) })
  const done = await settle(h, h.prefiller.start({ titles: ['/vod/t/master.m3u8'], renditions: 'lowest' }).id)
  t.match(done, { state: 'done', playlists: 2, segmentsTotal: 9, segmentsCached: 9, segmentsFilled: 0, bytes: 0 })
  t.equal(await h.metrics.prefillSegments.value({ outcome: 'cached' }), 9)
})

t.test('rendition choice', async (t) => {
  const info = parsePlaylist(MASTER, '/vod/t/master.m3u8')
  if (info?.kind !== 'master') return t.fail('fixture')
  const urls = (r: Array<{ url: string }>): string[] => r.map((x) => x.url)
  t.same(urls(chooseRenditions(info.variants, {})), ['/vod/t/hi/index.m3u8', '/vod/t/audio/index.m3u8', '/vod/t/lo/index.m3u8', '/vod/t/iframes.m3u8'])
  t.same(urls(chooseRenditions(info.variants, { renditions: 'highest' })), ['/vod/t/hi/index.m3u8', '/vod/t/audio/index.m3u8'])
  t.same(urls(chooseRenditions(info.variants, { renditions: 'highest', maxBandwidth: 50_000 })), ['/vod/t/lo/index.m3u8', '/vod/t/audio/index.m3u8'])
  t.same(urls(chooseRenditions(info.variants, { maxBandwidth: 1 })), [])
  t.same(chooseRenditions(info.variants, { renditions: 'lowest' })[0], { url: '/vod/t/lo/index.m3u8', bandwidth: 40000 })
})

t.test('errors: a missing title and failing segments are reported; nothing filled is a failed job', async (t) => {
  const h = harness(t, { outcome: (url) => url.includes('seg-1') ? { result: 'failed', bytes: 0 } : url.startsWith('/nope') ? { result: 'not-stored', status: 404, bytes: 0 } : { result: 'filled', status: 200, bytes: 10 } })
  const done = await settle(h, h.prefiller.start({ titles: ['/nope/', '/vod/t/'], renditions: 'lowest' }).id)
  t.match(done, { state: 'done', segmentsFailed: 2, segmentsFilled: 7 })
  t.match(done.errors, ['/nope/master.m3u8: HTTP 404', /seg-1\.m4s: failed/, /seg-1\.m4s: failed/])
  const none = harness(t, { outcome: () => ({ result: 'not-stored', status: 404, bytes: 0 }) })
  t.match(await settle(none, none.prefiller.start({ titles: ['/gone/master.m3u8'] }).id), { state: 'failed', errors: ['/gone/master.m3u8: HTTP 404'] })
})

t.test('the byte-rate cap holds over the run (fake clock)', async (t) => {
  // Segment sizes as the master's BANDWIDTH says (1 s segments), except audio and init sections, which it does not cover.
  const size = (url: string): number => url.endsWith('.mp4') ? 500 : url.includes('/hi/') ? 10_000 : url.includes('/lo/') ? 5000 : url.includes('/audio/') ? 2000 : url.endsWith('.m4s') ? 1000 : 300
  const h = harness(t, { outcome: (url) => ({ result: 'filled', status: 200, bytes: size(url) }) })
  const start = h.ms
  const done = await settle(h, h.prefiller.start({ titles: ['/vod/t/'], bytesPerSecond: 20_000, concurrency: 4 }).id)
  const seconds = (h.ms - start) / 1000
  const rate = done.bytes / seconds
  t.ok(rate <= 20_000 * 1.1, `${done.bytes} bytes in ${seconds} s = ${Math.round(rate)} B/s, cap 20000`)
  t.ok(rate >= 20_000 * 0.8, 'and the cap is used')
  t.equal(done.bytesPerSecond, 20_000)
})

t.test('a daily window: the job waits for it to open', async (t) => {
  const day = 24 * 3600_000
  const h = harness(t, { startMs: 10 * day + 3600_000 }) // 01:00 UTC
  const job = h.prefiller.start({ titles: ['/vod/t/'], renditions: 'lowest', window: '02:00-03:00' })
  const done = await settle(h, job.id)
  t.equal(done.state, 'done')
  t.ok(h.ms >= 10 * day + 2 * 3600_000, 'nothing before 02:00')
  t.equal(msUntilOpen({ startMinute: 120, endMinute: 180 }, 10 * day + 150 * 60_000), 0, 'inside')
  t.equal(msUntilOpen({ startMinute: 120, endMinute: 180 }, 10 * day + 200 * 60_000), (24 * 60 - 80) * 60_000, 'after: tomorrow')
  t.equal(msUntilOpen({ startMinute: 22 * 60, endMinute: 60 }, 10 * day + 30 * 60_000), 0, 'a window across midnight')
})

t.test('cancel, list, unknown ids; jobs run one after another', async (t) => {
  const h = harness(t, { outcome: () => ({ result: 'filled', status: 200, bytes: 1 }) })
  const first = h.prefiller.start({ titles: ['/vod/t/'] })
  const second = h.prefiller.start({ titles: ['/vod/t/'] })
  t.match(h.prefiller.cancel(second.id), { state: 'cancelled' })
  await settle(h, first.id)
  t.same(h.prefiller.list().map((j) => [j.id, j.state]), [[first.id, 'done'], [second.id, 'cancelled']])
  t.equal(h.prefiller.cancel('nope'), undefined)
  t.equal(h.prefiller.get('nope'), undefined)
  t.match(h.prefiller.gauges(), { jobs: { done: 1, cancelled: 1, running: 0 }, remaining: 0 })
  await h.prefiller.close()
  t.throws(() => h.prefiller.start({ titles: ['/x/'] }), /closed/)
  t.throws(() => new Prefiller({ ...PREFILL_DEFAULTS, maxJobs: 0, warm: async () => ({ result: 'cached', bytes: 0 }), readPlaylist: async () => undefined, metrics: new HlsMetrics(), logger: silentLogger() }), /options\.maxJobs/)
})
