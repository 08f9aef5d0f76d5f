/**
 * The playlist token rewrite: `/t/<token>` goes in front of the path of root-relative URIs and
 * of absolute URIs naming the request's Host, on URI lines and on the URI attribute of every tag
 * a player follows; relative URIs, URIs to other hosts (lookalikes included) and URIs that
 * already carry a token are left alone; every other byte stays (CRLF, comments, unknown tags, a
 * BOM, non-UTF-8 bytes); a body with nothing to do costs no rewrite and is decided once per
 * Buffer; which responses get the rewrite; its composition with content steering; and on a real
 * edge, the fast path still answering relative-only playlists while the others are served
 * rewritten (miss, hit, HEAD), Host by Host.
 */
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { parse as parseHls, types as hlsTypes } from 'hls-parser'
import t from 'tap'
import { steeringTransform } from '../../../edge/hls/steering-transform.ts'
import { chainRewrites, playlistRewrites, tokenUris, tokenUrisTransform } from '../../../edge/hls/token-uris.ts'
import { TokenKey, TokenSigner, TokenVerifier } from '../../../lib/protocol/token.ts'
import { startTestNode } from '../../helpers/cache-node.ts'
import { fetchRaw } from '../../helpers/http-client.ts'

const TOKEN = `eyJ2IjoxLCJrIjoiazEifQ.${'A'.repeat(21)}_${'b'.repeat(21)}`
const T = `/t/${TOKEN}`
const HOST = 'edge.test'
const CP = 'http://cp.example.net:8080/'

const MASTER = [
  '#EXTM3U',
  '#EXT-X-VERSION:7',
  '# packaged by a tool that writes /root/paths and http://edge.test/x in comments',
  '#EXT-X-UNKNOWN-TAG:URI="/vod/title/unknown"',
  '#EXT-X-SESSION-DATA:DATA-ID="com.example.lyrics",URI="/vod/title/lyrics.json"',
  '#EXT-X-SESSION-KEY:METHOD=AES-128,URI="/vod/keys/session"',
  '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud",NAME="en, main",DEFAULT=YES,URI="/vod/title/audio/en.m3u8"',
  '#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID="subs",NAME="fr",URI="http://subs.other.example/vod/title/fr.m3u8"',
  '#EXT-X-STREAM-INF:BANDWIDTH=800000,RESOLUTION=640x360,AUDIO="aud",SUBTITLES="subs"',
  '/vod/title/360p/index.m3u8',
  '#EXT-X-STREAM-INF:BANDWIDTH=2400000,RESOLUTION=1280x720,AUDIO="aud"',
  'http://EDGE.test/vod/title/720p/index.m3u8?v=2',
  '#EXT-X-STREAM-INF:BANDWIDTH=4000000,RESOLUTION=1920x1080,AUDIO="aud"',
  '1080p/index.m3u8',
  '#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=90000,URI="/vod/title/360p/iframes.m3u8"',
  '',
].join('\r\n')

const MASTER_TOKENIZED = [
  '#EXTM3U',
  '#EXT-X-VERSION:7',
  '# packaged by a tool that writes /root/paths and http://edge.test/x in comments',
  '#EXT-X-UNKNOWN-TAG:URI="/vod/title/unknown"',
  `#EXT-X-SESSION-DATA:DATA-ID="com.example.lyrics",URI="${T}/vod/title/lyrics.json"`,
  `#EXT-X-SESSION-KEY:METHOD=AES-128,URI="${T}/vod/keys/session"`,
  `#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud",NAME="en, main",DEFAULT=YES,URI="${T}/vod/title/audio/en.m3u8"`,
  '#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID="subs",NAME="fr",URI="http://subs.other.example/vod/title/fr.m3u8"',
  '#EXT-X-STREAM-INF:BANDWIDTH=800000,RESOLUTION=640x360,AUDIO="aud",SUBTITLES="subs"',
  `${T}/vod/title/360p/index.m3u8`,
  '#EXT-X-STREAM-INF:BANDWIDTH=2400000,RESOLUTION=1280x720,AUDIO="aud"',
  `http://EDGE.test${T}/vod/title/720p/index.m3u8?v=2`,
  '#EXT-X-STREAM-INF:BANDWIDTH=4000000,RESOLUTION=1920x1080,AUDIO="aud"',
  '1080p/index.m3u8',
  `#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=90000,URI="${T}/vod/title/360p/iframes.m3u8"`,
  '',
].join('\r\n')

const MEDIA = [
  '#EXTM3U',
  '#EXT-X-VERSION:9',
  '#EXT-X-TARGETDURATION:4',
  '#EXT-X-PART-INF:PART-TARGET=1.0',
  '#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=3.0',
  '#EXT-X-MEDIA-SEQUENCE:10',
  '#EXT-X-KEY:METHOD=AES-128,URI="/vod/keys/k1",IV=0x00000000000000000000000000000001',
  '#EXT-X-MAP:URI="//edge.test/vod/title/360p/init.mp4"',
  '#EXTINF:4.0,',
  '/vod/title/360p/seg-10.m4s',
  '#EXTINF:4.0,',
  'https://edge.test:443/vod/title/360p/seg-11.m4s',
  '#EXTINF:4.0,',
  'http://cdn.other.example/vod/title/360p/seg-12.m4s',
  '#EXTINF:4.0,',
  `${T}/vod/title/360p/seg-13.m4s`,
  '#EXTINF:4.0,',
  '/vod/title/360p/seg-14.m4s?se_token=x',
  '#EXT-X-PART:DURATION=1.0,URI="/vod/title/360p/seg-15.0.m4s",INDEPENDENT=YES',
  '#EXT-X-PRELOAD-HINT:TYPE=PART,URI="http://edge.test/vod/title/360p/seg-15.1.m4s"',
  '#EXT-X-RENDITION-REPORT:URI="/vod/title/720p/index.m3u8",LAST-MSN=14,LAST-PART=0',
  '',
].join('\n')

const MEDIA_TOKENIZED = [
  '#EXTM3U',
  '#EXT-X-VERSION:9',
  '#EXT-X-TARGETDURATION:4',
  '#EXT-X-PART-INF:PART-TARGET=1.0',
  '#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=3.0',
  '#EXT-X-MEDIA-SEQUENCE:10',
  `#EXT-X-KEY:METHOD=AES-128,URI="${T}/vod/keys/k1",IV=0x00000000000000000000000000000001`,
  `#EXT-X-MAP:URI="//edge.test${T}/vod/title/360p/init.mp4"`,
  '#EXTINF:4.0,',
  `${T}/vod/title/360p/seg-10.m4s`,
  '#EXTINF:4.0,',
  `https://edge.test:443${T}/vod/title/360p/seg-11.m4s`,
  '#EXTINF:4.0,',
  'http://cdn.other.example/vod/title/360p/seg-12.m4s',
  '#EXTINF:4.0,',
  `${T}/vod/title/360p/seg-13.m4s`,
  '#EXTINF:4.0,',
  '/vod/title/360p/seg-14.m4s?se_token=x',
  `#EXT-X-PART:DURATION=1.0,URI="${T}/vod/title/360p/seg-15.0.m4s",INDEPENDENT=YES`,
  `#EXT-X-PRELOAD-HINT:TYPE=PART,URI="http://edge.test${T}/vod/title/360p/seg-15.1.m4s"`,
  `#EXT-X-RENDITION-REPORT:URI="${T}/vod/title/720p/index.m3u8",LAST-MSN=14,LAST-PART=0`,
  '',
].join('\n')

const RELATIVE_MEDIA = '#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXT-X-MAP:URI="init.mp4"\n#EXTINF:4.0,\nseg-0.m4s\n#EXTINF:4.0,\n../360p/seg-1.m4s\n#EXT-X-ENDLIST\n'

function rewrite (body: string | Buffer, host = HOST, token = TOKEN): string | undefined {
  return tokenUris(typeof body === 'string' ? Buffer.from(body, 'latin1') : body, token, host)?.toString('latin1')
}

/** A one-URI media playlist around `uri`. */
function oneUri (uri: string): string {
  return `#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXTINF:4.0,\n${uri}\n#EXT-X-ENDLIST\n`
}

t.test('root-relative and same-host URIs get the token on URI lines and on every tag a player follows', async (t) => {
  t.equal(rewrite(MASTER), MASTER_TOKENIZED, 'multivariant: session data, session key, media, variants, I-frames; CRLF kept')
  t.equal(rewrite(MEDIA), MEDIA_TOKENIZED, 'media: key, map, segments, parts, preload hint, rendition report')
  const master = parseHls(rewrite(MASTER) ?? '')
  if (!(master instanceof hlsTypes.MasterPlaylist)) throw new Error('not a master playlist')
  t.equal(master.variants.length, 4, 'still a multivariant playlist with every variant')
  // a player resolves each URI against where it got the playlist (RFC 3986 §5.2)
  const base = `http://${HOST}${T}/vod/title/master.m3u8`
  for (const variant of master.variants) {
    const url = new URL(variant.uri, base)
    t.ok(url.pathname.startsWith(`${T}/`), `${variant.uri.replace(TOKEN, '<token>')} resolves under the token`)
  }
})

t.test('relative URIs, other hosts and URIs that already carry a token are left alone', async (t) => {
  const untouched = [
    'seg-0.ts', '../360p/seg-0.ts', './seg.ts', 'seg.ts?x=/y', '?x=1',
    'http://cdn.other.example/seg.ts', 'https://edge.test.evil.example/seg.ts', 'http://edge.testx/seg.ts',
    'http://user@edge.test/seg.ts', 'http://edge.test@evil.example/seg.ts', 'http://evil.example\\@edge.test/seg.ts',
    'http://edge.test\\@evil.example/seg.ts', 'http://edge.test:8080/seg.ts', 'https://edge.test:80/seg.ts',
    '//evil.example/seg.ts', '/\\evil.example/seg.ts', '\\\\evil.example/seg.ts', 'http:/edge.test/seg.ts',
    'http:edge.test/seg.ts', 'ftp://edge.test/seg.ts', 'data:text/plain,/x', 'skd://edge.test/key',
    ' /vod/seg.ts', `/t/${TOKEN}/vod/seg.ts`, '/t/other/vod/seg.ts', `http://edge.test/t/${TOKEN}/seg.ts`,
    '/vod/seg.ts?se_token=abc', '/vod/seg.ts?a=1&se_token=abc', `//edge.test/vod/seg.ts?se_token=abc`,
  ]
  for (const uri of untouched) t.equal(rewrite(oneUri(uri)), undefined, uri.replace(TOKEN, '<token>'))
  // the same names on a tag attribute
  for (const uri of ['seg.ts', 'http://cdn.other.example/k', '//evil.example/k']) {
    t.equal(rewrite(`#EXTM3U\n#EXT-X-KEY:METHOD=AES-128,URI="${uri}"\n`), undefined, `URI="${uri}"`)
  }
  t.equal(rewrite('#EXTM3U\n#EXT-X-DATERANGE:ID="a",START-DATE="2026-01-01T00:00:00Z",X-URI="/x"\n#EXT-X-KEY:METHOD=NONE,KEYFORMAT="/x"\n'), undefined,
    'only the URI attribute, and only on the tags a player follows')
  t.equal(rewrite('#EXTM3U\n#EXT-X-CONTENT-STEERING:SERVER-URI="/steer"\n'), undefined, 'not the steering server (the control plane)')
})

t.test('same-host URIs: the Host compared without case and with the default port of the URI\'s scheme', async (t) => {
  const cases: Array<[uri: string, host: string, tokenized: string]> = [
    ['http://edge.test/a.ts', 'edge.test', `http://edge.test${T}/a.ts`],
    ['http://edge.test/a.ts', 'EDGE.TEST', `http://edge.test${T}/a.ts`],
    ['HTTP://Edge.Test/a.ts', 'edge.test', `HTTP://Edge.Test${T}/a.ts`],
    ['http://edge.test:80/a.ts', 'edge.test', `http://edge.test:80${T}/a.ts`],
    ['http://edge.test/a.ts', 'edge.test:80', `http://edge.test${T}/a.ts`],
    ['https://edge.test/a.ts', 'edge.test:443', `https://edge.test${T}/a.ts`],
    ['https://edge.test/a.ts', 'edge.test', `https://edge.test${T}/a.ts`],
    ['http://edge.test:8080/a.ts', 'edge.test:8080', `http://edge.test:8080${T}/a.ts`],
    ['http://127.0.0.1:41234/a.ts', '127.0.0.1:41234', `http://127.0.0.1:41234${T}/a.ts`],
    ['http://[::1]:41234/a.ts', '[::1]:41234', `http://[::1]:41234${T}/a.ts`],
    ['//edge.test/a.ts', 'edge.test', `//edge.test${T}/a.ts`],
    ['http://edge.test', 'edge.test', `http://edge.test${T}/`],
    ['http://edge.test?x=1#f', 'edge.test', `http://edge.test${T}/?x=1#f`],
    ['http://edge.test/a.ts?se=1#frag', 'edge.test', `http://edge.test${T}/a.ts?se=1#frag`],
  ]
  for (const [uri, host, tokenized] of cases) {
    t.equal(rewrite(oneUri(uri), host), oneUri(tokenized), `${uri} for Host ${host}`)
  }
  for (const [uri, host] of [['http://edge.test:8080/a.ts', 'edge.test'], ['http://edge.test/a.ts', 'edge.test:8080'], ['https://edge.test/a.ts', 'edge.test:80'], ['//edge.test/a.ts', 'edge.test:80'], ['http://[::1]/a.ts', '[::1]:8080']] as const) {
    t.equal(rewrite(oneUri(uri), host), undefined, `${uri} is not Host ${host}`)
  }
  t.equal(tokenUris(Buffer.from(oneUri('http://edge.test/a.ts')), TOKEN, undefined), undefined, 'no Host: no absolute URI is ours')
  t.equal(tokenUris(Buffer.from(oneUri('/a.ts')), TOKEN, undefined)?.toString(), oneUri(`${T}/a.ts`), 'no Host: root-relative URIs still are')
  t.equal(rewrite(MASTER, 'other.test'), MASTER_TOKENIZED.replace(`http://EDGE.test${T}/`, 'http://EDGE.test/'), 'another Host: only the root-relative URIs')
})

t.test('every byte but the inserted tokens stays: BOM, non-UTF-8 bytes, blank lines, no final newline', async (t) => {
  const body = Buffer.concat([
    Buffer.from([0xef, 0xbb, 0xbf]),
    Buffer.from('#EXTM3U\r\n#EXT-X-TARGETDURATION:4\r\n# caf', 'latin1'), Buffer.from([0xe9, 0xff, 0xfe]),
    Buffer.from('\r\n\r\n#EXTINF:4.0,t\u00e9l\u00e9\r\n/vod/a.ts\r\n\n#EXTINF:4.0,\r\n/vod/b.ts', 'latin1'),
  ])
  const out = tokenUris(body, TOKEN, HOST)
  if (out === undefined) throw new Error('not rewritten')
  const text = out.toString('latin1')
  t.equal(text.split(T).length - 1, 2, 'both URIs, the last one without a newline after it')
  t.same(Buffer.from(text.replaceAll(T, ''), 'latin1'), body, 'the rest byte for byte')
  t.ok(text.endsWith(`${T}/vod/b.ts`))
  t.same(Buffer.from(body), body, 'the stored body is never changed')
})

t.test('a playlist with nothing to rewrite is no rewrite, and that is decided once per body Buffer', async (t) => {
  const body = Buffer.from(RELATIVE_MEDIA)
  t.equal(tokenUris(body, TOKEN, HOST), undefined)
  t.equal(tokenUris(Buffer.from('#EXTM3U\n# only a comment with //slashes and "/quotes"\n'), TOKEN, HOST), undefined)
  t.equal(tokenUris(Buffer.alloc(0), TOKEN, HOST), undefined, 'an empty body')
  // Stored bodies never change; change this one's bytes to see that the answer was kept per Buffer.
  body.write('/', body.indexOf('seg-0.m4s'), 'latin1')
  t.equal(tokenUris(body, TOKEN, HOST), undefined, 'the same Buffer: the first answer')
  t.match(tokenUris(Buffer.from(body), TOKEN, HOST)?.toString(), `\n${T}/eg-0.m4s\n`, 'a new Buffer with the same bytes: looked at afresh')
  const rooted = Buffer.from(oneUri('/a.ts'))
  const first = tokenUris(rooted, TOKEN, HOST)
  const second = tokenUris(rooted, 'eyJ2IjoyfQ.other-token', HOST)
  t.not(first, second, 'each response its own Buffer')
  t.match(second?.toString(), '/t/eyJ2IjoyfQ.other-token/a.ts', 'and its own token: what is kept per body is where tokens go, not a token')
})

t.test('which responses get the token rewrite', async (t) => {
  t.equal(tokenUrisTransform(undefined, '/vod/title/master.m3u8', HOST), undefined, 'no token: nothing')
  t.equal(tokenUrisTransform(TOKEN, '/vod/title/seg-1.ts', HOST), undefined, 'not a playlist')
  t.equal(tokenUrisTransform(TOKEN, '/vod/title/x.m3u8.ts?y=.m3u8', HOST), undefined, 'a playlist by its path, not its query')
  for (const bad of ['', 'no-dot', 'a.b"c', 'a.b\nc', 'a.b/c', 'a.b%2Fc', 'a..b']) {
    t.equal(tokenUrisTransform(bad, '/vod/title/master.m3u8', HOST), undefined, `a token not in wire form (${JSON.stringify(bad)}) is never written into a playlist`)
  }
  const transform = tokenUrisTransform(TOKEN, '/vod/title/index.m3u8?v=1', HOST)
  if (transform === undefined) throw new Error('no transform')
  t.equal(transform(Buffer.from(MEDIA))?.toString(), MEDIA_TOKENIZED)
  t.equal(transform(Buffer.from(RELATIVE_MEDIA)), undefined)
})

t.test('composition with content steering: token URIs then the steering tag; each alone; neither', async (t) => {
  const steering = steeringTransform<string | undefined>(CP, 'edge-1', (token) => token)
  const both = playlistRewrites({ carryToken: true, steering })
  if (both === undefined) throw new Error('no rewrites')
  const master = both(TOKEN, '/vod/title/master.m3u8', HOST)?.(Buffer.from(MASTER))?.toString() ?? ''
  t.match(master, /^#EXT-X-CONTENT-STEERING:SERVER-URI="http:\/\/cp\.example\.net:8080\/[^"]*",PATHWAY-ID="edge-1"\r$/m, 'steered')
  t.equal(master.split(`${T}/`).length - 1, MASTER_TOKENIZED.split(`${T}/`).length - 1, 'and every token URI')
  t.ok(master.includes(`\r\n${T}/vod/title/360p/index.m3u8\r\n`))
  t.equal(both(TOKEN, '/vod/title/360p/index.m3u8', HOST)?.(Buffer.from(MEDIA))?.toString(), MEDIA_TOKENIZED, 'a media playlist: tokens only')
  t.equal(both(TOKEN, '/vod/title/360p/index.m3u8', HOST)?.(Buffer.from(RELATIVE_MEDIA)), undefined, 'neither applies: as stored')
  const relativeMaster = '#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\n360p/index.m3u8\n'
  t.match(both(TOKEN, '/vod/title/master.m3u8', HOST)?.(Buffer.from(relativeMaster))?.toString(), /EXT-X-CONTENT-STEERING/, 'steering alone')
  t.equal(both(undefined, '/vod/title/360p/index.m3u8', HOST)?.(Buffer.from(MEDIA)), undefined, 'no token: no token rewrite')
  t.equal(playlistRewrites({ carryToken: false, steering }), steering, 'tokens not required: steering as it was')
  t.equal(playlistRewrites({ carryToken: true }), tokenUrisTransform, 'no control plane: tokens only')
  t.equal(playlistRewrites({ carryToken: false }), undefined, 'neither: no transform at all')
  const upper: (body: Buffer) => Buffer | undefined = (body) => Buffer.from(body.toString().toUpperCase())
  const none: (body: Buffer) => Buffer | undefined = () => undefined
  t.equal(chainRewrites(undefined, undefined), undefined)
  t.equal(chainRewrites(upper, undefined), upper)
  t.equal(chainRewrites(undefined, upper), upper)
  t.equal(chainRewrites(none, none)?.(Buffer.from('a')), undefined)
  t.equal(chainRewrites(upper, none)?.(Buffer.from('a'))?.toString(), 'A', 'the first one\'s output when the second leaves it')
})

/** The shared key of the edge tests below. */
const EDGE_KEY = new TokenKey('k1', 'token-uris-secret-0123456789')

/** An origin answering with `handler` and a token-required edge in front of it; a token for /vod/title/. */
async function tokenEdge (t: Parameters<typeof startTestNode>[0], handler: http.RequestListener): Promise<{ node: Awaited<ReturnType<typeof startTestNode>>, token: string }> {
  const origin = http.createServer(handler)
  await new Promise<void>((resolve) => origin.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => { origin.closeAllConnections(); origin.close(() => resolve()) }))
  const node = await startTestNode(t, {
    origin: `http://127.0.0.1:${(origin.address() as AddressInfo).port}`,
    token: { required: true, verifier: new TokenVerifier([EDGE_KEY]) },
  })
  return { node, token: new TokenSigner([EDGE_KEY]).sign({ exp: Math.floor(Date.now() / 1000) + 3600, path: '/vod/title/' }) }
}

t.test('on a real token-required edge: rewritten on miss, hit and HEAD, Host by Host; relative-only playlists stay on the fast path', async (t) => {
  const bodies: Record<string, string> = {
    '/vod/title/root.m3u8': oneUri('/vod/title/a.ts'),
    '/vod/title/absolute.m3u8': oneUri('http://edge.test/vod/title/a.ts'),
    '/vod/title/relative.m3u8': RELATIVE_MEDIA,
  }
  const { node, token } = await tokenEdge(t, (req, res) => {
    const body = bodies[req.url ?? ''] ?? 'segment'
    res.writeHead(200, { 'content-type': 'application/vnd.apple.mpegurl', 'content-length': Buffer.byteLength(body), 'cache-control': 'max-age=60', etag: '"v1"' })
    res.end(body)
  })
  const get = (path: string, host = HOST, method = 'GET'): ReturnType<typeof fetchRaw> => fetchRaw(`${node.url}/t/${token}${path}`, { method, headers: { host } })
  const answered = (): number => node.fastPathStats()?.answered ?? 0
  const withToken = (body: string): string => body.replace('/vod/title/a.ts', `/t/${token}/vod/title/a.ts`)

  for (const round of ['miss', 'hit', 'hit again']) {
    const before = answered()
    const res = await get('/vod/title/root.m3u8')
    t.equal(res.status, 200, round)
    t.equal(res.body.toString(), withToken(bodies['/vod/title/root.m3u8']!), `${round}: root-relative URI tokenized`)
    t.equal(res.headers['content-length'], String(res.body.length), `${round}: the length is the rewritten body's`)
    if (round !== 'miss') {
      t.match(res.headers['cache-status'], /; hit/, round)
      t.equal(res.headers.etag, 'W/"v1"', `${round}: a rewritten body's validator is weak`)
      t.equal(answered(), before, `${round}: declined by the fast path, answered rewritten by node:http`)
    }
  }
  const head = await get('/vod/title/root.m3u8', HOST, 'HEAD')
  t.equal(head.headers['content-length'], String(Buffer.byteLength(withToken(bodies['/vod/title/root.m3u8']!))), 'HEAD: the rewritten length')

  await get('/vod/title/absolute.m3u8')
  for (const [host, tokenized] of [[HOST, true], ['EDGE.test', true], ['other.test', false], [HOST, true]] as const) {
    const before = answered()
    const res = await get('/vod/title/absolute.m3u8', host)
    const stored = bodies['/vod/title/absolute.m3u8']!
    t.equal(res.body.toString(), tokenized ? stored.replace('edge.test/', `edge.test/t/${token}/`) : stored, `Host ${host}: ${tokenized ? 'tokenized' : 'as stored'}`)
    t.equal(answered() - before, tokenized ? 0 : 1, `Host ${host}: ${tokenized ? 'declined by' : 'answered on'} the fast path`)
  }

  await get('/vod/title/relative.m3u8')
  const before = answered()
  for (let i = 0; i < 3; i++) {
    const res = await get('/vod/title/relative.m3u8')
    t.equal(res.body.toString(), RELATIVE_MEDIA, 'relative URIs: as stored')
    t.equal(res.headers.etag, '"v1"', 'with its strong validator')
  }
  t.equal(answered() - before, 3, 'every hit of a relative-only playlist answered by the fast path')
  const segment = await get('/vod/title/a.ts')
  t.equal(segment.body.toString(), 'segment', 'segments are never rewritten')
})

t.test('a playlist passed through uncached (a request with Authorization) is rewritten too; other pass-through bodies stream as they come', async (t) => {
  const playlist = oneUri('/vod/title/a.ts')
  const big = Buffer.alloc(5 * 1024 * 1024, 0x41) // past what a pass-through rewrite reads whole
  let requests = 0
  let brokenServed = 0
  const { node, token } = await tokenEdge(t, (req, res) => {
    requests++
    if (req.url === '/vod/title/big.m3u8') {
      res.writeHead(200, { 'content-type': 'application/vnd.apple.mpegurl', 'cache-control': 'max-age=60' })
      res.end(big)
      return
    }
    if (req.url === '/vod/title/broken.m3u8' && brokenServed++ > 0) {
      // stored whole the first time; cut short for the pass-through after
      res.writeHead(200, { 'content-type': 'application/vnd.apple.mpegurl', 'cache-control': 'max-age=60', 'content-length': '1000' })
      res.write('#EXTM3U\n')
      setImmediate(() => res.destroy())
      return
    }
    res.writeHead(200, { 'content-type': 'application/vnd.apple.mpegurl', 'cache-control': 'max-age=60', etag: '"v1"' })
    res.end(playlist)
  })
  // stored first; a request with Authorization then bypasses it (RFC 9111 §3.5) and is passed through
  t.equal((await fetchRaw(`${node.url}/t/${token}/vod/title/live.m3u8`, { headers: { host: HOST } })).status, 200)
  for (let i = 0; i < 2; i++) {
    const res = await fetchRaw(`${node.url}/t/${token}/vod/title/live.m3u8`, { headers: { host: HOST, authorization: 'Bearer player' } })
    t.equal(res.status, 200)
    t.equal(res.body.toString(), playlist.replace('/vod/title/a.ts', `/t/${token}/vod/title/a.ts`), `pass ${i + 1}: tokenized`)
    t.equal(res.headers['content-length'], String(res.body.length), 'its own length')
    t.equal(res.headers.etag, 'W/"v1"', 'a weak validator')
    t.match(res.headers['cache-status'], /fwd=bypass/, 'passed through')
  }
  t.equal(requests, 3, 'each pass went to the origin')
  await fetchRaw(`${node.url}/t/${token}/vod/title/big.m3u8`, { headers: { host: HOST } })
  const large = await fetchRaw(`${node.url}/t/${token}/vod/title/big.m3u8`, { headers: { host: HOST, authorization: 'Bearer player' } })
  t.equal(large.status, 200)
  t.ok(large.body.equals(big), 'a body too long to be a playlist goes through as it came')
  await fetchRaw(`${node.url}/t/${token}/vod/title/broken.m3u8`, { headers: { host: HOST } })
  const broken = await fetchRaw(`${node.url}/t/${token}/vod/title/broken.m3u8`, { headers: { host: HOST, authorization: 'Bearer player' } })
  t.equal(broken.status, 502, 'an upstream body that breaks before the end: an error answer, not a short playlist')
})
