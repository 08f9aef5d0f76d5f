/**
 * Adversarial playback-token tests, end to end through a real edge on 127.0.0.1 (token
 * required) in front of a recording origin: path-scope escapes (path-parameter dot segments
 * `..;` that Java origins strip to `..`, encodings, slashes, prefix boundaries), token-slot
 * tricks (two tokens, case, empty, padded, overlong), validly signed payloads with absent or
 * mistyped fields, rotation, expiry, IP binding, tokens never reaching a log even when sent in
 * a slot the edge does not read, and a player following every URI of a tokenized multivariant
 * and media playlist (LL-HLS, byte ranges, keys, maps, CRLF) with the token kept on this host
 * and never handed to another, including a playlist first asked for with a query token (302 to
 * the path form).
 */
import { once } from 'node:events'
import http from 'node:http'
import net, { type AddressInfo } from 'node:net'
import { parse as parseHls, types as hlsTypes } from 'hls-parser'
import t, { type Test } from 'tap'
import { TokenKey, TokenSigner, TokenVerifier, isSafePath } from '../../../lib/protocol/token.ts'
import { startTestNode, type TestNode } from '../../helpers/cache-node.ts'

const NOW_MS = 1_800_000_000_000
const NOW_S = NOW_MS / 1000
const KEY = new TokenKey('k1', 'adversarial-secret-0123456789')
const NEXT_KEY = new TokenKey('k2', 'adversarial-next-secret-0123456789')
const SIGNER = new TokenSigner([KEY])
const TITLE_TOKEN = SIGNER.sign({ exp: NOW_S + 3600, path: '/vod/title/' })
const CP = 'http://cp.example.net:8080/'
/** Anything shaped like a token: used to keep tokens out of assertion names. */
const TOKEN_TEXT = /[\w-]{8,}\.[\w-]{43}/g

const MASTER = [
  '#EXTM3U',
  '#EXT-X-VERSION:7',
  '#EXT-X-INDEPENDENT-SEGMENTS',
  '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud",NAME="en",DEFAULT=YES,URI="audio/en.m3u8"',
  '#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID="subs",NAME="fr",URI="http://subs.other.example/vod/title/fr.m3u8"',
  '#EXT-X-STREAM-INF:BANDWIDTH=800000,RESOLUTION=640x360,AUDIO="aud",SUBTITLES="subs"',
  '360p/index.m3u8?v=2',
  '#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=90000,URI="360p/iframes.m3u8"',
  '',
].join('\r\n')

const MEDIA = [
  '#EXTM3U',
  '#EXT-X-VERSION:9',
  '#EXT-X-TARGETDURATION:4',
  '#EXT-X-PART-INF:PART-TARGET=1.0',
  '#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=3.0',
  '#EXT-X-MEDIA-SEQUENCE:10',
  '#EXT-X-KEY:METHOD=AES-128,URI="../keys/k1.bin",IV=0x00000000000000000000000000000001',
  '#EXT-X-MAP:URI="init.mp4"',
  '#EXTINF:4.0,',
  'seg-10.m4s?v=1#frag',
  '#EXTINF:4.0,',
  '#EXT-X-BYTERANGE:1000@0',
  'all.m4s',
  '#EXT-X-PART:DURATION=1.0,URI="seg-12.0.m4s",INDEPENDENT=YES',
  '#EXT-X-PRELOAD-HINT:TYPE=PART,URI="seg-12.1.m4s"',
  '',
].join('\r\n')

interface Origin {
  readonly url: string
  readonly paths: string[]
}

/** An origin serving one title (playlists above, any other path as a small body) and recording every request target. */
async function startOrigin (t: Test): Promise<Origin> {
  const paths: string[] = []
  const server = http.createServer((req, res) => {
    const path = req.url ?? '/'
    paths.push(path)
    const bare = path.split('?')[0] ?? ''
    const body = bare.endsWith('master.m3u8') ? MASTER : bare.endsWith('.m3u8') ? MEDIA : `body of ${bare}`
    const type = bare.endsWith('.m3u8') ? 'application/vnd.apple.mpegurl' : 'application/octet-stream'
    res.writeHead(200, { 'content-type': type, 'content-length': Buffer.byteLength(body), 'cache-control': 'max-age=60' })
    res.end(body)
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => { server.closeAllConnections(); server.close() })
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, paths }
}

async function startEdge (t: Test, origin: Origin, overrides: { trustedProxies?: string[], keys?: TokenKey[], host?: string } = {}): Promise<TestNode> {
  return startTestNode(t, {
    origin: origin.url,
    listen: { host: overrides.host ?? '127.0.0.1', port: 0 },
    token: { required: true, verifier: new TokenVerifier(overrides.keys ?? [KEY]) },
    controlPlane: { url: CP, heartbeatIntervalMs: 60_000 },
    trustedProxies: overrides.trustedProxies ?? [],
    now: () => NOW_MS,
  })
}

interface Answer {
  readonly status: number
  readonly head: string
  readonly body: string
}

/** Sends `target` byte for byte on a fresh connection (no client normalises dot segments or escapes). */
function send (node: TestNode, target: string, headers: Record<string, string> = {}): Promise<Answer> {
  const port = Number(new URL(node.url).port)
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => {
      const fields = Object.entries({ host: 'edge.test', connection: 'close', ...headers }).map(([k, v]) => `${k}: ${v}\r\n`).join('')
      socket.write(`GET ${target} HTTP/1.1\r\n${fields}\r\n`)
    })
    const chunks: Buffer[] = []
    socket.on('data', (chunk: Buffer) => chunks.push(chunk))
    socket.on('error', reject)
    socket.on('end', () => {
      const text = Buffer.concat(chunks).toString('latin1')
      const split = text.indexOf('\r\n\r\n')
      const head = split < 0 ? text : text.slice(0, split)
      resolve({ status: Number(head.slice(9, 12)), head, body: split < 0 ? '' : text.slice(split + 4) })
    })
  })
}

function reasonOf (answer: Answer): string | undefined {
  try {
    return (JSON.parse(answer.body) as { reason?: string }).reason
  } catch {
    return undefined
  }
}

/** A payload signed with KEY exactly as given: the signature is valid whatever the claims say. */
function signRaw (claims: unknown, key = KEY): string {
  const payload = Buffer.from(JSON.stringify(claims)).toString('base64url')
  return `${payload}.${key.macText(payload)}`
}

t.test('path-parameter dot segments (`..;`, `.;`) cannot climb out of the token scope', async (t) => {
  const origin = await startOrigin(t)
  const edge = await startEdge(t, origin)
  // Tomcat, Jetty and Spring drop `;parameters` from a segment before removing dot segments,
  // so `/vod/title/..;/other/x.ts` is `/vod/other/x.ts` to them: outside a /vod/title/ token.
  const escapes = [
    `/t/${TITLE_TOKEN}/vod/title/..;/other/x.ts`,
    `/t/${TITLE_TOKEN}/vod/title/..;jsessionid=1/other/x.ts`,
    `/t/${TITLE_TOKEN}/vod/title/360p/..;/..;/other/x.ts`,
    `/t/${TITLE_TOKEN}/vod/title/.;/x.ts`,
    `/t/${TITLE_TOKEN}/vod/title/..;`,
    `/vod/title/..;/other/x.ts?se_token=${TITLE_TOKEN}`,
  ]
  for (const target of escapes) {
    const res = await send(edge, target)
    t.equal(res.status, 403, target.replace(TOKEN_TEXT, '<token>'))
    t.equal(reasonOf(res), 'unsafe-path')
  }
  t.same(origin.paths.filter((p) => p.includes(';')), [], 'no path-parameter escape reached the origin')
  const verifier = new TokenVerifier([KEY])
  t.same(verifier.verify(TITLE_TOKEN, { nowMs: NOW_MS, path: '/vod/title/..;/other/x.ts' }), { ok: false, reason: 'unsafe-path' })
  // path parameters elsewhere are names like any other, and stay inside the scope
  for (const fine of ['/vod/title/seg;v=1.ts', '/vod/title/...;x/seg.ts', '/vod/title/a..;/x.ts', '/vod/title/;/x.ts']) {
    t.ok(isSafePath(fine), `${fine} is safe`)
  }
  const ok = await send(edge, `/t/${TITLE_TOKEN}/vod/title/seg;v=1.ts`)
  t.equal(ok.status, 200, 'a segment name with a parameter is served')
})

t.test('a token sent in a slot the edge does not read never reaches the log', async (t) => {
  const origin = await startOrigin(t)
  const edge = await startEdge(t, origin)
  const signature = TITLE_TOKEN.split('.')[1] ?? ''
  const [payload = ''] = TITLE_TOKEN.split('.')
  // A player that glues a base URL ending in '/' to a path starting with '/' sends `//t/…`.
  const targets = [
    `//t/${TITLE_TOKEN}/vod/title/a.ts`,
    `/T/${TITLE_TOKEN}/vod/title/a.ts`,
    `/token/${TITLE_TOKEN}/vod/title/a.ts`,
    `/vod/title/${TITLE_TOKEN}/a.ts`,
    `/x${TITLE_TOKEN}/vod/title/a.ts`,
    `//t/${payload}%2E${signature}/vod/title/a.ts`,
    `http://edge.test//t/${TITLE_TOKEN}/vod/title/a.ts`,
  ]
  for (const target of targets) {
    const res = await send(edge, target)
    t.equal(res.status, 403, target.replace(TOKEN_TEXT, '<token>'))
  }
  // and a good one, served: the access log has the URL without it
  t.equal((await send(edge, `/t/${TITLE_TOKEN}/vod/title/a.ts`)).status, 200)
  const refusals = edge.logs.filter((l) => l['msg'] === 'request refused: playback token')
  t.equal(refusals.length, targets.length, 'each refusal logged')
  t.ok(refusals.every((l) => typeof l['path'] === 'string' && (l['path'] as string).endsWith('/a.ts')), 'the log still says which path was refused')
  t.match(refusals[0], { path: '//t/<token>/vod/title/a.ts', reason: 'missing' })
  t.notOk(JSON.stringify(edge.logs).includes(signature), 'no log line holds the token\'s signature')
  t.ok(edge.logs.some((l) => l['path'] === '/vod/title/a.ts' && l['status'] === 200), 'the access log names the path without the token')
})

t.test('validly signed payloads with absent, mistyped or unusable fields are refused', async (t) => {
  const origin = await startOrigin(t)
  const edge = await startEdge(t, origin)
  const base = { v: 1, k: 'k1', e: NOW_S + 3600, p: '/vod/title/' }
  t.equal((await send(edge, `/t/${signRaw(base)}/vod/title/a.ts`)).status, 200, 'the hand-made baseline is accepted')
  const cases: Array<[string, unknown]> = [
    ['empty path ACL (would match every path)', { ...base, p: '' }],
    ['relative path ACL', { ...base, p: 'vod/title/' }],
    ['ACL with a dot segment', { ...base, p: '/vod/title/../' }],
    ['ACL with a path-parameter dot segment', { ...base, p: '/vod/title/..;/' }],
    ['no path', { v: 1, k: 'k1', e: NOW_S + 3600 }],
    ['path as a number', { ...base, p: 1 }],
    ['path as an array', { ...base, p: ['/vod/title/'] }],
    ['no expiry', { v: 1, k: 'k1', p: '/vod/title/' }],
    ['expiry as a string', { ...base, e: String(NOW_S + 3600) }],
    ['fractional expiry', { ...base, e: NOW_S + 0.5 }],
    ['negative expiry', { ...base, e: -1 }],
    ['version 2', { ...base, v: 2 }],
    ['version as a string', { ...base, v: '1' }],
    ['not-before as a string', { ...base, n: '0' }],
    ['bound IP as a number', { ...base, i: 2130706433 }],
    ['country as an object', { ...base, c: { FR: true } }],
    ['an array', [1, 'k1', NOW_S + 3600, '/vod/title/']],
    ['null', null],
    ['a string', '/vod/title/'],
  ]
  for (const [what, claims] of cases) {
    for (const path of ['/vod/title/a.ts', '/vod/other/a.ts']) {
      const res = await send(edge, `/t/${signRaw(claims)}${path}`)
      t.equal(res.status, 403, `${what}: ${path}`)
      t.equal(reasonOf(res), 'malformed', what)
    }
  }
  t.equal(origin.paths.filter((p) => p.startsWith('/vod/other/')).length, 0, 'nothing outside the title was fetched')
})

t.test('scope and token-slot tricks all get 403, end to end', async (t) => {
  const origin = await startOrigin(t)
  const edge = await startEdge(t, origin)
  const sibling = SIGNER.sign({ exp: NOW_S + 3600, path: '/vod/a' })
  const forged = new TokenSigner([new TokenKey('k1', 'not-the-real-secret-0123456789')]).sign({ exp: NOW_S + 3600, path: '/vod/title/' })
  const unknownKid = new TokenSigner([new TokenKey('k7', 'adversarial-secret-0123456789')]).sign({ exp: NOW_S + 3600, path: '/vod/title/' })
  const expired = SIGNER.sign({ exp: NOW_S, path: '/vod/title/' })
  const [payload = '', signature = ''] = TITLE_TOKEN.split('.')
  const cases: Array<[string, string]> = [
    [`/t/${TITLE_TOKEN}/vod/title/%2e%2e/other/a.ts`, 'unsafe-path'],
    [`/t/${TITLE_TOKEN}/vod/title/%2E%2e/other/a.ts`, 'unsafe-path'],
    [`/t/${TITLE_TOKEN}/vod/title/..%2Fother/a.ts`, 'unsafe-path'],
    [`/t/${TITLE_TOKEN}/vod/title/..%252Fother/a.ts`, 'unsafe-path'],
    [`/t/${TITLE_TOKEN}/vod/title/..\\other\\a.ts`, 'unsafe-path'],
    [`/t/${TITLE_TOKEN}/vod/title/%5c..%5cother/a.ts`, 'unsafe-path'],
    [`/t/${TITLE_TOKEN}/vod/title/a.ts%00.m3u8`, 'unsafe-path'],
    [`/t/${TITLE_TOKEN}/vod/title/x.ts#/../../other/a.ts`, 'unsafe-path'],
    [`/t/${TITLE_TOKEN}//vod/title/a.ts`, 'out-of-scope'],
    [`/t/${TITLE_TOKEN}/VOD/TITLE/a.ts`, 'out-of-scope'],
    [`/t/${TITLE_TOKEN}/vod/title`, 'out-of-scope'],
    [`/t/${TITLE_TOKEN}/vod/titles/a.ts`, 'out-of-scope'],
    [`/t/${sibling}/vod/ab/a.ts`, 'out-of-scope'],
    [`/t/${sibling}/vod/a;x/a.ts`, 'out-of-scope'],
    [`/t/${sibling}/vod/a%2Fb.ts`, 'unsafe-path'],
    [`/t/${TITLE_TOKEN}?x=/vod/title/a.ts`, 'malformed'],
    [`/vod/title/a.ts?se_token=garbage&se_token=${TITLE_TOKEN}`, 'malformed'],
    [`/t/${forged}/vod/title/a.ts?se_token=${TITLE_TOKEN}`, 'bad-signature'],
    [`/vod/title/a.ts?SE_TOKEN=${TITLE_TOKEN}`, 'missing'],
    [`/vod/title/a.ts?se%5Ftoken=${TITLE_TOKEN}`, 'missing'],
    [`/T/${TITLE_TOKEN}/vod/title/a.ts`, 'missing'],
    ['/t/./vod/title/a.ts', 'malformed'],
    [`/t/${payload}==.${signature}/vod/title/a.ts`, 'malformed'],
    [`/t/${payload}.${signature}=/vod/title/a.ts`, 'malformed'],
    [`/t/${payload}.${signature}A/vod/title/a.ts`, 'malformed'],
    [`/t/${'A'.repeat(5000)}.${signature}/vod/title/a.ts`, 'malformed'],
    [`/t/${payload}.${signature.toUpperCase()}/vod/title/a.ts`, 'bad-signature'],
    [`/t/${payload.slice(0, -1)}.${signature}/vod/title/a.ts`, 'malformed'],
    [`/t/${Buffer.from(JSON.stringify({ v: 1, k: 'k1', e: NOW_S + 3600, p: '/vod/' })).toString('base64url')}.${signature}/vod/other/a.ts`, 'bad-signature'],
    [`/t/${forged}/vod/title/a.ts`, 'bad-signature'],
    [`/t/${unknownKid}/vod/title/a.ts`, 'unknown-key'],
    [`/t/${expired}/vod/title/a.ts`, 'expired'],
  ]
  for (const [target, reason] of cases) {
    const res = await send(edge, target)
    t.equal(res.status, 403, `${reason}: ${target.replace(TOKEN_TEXT, '<token>').slice(0, 80)}`)
    t.equal(reasonOf(res), reason)
  }
  t.equal(origin.paths.length, 0, 'no refused request reached the origin')
  // and what must keep working
  t.equal((await send(edge, `/vod/title/a.ts?se_token=${TITLE_TOKEN}&se_token=garbage`)).status, 200, 'the first of two query tokens decides')
  t.equal((await send(edge, `/t/${sibling}/vod/a/x.ts`)).status, 200, 'a prefix without a slash covers its subtree')
  t.equal((await send(edge, `/vod/title/a.ts?se_token=${payload}%2E${signature}`)).status, 200, 'an escaped dot in a query token')
  t.same([...new Set(origin.paths)], ['/vod/title/a.ts', '/vod/a/x.ts'], 'the origin sees paths without tokens')
})

t.test('key rotation, expiry edges and IP binding through the edge', async (t) => {
  const origin = await startOrigin(t)
  const during = await startEdge(t, origin, { keys: [NEXT_KEY, KEY] })
  const after = await startEdge(t, origin, { keys: [NEXT_KEY] })
  const oldToken = TITLE_TOKEN
  const newToken = new TokenSigner([NEXT_KEY, KEY], 'k2').sign({ exp: NOW_S + 3600, path: '/vod/title/' })
  t.equal((await send(during, `/t/${oldToken}/vod/title/a.ts`)).status, 200, 'old key during the overlap')
  t.equal((await send(during, `/t/${newToken}/vod/title/a.ts`)).status, 200, 'new key during the overlap')
  t.equal(reasonOf(await send(after, `/t/${oldToken}/vod/title/a.ts`)), 'unknown-key', 'old key retired')
  const lastSecond = SIGNER.sign({ exp: NOW_S + 1, path: '/vod/title/' })
  t.equal((await send(during, `/t/${lastSecond}/vod/title/a.ts`)).status, 200, 'valid until its expiry second')
  const startsNow = SIGNER.sign({ exp: NOW_S + 60, nbf: NOW_S, path: '/vod/title/' })
  t.equal((await send(during, `/t/${startsNow}/vod/title/a.ts`)).status, 200, 'valid from its not-before second')

  const bound = SIGNER.sign({ exp: NOW_S + 3600, path: '/vod/title/', ip: '127.0.0.1' })
  const elsewhere = SIGNER.sign({ exp: NOW_S + 3600, path: '/vod/title/', ip: '203.0.113.9' })
  t.equal((await send(during, `/t/${bound}/vod/title/a.ts`)).status, 200, 'bound to the peer')
  t.equal(reasonOf(await send(during, `/t/${elsewhere}/vod/title/a.ts`, { 'x-forwarded-for': '203.0.113.9' })), 'ip-mismatch', 'X-Forwarded-For from an untrusted peer is not believed')
  t.equal(reasonOf(await send(during, `/t/${elsewhere}/vod/title/a.ts`, { 'x-real-ip': '203.0.113.9', forwarded: 'for=203.0.113.9' })), 'ip-mismatch', 'nor X-Real-IP or Forwarded')
  const behindLb = await startEdge(t, origin, { trustedProxies: ['127.0.0.1'] })
  t.equal((await send(behindLb, `/t/${elsewhere}/vod/title/a.ts`, { 'x-forwarded-for': '203.0.113.9' })).status, 200, 'believed from a trusted proxy')
  t.equal((await send(behindLb, `/t/${elsewhere}/vod/title/a.ts`, { 'x-forwarded-for': '::ffff:203.0.113.9' })).status, 200, 'an IPv4-mapped hop is its IPv4 address')
  t.equal(reasonOf(await send(behindLb, `/t/${elsewhere}/vod/title/a.ts`, { 'x-forwarded-for': '203.0.113.9, 198.51.100.1' })), 'ip-mismatch', 'a client-written hop left of the real one is not believed')
  // A dual-stack listener sees an IPv4 client as ::ffff:127.0.0.1: the same client as 127.0.0.1.
  const dualStack = await startEdge(t, origin, { host: '::' })
  t.equal((await send(dualStack, `/t/${bound}/vod/title/a.ts`)).status, 200, 'an IPv4-mapped peer matches its IPv4 binding')
  t.equal(reasonOf(await send(dualStack, `/t/${elsewhere}/vod/title/a.ts`, { 'x-forwarded-for': '203.0.113.9' })), 'ip-mismatch')
  const dualStackLb = await startEdge(t, origin, { host: '::', trustedProxies: ['127.0.0.1'] })
  t.equal((await send(dualStackLb, `/t/${elsewhere}/vod/title/a.ts`, { 'x-forwarded-for': '203.0.113.9' })).status, 200, 'an IPv4-mapped trusted proxy is trusted')
  const verifier = new TokenVerifier([KEY])
  t.ok(verifier.verify(elsewhere, { nowMs: NOW_MS, clientIp: '203.0.113.9' }).ok)
  t.same(verifier.verify(elsewhere, { nowMs: NOW_MS, clientIp: '::ffff:203.0.113.9' }), { ok: false, reason: 'ip-mismatch' }, 'the verifier wants canonical text; the edge canonicalises (above)')
})

t.test('a player following every URI of a tokenized master keeps its token on this host, and hands it to no other', async (t) => {
  const origin = await startOrigin(t)
  const edge = await startEdge(t, origin)
  const masterUrl = `${edge.url}/t/${TITLE_TOKEN}/vod/title/master.m3u8`
  const fetched = new Map<string, string>()
  const foreign: string[] = []
  const queue = [masterUrl]
  while (queue.length > 0) {
    const url = queue.shift() ?? ''
    const bare = url.split('#')[0] ?? ''
    if (fetched.has(bare)) continue
    const u = new URL(bare)
    const res = await send(edge, u.pathname + u.search)
    t.equal(res.status, 200, `${u.pathname.replace(TOKEN_TEXT, '<token>')}${u.search}`)
    fetched.set(bare, res.body)
    if (!u.pathname.endsWith('.m3u8')) continue
    // every URI a player follows: URI lines and URI="…" attributes, resolved against the playlist's URL
    for (const line of res.body.split(/\r?\n/)) {
      const uris = line.startsWith('#') ? [...line.matchAll(/URI="([^"]*)"/g)].map((m) => m[1] ?? '') : line === '' ? [] : [line]
      for (const uri of uris) {
        const next = new URL(uri, url)
        if (next.origin !== new URL(edge.url).origin) foreign.push(next.href)
        else queue.push(next.href)
      }
    }
  }
  const paths = [...fetched.keys()].map((u) => new URL(u).pathname.replace(`/t/${TITLE_TOKEN}`, ''))
  const renditions = ['360p', 'audio'].flatMap((r) => ['init.mp4', 'seg-10.m4s', 'all.m4s', 'seg-12.0.m4s', 'seg-12.1.m4s'].map((f) => `/vod/title/${r}/${f}`))
  t.same(paths.sort(), [
    '/vod/title/master.m3u8', '/vod/title/audio/en.m3u8', '/vod/title/360p/index.m3u8', '/vod/title/360p/iframes.m3u8', '/vod/title/keys/k1.bin', ...renditions,
  ].sort(), 'every URI of every playlist was followed: renditions, I-frames, key, map, segments, byte ranges, parts, hints')
  t.ok([...fetched.keys()].every((u) => u.includes(`/t/${TITLE_TOKEN}/`)), 'every request carried the token')
  t.same(foreign.map((u) => new URL(u).host).sort(), ['cp.example.net:8080', 'subs.other.example'], 'the steering server and a foreign rendition')
  t.ok(foreign.filter((u) => !u.startsWith(CP)).every((u) => !u.includes(TITLE_TOKEN.split('.')[1] ?? '')), 'a foreign host never gets the token')
  const master = fetched.get(masterUrl) ?? ''
  t.ok(parseHls(master) instanceof hlsTypes.MasterPlaylist, 'the served master is still a valid multivariant playlist')
  t.ok(master.split('\n').slice(0, -1).every((l) => l.endsWith('\r')), 'CRLF line endings kept')
  t.equal(master.split(TITLE_TOKEN.split('.')[1] ?? '').length - 1, 1, 'the token appears once: in the steering SERVER-URI for the control plane')
})

t.test('a playlist asked for with a query token is redirected to the path form, so its relative URIs keep the token', async (t) => {
  const origin = await startOrigin(t)
  const edge = await startEdge(t, origin)
  // cached first through the path form, so the fast path holds the master when the query form comes
  t.equal((await send(edge, `/t/${TITLE_TOKEN}/vod/title/master.m3u8?x=1`)).status, 200)
  const res = await send(edge, `/vod/title/master.m3u8?x=1&se_token=${TITLE_TOKEN}`)
  t.equal(res.status, 302)
  const location = /^location: (.*)$/im.exec(res.head)?.[1]
  t.equal(location, `/t/${TITLE_TOKEN}/vod/title/master.m3u8?x=1`, 'the same URL, token in the path, other parameters kept')
  t.match(res.head, /^cache-control: no-store$/im)
  t.match(res.head, /^access-control-allow-origin: \*$/im, 'a browser player may follow it')
  // what a player does: follow the redirect and resolve the playlist's URIs against where it landed
  const landed = new URL(location ?? '', `${edge.url}/vod/title/master.m3u8`)
  const master = await send(edge, landed.pathname + landed.search)
  t.equal(master.status, 200)
  const variant = new URL('360p/index.m3u8?v=2', landed)
  t.equal((await send(edge, variant.pathname + variant.search)).status, 200, 'a relative variant URI keeps the token')
  // without the redirect, that URI resolved against the query-token URL has no token at all
  t.equal(reasonOf(await send(edge, '/vod/title/360p/index.m3u8?v=2')), 'missing')
  const media = await send(edge, `/vod/title/360p/index.m3u8?se_token=${TITLE_TOKEN}`)
  t.equal(media.status, 302, 'a media playlist too')
  t.equal(/^location: (.*)$/im.exec(media.head)?.[1], `/t/${TITLE_TOKEN}/vod/title/360p/index.m3u8`)
  t.equal((await send(edge, `/vod/title/360p/seg-10.m4s?se_token=${TITLE_TOKEN}`)).status, 200, 'segments are served as they are')
  t.equal(reasonOf(await send(edge, `/vod/other/master.m3u8?se_token=${TITLE_TOKEN}`)), 'out-of-scope', 'only a valid token is redirected')
  t.equal(reasonOf(await send(edge, `/vod/title/..;/other/master.m3u8?se_token=${TITLE_TOKEN}`)), 'unsafe-path')
})
