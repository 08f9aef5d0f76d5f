/**
 * Playlist summaries: multivariant and media playlists (VOD, live, EVENT, LL-HLS with
 * parts and preload hints, delta updates), URI resolution against the playlist URL, and
 * bodies the parser refuses.
 */
import t from 'tap'
import { normalizePlaylistUrls, parsePlaylist, resolveUri } from '../../../edge/hls/playlist.ts'

const MASTER = `#EXTM3U
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud",NAME="en",DEFAULT=YES,URI="audio/en/index.m3u8"
#EXT-X-STREAM-INF:BANDWIDTH=1200000,RESOLUTION=640x360,AUDIO="aud"
360p/index.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=400000,RESOLUTION=320x180,AUDIO="aud"
180p/index.m3u8?v=2
#EXT-X-STREAM-INF:BANDWIDTH=900000
https://elsewhere.example/x/index.m3u8
#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=90000,URI="iframes.m3u8"
`

t.test('a multivariant playlist lists its variants with bandwidth and their renditions, resolved', async (t) => {
  const info = parsePlaylist(MASTER, '/vod/t1/master.m3u8')
  t.equal(info?.kind, 'master')
  if (info?.kind !== 'master') return
  t.same(info.variants.map((v) => [v.url, v.bandwidth, v.iframe]), [
    ['/vod/t1/360p/index.m3u8', 1200000, false],
    ['/vod/t1/180p/index.m3u8?v=2', 400000, false],
    ['/vod/t1/iframes.m3u8', 90000, true],
  ], 'the variant on another host is left out')
  t.same(info.variants[0]?.media, ['/vod/t1/audio/en/index.m3u8'], 'audio group rendition attached to its variants')
})

t.test('a VOD media playlist: target duration, sequence, segments with msn, init section', async (t) => {
  const text = `#EXTM3U
#EXT-X-VERSION:7
#EXT-X-TARGETDURATION:4
#EXT-X-MEDIA-SEQUENCE:0
#EXT-X-PLAYLIST-TYPE:VOD
#EXT-X-MAP:URI="init.mp4"
#EXTINF:4.0,
seg-0.m4s
#EXTINF:3.5,
../shared/seg-1.m4s
#EXT-X-ENDLIST
`
  const info = parsePlaylist(text, '/vod/t1/360p/index.m3u8')
  t.equal(info?.kind, 'media')
  if (info?.kind !== 'media') return
  t.equal(info.live, false)
  t.equal(info.playlistType, 'VOD')
  t.equal(info.targetDurationSec, 4)
  t.equal(info.mediaSequence, 0)
  t.same(info.segments, [
    { url: '/vod/t1/360p/seg-0.m4s', msn: 0, durationSec: 4 },
    { url: '/vod/t1/shared/seg-1.m4s', msn: 1, durationSec: 3.5 },
  ])
  t.same(info.maps, ['/vod/t1/360p/init.mp4'])
  t.equal(info.lastMsn, 1)
  t.equal(info.lastPartCount, undefined)
})

t.test('live and EVENT playlists without ENDLIST are live; an ended EVENT is not', async (t) => {
  const live = parsePlaylist('#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:41\n#EXTINF:2,\na.ts\n#EXTINF:2,\nb.ts\n', '/live/s/index.m3u8')
  t.match(live, { kind: 'media', live: true, mediaSequence: 41, lastMsn: 42 })
  const event = parsePlaylist('#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-PLAYLIST-TYPE:EVENT\n#EXTINF:2,\na.ts\n', '/e/index.m3u8')
  t.match(event, { kind: 'media', live: true, playlistType: 'EVENT' })
  const ended = parsePlaylist('#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-PLAYLIST-TYPE:EVENT\n#EXTINF:2,\na.ts\n#EXT-X-ENDLIST\n', '/e/index.m3u8')
  t.match(ended, { kind: 'media', live: false })
})

t.test('LL-HLS: parts, the preload hint and the segment being built', async (t) => {
  const text = `#EXTM3U
#EXT-X-VERSION:9
#EXT-X-TARGETDURATION:4
#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=3.0
#EXT-X-PART-INF:PART-TARGET=1.0
#EXT-X-MEDIA-SEQUENCE:10
#EXT-X-MAP:URI="init.mp4"
#EXT-X-PART:DURATION=1.0,URI="seg-10.0.m4s",INDEPENDENT=YES
#EXTINF:4.0,
seg-10.m4s
#EXT-X-PART:DURATION=1.0,URI="seg-11.0.m4s",INDEPENDENT=YES
#EXT-X-PART:DURATION=1.0,URI="seg-11.1.m4s"
#EXT-X-PRELOAD-HINT:TYPE=PART,URI="seg-11.2.m4s"
`
  const info = parsePlaylist(text, '/ll/a/index.m3u8')
  t.equal(info?.kind, 'media')
  if (info?.kind !== 'media') return
  t.equal(info.canBlockReload, true)
  t.equal(info.partTargetSec, 1)
  t.same(info.segments.map((s) => s.url), ['/ll/a/seg-10.m4s'])
  t.same(info.parts.map((p) => [p.url, p.msn, p.index, p.hint]), [
    ['/ll/a/seg-10.0.m4s', 10, 0, false],
    ['/ll/a/seg-11.0.m4s', 11, 0, false],
    ['/ll/a/seg-11.1.m4s', 11, 1, false],
    ['/ll/a/seg-11.2.m4s', 11, 2, true],
  ])
  t.equal(info.lastMsn, 11, 'the segment being built counts as the newest position')
  t.equal(info.lastPartCount, 2, 'with two published parts')
})

t.test('a delta update (EXT-X-SKIP) counts the skipped segments in the sequence', async (t) => {
  const text = '#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-TARGETDURATION:4\n#EXT-X-SERVER-CONTROL:CAN-SKIP-UNTIL=24\n#EXT-X-MEDIA-SEQUENCE:100\n#EXT-X-SKIP:SKIPPED-SEGMENTS=3\n#EXTINF:4,\nseg-103.ts\n'
  const info = parsePlaylist(text, '/l/index.m3u8?_HLS_skip=YES')
  t.match(info, { kind: 'media', skippedSegments: 3, lastMsn: 103 })
  if (info?.kind === 'media') t.same(info.segments.map((s) => [s.url, s.msn]), [['/l/seg-103.ts', 103]])
})

t.test('bodies that are not playlists are undefined', async (t) => {
  t.equal(parsePlaylist('<html>nope</html>', '/a.m3u8'), undefined)
  t.equal(parsePlaylist('#EXTM3U\ngarbage', '/a.m3u8'), undefined, 'the parser refuses it')
  t.equal(parsePlaylist('#EXTM3U\n#EXTINF:2,\na.ts\n#EXT-X-STREAM-INF:BANDWIDTH=1\nb.m3u8\n', '/a.m3u8'), undefined, 'media and variant tags mixed')
  t.equal(parsePlaylist('#EXTM3U\n#EXTINF:2,\na.ts\n', '/a.m3u8'), undefined, 'a media playlist without EXT-X-TARGETDURATION')
  t.same(parsePlaylist('#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\n#EXTINF:2,\na.ts\n', '/a.m3u8'), { kind: 'master', variants: [] }, 'a variant without a URI line is dropped')
  t.equal(parsePlaylist('', '/a.m3u8'), undefined)
})

t.test('URI resolution stays on this host', async (t) => {
  t.equal(resolveUri('seg.ts', '/a/b/index.m3u8'), '/a/b/seg.ts')
  t.equal(resolveUri('/abs/seg.ts?x=1', '/a/b/index.m3u8'), '/abs/seg.ts?x=1')
  t.equal(resolveUri('../../../../seg.ts', '/a/b/index.m3u8'), '/seg.ts', 'dot segments never climb above the root')
  t.equal(resolveUri('https://cdn.example/seg.ts', '/a/index.m3u8'), undefined)
  t.equal(resolveUri('//other.example/seg.ts', '/a/index.m3u8'), undefined)
  t.equal(resolveUri('data:text/plain,x', '/a/index.m3u8'), undefined)
  t.equal(resolveUri('', '/a/index.m3u8'), undefined)
})

t.test('normalizePlaylistUrls rewrites every URI and keeps ones the normaliser refuses', async (t) => {
  const info = parsePlaylist('#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\na.ts?b=2&a=1\n#EXTINF:2,\nbad.ts\n', '/l/index.m3u8')
  if (info?.kind !== 'media') return t.fail('expected a media playlist')
  const out = normalizePlaylistUrls(info, (url) => {
    if (url.includes('bad')) throw new Error('refused')
    return url.replace('b=2&a=1', 'a=1&b=2')
  })
  t.same(out.segments.map((s) => s.url), ['/l/a.ts?a=1&b=2', '/l/bad.ts'])
})
