import t, { type Test } from 'tap'
import { readFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { originRequest, startTestOrigin } from '../helpers/origin-fixture.ts'

const MEDIA = fileURLToPath(new URL('../../bench/origin/media/', import.meta.url))
const SEGMENT_MS = 4000 // the committed titles use 4 s segments and loop after 6
const LOOP = 6
const START_MS = Date.UTC(2025, 0, 1)

interface Parsed {
  mediaSequence: number
  discontinuitySequence: number
  /** Segment URIs in order, each with whether an EXT-X-DISCONTINUITY precedes it. */
  segments: Array<{ uri: string, discontinuity: boolean }>
  map: string | undefined
  ended: boolean
  text: string
}

function parse (text: string): Parsed {
  const parsed: Parsed = { mediaSequence: -1, discontinuitySequence: -1, segments: [], map: undefined, ended: false, text }
  let discontinuity = false
  for (const line of text.split('\n')) {
    if (line.startsWith('#EXT-X-MEDIA-SEQUENCE:')) parsed.mediaSequence = Number(line.split(':')[1])
    else if (line.startsWith('#EXT-X-DISCONTINUITY-SEQUENCE:')) parsed.discontinuitySequence = Number(line.split(':')[1])
    else if (line === '#EXT-X-DISCONTINUITY') discontinuity = true
    else if (line.startsWith('#EXT-X-MAP:')) parsed.map = /URI="([^"]+)"/.exec(line)?.[1]
    else if (line === '#EXT-X-ENDLIST') parsed.ended = true
    else if (line !== '' && !line.startsWith('#')) {
      parsed.segments.push({ uri: line, discontinuity })
      discontinuity = false
    }
  }
  return parsed
}

async function startLive (t: Test, windowSegments?: number): Promise<{ url: string, advance: (segments: number) => void, origin: Awaited<ReturnType<typeof startTestOrigin>> }> {
  let nowMs = START_MS
  const origin = await startTestOrigin(t, { now: () => nowMs, ...(windowSegments === undefined ? {} : { liveWindowSegments: windowSegments }) })
  return { url: origin.url, origin, advance: (segments) => { nowMs += segments * SEGMENT_MS } }
}

async function playlist (url: string): Promise<Parsed> {
  const res = await originRequest(url)
  if (res.status !== 200) throw new Error(`${url} answered ${res.status}`)
  return parse(res.body.toString())
}

t.test('the live window slides with the injected clock and marks loop wraps', async (t) => {
  const live = await startLive(t)
  const url = live.url + '/live/bbb-test/360p/index.m3u8'

  const first = await originRequest(url)
  t.equal(first.headers['content-type'], 'application/vnd.apple.mpegurl')
  t.equal(first.headers['cache-control'], 'public, max-age=2', 'half a target duration')
  t.match(first.headers.etag, /^"/)
  let p = parse(first.body.toString())
  t.match(p.text, /#EXT-X-TARGETDURATION:4\n/)
  t.notMatch(p.text, /EXT-X-PLAYLIST-TYPE|EXT-X-ENDLIST/, 'a live playlist is open')
  t.equal(p.mediaSequence, 0)
  t.equal(p.discontinuitySequence, 0)
  t.same(p.segments.map((s) => s.uri), ['seg-0.ts', 'seg-1.ts', 'seg-2.ts', 'seg-3.ts', 'seg-4.ts', 'seg-5.ts'])
  t.notOk(p.segments.some((s) => s.discontinuity))

  live.advance(0.5)
  t.equal((await playlist(url)).mediaSequence, 0, 'half a segment later nothing moved')

  live.advance(0.5)
  p = await playlist(url)
  t.equal(p.mediaSequence, 1, 'one segment duration later the window moved by one')
  t.same(p.segments.map((s) => s.uri), ['seg-1.ts', 'seg-2.ts', 'seg-3.ts', 'seg-4.ts', 'seg-5.ts', 'seg-6.ts'])
  t.same(p.segments.map((s) => s.discontinuity), [false, false, false, false, false, true], 'discontinuity where the loop wraps')
  t.equal(p.discontinuitySequence, 0)

  live.advance(5) // media sequence 6: the wrap point is now the first segment
  p = await playlist(url)
  t.equal(p.mediaSequence, 6)
  t.equal(p.discontinuitySequence, 1, 'the wrap left the window, so the discontinuity sequence went up')
  t.notOk(p.segments.some((s) => s.discontinuity))

  live.advance(7) // media sequence 13: window 13..18, wraps before 18
  p = await playlist(url)
  t.equal(p.mediaSequence, 13)
  t.equal(p.discontinuitySequence, 2)
  t.same(p.segments.filter((s) => s.discontinuity).map((s) => s.uri), ['seg-18.ts'])
})

t.test('live segments map onto the looped VOD segments; beyond the edge is 404', async (t) => {
  const live = await startLive(t)
  const base = live.url + '/live/bbb-test/180p/'
  const files = await Promise.all(Array.from({ length: LOOP }, (_, i) => readFile(`${MEDIA}vod/bbb-test/180p/seg-${i}.ts`)))
  const vod = (i: number): Buffer => files[i] ?? Buffer.alloc(0)

  const edge = await originRequest(base + 'seg-5.ts')
  t.equal(edge.status, 200, 'the live edge exists')
  t.equal(edge.headers['content-type'], 'video/mp2t')
  t.equal(edge.headers['cache-control'], 'public, max-age=31536000, immutable')
  t.ok(edge.body.equals(vod(5)))

  const ahead = await originRequest(base + 'seg-6.ts')
  t.equal(ahead.status, 404, 'one past the live edge is not published yet')
  t.equal(live.origin.count('/live/bbb-test/180p/seg-6.ts'), 1, 'still counted')

  live.advance(1)
  const published = await originRequest(base + 'seg-6.ts')
  t.equal(published.status, 200, 'published once the window moved')
  t.ok(published.body.equals(vod(0)), 'seg-6 is VOD segment 0 again')

  live.advance(10)
  const wrapped = await originRequest(base + 'seg-15.ts')
  t.ok(wrapped.body.equals(vod(3)), 'seg-15 is VOD segment 15 % 6')
  t.equal((await originRequest(base + 'seg-0.ts')).status, 200, 'old segments stay fetchable for slow players')
  t.equal((await originRequest(base + 'seg-17.ts')).status, 404)
  for (const bad of ['seg-1.m4s', 'seg-x.ts', 'seg--1.ts', 'other.ts']) {
    t.equal((await originRequest(base + bad)).status, 404, bad)
  }
  const head = await originRequest(base + 'seg-15.ts', { method: 'HEAD' })
  t.equal(head.headers['content-length'], String(vod(3).length))
  const ranged = await originRequest(base + 'seg-15.ts', { headers: { range: 'bytes=0-187' } })
  t.equal(ranged.status, 206)
  t.ok(ranged.body.equals(vod(3).subarray(0, 188)))
})

t.test('live master, top-rendition alias and a small window', async (t) => {
  const live = await startLive(t, 3)
  const master = await originRequest(live.url + '/live/bbb-test/master.m3u8')
  t.equal(master.status, 200)
  t.match(master.body.toString(), /360p\/index\.m3u8[\s\S]*180p\/index\.m3u8/)
  t.ok(master.body.equals(await readFile(`${MEDIA}vod/bbb-test/master.m3u8`)), 'same variants as the VOD title')

  const top = await playlist(live.url + '/live/bbb-test/index.m3u8')
  t.same(top.segments.map((s) => s.uri), ['360p/seg-0.ts', '360p/seg-1.ts', '360p/seg-2.ts'], 'URIs resolve from the stream directory')
  t.equal((await originRequest(live.url + '/live/bbb-test/360p/seg-2.ts')).status, 200)
  t.equal((await originRequest(live.url + '/live/bbb-test/360p/seg-3.ts')).status, 404, 'the edge follows the window size')

  const etag = (await originRequest(live.url + '/live/bbb-test/360p/index.m3u8')).headers.etag ?? ''
  const same = await originRequest(live.url + '/live/bbb-test/360p/index.m3u8', { headers: { 'if-none-match': etag } })
  t.equal(same.status, 304, 'unchanged window revalidates')
  live.advance(1)
  const moved = await originRequest(live.url + '/live/bbb-test/360p/index.m3u8', { headers: { 'if-none-match': etag } })
  t.equal(moved.status, 200, 'a moved window has a new etag')
})

t.test('fMP4 live stream carries EXT-X-MAP and serves the init segment', async (t) => {
  const live = await startLive(t)
  live.advance(4)
  const p = await playlist(live.url + '/live/bars/360p/index.m3u8')
  t.equal(p.map, 'init.mp4')
  t.match(p.text, /#EXT-X-VERSION:7/)
  t.same(p.segments.map((s) => s.uri), ['seg-4.m4s', 'seg-5.m4s', 'seg-6.m4s', 'seg-7.m4s', 'seg-8.m4s', 'seg-9.m4s'])
  const init = await originRequest(live.url + '/live/bars/360p/init.mp4')
  t.equal(init.status, 200)
  t.equal(init.headers['content-type'], 'video/mp4')
  t.ok(init.body.equals(await readFile(`${MEDIA}vod/bars/360p/init.mp4`)))
  const seg = await originRequest(live.url + '/live/bars/360p/seg-9.m4s')
  t.equal(seg.headers['content-type'], 'video/iso.segment')
  t.ok(seg.body.equals(await readFile(`${MEDIA}vod/bars/360p/seg-3.m4s`)))
  const top = await playlist(live.url + '/live/bars/index.m3u8')
  t.equal(top.map, '360p/init.mp4')
})

t.test('two origins given the same liveStartMs agree on the live playlist', async (t) => {
  const clock = { nowMs: START_MS + 123_456 }
  const a = await startTestOrigin(t, { now: () => clock.nowMs, liveStartMs: START_MS })
  clock.nowMs += 9_000
  const b = await startTestOrigin(t, { now: () => clock.nowMs, liveStartMs: START_MS })
  const [pa, pb] = await Promise.all([a, b].map((o) => originRequest(o.url + '/live/bars/180p/index.m3u8')))
  t.ok(pa?.body.equals(pb?.body ?? Buffer.alloc(0)), 'identical bodies')
  t.equal(pa?.headers.etag, pb?.headers.etag)
  t.equal(parse(pa?.body.toString() ?? '').mediaSequence, Math.floor((123_456 + 9_000) / SEGMENT_MS))
})
