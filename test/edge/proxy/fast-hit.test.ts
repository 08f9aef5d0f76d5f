/**
 * The hit fast path (edge/proxy/fast-hit.ts, CacheProxy.answerFast) over real sockets:
 * for a table of requests, what the fast path answers is what node:http answers for the
 * same request (status, every header field in order except Connection/Keep-Alive, body),
 * with the same access-log line and metrics; requests it must not answer (Vary, stale,
 * conditionals, Cache-Control, Authorization, rewritten playlists, loops, several ranges...)
 * go to node:http. A request is forced through node:http by one extra header the fast
 * path declines (`x-force-slow`), which nothing else reads.
 */
import http from 'node:http'
import net from 'node:net'
import { once } from 'node:events'
import t, { type Test } from 'tap'
import { syntheticBody } from '../../../bench/origin/synthetic-body.ts'
import { TokenKey, TokenSigner, TokenVerifier } from '../../../lib/protocol/token.ts'
import type { CacheNodeOptions } from '../../../edge/cache-node.ts'
import { FAST_HIT_FIELDS, plainFields } from '../../../edge/proxy/fast-hit.ts'
import { startHlsNode } from '../../helpers/hls.ts'
import { httpDate, startScriptedOrigin, type ScriptedOrigin } from '../../helpers/scripted-origin.ts'
import type { TestNode } from '../../helpers/cache-node.ts'
import { getRaw, rawHeader, type RawAnswer } from '../../helpers/http-client.ts'

const START_MS = Date.UTC(2026, 0, 5, 12, 0, 0) + 250
const START_S = Math.floor(START_MS / 1000)
const LAST_MODIFIED = httpDate(Date.UTC(2025, 11, 1))
const SLOW = { 'x-force-slow': '1' }
const key = new TokenKey('k1', 'fast-hit-test-secret-0123456789')
const signer = new TokenSigner([key])

type Answer = RawAnswer
const get = getRaw

const HOP = new Set(['connection', 'keep-alive'])

/** The header lines without the hop-by-hop ones node:http and the front choose on their own. */
function fields (a: Answer): string[] {
  const out: string[] = []
  for (let i = 0; i < a.raw.length; i += 2) if (!HOP.has(a.raw[i]!.toLowerCase())) out.push(`${a.raw[i]!}: ${a.raw[i + 1]!}`)
  return out
}

const header = rawHeader

interface Harness {
  readonly node: TestNode
  readonly origin: ScriptedOrigin
  readonly clock: { ms: number }
  readonly url: string
}

const PLAYLIST = [
  '#EXTM3U', '#EXT-X-VERSION:3', '#EXT-X-TARGETDURATION:4', '#EXT-X-MEDIA-SEQUENCE:0', '#EXT-X-PLAYLIST-TYPE:VOD',
  ...[0, 1, 2, 3, 4].flatMap((i) => ['#EXTINF:4.0,', `seg-${i}.ts`]),
  '#EXT-X-ENDLIST', '',
].join('\n')
const MASTER = ['#EXTM3U', '#EXT-X-STREAM-INF:BANDWIDTH=800000,RESOLUTION=640x360', 'v/index.m3u8', ''].join('\n')

function segment (i: number): Buffer {
  return syntheticBody(`seg${i}`, 188 * 100 + 188 * i, 'ts')
}

/** A scripted origin for the table's objects, on the test's clock, and an HLS edge in front of it. */
async function setup (t: Test, overrides: Partial<CacheNodeOptions> = {}): Promise<Harness> {
  const clock = { ms: START_MS }
  const now = (): number => clock.ms
  const origin = await startScriptedOrigin(t, { now })
  origin.script('/vod/t/v/index.m3u8', { headers: { 'content-type': 'application/vnd.apple.mpegurl', etag: '"pl1"' }, body: PLAYLIST })
  origin.script('/vod/t/master.m3u8', { headers: { 'content-type': 'application/vnd.apple.mpegurl', 'cache-control': 'max-age=60' }, body: MASTER })
  for (let i = 0; i < 5; i++) {
    origin.script(`/vod/t/v/seg-${i}.ts`, {
      headers: { 'content-type': 'video/mp2t', 'cache-control': 'max-age=3600', etag: `"s${i}"`, 'last-modified': LAST_MODIFIED, 'x-origin-tag': ['a', 'b'] },
      body: segment(i),
    })
  }
  const text = (headers: Record<string, string>, body = 'hello\n', status = 200): { status: number, headers: Record<string, string>, body: string } =>
    ({ status, headers: { 'content-type': 'text/plain', ...headers }, body })
  origin.script('/plain.txt', text({ 'cache-control': 'max-age=600', etag: '"p1"', 'last-modified': LAST_MODIFIED }))
  origin.script('/empty.txt', text({ 'cache-control': 'max-age=600' }, ''))
  origin.script('/vary.txt', text({ 'cache-control': 'max-age=600', vary: 'accept-encoding' }))
  origin.script('/short.txt', text({ 'cache-control': 'max-age=2' }))
  origin.script('/hidden.txt', text({ 'cache-control': 'max-age=600, no-cache="x-secret"', 'x-secret': 's3' }))
  origin.script('/public.txt', text({ 'cache-control': 'public, max-age=600' }))
  origin.script('/gone.txt', text({ 'cache-control': 'max-age=600' }, 'not here\n', 404))
  origin.script('/cdn.txt', text({ 'cache-control': 'max-age=600', via: '1.1 origin-cache', 'cache-status': 'origin-cache; hit' }))
  const { node } = await startHlsNode(t, { origin: origin.url, now, accessLog: true, ...overrides })
  return { node, origin, clock, url: node.url }
}

function answered (h: Harness): number {
  return h.node.fastPathStats()?.answered ?? 0
}

/** The access-log lines so far, without what differs between any two requests (id, duration). */
function requestLogs (h: Harness): Array<Record<string, unknown>> {
  return h.node.logs.filter((l) => l.msg === 'request').map(({ reqId: _id, durationMs: _ms, time: _t, ...rest }) => rest)
}

async function eventually (check: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 500 && !check(); i++) await new Promise((resolve) => setTimeout(resolve, 10))
  if (!check()) throw new Error(`timed out waiting for ${what}`)
}

/**
 * Asks `path` through the fast path and then through node:http; both answers must be the
 * same, the first one must have come from the fast path, and both must log the same line.
 */
async function same (t: Test, h: Harness, path: string, headers: Record<string, string> = {}, method = 'GET'): Promise<Answer> {
  const before = answered(h)
  const logsBefore = requestLogs(h).length
  const fast = await get(h.url + path, headers, method)
  t.equal(answered(h), before + 1, `${method} ${path} ${JSON.stringify(headers)}: answered by the fast path`)
  const slow = await get(h.url + path, { ...headers, ...SLOW }, method)
  t.equal(answered(h), before + 1, 'the forced request went through node:http')
  t.equal(fast.status, slow.status, 'same status')
  t.same(fields(fast), fields(slow), 'same header fields, in the same order')
  t.ok(fast.body.equals(slow.body), 'same body')
  t.equal(fields(fast).filter((f) => /^date:/i.test(f)).length, 1, 'one Date field')
  await eventually(() => requestLogs(h).length === logsBefore + 2, 'two access-log lines')
  const [fastLog, slowLog] = requestLogs(h).slice(-2)
  t.same(fastLog, slowLog, 'same access-log line')
  return fast
}

/** Asks `path` with headers the fast path must decline; node:http answers. */
async function declined (t: Test, h: Harness, path: string, headers: Record<string, string> = {}, method = 'GET'): Promise<Answer> {
  const before = answered(h)
  const answer = await get(h.url + path, headers, method)
  t.equal(answered(h), before, `${method} ${path} ${JSON.stringify(headers)}: declined by the fast path`)
  return answer
}

async function warm (h: Harness, ...paths: string[]): Promise<void> {
  for (const path of paths) await get(h.url + path, SLOW)
}

t.test('the allow-list: only fields that select nothing and change no reuse decision', async (t) => {
  t.ok(plainFields({ host: 'a', 'user-agent': 'p', accept: '*/*', range: 'bytes=0-1', 'cdn-loop': 'x', via: '1.1 e' }))
  for (const name of ['cache-control', 'pragma', 'authorization', 'if-none-match', 'if-modified-since', 'if-range', 'if-match', 'cookie', 'content-length', 'x-anything']) {
    t.notOk(FAST_HIT_FIELDS.has(name), `${name} is not on the list`)
    t.notOk(plainFields({ host: 'a', [name]: 'v' }), `${name} is declined`)
  }
})

t.test('fresh memory hits: the fast path answers exactly what node:http answers', async (t) => {
  const h = await setup(t)
  const seg = '/vod/t/v/seg-1.ts'
  await warm(h, '/vod/t/v/index.m3u8', seg, '/plain.txt', '/plain.txt?a=1&b=2', '/empty.txt', '/hidden.txt', '/public.txt', '/gone.txt', '/cdn.txt')
  h.clock.ms += 1500 // Age 1, not 0
  const hit = await same(t, h, seg)
  t.equal(hit.status, 200)
  t.ok(hit.body.equals(segment(1)))
  t.equal(header(hit, 'age'), '1')
  t.equal(header(hit, 'cache-status'), 'streamedge-test-edge; hit; ttl=3598')
  t.equal(header(hit, 'date'), httpDate(START_MS), 'the stored Date, with Age (RFC 9111 §4.2.3)')
  t.equal(header(hit, 'x-origin-tag'), 'a, b')
  await same(t, h, seg, {}, 'HEAD')
  await same(t, h, seg, { origin: 'https://player.example', referer: 'https://player.example/', 'user-agent': 'hls.js', accept: '*/*', 'accept-encoding': 'gzip' })
  await same(t, h, seg, { 'sec-fetch-mode': 'cors', 'sec-fetch-site': 'cross-site', 'sec-fetch-dest': 'empty', dnt: '1' })
  await same(t, h, seg, { via: '1.1 streamedge-edge-a', 'cdn-loop': 'streamedge-edge-a', 'x-forwarded-for': '203.0.113.9' })
  const playlist = await same(t, h, '/vod/t/v/index.m3u8')
  t.equal(playlist.body.toString(), PLAYLIST)
  await same(t, h, '/plain.txt')
  await same(t, h, '/plain.txt?b=2&a=1', {}, 'GET') // the same key as ?a=1&b=2
  await same(t, h, '/empty.txt')
  const hidden = await same(t, h, '/hidden.txt')
  t.equal(header(hidden, 'x-secret'), undefined, 'no-cache="x-secret" keeps the field out (RFC 9111 §5.2.2.4)')
  await same(t, h, '/public.txt')
  const gone = await same(t, h, '/gone.txt')
  t.equal(gone.status, 404, 'a negatively cached 404 is a hit too')
  const cdn = await same(t, h, '/cdn.txt')
  t.equal(header(cdn, 'via'), '1.1 origin-cache, 1.1 streamedge-test-edge')
  t.equal(header(cdn, 'cache-status'), 'origin-cache; hit, streamedge-test-edge; hit; ttl=598')
  h.clock.ms += 1000
  const later = await same(t, h, seg)
  t.equal(header(later, 'age'), '2', 'the head is rendered again when Age moves')
})

t.test('single ranges are 206 from the fast path; other range requests go to node:http', async (t) => {
  const h = await setup(t)
  const seg = '/vod/t/v/seg-2.ts'
  await warm(h, seg)
  const size = segment(2).length
  const first = await same(t, h, seg, { range: 'bytes=0-1023' })
  t.equal(first.status, 206)
  t.equal(header(first, 'content-range'), `bytes 0-1023/${size}`)
  t.ok(first.body.equals(segment(2).subarray(0, 1024)))
  await same(t, h, seg, { range: 'bytes=1000-' })
  await same(t, h, seg, { range: 'bytes=-500' })
  await same(t, h, seg, { range: `bytes=100-${size + 5000}` })
  await same(t, h, seg, { range: 'bytes=0-1023' }, 'HEAD')
  await same(t, h, seg, { range: 'items=0-1' }, 'GET')
  const multi = await declined(t, h, seg, { range: 'bytes=0-9, 10000-10009' })
  t.equal(multi.status, 206)
  t.match(header(multi, 'content-type'), /^multipart\/byteranges/)
  const beyond = await declined(t, h, seg, { range: `bytes=${size + 10}-` })
  t.equal(beyond.status, 416)
  const ifRange = await declined(t, h, seg, { range: 'bytes=0-9', 'if-range': '"s2"' })
  t.equal(ifRange.status, 206)
})

t.test('what the fast path leaves to node:http', async (t) => {
  const h = await setup(t)
  const seg = '/vod/t/v/seg-0.ts'
  await warm(h, seg, '/vary.txt', '/short.txt', '/plain.txt')
  t.equal((await declined(t, h, '/not-yet-cached.txt')).status, 404, 'a miss')
  t.equal((await declined(t, h, '/vary.txt', { 'accept-encoding': 'gzip' })).status, 200, 'an object with Vary')
  t.equal((await declined(t, h, seg, { 'if-none-match': '"s0"' })).status, 304)
  t.equal((await declined(t, h, seg, { 'if-modified-since': LAST_MODIFIED })).status, 304)
  t.match(header(await declined(t, h, seg, { 'cache-control': 'max-age=0' }), 'cache-status'), /fwd=request/)
  t.match(header(await declined(t, h, seg, { pragma: 'no-cache' }), 'cache-status'), /fwd=request/)
  t.match(header(await declined(t, h, seg, { authorization: 'Bearer x' }), 'cache-status'), /fwd=bypass/)
  t.equal((await declined(t, h, seg, { 'cdn-loop': 'streamedge-test-edge' })).status, 508, 'a loop (RFC 8586)')
  t.equal((await declined(t, h, '/healthz')).status, 200, 'operational paths')
  t.equal((await declined(t, h, '/metrics')).status, 200)
  t.equal((await declined(t, h, '/a%00b.txt')).status, 400, 'a target that makes no cache key')
  h.clock.ms += 5000
  t.match(header(await declined(t, h, '/short.txt'), 'cache-status'), /fwd=stale/, 'a stale object')
})

t.test('playback tokens: checked exactly as node:http checks them', async (t) => {
  const h = await setup(t, { token: { required: true, verifier: new TokenVerifier([key]) } })
  const token = signer.sign({ exp: START_S + 3600, path: '/vod/t/' })
  const seg = `/t/${token}/vod/t/v/seg-3.ts`
  await warm(h, seg)
  const hit = await same(t, h, seg)
  t.ok(hit.body.equals(segment(3)))
  await same(t, h, `/vod/t/v/seg-3.ts?se_token=${token}`)
  const other = signer.sign({ exp: START_S + 3600, path: '/other/' })
  t.equal((await declined(t, h, `/t/${other}/vod/t/v/seg-3.ts`)).status, 403, 'out of scope')
  t.equal((await declined(t, h, '/vod/t/v/seg-3.ts')).status, 403, 'missing')
  const expired = signer.sign({ exp: START_S - 60, path: '/vod/t/' })
  t.equal((await declined(t, h, `/t/${expired}/vod/t/v/seg-3.ts`)).status, 403, 'expired')
  t.equal(await h.node.metrics.tokenRejections.value(), 3, 'refusals are counted once each')
})

t.test('tokens not required: a token in the URL is taken out, the hit is the same', async (t) => {
  const h = await setup(t)
  const token = signer.sign({ exp: START_S + 3600, path: '/vod/t/' })
  await warm(h, '/vod/t/v/seg-4.ts')
  await same(t, h, `/t/${token}/vod/t/v/seg-4.ts`)
})

t.test('content steering: master playlists are rewritten by node:http, media playlists are fast', async (t) => {
  const h = await setup(t, { controlPlane: { url: 'http://127.0.0.1:9', heartbeatIntervalMs: 60_000 } })
  await warm(h, '/vod/t/master.m3u8', '/vod/t/v/index.m3u8')
  const master = await declined(t, h, '/vod/t/master.m3u8')
  t.match(master.body.toString(), /#EXT-X-CONTENT-STEERING/)
  await same(t, h, '/vod/t/v/index.m3u8')
})

t.test('a fast segment hit still prefetches the next segment', async (t) => {
  const h = await setup(t)
  await warm(h, '/vod/t/v/index.m3u8', '/vod/t/v/seg-0.ts')
  // serving seg-0 (a miss) prefetched seg-1 and seg-2
  await eventually(() => h.origin.count('/vod/t/v/seg-2.ts') === 1, 'the prefetch of seg-2')
  t.equal(h.origin.count('/vod/t/v/seg-3.ts'), 0)
  await same(t, h, '/vod/t/v/seg-1.ts')
  await eventually(() => h.origin.count('/vod/t/v/seg-3.ts') === 1, 'the prefetch of seg-3 after a fast hit on seg-1')
})

t.test('metrics and the log: a fast hit counts as a hit', async (t) => {
  const h = await setup(t)
  await warm(h, '/plain.txt')
  const hits = await h.node.metrics.requests.value({ phase: 'hit', status: 200 })
  const memory = await h.node.metrics.lookups.value({ result: 'hit', tier: 'memory' })
  const bytes = await h.node.metrics.servedBytes.value({ source: 'memory' })
  const served = h.node.proxy.servedBytesTotal
  await same(t, h, '/plain.txt')
  t.equal(await h.node.metrics.requests.value({ phase: 'hit', status: 200 }), hits + 2)
  t.equal(await h.node.metrics.lookups.value({ result: 'hit', tier: 'memory' }), memory + 2)
  t.equal(await h.node.metrics.servedBytes.value({ source: 'memory' }), bytes + 12)
  t.equal(h.node.proxy.servedBytesTotal, served + 12)
  t.match(requestLogs(h).at(-1), { method: 'GET', path: '/plain.txt', status: 200, cachePhase: 'hit', source: 'memory', bytes: 6, completed: true, cacheKey: '/plain.txt', client: '127.0.0.1' })
})

/** The fast path's two totals as /metrics shows them (scraping is itself a hand-off: /metrics is node:http's). */
async function scrapeFastPath (t: Test, h: Harness): Promise<{ responses: number, handoffs: number, flushes: number }> {
  const res = await get(h.url + '/metrics')
  t.equal(res.status, 200, '/metrics answers')
  const value = (name: string): number => {
    const m = new RegExp(`^${name}\\{[^}]*node="test-edge"[^}]*\\} (\\d+)$`, 'm').exec(res.body.toString())
    if (m === null) throw new Error(`no ${name} series for node test-edge in /metrics`)
    return Number(m[1])
  }
  return { responses: value('streamedge_fast_path_responses_total'), handoffs: value('streamedge_fast_path_handoffs_total'), flushes: value('streamedge_fast_path_flushes_total') }
}

t.test('metrics: /metrics counts fast answers and hand-offs to node:http', async (t) => {
  const h = await setup(t)
  await warm(h, '/plain.txt', '/vod/t/v/seg-0.ts')
  const before = await scrapeFastPath(t, h)
  t.equal(before.responses, answered(h), 'the counter is the fast path\'s own total')
  t.ok(before.handoffs >= 3, 'the warm-up requests and the scrape were handed to node:http')
  for (const path of ['/plain.txt', '/plain.txt', '/vod/t/v/seg-0.ts']) t.equal((await get(h.url + path)).status, 200)
  await get(h.url + '/plain.txt', SLOW)
  const after = await scrapeFastPath(t, h)
  t.equal(after.responses, before.responses + 3, 'three fast hits')
  t.ok(after.handoffs >= before.handoffs + 1, 'the forced request was handed off')
  t.equal(after.handoffs, h.node.fastPathStats()?.handedOff, 'the counter is the fast path\'s own total')
  t.equal(after.flushes, before.flushes + 3, 'three answers on one connection, one after another: a flush each')
})

t.test('keep-alive: fast answers, then a request node:http takes, on one connection, in order', async (t) => {
  const h = await setup(t)
  await warm(h, '/plain.txt', '/vod/t/v/seg-0.ts')
  const socket = net.connect(new URL(h.url).port as unknown as number, '127.0.0.1')
  t.teardown(() => socket.destroy())
  await once(socket, 'connect')
  let text = ''
  socket.on('data', (d: Buffer) => { text += d.toString('latin1') })
  const before = answered(h)
  socket.write('GET /plain.txt HTTP/1.1\r\nHost: a\r\n\r\nGET /plain.txt HTTP/1.1\r\nHost: a\r\nIf-None-Match: "p1"\r\n\r\nGET /plain.txt HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n')
  await once(socket, 'end')
  t.equal(answered(h), before + 1, 'the first request was answered fast, the rest by node:http')
  const statuses = [...text.matchAll(/^HTTP\/1\.1 (\d+)/gm)].map((m) => m[1])
  t.same(statuses, ['200', '304', '200'])
})

t.test('shutdown closes the fast path\'s idle keep-alive connections', async (t) => {
  const h = await setup(t, { keepAliveTimeoutMs: 120_000, shutdownGraceMs: 120_000 })
  await warm(h, '/plain.txt')
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
  t.teardown(() => agent.destroy())
  const socketClosed = new Promise<void>((resolve, reject) => {
    const req = http.get(h.url + '/plain.txt', { agent }, (res) => res.resume())
    req.on('socket', (socket) => socket.once('close', () => resolve()))
    req.on('error', reject)
  })
  await eventually(() => answered(h) === 1, 'the fast answer')
  await h.node.close() // would wait for the 120 s grace if the front kept its connection
  await socketClosed
  t.pass('closed')
})

t.test('fastPath: false sends everything through node:http', async (t) => {
  const h = await setup(t, { fastPath: false })
  await warm(h, '/plain.txt')
  const hit = await get(h.url + '/plain.txt')
  t.match(header(hit, 'cache-status'), /; hit/)
  t.equal(h.node.fastPathStats(), undefined)
  t.same(await scrapeFastPath(t, h), { responses: 0, handoffs: 0, flushes: 0 }, 'the fast-path series stay at 0')
})
