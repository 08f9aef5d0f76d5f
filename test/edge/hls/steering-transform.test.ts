/**
 * The per-response content-steering rewrite: which responses get one (.m3u8 paths whose body
 * is a multivariant playlist), what the SERVER-URI carries (the session's token, or the title
 * without one; this edge as the pathway), that a stored body shared by many sessions is never
 * changed and each session gets its own URI, that a bad pathway id or control-plane URL is
 * refused when the transform is made (not on every master playlist served), and the rewrite
 * on a real edge's miss and hit.
 */
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { parse as parseHls, types as hlsTypes } from 'hls-parser'
import t from 'tap'
import { steeringTransform } from '../../../edge/hls/steering-transform.ts'
import { PATHWAY_QUERY_PARAM, STEERING_MANIFEST_PATH, TITLE_QUERY_PARAM } from '../../../lib/protocol/steering.ts'
import { TOKEN_QUERY_PARAM } from '../../../lib/protocol/token.ts'
import { startTestNode } from '../../helpers/cache-node.ts'

const CP = 'http://cp.example.net:8080/'
const EDGE = 'edge-fra-1'

const MASTER = [
  '#EXTM3U',
  '#EXT-X-VERSION:7',
  '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud",NAME="en",DEFAULT=YES,URI="audio/en.m3u8"',
  '#EXT-X-STREAM-INF:BANDWIDTH=800000,RESOLUTION=640x360,AUDIO="aud"',
  '360p/index.m3u8',
  '#EXT-X-STREAM-INF:BANDWIDTH=2400000,RESOLUTION=1280x720,AUDIO="aud"',
  '720p/index.m3u8',
  '#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=90000,URI="360p/iframes.m3u8"',
  '',
].join('\n')

const MEDIA = '#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXTINF:4.0,\nseg-0.ts\n#EXT-X-ENDLIST\n'

/** A transform whose token lookup reads the "request" (here just the token) and counts calls. */
function make (pathwayId = EDGE, controlPlaneUrl = CP): { rewrite: ReturnType<typeof steeringTransform<string | undefined>>, lookups: () => number } {
  let lookups = 0
  const rewrite = steeringTransform<string | undefined>(controlPlaneUrl, pathwayId, (token) => { lookups++; return token })
  return { rewrite, lookups: () => lookups }
}

function apply (rewrite: ReturnType<typeof make>['rewrite'], token: string | undefined, url: string, body: Buffer): string | undefined {
  const transform = rewrite(token, url)
  if (transform === undefined) throw new Error(`no transform for ${url}`)
  return transform(body)?.toString('utf8')
}

/**
 * The SERVER-URI of the playlist's EXT-X-CONTENT-STEERING tag, parsed, after checking that
 * hls-parser still reads the playlist as a master and that every variant is on this edge's
 * pathway (hls-parser 0.16 reads neither the steering tag nor PATHWAY-ID, so those by hand).
 */
function steeringOf (t: Tap, text: string): URL {
  const playlist = parseHls(text)
  if (!(playlist instanceof hlsTypes.MasterPlaylist)) throw new Error('not a master playlist')
  const variantLines = text.split(/\r?\n/).filter((l) => /^#EXT-X-(I-FRAME-)?STREAM-INF:/.test(l))
  t.equal(variantLines.length, playlist.variants.length, 'hls-parser sees every variant')
  t.ok(variantLines.every((l) => l.match(/PATHWAY-ID="[^"]*"/g)?.join() === `PATHWAY-ID="${EDGE}"`), 'every variant is on this edge\'s pathway, once')
  const tags = [...text.matchAll(/^#EXT-X-CONTENT-STEERING:SERVER-URI="([^"]*)",PATHWAY-ID="([^"]*)"\r?$/gm)]
  t.equal(tags.length, 1, 'one steering tag')
  const [, serverUri = '', pathwayId] = tags[0] ?? []
  t.equal(pathwayId, EDGE, 'the steering tag names this edge')
  return new URL(serverUri)
}

type Tap = Parameters<Parameters<typeof t.test>[0]>[0]

t.test('a bad pathway id or control-plane URL is refused when the transform is made, naming the value', async (t) => {
  for (const id of ['', 'edge 1', 'e'.repeat(65), 'édge', 'edge"1']) {
    t.throws(() => make(id), { name: 'TypeError', message: `Expected pathwayId to be 1-64 letters, digits, '.', '_' or '-', got ${JSON.stringify(id)}` }, JSON.stringify(id))
  }
  t.doesNotThrow(() => make('e'.repeat(64)), 'a 64-character id is a pathway id')
  for (const url of ['', 'cp.example.net:8080', '/relative', 'ftp://cp.example.net/', 'not a url']) {
    t.throws(() => make(EDGE, url), { name: 'TypeError', message: `Expected controlPlaneUrl to be an absolute http(s) URL, got ${JSON.stringify(url)}` }, JSON.stringify(url))
  }
  t.doesNotThrow(() => make(EDGE, 'https://cp.example.net'))
})

t.test('only .m3u8 paths get a rewrite; the token is looked up only for them', async (t) => {
  const { rewrite, lookups } = make()
  t.equal(rewrite('tok', '/vod/t/360p/seg-1.ts'), undefined)
  t.equal(rewrite('tok', '/vod/t/360p/seg-1.ts?fake=x.m3u8'), undefined, 'the query is not the path')
  t.equal(rewrite('tok', '/vod/t/init.mp4'), undefined)
  t.equal(lookups(), 0, 'segments cost no token lookup')
  t.type(rewrite('tok', '/vod/t/master.m3u8'), 'function')
  t.type(rewrite('tok', '/vod/t/master.m3u8?a=1&b=2'), 'function')
  t.equal(lookups(), 2)
})

t.test('a master playlist gets EXT-X-CONTENT-STEERING with the session token and this edge as its pathway', async (t) => {
  const { rewrite } = make()
  const token = 'v1.ab+c/d=e&f'
  const text = apply(rewrite, token, '/vod/t/master.m3u8?x=1', Buffer.from(MASTER))!
  const lines = text.split('\n')
  t.equal(lines[0], '#EXTM3U')
  t.match(lines[1], /^#EXT-X-CONTENT-STEERING:SERVER-URI="[^"]+",PATHWAY-ID="edge-fra-1"$/, 'right after #EXTM3U')
  const uri = steeringOf(t, text)
  t.equal(uri.origin + uri.pathname, `http://cp.example.net:8080${STEERING_MANIFEST_PATH}`, 'absolute, on the control plane')
  t.equal(uri.searchParams.get(TOKEN_QUERY_PARAM), token, 'the token, escaped and intact')
  t.equal(uri.searchParams.get(PATHWAY_QUERY_PARAM), EDGE)
  t.equal(uri.searchParams.get(TITLE_QUERY_PARAM), null, 'the token names the title')
  t.match(text, /^#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud",NAME="en",DEFAULT=YES,URI="audio\/en.m3u8"$/m, 'renditions are left alone')
  t.match(text, /^#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=90000,URI="360p\/iframes.m3u8",PATHWAY-ID="edge-fra-1"$/m)
  t.equal(text.replace(/^#EXT-X-CONTENT-STEERING:.*\n/m, '').replaceAll(',PATHWAY-ID="edge-fra-1"', ''), MASTER, 'nothing else changed')
})

t.test('without a token the SERVER-URI names the title: the playlist\'s directory', async (t) => {
  const { rewrite } = make()
  const cases: Array<[string, string]> = [
    ['/vod/t/master.m3u8?session=9', '/vod/t/'],
    ['/live/channel-1/hd/master.m3u8', '/live/channel-1/hd/'],
    ['/master.m3u8', '/'],
  ]
  for (const [url, title] of cases) {
    const uri = steeringOf(t, apply(rewrite, undefined, url, Buffer.from(MASTER))!)
    t.equal(uri.searchParams.get(TITLE_QUERY_PARAM), title, url)
    t.equal(uri.searchParams.get(TOKEN_QUERY_PARAM), null)
    t.equal(uri.searchParams.get(PATHWAY_QUERY_PARAM), EDGE)
  }
})

t.test('media playlists and anything that is not a multivariant playlist are served as stored', async (t) => {
  const { rewrite } = make()
  const bodies = [
    MEDIA,
    '',
    '{"error":"not found"}',
    'junk #EXT-X-STREAM-INF:BANDWIDTH=1\nx.m3u8\n',
    '#EXTM3U\n# a comment mentioning #EXT-X-STREAM-INF without a colon\n',
  ]
  for (const body of bodies) t.equal(apply(rewrite, 'tok', '/vod/t/index.m3u8', Buffer.from(body)), undefined, JSON.stringify(body.slice(0, 30)))
  const binary = Buffer.from([0x47, 0x40, 0x00, 0x10, 0xff, 0xfe])
  t.equal(apply(rewrite, 'tok', '/vod/t/odd.m3u8', binary), undefined)
})

t.test('one stored body, many sessions: each gets its own SERVER-URI and the stored bytes never change', async (t) => {
  const { rewrite } = make()
  const body = Buffer.from(MASTER)
  const copy = Buffer.from(body)
  const tokens = ['alice', 'bob', undefined, 'alice']
  const uris = tokens.map((token) => steeringOf(t, apply(rewrite, token, '/vod/t/master.m3u8', body)!))
  t.same(uris.map((u) => u.searchParams.get(TOKEN_QUERY_PARAM)), ['alice', 'bob', null, 'alice'])
  t.equal(uris[2]!.searchParams.get(TITLE_QUERY_PARAM), '/vod/t/')
  t.ok(body.equals(copy), 'the stored body is untouched')
  const media = Buffer.from(MEDIA)
  t.equal(apply(rewrite, 'alice', '/vod/t/index.m3u8', media), undefined)
  t.equal(apply(rewrite, 'bob', '/vod/t/index.m3u8', media), undefined, 'a media body stays a media body on its next hit')
})

t.test('the origin\'s own steering tag and pathway ids are replaced; CRLF playlists stay CRLF', async (t) => {
  const { rewrite } = make()
  const origin = [
    '#EXTM3U',
    '#EXT-X-CONTENT-STEERING:SERVER-URI="https://origin.example/steer.json",PATHWAY-ID="origin-cdn"',
    '#EXT-X-STREAM-INF:BANDWIDTH=800000,PATHWAY-ID="origin-cdn",RESOLUTION=640x360',
    '360p/index.m3u8',
    '',
  ].join('\r\n')
  const text = apply(rewrite, 'tok', '/vod/t/master.m3u8', Buffer.from(origin))!
  t.equal(text.match(/#EXT-X-CONTENT-STEERING:/g)?.length, 1, 'one steering tag')
  t.notMatch(text, /origin-cdn|origin\.example/, 'nothing of the origin\'s steering is left')
  t.match(text, /#EXT-X-STREAM-INF:BANDWIDTH=800000,PATHWAY-ID="edge-fra-1",RESOLUTION=640x360\r\n/)
  t.notMatch(text.replaceAll('\r\n', ''), /\n/, 'every line ends in CRLF')
  steeringOf(t, text)
})

t.test('on a real edge, the miss and the hit of a master playlist both carry steering; media playlists do not', async (t) => {
  const origin = http.createServer((req, res) => {
    const body = req.url?.endsWith('master.m3u8') === true ? MASTER : MEDIA
    res.writeHead(200, { 'content-type': 'application/vnd.apple.mpegurl', 'cache-control': 'max-age=60' })
    res.end(body)
  })
  await new Promise<void>((resolve) => origin.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => { origin.closeAllConnections(); origin.close(() => resolve()) }))
  const node = await startTestNode(t, {
    id: EDGE,
    origin: `http://127.0.0.1:${(origin.address() as AddressInfo).port}`,
    controlPlane: { url: CP, heartbeatIntervalMs: 60_000 },
  })
  for (const round of ['miss', 'hit']) {
    const res = await fetch(`${node.url}/vod/t/master.m3u8`)
    const text = await res.text()
    t.equal(res.status, 200, round)
    t.equal(res.headers.get('content-length'), String(Buffer.byteLength(text)), `${round}: the length is the rewritten body's`)
    t.match(res.headers.get('cache-status') ?? '', round === 'hit' ? /; hit/ : /fwd=/, round)
    t.equal(steeringOf(t, text).searchParams.get(TITLE_QUERY_PARAM), '/vod/t/', `${round}: steered`)
  }
  for (const round of ['miss', 'hit']) {
    const res = await fetch(`${node.url}/vod/t/360p/index.m3u8`)
    t.equal(await res.text(), MEDIA, `media playlist ${round}: as the origin sent it`)
  }
})
