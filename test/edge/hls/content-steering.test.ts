/**
 * Content steering on multivariant playlists: the EXT-X-CONTENT-STEERING tag after #EXTM3U,
 * PATHWAY-ID on every variant (EXT-X-STREAM-INF and EXT-X-I-FRAME-STREAM-INF), existing tags
 * and attributes replaced, media playlists untouched, line endings kept, bad input refused.
 */
import { readFile } from 'node:fs/promises'
import t from 'tap'
import { addContentSteering, isMultivariantPlaylist } from '../../../edge/hls/content-steering.ts'
import { steeringServerUri } from '../../../lib/protocol/steering.ts'

const SERVER_URI = 'http://cp.example:8090/v1/steering/manifest?se_token=abc.def&pathway=edge-1'

const MASTER = [
  '#EXTM3U',
  '#EXT-X-VERSION:6',
  '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud",NAME="en",DEFAULT=YES,URI="audio/index.m3u8"',
  '#EXT-X-STREAM-INF:BANDWIDTH=800000,RESOLUTION=640x360,CODECS="avc1.4d401e,mp4a.40.2",AUDIO="aud"',
  '360p/index.m3u8',
  '#EXT-X-STREAM-INF:BANDWIDTH=300000,PATHWAY-ID="origin-a",RESOLUTION=320x180',
  '180p/index.m3u8',
  '#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=90000,URI="360p/iframes.m3u8"',
  '',
].join('\n')

t.test('adds the steering tag and a pathway on every variant', async (t) => {
  const out = addContentSteering(MASTER, { serverUri: SERVER_URI, pathwayId: 'edge-1' })
  const lines = out.split('\n')
  t.equal(lines[0], '#EXTM3U')
  t.equal(lines[1], `#EXT-X-CONTENT-STEERING:SERVER-URI="${SERVER_URI}",PATHWAY-ID="edge-1"`)
  t.equal(lines.filter((l) => l.startsWith('#EXT-X-CONTENT-STEERING')).length, 1)
  t.equal(lines[4], '#EXT-X-STREAM-INF:BANDWIDTH=800000,RESOLUTION=640x360,CODECS="avc1.4d401e,mp4a.40.2",AUDIO="aud",PATHWAY-ID="edge-1"')
  t.equal(lines[6], '#EXT-X-STREAM-INF:BANDWIDTH=300000,PATHWAY-ID="edge-1",RESOLUTION=320x180', 'an origin pathway is replaced in place')
  t.equal(lines[8], '#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=90000,URI="360p/iframes.m3u8",PATHWAY-ID="edge-1"')
  t.equal(lines[3], '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud",NAME="en",DEFAULT=YES,URI="audio/index.m3u8"', 'renditions follow their variant by GROUP-ID')
  t.equal(lines.at(-1), '', 'the final newline is kept')
  t.equal(addContentSteering(out, { serverUri: SERVER_URI, pathwayId: 'edge-1' }), out, 'idempotent')
  const moved = addContentSteering(out, { serverUri: SERVER_URI.replace('edge-1', 'edge-2'), pathwayId: 'edge-2' })
  t.equal(moved.match(/PATHWAY-ID="edge-2"/g)?.length, 4, 'a second rewrite replaces every pathway')
  t.notMatch(moved, /edge-1/)
})

t.test('the demo origin masters are rewritten; CRLF playlists keep CRLF', async (t) => {
  for (const title of ['bbb-test', 'bars']) {
    const master = await readFile(new URL(`../../../bench/origin/media/vod/${title}/master.m3u8`, import.meta.url), 'utf8')
    t.ok(isMultivariantPlaylist(master), `${title} is a multivariant playlist`)
    const out = addContentSteering(master, { serverUri: SERVER_URI, pathwayId: 'edge-1' })
    const variants = master.split('\n').filter((l) => l.startsWith('#EXT-X-STREAM-INF')).length
    t.equal(out.match(/PATHWAY-ID="edge-1"/g)?.length, variants + 1, `${title}: every variant and the tag`)
  }
  const crlf = MASTER.replace(/\n/g, '\r\n')
  const out = addContentSteering(crlf, { serverUri: SERVER_URI, pathwayId: 'edge-1' })
  t.notMatch(out.replace(/\r\n/g, ''), /\n/, 'no bare LF introduced')
})

t.test('media playlists and non-playlists are returned unchanged', async (t) => {
  const media = '#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXTINF:4,\nseg-0.ts\n#EXT-X-ENDLIST\n'
  t.equal(addContentSteering(media, { serverUri: SERVER_URI, pathwayId: 'edge-1' }), media)
  t.equal(addContentSteering('not a playlist #EXT-X-STREAM-INF:', { serverUri: SERVER_URI, pathwayId: 'edge-1' }), 'not a playlist #EXT-X-STREAM-INF:')
  t.notOk(isMultivariantPlaylist(media))
})

t.test('bad options are refused: quoted-strings cannot hold quotes, relative URIs would resolve against the edge', async (t) => {
  t.throws(() => addContentSteering(MASTER, { serverUri: '/v1/steering/manifest', pathwayId: 'edge-1' }), TypeError)
  t.throws(() => addContentSteering(MASTER, { serverUri: 'http://cp/"x', pathwayId: 'edge-1' }), TypeError)
  t.throws(() => addContentSteering(MASTER, { serverUri: SERVER_URI, pathwayId: 'edge 1' }), TypeError)
})

t.test('steeringServerUri builds the absolute manifest URL the edge puts in the tag', async (t) => {
  t.equal(steeringServerUri('http://cp.example:8090', { token: 'abc.def', pathwayId: 'edge-1' }), 'http://cp.example:8090/v1/steering/manifest?se_token=abc.def&pathway=edge-1')
  t.equal(steeringServerUri('http://cp.example:8090/', { pathwayId: 'edge-1', title: '/vod/t/' }), 'http://cp.example:8090/v1/steering/manifest?title=%2Fvod%2Ft%2F&pathway=edge-1')
  t.throws(() => steeringServerUri('http://cp', { pathwayId: 'a b' }), TypeError)
})
