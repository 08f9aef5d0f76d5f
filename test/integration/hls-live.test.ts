/**
 * Live HLS through an edge with the HLS policy, on an injected clock (origin Date headers
 * follow it, so ages are exact):
 * - 200 concurrent pollers of a live playlist cost the upstream one request per refresh
 *   interval, and every poller after the first is answered from cache with a playlist no
 *   older than the refresh interval allows;
 * - a playlist whose media sequence went backwards (packager failover) does not replace
 *   the stored one (counted and logged) until the stored one has been stuck for the hold;
 * - a 404 for a segment beyond the live edge is cached for a fraction of the target
 *   duration, then the published segment is fetched;
 * - LL-HLS: identical blocking reloads (_HLS_msn/_HLS_part) held by the origin until a part
 *   is published cost one upstream request per distinct query; preload-hint requests
 *   coalesce the same way; parts live a few part targets.
 */
import t from 'tap'
import { parsePlaylist } from '../../edge/hls/playlist.ts'
import { get, pollerAgent, startHlsNode, startLiveOrigin, until } from '../helpers/hls.ts'
import { startScriptedOrigin, type OriginRequest } from '../helpers/scripted-origin.ts'

const T0 = Date.parse('2026-03-01T12:00:00Z')

function mediaSequenceOf (body: Buffer): number {
  const info = parsePlaylist(body.toString('utf8'), '/x/index.m3u8')
  if (info?.kind !== 'media') throw new Error(`not a media playlist: ${body.toString('utf8').slice(0, 80)}`)
  return info.mediaSequence
}

t.test('200 concurrent pollers: one upstream playlist request per refresh interval, all hits after the first', async (t) => {
  let now = T0
  const { origin, channel } = await startLiveOrigin(t, { now: () => now, startMs: T0 - 60_000 })
  const { node, hls } = await startHlsNode(t, { origin: origin.url, now: () => now })
  const agent = pollerAgent(t, 200)
  const path = '/live/bbb-test/360p/index.m3u8'
  const stepMs = 250
  const durationMs = 20_000
  let misses = 0
  let maxBehind = 0
  for (let elapsed = 0; elapsed < durationMs; elapsed += stepMs) {
    const answers = await Promise.all(Array.from({ length: 200 }, () => get(node.url + path, agent)))
    for (const a of answers) {
      if (a.status !== 200) throw new Error(`poller got ${a.status}`)
      // The first round starts cold: one fill, everyone else collapsed onto it.
      if (elapsed > 0 && !/; hit/.test(String(a.headers['cache-status']))) misses++
      maxBehind = Math.max(maxBehind, channel.mediaSequence() - mediaSequenceOf(a.body))
    }
    // Let the background refresh (if one started) land before time moves on.
    await until(() => node.proxy.fillsInFlight === 0, 'refresh to finish')
    now += stepMs
  }
  // Lifetime: half the 4 s target duration; refresh-ahead at half the lifetime: every second.
  const refreshIntervalMs = 1000
  const upstream = origin.count(path)
  const expected = durationMs / refreshIntervalMs
  t.ok(upstream >= expected / 2 && upstream <= expected + 2, `${upstream} upstream requests for ${(durationMs / stepMs) * 200} client requests over ${durationMs / 1000} s (≈ ${expected} expected)`)
  t.equal(misses, 0, 'after the cold start every poller was a hit: refresh-ahead kept the playlist fresh')
  t.ok(maxBehind <= 1, `pollers were at most ${maxBehind} media sequence behind the origin`)
  t.ok(await hls.metrics.refreshAhead.value() >= expected / 2, 'refreshes were refresh-ahead ones')
})

t.test('a media-sequence regression keeps the stored playlist (counted, logged) until the hold, then a restart is accepted', async (t) => {
  let now = T0
  const live = (seq: number): string => ['#EXTM3U', '#EXT-X-TARGETDURATION:4', `#EXT-X-MEDIA-SEQUENCE:${seq}`, '#EXTINF:4,', `seg-${seq}.ts`, '#EXTINF:4,', `seg-${seq + 1}.ts`, ''].join('\n')
  const origin = await startScriptedOrigin(t, { now: () => now })
  const path = '/live/a/index.m3u8'
  const headers = { 'content-type': 'application/vnd.apple.mpegurl', 'cache-control': 'max-age=1' }
  origin.script(path, { headers, body: live(100) }, { headers, body: live(98) }, { headers, body: live(98) }, { headers, body: live(0) })
  const { node, hls } = await startHlsNode(t, { origin: origin.url, now: () => now }, { policy: { regressionHoldTargetDurations: 2, refreshAheadFraction: 0 } })
  t.equal(mediaSequenceOf((await get(node.url + path)).body), 100)
  now += 2000
  const kept = await get(node.url + path)
  t.equal(origin.count(path), 2, 'the expired playlist was refetched')
  t.equal(mediaSequenceOf(kept.body), 100, 'players still get the newer playlist')
  t.match(String(kept.headers['cache-status']), /media-sequence-regression/, 'Cache-Status says why')
  t.equal(await hls.metrics.regressions.value({ action: 'kept' }), 1)
  t.equal(await node.metrics.admissionRejections.value({ reason: 'media-sequence-regression' }), 1)
  t.ok(node.logs.some((l) => l['level'] === 'warn' && l['cacheKey'] === path && l['storedMediaSequence'] === 100 && l['newMediaSequence'] === 98), 'logged with both sequences')
  now += 2000
  t.equal(mediaSequenceOf((await get(node.url + path)).body), 100, 'still kept within the hold (2 × 4 s)')
  now += 6000
  t.equal(mediaSequenceOf((await get(node.url + path)).body), 0, 'stuck for longer than the hold: the restarted stream is accepted')
  t.equal(await hls.metrics.regressions.value({ action: 'accepted' }), 1)
})

t.test('a 404 beyond the live edge lives a fraction of the target duration', async (t) => {
  let now = T0
  const { origin, channel } = await startLiveOrigin(t, { now: () => now, startMs: T0 - 60_000 })
  // TODO(lead): the integrity gate checks 404 bodies too, so a .ts 404 is never stored with it on.
  const { node } = await startHlsNode(t, { origin: origin.url, now: () => now, negativeTtlSeconds: 30, checkIntegrity: false })
  await get(`${node.url}/live/bbb-test/360p/index.m3u8`)
  const next = `/live/bbb-test/360p/seg-${channel.liveEdge() + 1}.ts`
  t.equal((await get(node.url + next)).status, 404)
  t.equal((await get(node.url + next)).status, 404)
  t.equal(origin.count(next), 1, 'the 404 is cached briefly')
  now += 1100 // past a quarter of the 4 s target duration, far short of the 30 s negative TTL
  t.equal((await get(node.url + next)).status, 404, 'not published yet')
  t.equal(origin.count(next), 2, 'but asked again after a quarter of the target duration')
  now += 4000 // the window slid: the segment is published
  t.equal((await get(node.url + next)).status, 200)
  t.equal(origin.count(next), 3)
})

t.test('LL-HLS: blocking reloads and preload hints coalesce per distinct query; parts are short-lived', async (t) => {
  let now = T0
  const gates = new Map<string, () => void>()
  const published = (part: number): string => [
    '#EXTM3U', '#EXT-X-VERSION:9', '#EXT-X-TARGETDURATION:4',
    '#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=3.0', '#EXT-X-PART-INF:PART-TARGET=1.0',
    '#EXT-X-MEDIA-SEQUENCE:20', '#EXT-X-MAP:URI="init.mp4"', '#EXTINF:4.0,', 'seg-20.m4s',
    ...Array.from({ length: part + 1 }, (_, i) => `#EXT-X-PART:DURATION=1.0,URI="seg-21.${i}.m4s"${i === 0 ? ',INDEPENDENT=YES' : ''}`),
    `#EXT-X-PRELOAD-HINT:TYPE=PART,URI="seg-21.${part + 1}.m4s"`, '',
  ].join('\n')
  const held = (key: string): Promise<void> => new Promise((resolve) => gates.set(key, resolve))
  const m3u8 = { 'content-type': 'application/vnd.apple.mpegurl', 'cache-control': 'no-cache' }
  const origin = await startScriptedOrigin(t, {
    now: () => now,
    fallback: async (req: OriginRequest) => {
      const url = new URL(req.path, 'http://o')
      if (url.pathname === '/ll/a/index.m3u8') {
        const part = Number(url.searchParams.get('_HLS_part') ?? 0)
        if (url.searchParams.has('_HLS_msn')) await held(`playlist-${part}`)
        return { headers: { ...m3u8, 'cache-control': 'max-age=1' }, body: published(part) }
      }
      const m = /^\/ll\/a\/seg-21\.(\d)\.m4s$/.exec(url.pathname)
      if (m !== null) {
        if (m[1] === '2') await held('hint')
        return { headers: { 'content-type': 'video/iso.segment', etag: `"p${m[1]}"` }, body: fmp4Part(Number(m[1])) }
      }
      return { status: 404, body: 'nf' }
    },
  })
  const { node } = await startHlsNode(t, { origin: origin.url, now: () => now }, { policy: { partLifetimeParts: 3 } })
  const agent = pollerAgent(t, 100)
  await get(`${node.url}/ll/a/index.m3u8`, agent)

  const blocking = '/ll/a/index.m3u8?_HLS_msn=21&_HLS_part=1'
  const waiting = Array.from({ length: 50 }, () => get(node.url + blocking, agent))
  await origin.waitForRequests('/ll/a/index.m3u8?_HLS_msn=21&_HLS_part=1', 1)
  await until(() => gates.has('playlist-1'), 'the origin to hold the reload')
  await new Promise((resolve) => setTimeout(resolve, 50))
  t.equal(origin.count('/ll/a/index.m3u8?_HLS_msn=21&_HLS_part=1'), 1, '50 held clients, one upstream request')
  now += 300 // the part is published a little later
  gates.get('playlist-1')!()
  const answers = await Promise.all(waiting)
  t.ok(answers.every((a) => a.status === 200 && a.body.toString().includes('seg-21.1.m4s')), 'every holder got the playlist with the new part')
  t.equal(origin.count('/ll/a/index.m3u8?_HLS_msn=21&_HLS_part=1'), 1)

  const nextPart = '/ll/a/index.m3u8?_HLS_msn=21&_HLS_part=2'
  const second = Array.from({ length: 20 }, () => get(node.url + nextPart, agent))
  await until(() => gates.has('playlist-2'), 'the second reload to be held')
  await new Promise((resolve) => setTimeout(resolve, 50))
  gates.get('playlist-2')!()
  await Promise.all(second)
  t.equal(origin.count('/ll/a/index.m3u8?_HLS_msn=21&_HLS_part=2'), 1, 'another distinct query: one more upstream request')
  t.equal((await get(node.url + blocking, agent)).status, 200)
  t.equal(origin.count('/ll/a/index.m3u8?_HLS_msn=21&_HLS_part=1'), 1, 'a late identical reload is a hit')

  const hint = '/ll/a/seg-21.2.m4s'
  const hinted = Array.from({ length: 30 }, () => get(node.url + hint, agent))
  await until(() => gates.has('hint'), 'the preload hint to be held')
  await new Promise((resolve) => setTimeout(resolve, 50))
  gates.get('hint')!()
  const parts = await Promise.all(hinted)
  t.ok(parts.every((p) => p.status === 200 && p.body.equals(fmp4Part(2))), 'every client got the part')
  t.equal(origin.count(hint), 1, '30 preload-hint requests, one upstream request')

  t.equal((await get(node.url + '/ll/a/seg-21.0.m4s', agent)).status, 200)
  t.equal((await get(node.url + '/ll/a/seg-21.0.m4s', agent)).status, 200)
  t.equal(origin.count('/ll/a/seg-21.0.m4s'), 1, 'a part is cached')
  now += 3001
  await get(node.url + '/ll/a/seg-21.0.m4s', agent)
  t.equal(origin.count('/ll/a/seg-21.0.m4s'), 2, 'for three part targets only')
})

/** A tiny valid fMP4 fragment (one `styp` box and one `mdat` box) whose payload names the part. */
function fmp4Part (part: number): Buffer {
  const styp = Buffer.alloc(16)
  styp.writeUInt32BE(16, 0)
  styp.write('styp', 4)
  styp.write('msdh', 8)
  const payload = Buffer.from(`part-${part}`)
  const mdat = Buffer.alloc(8 + payload.length)
  mdat.writeUInt32BE(mdat.length, 0)
  mdat.write('mdat', 4)
  payload.copy(mdat, 8)
  return Buffer.concat([styp, mdat])
}
