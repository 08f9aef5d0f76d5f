/**
 * The rendition index: recording, segment lookup by directory, titles from masters,
 * position ordering, and the memory bounds (renditions, segments, masters).
 */
import t from 'tap'
import { parsePlaylist, type MasterPlaylistInfo, type MediaPlaylistInfo } from '../../../edge/hls/playlist.ts'
import { comparePositions, positionOf, RenditionIndex } from '../../../edge/hls/rendition-index.ts'

function media (url: string, first: number, count: number, opts: { live?: boolean, prefix?: string } = {}): MediaPlaylistInfo {
  const lines = ['#EXTM3U', '#EXT-X-TARGETDURATION:4', `#EXT-X-MEDIA-SEQUENCE:${first}`]
  for (let i = first; i < first + count; i++) lines.push('#EXTINF:4,', `${opts.prefix ?? ''}seg-${i}.ts`)
  if (opts.live !== true) lines.push('#EXT-X-ENDLIST')
  const info = parsePlaylist(lines.join('\n') + '\n', url)
  if (info?.kind !== 'media') throw new Error('fixture is not a media playlist')
  return info
}

t.test('segments are found by URL with their position; maps at -1', async (t) => {
  const index = new RenditionIndex({ maxRenditions: 10, maxSegments: 100 })
  const text = '#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXT-X-MAP:URI="init.mp4"\n#EXTINF:4,\nseg-0.m4s\n#EXTINF:4,\nseg-1.m4s\n#EXT-X-ENDLIST\n'
  const info = parsePlaylist(text, '/vod/t/360p/index.m3u8') as MediaPlaylistInfo
  index.recordMedia('/vod/t/360p/index.m3u8', info, 1000)
  t.equal(index.locateSegment('/vod/t/360p/seg-1.m4s')?.position, 1)
  t.equal(index.locateSegment('/vod/t/360p/init.mp4')?.position, -1)
  t.equal(index.locateSegment('/vod/t/360p/seg-9.m4s'), undefined)
  t.equal(index.locateSegment('/vod/t/180p/seg-1.m4s'), undefined)
  t.equal(index.renditionNear('/vod/t/360p/seg-9.m4s')?.url, '/vod/t/360p/index.m3u8', 'an unlisted segment finds its rendition by directory')
  t.equal(index.segments, 3)
  t.equal(index.renditions, 1)
})

t.test('a playlist whose segments live in a sub-directory is found from them', async (t) => {
  const index = new RenditionIndex({ maxRenditions: 10, maxSegments: 100 })
  index.recordMedia('/live/t/index.m3u8', media('/live/t/index.m3u8', 5, 3, { live: true, prefix: '360p/' }), 0)
  t.equal(index.locateSegment('/live/t/360p/seg-6.ts')?.entry.url, '/live/t/index.m3u8')
  t.equal(index.renditionNear('/live/t/360p/seg-99.ts')?.url, '/live/t/index.m3u8')
})

t.test('re-recording replaces the rendition; advancedMs moves only when the position does', async (t) => {
  const index = new RenditionIndex({ maxRenditions: 10, maxSegments: 100 })
  const url = '/live/a/index.m3u8'
  index.recordMedia(url, media(url, 10, 3, { live: true }), 1000)
  const same = index.recordMedia(url, media(url, 10, 3, { live: true }), 2000)
  t.equal(same.previous?.updatedMs, 1000)
  t.equal(same.entry?.advancedMs, 1000, 'same position: not advanced')
  const moved = index.recordMedia(url, media(url, 11, 3, { live: true }), 3000)
  t.equal(moved.entry?.advancedMs, 3000)
  t.equal(index.locateSegment('/live/a/seg-10.ts'), undefined, 'segments that left the window are forgotten')
  t.equal(index.locateSegment('/live/a/seg-13.ts')?.position, 2)
  t.equal(index.segments, 3)
})

t.test('bounds: least recently used renditions go first', async (t) => {
  const index = new RenditionIndex({ maxRenditions: 2, maxSegments: 10 })
  index.recordMedia('/a/index.m3u8', media('/a/index.m3u8', 0, 4), 0)
  index.recordMedia('/b/index.m3u8', media('/b/index.m3u8', 0, 4), 0)
  t.ok(index.locateSegment('/a/seg-0.ts'), 'touch /a')
  index.recordMedia('/c/index.m3u8', media('/c/index.m3u8', 0, 4), 0)
  t.equal(index.renditions, 2)
  t.ok(index.rendition('/a/index.m3u8'), 'recently used survives')
  t.equal(index.rendition('/b/index.m3u8'), undefined, 'least recently used evicted')
  index.recordMedia('/d/index.m3u8', media('/d/index.m3u8', 0, 8), 0)
  t.ok(index.segments <= 10, 'segment budget holds')
  t.same(index.recordMedia('/e/index.m3u8', media('/e/index.m3u8', 0, 11), 0).entry, undefined, 'a playlist bigger than the budget is not indexed')
  t.throws(() => new RenditionIndex({ maxRenditions: 0, maxSegments: 1 }), TypeError)
  t.throws(() => new RenditionIndex({ maxRenditions: 1, maxSegments: 1, maxMasters: -1 }), TypeError)
})

t.test('titles come from masters; the longest known prefix wins', async (t) => {
  const index = new RenditionIndex({ maxRenditions: 10, maxSegments: 100, maxMasters: 2 })
  const master = parsePlaylist('#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\n360p/index.m3u8\n', '/vod/t1/master.m3u8') as MasterPlaylistInfo
  index.recordMaster('/vod/t1/master.m3u8', master, 0)
  index.recordMaster('/vod/t1/extra/master.m3u8', master, 0)
  t.equal(index.titleOf('/vod/t1/360p/seg-1.ts'), '/vod/t1/')
  t.equal(index.titleOf('/vod/t1/extra/360p/seg-1.ts'), '/vod/t1/extra/')
  t.equal(index.titleOf('/vod/t2/360p/seg-1.ts'), undefined)
  t.equal(index.master('/vod/t1/master.m3u8')?.variants[0]?.url, '/vod/t1/360p/index.m3u8')
  index.recordMaster('/vod/t3/master.m3u8', master, 0)
  t.equal(index.masters, 2)
  t.equal(index.titleOf('/vod/t1/360p/seg-1.ts'), undefined, 'the oldest master was forgotten')
  t.same([...index.masterEntries()].map((m) => m.title), ['/vod/t1/extra/', '/vod/t3/'])
})

t.test('positions order by media sequence number, then parts (a complete segment last)', async (t) => {
  t.ok(comparePositions({ msn: 10, part: Infinity }, { msn: 11, part: 0 }) < 0)
  t.ok(comparePositions({ msn: 11, part: 2 }, { msn: 11, part: 1 }) > 0)
  t.ok(comparePositions({ msn: 11, part: Infinity }, { msn: 11, part: 3 }) > 0)
  t.equal(comparePositions({ msn: 11, part: Infinity }, { msn: 11, part: Infinity }), 0)
  t.same(positionOf(media('/x/index.m3u8', 7, 2, { live: true })), { msn: 8, part: Infinity })
})
