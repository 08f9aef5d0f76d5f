/**
 * The HLS content policy as the pipeline calls it: which responses are buffered, the
 * lifetime given to each kind of playlist, segment, part and 404, media-sequence
 * regressions (kept, then accepted after the hold), refresh-ahead pacing, and where
 * served URLs go.
 */
import { PassThrough } from 'node:stream'
import t from 'tap'
import { HlsPolicy, directivesOf, type HlsPolicyOptions } from '../../../edge/hls/hls-policy.ts'
import { RenditionIndex } from '../../../edge/hls/rendition-index.ts'
import { makeCacheKey } from '../../../edge/cache/cache-key.ts'
import type { MemoryObject, ObjectMeta, StoredHeaders } from '../../../edge/cache/types.ts'
import type { AdmitDecision, PolicyResponse } from '../../../edge/proxy/content-policy.ts'
import { createLogger } from '../../../lib/log.ts'
import { HlsMetrics } from '../../../lib/metrics.ts'

const M3U8 = { 'content-type': 'application/vnd.apple.mpegurl' }
const T0 = 1_800_000_000_000

function live (seq: number, count = 3, td = 4): string {
  const lines = ['#EXTM3U', `#EXT-X-TARGETDURATION:${td}`, `#EXT-X-MEDIA-SEQUENCE:${seq}`]
  for (let i = seq; i < seq + count; i++) lines.push(`#EXTINF:${td},`, `seg-${i}.ts`)
  return lines.join('\n') + '\n'
}

const VOD = '#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXT-X-PLAYLIST-TYPE:VOD\n#EXTINF:4,\nseg-0.ts\n#EXTINF:4,\nseg-1.ts\n#EXT-X-ENDLIST\n'
const MASTER = '#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=800000\n360p/index.m3u8\n'
const LL = `#EXTM3U
#EXT-X-VERSION:9
#EXT-X-TARGETDURATION:4
#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=3.0
#EXT-X-PART-INF:PART-TARGET=1.0
#EXT-X-MEDIA-SEQUENCE:20
#EXTINF:4.0,
seg-20.m4s
#EXT-X-PART:DURATION=1.0,URI="seg-21.0.m4s",INDEPENDENT=YES
#EXT-X-PRELOAD-HINT:TYPE=PART,URI="seg-21.1.m4s"
`

interface Setup {
  readonly policy: HlsPolicy
  readonly index: RenditionIndex
  readonly metrics: HlsMetrics
  readonly logs: Array<Record<string, unknown>>
  readonly served: Array<[string, number]>
  now: number
}

function setup (overrides: Partial<HlsPolicyOptions> = {}): Setup {
  const destination = new PassThrough()
  const logs: Array<Record<string, unknown>> = []
  destination.on('data', (chunk: Buffer) => { for (const line of chunk.toString().split('\n')) if (line !== '') logs.push(JSON.parse(line) as Record<string, unknown>) })
  const index = new RenditionIndex({ maxRenditions: 100, maxSegments: 10_000 })
  const metrics = new HlsMetrics()
  const served: Array<[string, number]> = []
  const s: Setup = {
    index,
    metrics,
    logs,
    served,
    now: T0,
    policy: undefined as unknown as HlsPolicy,
  }
  ;(s as { policy: HlsPolicy }).policy = new HlsPolicy({
    index,
    metrics,
    logger: createLogger({ level: 'debug', destination }),
    normalize: (url) => makeCacheKey(url, { stripQueryParams: new Set(['token']) }),
    served: { onServed: (url, status) => served.push([url, status]) },
    now: () => s.now,
    ...overrides,
  })
  return s
}

function res (url: string, status = 200, headers: StoredHeaders = M3U8): PolicyResponse {
  return { url, status, headers }
}

function stored (url: string, body: string, responseTimeMs: number): MemoryObject {
  const meta: ObjectMeta = { key: url, status: 200, headers: M3U8, bodyBytes: body.length, requestTimeMs: responseTimeMs, responseTimeMs, initialAgeSeconds: 0, freshnessLifetimeSeconds: 2 }
  return { meta, body: Buffer.from(body) }
}

function lifetime (d: AdmitDecision): number | undefined {
  return d.action === 'store' ? d.lifetimeSeconds : undefined
}

t.test('playlists (200, not huge) are buffered whole; segments and errors stream', async (t) => {
  const { policy } = setup()
  t.equal(policy.bufferWhole(res('/l/index.m3u8')), true)
  t.equal(policy.bufferWhole(res('/l/playlist', 200, M3U8)), true, 'by content type')
  t.equal(policy.bufferWhole(res('/l/seg-1.ts', 200, { 'content-type': 'video/mp2t' })), false)
  t.equal(policy.bufferWhole(res('/l/index.m3u8', 404)), false)
  t.equal(policy.bufferWhole(res('/l/index.m3u8', 200, { ...M3U8, 'content-length': String(64 * 1024 * 1024) })), false, 'too big to hold')
})

t.test('live playlists live half a target duration whatever the origin says, unless it says shorter', async (t) => {
  const { policy, index, metrics } = setup()
  const url = '/live/s/360p/index.m3u8'
  t.same(policy.admit(res(url, 200, { ...M3U8, 'cache-control': 'max-age=60' }), Buffer.from(live(10)), 60, undefined), { action: 'store', lifetimeSeconds: 2 })
  t.equal(lifetime(policy.admit(res(url, 200, { ...M3U8, 'cache-control': 'max-age=1' }), Buffer.from(live(11)), 1, undefined)), 1, 'a shorter explicit lifetime wins')
  t.equal(lifetime(policy.admit(res(url, 200, { ...M3U8, 'cache-control': 'max-age=0' }), Buffer.from(live(12)), 0, undefined)), 2, 'max-age=0 is replaced')
  t.equal(lifetime(policy.admit(res(url), Buffer.from(live(13, 3, 6)), 0, undefined)), 3, 'no freshness at all: 6 s target → 3 s')
  t.equal(index.rendition(url)?.info.mediaSequence, 13, 'the index follows')
  t.equal(index.locateSegment('/live/s/360p/seg-15.ts')?.position, 2)
  t.equal(await metrics.playlists.value({ type: 'live' }), 4)
})

t.test('VOD and ended EVENT playlists and segments are long-lived unless the origin says otherwise', async (t) => {
  const { policy, index } = setup({ immutableLifetimeSeconds: 1000 })
  t.equal(lifetime(policy.admit(res('/vod/t/360p/index.m3u8'), Buffer.from(VOD), 0, undefined)), 1000)
  t.equal(lifetime(policy.admit(res('/vod/t/360p/index.m3u8', 200, { ...M3U8, 'cache-control': 'max-age=300' }), Buffer.from(VOD), 300, undefined)), 300)
  t.equal(index.rendition('/vod/t/360p/index.m3u8')?.info.live, false)
  const ended = '#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXT-X-PLAYLIST-TYPE:EVENT\n#EXTINF:4,\na.ts\n#EXT-X-ENDLIST\n'
  t.equal(lifetime(policy.admit(res('/e/index.m3u8'), Buffer.from(ended), 0, undefined)), 1000)
  const event = '#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXT-X-PLAYLIST-TYPE:EVENT\n#EXTINF:4,\na.ts\n'
  t.equal(lifetime(policy.admit(res('/e2/index.m3u8'), Buffer.from(event), 0, undefined)), 2, 'a growing EVENT playlist is live')
  const ts = { 'content-type': 'video/mp2t' }
  t.equal(lifetime(policy.admit(res('/vod/t/360p/seg-0.ts', 200, ts), Buffer.alloc(188), 0, undefined)), 1000)
  t.equal(lifetime(policy.admit(res('/vod/t/360p/seg-0.ts', 200, { ...ts, 'cache-control': 'max-age=30' }), Buffer.alloc(188), 30, undefined)), 30)
  t.same(policy.admit(res('/robots.txt', 200, { 'content-type': 'text/plain' }), Buffer.from('x'), 5, undefined), { action: 'store' }, 'not HLS: no opinion')
})

t.test('multivariant playlists: the origin\'s lifetime, else masterLifetimeSeconds; titles are indexed', async (t) => {
  const { policy, index, metrics } = setup({ masterLifetimeSeconds: 45 })
  t.equal(lifetime(policy.admit(res('/vod/t1/master.m3u8'), Buffer.from(MASTER), 0, undefined)), 45)
  t.equal(lifetime(policy.admit(res('/vod/t1/master.m3u8', 200, { ...M3U8, 'cache-control': 'max-age=10' }), Buffer.from(MASTER), 10, undefined)), 10)
  t.equal(index.titleOf('/vod/t1/360p/seg-0.ts'), '/vod/t1/')
  t.same(policy.admit(res('/broken.m3u8'), Buffer.from('<html>'), 7, undefined), { action: 'store' }, 'an unparsable playlist is left to HTTP rules')
  t.equal(await metrics.playlists.value({ type: 'unparsed' }), 1)
})

t.test('a live playlist behind the stored one is refused, counted and logged; after the hold it is accepted', async (t) => {
  const s = setup({ regressionHoldTargetDurations: 3 })
  const url = '/live/s/360p/index.m3u8'
  t.equal(s.policy.admit(res(url), Buffer.from(live(100)), 0, undefined).action, 'store')
  const current = stored(url, live(100), s.now)
  s.now += 1000
  t.same(s.policy.admit(res(url), Buffer.from(live(98)), 0, current), { action: 'keep-stored', reason: 'media-sequence-regression' })
  t.equal(await s.metrics.regressions.value({ action: 'kept' }), 1)
  const line = s.logs.find((l) => l['msg'] === 'live playlist went backwards (media sequence regression); keeping the stored one')
  t.match(line, { level: 'warn', cacheKey: url, storedMediaSequence: 100, newMediaSequence: 98 })
  t.equal(s.index.rendition(url)?.info.mediaSequence, 100, 'the index keeps the newer playlist')
  t.same(s.policy.admit(res(url), Buffer.from(live(100, 2)), 0, current).action, 'keep-stored', 'same sequence but a shorter list is behind too')
  t.equal(s.policy.admit(res(url), Buffer.from(live(101)), 0, current).action, 'store', 'moving forward is fine')
  const newer = stored(url, live(101), s.now)
  s.now += 3 * 4 * 1000
  t.equal(s.policy.admit(res(url), Buffer.from(live(0)), 0, newer).action, 'store', 'a stored playlist stuck for the hold gives way (restarted stream)')
  t.equal(await s.metrics.regressions.value({ action: 'accepted' }), 1)
  t.equal(s.index.rendition(url)?.info.mediaSequence, 0)
})

t.test('LL-HLS: blocking reloads live one target duration and only advance the index; parts stay short', async (t) => {
  const { policy, index } = setup({ partLifetimeParts: 3 })
  const base = '/ll/a/index.m3u8'
  t.equal(lifetime(policy.admit(res(base), Buffer.from(LL), 0, undefined)), 1, 'a plain LL-HLS reload lives one part target')
  const blocking = `${base}?_HLS_msn=21&_HLS_part=0`
  t.equal(lifetime(policy.admit(res(blocking), Buffer.from(LL), 0, undefined)), 4)
  t.equal(index.rendition(blocking), undefined, 'blocking URLs are not renditions of their own')
  const older = LL.replace('MEDIA-SEQUENCE:20', 'MEDIA-SEQUENCE:19').replace('seg-20.m4s', 'seg-19.m4s').replaceAll('seg-21', 'seg-20')
  policy.admit(res(`${base}?_HLS_msn=20`), Buffer.from(older), 0, undefined)
  t.equal(index.rendition(base)?.info.lastMsn, 21, 'an older blocking answer does not move the index back')
  const m4s = { 'content-type': 'video/iso.segment' }
  t.equal(lifetime(policy.admit(res('/ll/a/seg-21.0.m4s', 200, m4s), Buffer.alloc(8), 0, undefined)), 3, 'a part: 3 part targets')
  t.equal(lifetime(policy.admit(res('/ll/a/seg-21.1.m4s', 200, { ...m4s, 'cache-control': 'max-age=86400' }), Buffer.alloc(8), 86400, undefined)), 3, 'a preload hint, capped')
  t.equal(lifetime(policy.admit(res('/ll/a/seg-20.m4s', 200, m4s), Buffer.alloc(8), 0, undefined)), HLS_IMMUTABLE, 'a full segment is immutable')
  t.equal(lifetime(policy.admit(res(`${base}?_HLS_skip=YES`), Buffer.from(LL), 0, undefined)), 1, 'a delta update is a live reload')
})
const HLS_IMMUTABLE = 7 * 24 * 3600

t.test('404s: a live rendition\'s future segment briefly, a VOD 404 as the pipeline computed', async (t) => {
  const { policy, metrics } = setup({ notPublishedFraction: 0.25 })
  policy.admit(res('/live/s/360p/index.m3u8'), Buffer.from(live(10)), 0, undefined)
  policy.admit(res('/vod/t/360p/index.m3u8'), Buffer.from(VOD), 0, undefined)
  const text = { 'content-type': 'text/plain' }
  t.equal(lifetime(policy.admit(res('/live/s/360p/seg-13.ts', 404, text), Buffer.from('nf'), 10, undefined)), 1, 'a quarter of 4 s')
  t.equal(lifetime(policy.admit(res('/live/s/360p/seg-13.ts', 404, text), Buffer.from('nf'), 0.5, undefined)), 0.5, 'never longer than the pipeline would')
  t.same(policy.admit(res('/vod/t/360p/seg-9.ts', 404, text), Buffer.from('nf'), 10, undefined), { action: 'store' })
  t.equal(lifetime(policy.admit(res('/unknown/seg-1.ts', 410, text), Buffer.from('nf'), 10, undefined)), 0.5, 'an unknown rendition is assumed live with 2 s segments')
  t.same(policy.admit(res('/live/s/360p/index.m3u8', 404, text), Buffer.from('nf'), 10, undefined), { action: 'store' }, 'a playlist 404 keeps its lifetime')
  t.equal(await metrics.notPublished.value(), 3)
})

t.test('refresh-ahead: once per interval, from half the lifetime, live playlists only', async (t) => {
  const s = setup()
  const url = '/live/s/360p/index.m3u8'
  s.policy.admit(res(url), Buffer.from(live(10)), 0, undefined)
  s.policy.admit(res('/vod/t/360p/index.m3u8'), Buffer.from(VOD), 0, undefined)
  const meta = (key: string, responseTimeMs: number): ObjectMeta => ({ key, status: 200, headers: M3U8, bodyBytes: 1, requestTimeMs: responseTimeMs, responseTimeMs, initialAgeSeconds: 0, freshnessLifetimeSeconds: 2 })
  t.equal(s.policy.refreshAhead(meta(url, T0), T0 + 900), false, 'young')
  t.equal(s.policy.refreshAhead(meta(url, T0), T0 + 1000), true, 'half the lifetime')
  t.equal(s.policy.refreshAhead(meta(url, T0), T0 + 1100), false, 'not again within the interval')
  t.equal(s.policy.refreshAhead(meta(url, T0), T0 + 2000), true, 'the refresh did not replace it: asked again one interval later')
  t.equal(s.policy.refreshAhead(meta(`${url}\u0000accept=x`, T0), T0 + 3000), true, 'variant keys map to their URL')
  t.equal(s.policy.refreshAhead(meta('/vod/t/360p/index.m3u8', T0), T0 + 1900), false, 'VOD playlists are not refreshed ahead')
  t.equal(s.policy.refreshAhead(meta('/nope.m3u8', T0), T0 + 1900), false)
  t.equal(await s.metrics.refreshAhead.value(), 3)
  const off = setup({ refreshAheadFraction: 0 })
  off.policy.admit(res(url), Buffer.from(live(10)), 0, undefined)
  t.equal(off.policy.refreshAhead(meta(url, T0), T0 + 1900), false)
})

t.test('served URLs go to the listener', async (t) => {
  const s = setup()
  s.policy.onServed('/a/seg-1.ts', 200)
  t.same(s.served, [['/a/seg-1.ts', 200]])
})

t.test('bad options are TypeErrors naming the field', async (t) => {
  t.throws(() => setup({ liveLifetimeFraction: 0 }), /options\.liveLifetimeFraction/)
  t.throws(() => setup({ refreshAheadFraction: 1.5 }), /options\.refreshAheadFraction/)
  t.throws(() => setup({ immutableLifetimeSeconds: -1 }), /options\.immutableLifetimeSeconds/)
})

t.test('directivesOf strips only _HLS_ parameters', async (t) => {
  t.same(directivesOf('/a/index.m3u8'), { any: false, msn: false, base: '/a/index.m3u8' })
  t.same(directivesOf('/a/index.m3u8?_HLS_msn=5&_HLS_part=1&v=2'), { any: true, msn: true, base: '/a/index.m3u8?v=2' })
  t.same(directivesOf('/a/index.m3u8?_HLS_skip=YES'), { any: true, msn: false, base: '/a/index.m3u8' })
})
