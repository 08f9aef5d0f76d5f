/**
 * Playback tokens and the URIs packagers write, end to end over real sockets: an origin whose
 * playlists use root-relative URIs, absolute URIs naming the edge, network-path URIs and
 * URIs to a foreign host (another server on loopback that records what it is sent), in front
 * of token-required edges (one alone, one with a control plane, so the steering rewrite runs
 * too). A crawler walks the playlists as a player does (URI lines and the URI attribute of
 * every tag a player follows, resolved against where each playlist was got, redirects
 * followed) from the path-token and the query-token master URL: every URI on the edge gets
 * 200, the foreign host never sees the token. Then ffmpeg plays the real title from the
 * tokenized master URL, every rendition, without one refused request.
 */
import { execFile } from 'node:child_process'
import { once } from 'node:events'
import { readFile } from 'node:fs/promises'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import t, { type Test } from 'tap'
import { TokenKey, TokenSigner, TokenVerifier } from '../../lib/protocol/token.ts'
import { startTestNode, type TestNode } from '../helpers/cache-node.ts'
import { fetchRaw } from '../helpers/http-client.ts'

const run = promisify(execFile)
const KEY = new TokenKey('k1', 'playlist-token-integration-0123456789')
const TOKEN = new TokenSigner([KEY]).sign({ exp: Math.floor(Date.now() / 1000) + 3600, path: '/vod/' })
const SIGNATURE = TOKEN.split('.')[1] ?? ''
const CP = 'http://cp.example.net:8080/'
const MEDIA_DIR = fileURLToPath(new URL('../../bench/origin/media/', import.meta.url))
/** Tags whose URI attribute a player requests (the steering server is the control plane's, and is left out). */
const URI_TAGS = /^#EXT-X-(?:MEDIA|I-FRAME-STREAM-INF|KEY|SESSION-KEY|MAP|PART|PRELOAD-HINT|RENDITION-REPORT|SESSION-DATA):/

/** Hosts the origin writes into playlists: the edge in front of it, and a foreign one. */
interface Hosts {
  edge: string
  foreign: string
}

/**
 * The playlists, as a packager writing absolute paths would: `bars` is the real demo title
 * (fMP4, two renditions) for ffmpeg; `title` has every tag a player follows, CRLF line endings.
 */
function playlists (h: Hosts): Record<string, string> {
  const codecs = (c: string): string => `CODECS="avc1.${c},mp4a.40.2"`
  return {
    '/vod/bars/master.m3u8': [
      '#EXTM3U',
      '#EXT-X-VERSION:7',
      `#EXT-X-STREAM-INF:BANDWIDTH=565400,RESOLUTION=640x360,${codecs('4d401e')}`,
      '/vod/bars/360p/index.m3u8',
      `#EXT-X-STREAM-INF:BANDWIDTH=250800,RESOLUTION=320x180,${codecs('42c015')}`,
      `http://${h.edge}/vod/bars/180p/index.m3u8`,
      '',
    ].join('\n'),
    '/vod/bars/360p/index.m3u8': media([
      '#EXT-X-MAP:URI="/vod/bars/360p/init.mp4"',
      'seg-0.m4s', '/vod/bars/360p/seg-1.m4s', `http://${h.edge}/vod/bars/360p/seg-2.m4s`,
      `http://${h.foreign}/vod/bars/360p/seg-3.m4s`, `//${h.edge}/vod/bars/360p/seg-4.m4s`, 'seg-5.m4s',
    ]),
    '/vod/bars/180p/index.m3u8': media([
      `#EXT-X-MAP:URI="http://${h.edge}/vod/bars/180p/init.mp4"`,
      ...[0, 1, 2, 3, 4, 5].map((n) => `/vod/bars/180p/seg-${n}.m4s`),
    ]),
    '/vod/title/master.m3u8': [
      '#EXTM3U',
      '#EXT-X-VERSION:9',
      '# written by a packager; /paths in comments are no URIs',
      '#EXT-X-SESSION-DATA:DATA-ID="com.example.title",URI="/vod/title/data.json"',
      '#EXT-X-SESSION-KEY:METHOD=AES-128,URI="/vod/keys/session.bin"',
      '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud",NAME="en",DEFAULT=YES,URI="/vod/title/audio/index.m3u8"',
      `#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID="subs",NAME="fr",URI="http://${h.foreign}/vod/title/subs/fr.m3u8"`,
      '#EXT-X-STREAM-INF:BANDWIDTH=800000,RESOLUTION=640x360,AUDIO="aud",SUBTITLES="subs"',
      `http://${h.edge}/vod/title/360p/index.m3u8`,
      `#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=90000,URI="//${h.edge}/vod/title/360p/iframes.m3u8"`,
      '',
    ].join('\r\n'),
    '/vod/title/360p/index.m3u8': llMedia('360p', h),
    '/vod/title/audio/index.m3u8': llMedia('audio', h),
    '/vod/title/360p/iframes.m3u8': media(['#EXT-X-BYTERANGE:1000@0', '/vod/title/360p/seg-1.m4s']),
  }
}

function media (lines: readonly string[]): string {
  const body = lines.flatMap((l) => l.startsWith('#') ? [l] : ['#EXTINF:4.000000,', l])
  return ['#EXTM3U', '#EXT-X-VERSION:7', '#EXT-X-TARGETDURATION:4', '#EXT-X-PLAYLIST-TYPE:VOD', ...body, '#EXT-X-ENDLIST', ''].join('\n')
}

function llMedia (rendition: string, h: Hosts): string {
  const dir = `/vod/title/${rendition}`
  return [
    '#EXTM3U',
    '#EXT-X-VERSION:9',
    '#EXT-X-TARGETDURATION:4',
    '#EXT-X-PART-INF:PART-TARGET=1.0',
    '#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=3.0',
    '#EXT-X-MEDIA-SEQUENCE:1',
    '#EXT-X-KEY:METHOD=AES-128,URI="/vod/keys/k1.bin",IV=0x00000000000000000000000000000001',
    `#EXT-X-MAP:URI="http://${h.edge}${dir}/init.mp4"`,
    '#EXTINF:4.0,',
    `${dir}/seg-1.m4s`,
    '#EXTINF:4.0,',
    'seg-2.m4s',
    '#EXTINF:4.0,',
    `http://${h.foreign}${dir}/seg-3.m4s`,
    `#EXT-X-PART:DURATION=1.0,URI="${dir}/seg-4.0.m4s",INDEPENDENT=YES`,
    `#EXT-X-PRELOAD-HINT:TYPE=PART,URI="//${h.edge}${dir}/seg-4.1.m4s"`,
    `#EXT-X-RENDITION-REPORT:URI="/vod/title/${rendition === 'audio' ? '360p' : 'audio'}/index.m3u8",LAST-MSN=3,LAST-PART=0`,
    '',
  ].join('\r\n')
}

interface Server {
  readonly host: string
  /** Every request as sent: target and header fields. */
  readonly requests: Array<{ readonly target: string, readonly headers: http.IncomingHttpHeaders }>
}

/** An HTTP server on loopback serving the playlists (from `hosts`) and any other path as media (the demo title's bytes when they exist). */
async function startServer (t: Test, hosts?: Hosts): Promise<Server> {
  const requests: Server['requests'] = []
  const server = http.createServer((req, res) => {
    const target = req.url ?? '/'
    requests.push({ target, headers: req.headers })
    const path = target.split('?')[0] ?? '/'
    const playlist = hosts === undefined ? undefined : playlists(hosts)[path]
    const send = (type: string, body: string | Buffer): void => {
      res.writeHead(200, { 'content-type': type, 'content-length': Buffer.byteLength(body), 'cache-control': 'max-age=60' })
      res.end(body)
    }
    if (playlist !== undefined) return send('application/vnd.apple.mpegurl', playlist)
    if (path.endsWith('.m3u8')) return send('application/vnd.apple.mpegurl', media(['sub-0.vtt']))
    readFile(MEDIA_DIR + path.slice(1)).then(
      (bytes) => send('video/mp4', bytes),
      () => send('application/octet-stream', `body of ${path}`),
    )
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()) }))
  return { host: `127.0.0.1:${(server.address() as AddressInfo).port}`, requests }
}

/** A token-required edge in front of its own origin, whose playlists name this edge and `foreign`. */
async function startEdge (t: Test, foreign: Server, controlPlane: boolean): Promise<{ edge: TestNode, origin: Server }> {
  const hosts: Hosts = { edge: '', foreign: foreign.host }
  const origin = await startServer(t, hosts)
  const edge = await startTestNode(t, {
    origin: `http://${origin.host}`,
    token: { required: true, verifier: new TokenVerifier([KEY]) },
    ...(controlPlane ? { controlPlane: { url: CP, heartbeatIntervalMs: 60_000 } } : {}),
  })
  hosts.edge = new URL(edge.url).host
  return { edge, origin }
}

interface Walk {
  /** Final URL (after redirects) → body, for every URL on the edge. */
  readonly fetched: Map<string, string>
  /** Statuses other than 200 on the edge, by path (token hidden). */
  readonly failed: string[]
  /** URLs on other hosts a player would follow. */
  readonly foreign: string[]
}

/** Follows every URI a player would, from `start`: redirects, URI lines, URI attributes of the tags above. */
async function walk (edge: TestNode, start: string): Promise<Walk> {
  const fetched = new Map<string, string>()
  const failed: string[] = []
  const foreign: string[] = []
  const queue = [start]
  const seen = new Set<string>()
  while (queue.length > 0) {
    let url = (queue.shift() ?? '').split('#')[0] ?? ''
    if (seen.has(url)) continue
    seen.add(url)
    if (new URL(url).origin !== new URL(edge.url).origin) {
      foreign.push(url)
      continue
    }
    let res = await fetchRaw(url)
    for (let hops = 0; hops < 3 && res.status === 302; hops++) {
      url = new URL(String(res.headers.location), url).href
      res = await fetchRaw(url)
    }
    if (res.status !== 200) {
      failed.push(`${res.status} ${hidden(new URL(url).pathname)}`)
      continue
    }
    const body = res.body.toString('utf8')
    fetched.set(url, body)
    if (!new URL(url).pathname.endsWith('.m3u8')) continue
    for (const line of body.split(/\r?\n/)) {
      const uris = line.startsWith('#') ? URI_TAGS.test(line) ? [...line.matchAll(/(?:^|[:,])URI="([^"]*)"/g)].map((m) => m[1] ?? '') : [] : line === '' ? [] : [line]
      for (const uri of uris) queue.push(new URL(uri, url).href)
    }
  }
  return { fetched, failed, foreign }
}

function hidden (text: string): string {
  return text.replaceAll(TOKEN, '<token>')
}

function leaks (requests: Server['requests']): string[] {
  return requests.filter((r) => `${r.target} ${JSON.stringify(r.headers)}`.includes(SIGNATURE)).map((r) => hidden(r.target))
}

const BARS = ['360p', '180p'].flatMap((r) => ['index.m3u8', 'init.mp4', ...[0, 1, 2, 3, 4, 5].map((n) => `seg-${n}.m4s`)].map((f) => `/vod/bars/${r}/${f}`))
const TITLE = [
  '/vod/title/master.m3u8', '/vod/title/data.json', '/vod/keys/session.bin', '/vod/keys/k1.bin', '/vod/title/360p/iframes.m3u8',
  ...['360p', 'audio'].flatMap((r) => ['index.m3u8', 'init.mp4', 'seg-1.m4s', 'seg-2.m4s', 'seg-4.0.m4s', 'seg-4.1.m4s'].map((f) => `/vod/title/${r}/${f}`)),
]

t.test('a player walking tokenized playlists with root-relative and same-host URIs gets every URI; the foreign host never sees the token', async (t) => {
  const foreign = await startServer(t)
  for (const controlPlane of [false, true]) {
    const { edge } = await startEdge(t, foreign, controlPlane)
    const label = controlPlane ? 'with a control plane' : 'without a control plane'
    for (const [form, start] of [
      ['path token', `${edge.url}/t/${TOKEN}/vod/title/master.m3u8`],
      ['query token', `${edge.url}/vod/title/master.m3u8?se_token=${TOKEN}`],
      ['path token, cached', `${edge.url}/t/${TOKEN}/vod/title/master.m3u8`],
    ] as const) {
      const { fetched, failed, foreign: elsewhere } = await walk(edge, start)
      t.same(failed, [], `${label}, ${form}: every URI on the edge answered 200`)
      const paths = [...fetched.keys()].map((u) => new URL(u).pathname)
      t.ok(paths.every((p) => p.startsWith(`/t/${TOKEN}/`)), `${label}, ${form}: every request to the edge carried the token in its path`)
      t.same(paths.map((p) => p.slice(`/t/${TOKEN}`.length)).sort(), [...TITLE].sort(), `${label}, ${form}: every URI of every playlist followed`)
      t.same(elsewhere.map((u) => new URL(u).pathname).sort(), ['/vod/title/360p/seg-3.m4s', '/vod/title/audio/seg-3.m4s', '/vod/title/subs/fr.m3u8'], `${label}, ${form}: the foreign URIs`)
      t.ok(elsewhere.every((u) => !u.includes(SIGNATURE)), `${label}, ${form}: no foreign URI carries the token`)
      for (const url of elsewhere) t.equal((await fetchRaw(url)).status, 200, `${label}: a player gets ${new URL(url).pathname} from the foreign host`)
      const master = fetched.get(`${edge.url}/t/${TOKEN}/vod/title/master.m3u8`) ?? ''
      t.ok(master.split('\n').slice(0, -1).every((l) => l.endsWith('\r')), `${label}, ${form}: CRLF kept`)
      t.match(master, '# written by a packager; /paths in comments are no URIs\r\n', `${label}, ${form}: comments as they were`)
      t.equal(/EXT-X-CONTENT-STEERING/.test(master), controlPlane, `${label}, ${form}: steering ${controlPlane ? 'added too' : 'absent'}`)
    }
  }
  t.same(leaks(foreign.requests), [], 'the foreign host never saw the token')
  t.ok(foreign.requests.length >= 6, 'and was asked')
})

t.test('ffmpeg plays the title from the tokenized master URL: every rendition, not one request refused', async (t) => {
  const foreign = await startServer(t)
  const { edge, origin } = await startEdge(t, foreign, false)
  const master = `${edge.url}/t/${TOKEN}/vod/bars/master.m3u8`
  const from = edge.logs.length
  const played = await run('ffmpeg', ['-nostdin', '-v', 'warning', '-i', master, '-map', '0', '-c', 'copy', '-f', 'null', '-'], { timeout: 60_000 })
    .then(({ stderr }) => stderr, (err: { stderr?: string }) => { t.fail(`ffmpeg failed: ${hidden(err.stderr ?? String(err))}`); return undefined })
  if (played === undefined) return
  t.notMatch(played, /\b403\b|Failed to open|HTTP error/, `ffmpeg warned of no failed request: ${hidden(played)}`)
  await new Promise((resolve) => setImmediate(resolve))
  const lines = edge.logs.slice(from)
  t.same(lines.filter((l) => l['msg'] === 'request refused: playback token').map((l) => l['path']), [], 'no request refused for its token')
  // ffmpeg asks for `bytes=0-`: 206 is a whole body too
  const served = new Set(lines.filter((l) => l['msg'] === 'request' && (l['status'] === 200 || l['status'] === 206)).map((l) => String(l['path'])))
  const expected = BARS.filter((p) => p !== '/vod/bars/360p/seg-3.m4s')
  t.same(expected.filter((p) => !served.has(p)), [], 'every playlist, init section and segment on the edge served to ffmpeg')
  t.ok(served.has('/vod/bars/master.m3u8'))
  t.ok(foreign.requests.some((r) => r.target === '/vod/bars/360p/seg-3.m4s'), 'the foreign segment came from the foreign host')
  t.same(leaks(foreign.requests), [], 'which never saw the token')
  t.ok(origin.requests.every((r) => !r.target.includes(SIGNATURE)), 'nor did the origin')
})
