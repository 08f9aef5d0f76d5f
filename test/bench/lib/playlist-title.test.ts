/**
 * The ~1.5 KiB playlist title the hot-playlist scenario writes for the demo origin.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { startOrigin } from '../../../bench/origin/origin-server.ts'
import { httpGet } from '../../../bench/lib/http-get.ts'
import { mediaPlaylist, segmentsForPlaylistBytes, writePlaylistTitle } from '../../../bench/lib/playlist-title.ts'

t.test('mediaPlaylist is a VOD playlist with the segments in order', async (t) => {
  const text = mediaPlaylist(3)
  t.match(text, /^#EXTM3U\n/)
  t.match(text, /#EXT-X-TARGETDURATION:4\n/)
  t.match(text, /segment-00000\.ts\n#EXTINF:4\.000000,\nsegment-00001\.ts/)
  t.match(text, /#EXT-X-ENDLIST\n$/)
  const n = segmentsForPlaylistBytes(1536)
  t.ok(Buffer.byteLength(mediaPlaylist(n)) >= 1536 && Buffer.byteLength(mediaPlaylist(n - 1)) < 1536, 'the fewest segments that reach the size')
})

t.test('the demo origin serves a written title', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'streamedge-test-media-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const title = await writePlaylistTitle(dir, 'long', 1536)
  t.equal(title.playlistPath, '/vod/long/v/index.m3u8')
  const origin = await startOrigin({ mediaDir: dir })
  t.teardown(() => origin.close())
  const res = await httpGet(origin.url + title.playlistPath)
  t.equal(res.status, 200)
  t.equal(res.body.length, title.playlistBytes)
  t.match(String(res.headers['content-type']), /mpegurl/)
  t.match(String(res.headers['cache-control']), /max-age=300/)
  const seg = await httpGet(`${origin.url}/vod/long/v/segment-00000.ts`)
  t.equal(seg.status, 200)
  t.equal(seg.body[0], 0x47, 'segments are MPEG-TS packets')
})
