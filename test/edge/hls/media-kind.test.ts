/**
 * Playlist / segment classification by extension first, Content-Type second, and the
 * small URL helpers.
 */
import t from 'tap'
import { directoryOf, extensionOf, mediaKindOf, pathOf, isPlaylistUrl } from '../../../edge/hls/media-kind.ts'

t.test('extensions decide first', async (t) => {
  t.equal(mediaKindOf('/a/index.m3u8'), 'playlist')
  t.equal(mediaKindOf('/a/index.M3U8?x=1'), 'playlist', 'case-insensitive, query ignored')
  for (const ext of ['ts', 'm4s', 'mp4', 'aac', 'vtt', 'm4a', 'cmfv']) t.equal(mediaKindOf(`/a/seg-1.${ext}`), 'segment', ext)
  t.equal(mediaKindOf('/a/seg.ts', 'text/html'), 'segment', 'a known extension beats a wrong type')
  t.equal(mediaKindOf('/a/v1.2/readme'), 'other', 'a dot in a directory is not an extension')
})

t.test('Content-Type decides for unknown extensions', async (t) => {
  t.equal(mediaKindOf('/a/playlist', 'application/vnd.apple.mpegurl'), 'playlist')
  t.equal(mediaKindOf('/a/p', 'Application/X-MPEGURL; charset=utf-8'), 'playlist')
  t.equal(mediaKindOf('/a/chunk', 'video/mp2t'), 'segment')
  t.equal(mediaKindOf('/a/chunk', 'video/iso.segment'), 'segment')
  t.equal(mediaKindOf('/a/page', 'text/html'), 'other')
  t.equal(mediaKindOf('/a/page'), 'other')
})

t.test('URL helpers', async (t) => {
  t.equal(extensionOf('/a/b.TS?x=y.z'), 'ts')
  t.equal(extensionOf('/a/b'), '')
  t.equal(pathOf('/a/b.ts?x=1'), '/a/b.ts')
  t.equal(directoryOf('/a/b/c.ts?x=/y'), '/a/b/')
  t.equal(directoryOf('/c.ts'), '/')
})

t.test('isPlaylistUrl: the extension of the path, not of the query', async (t) => {
  t.ok(isPlaylistUrl('/vod/t/master.m3u8'))
  t.ok(isPlaylistUrl('/vod/t/INDEX.M3U8?v=1'))
  t.ok(isPlaylistUrl('/radio.m3u'))
  t.notOk(isPlaylistUrl('/vod/t/seg.ts?x=.m3u8'))
  t.notOk(isPlaylistUrl('/vod/t.m3u8/seg.ts'))
})
