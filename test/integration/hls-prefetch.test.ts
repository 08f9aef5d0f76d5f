/**
 * Next-segment prefetch through a real edge:
 * - a player reading segments 1..5 of a VOD rendition finds 6..5+k already cached: each is
 *   a hit on its first request, and the origin saw each segment once;
 * - a client fill and a prefetch of the same segment share one upstream request;
 * - prefetch never asks for a live segment the playlist has not published.
 */
import t from 'tap'
import { syntheticBody } from '../../bench/origin/synthetic-body.ts'
import { get, startHlsNode, startLiveOrigin, until, type HlsTestNode } from '../helpers/hls.ts'
import { startScriptedOrigin, type ScriptedOrigin } from '../helpers/scripted-origin.ts'

const SEGMENTS = 12
const SEGMENT_BYTES = 188 * 200

async function vodOrigin (t: Tap, delayMs = 0): Promise<ScriptedOrigin> {
  const lines = ['#EXTM3U', '#EXT-X-VERSION:3', '#EXT-X-TARGETDURATION:4', '#EXT-X-PLAYLIST-TYPE:VOD']
  for (let i = 0; i < SEGMENTS; i++) lines.push('#EXTINF:4.0,', `seg-${i}.ts`)
  lines.push('#EXT-X-ENDLIST', '')
  const origin = await startScriptedOrigin(t, {
    fallback: (req) => {
      const m = /^\/vod\/t\/360p\/seg-(\d+)\.ts$/.exec(req.path)
      if (m === null || Number(m[1]) >= SEGMENTS) return { status: 404, body: 'nf' }
      return { delayMs, headers: { 'content-type': 'video/mp2t', 'cache-control': 'public, max-age=31536000, immutable' }, body: syntheticBody(`seg-${m[1]}`, SEGMENT_BYTES, 'ts') }
    },
  })
  origin.script('/vod/t/360p/index.m3u8', { headers: { 'content-type': 'application/vnd.apple.mpegurl', 'cache-control': 'max-age=300' }, body: lines.join('\n') })
  return origin
}
type Tap = { teardown (fn: () => unknown): void }

async function settled (edge: HlsTestNode): Promise<void> {
  await until(() => (edge.hls.prefetcher?.inFlight ?? 0) === 0 && (edge.hls.prefetcher?.queued ?? 0) === 0 && edge.node.proxy.fillsInFlight === 0, 'prefetches to finish')
}

t.test('playing segments 1..5 makes 6..5+k hits on their first request', async (t) => {
  const k = 3
  const origin = await vodOrigin(t)
  const edge = await startHlsNode(t, { origin: origin.url }, { prefetch: { segments: k } })
  const base = `${edge.node.url}/vod/t/360p/`
  t.equal((await get(`${base}index.m3u8`)).status, 200)
  for (let i = 1; i <= 5; i++) {
    const seg = await get(`${base}seg-${i}.ts`)
    t.equal(seg.status, 200)
    await settled(edge)
  }
  for (let i = 6; i <= 5 + k; i++) {
    const seg = await get(`${base}seg-${i}.ts`)
    t.equal(seg.status, 200)
    t.ok(seg.body.equals(syntheticBody(`seg-${i}`, SEGMENT_BYTES, 'ts')), `seg-${i} bytes intact`)
    t.match(String(seg.headers['cache-status']), /; hit/, `seg-${i} was a hit on its first request`)
  }
  for (let i = 1; i <= 5 + k; i++) t.equal(origin.count(`/vod/t/360p/seg-${i}.ts`), 1, `the origin saw seg-${i} once`)
  t.equal(origin.count('/vod/t/360p/seg-0.ts'), 0, 'nothing behind the player is fetched')
  t.equal(await edge.hls.metrics.prefetchUse.value({ outcome: 'hit' }), 5 + k - 1, 'seg-2..seg-8 were prefetched and then asked for')
  t.ok(await edge.hls.metrics.prefetches.value({ outcome: 'filled' }) >= 5 + k - 1)
  t.ok(await edge.hls.metrics.prefetchBytes.value() >= (5 + k - 1) * SEGMENT_BYTES)
  const text = await (await get(`${edge.node.url}/metrics`)).body.toString()
  t.match(text, /streamedge_hls_prefetched_segments_total\{outcome="hit",role="edge",node="test-edge"\} 7/, 'on the node\'s /metrics with its labels')
})

t.test('a client request and a prefetch of the same segment share one upstream request', async (t) => {
  const origin = await vodOrigin(t, 150)
  const edge = await startHlsNode(t, { origin: origin.url }, { prefetch: { segments: 1 } })
  const base = `${edge.node.url}/vod/t/360p/`
  await get(`${base}index.m3u8`)
  await get(`${base}seg-3.ts`)
  // The prefetch of seg-4 started when seg-3 was answered and the origin takes 150 ms: a player asking now joins it.
  const joined = await get(`${base}seg-4.ts`)
  t.equal(joined.status, 200)
  t.match(String(joined.headers['cache-status']), /collapsed/, 'the client joined the prefetch\'s fill')
  await settled(edge)
  t.equal(origin.count('/vod/t/360p/seg-4.ts'), 1, 'one upstream request for seg-4')
})

t.test('prefetch never goes past what the live playlist has published', async (t) => {
  let now = Date.parse('2026-03-01T12:00:00Z')
  const { origin, channel } = await startLiveOrigin(t, { now: () => now, startMs: now - 60_000 })
  const edge = await startHlsNode(t, { origin: origin.url, now: () => now }, { prefetch: { segments: 3 } })
  const base = `${edge.node.url}/live/bbb-test/360p/`
  await get(`${base}index.m3u8`)
  const edgeMsn = channel.liveEdge()
  t.equal((await get(`${base}seg-${edgeMsn - 2}.ts`)).status, 200)
  await settled(edge)
  t.equal(origin.count(`/live/bbb-test/360p/seg-${edgeMsn - 1}.ts`), 1, 'the next published segments were prefetched')
  t.equal(origin.count(`/live/bbb-test/360p/seg-${edgeMsn}.ts`), 1)
  t.equal(origin.count(`/live/bbb-test/360p/seg-${edgeMsn + 1}.ts`), 0, 'but not the unpublished one')
  t.equal((await get(`${base}seg-${edgeMsn}.ts`)).status, 200)
  await settled(edge)
  t.equal(origin.count(`/live/bbb-test/360p/seg-${edgeMsn + 1}.ts`), 0, 'playing the live edge prefetches nothing')
  now += 4000
  await get(`${base}index.m3u8`)
  t.equal((await get(`${base}seg-${edgeMsn}.ts`)).status, 200)
  await settled(edge)
  t.equal(origin.count(`/live/bbb-test/360p/seg-${edgeMsn + 1}.ts`), 1, 'once the playlist lists it, it is prefetched')
})
