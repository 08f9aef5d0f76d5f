/**
 * Unframed upstream bodies (HTTP/1.1, no Content-Length, not chunked: the body ends when the
 * connection closes, RFC 9112 §6.3 item 8) over real sockets: a raw origin, a real edge, and
 * a real shield in front of the origin with the edge in front of it.
 *
 * Such a body cannot be told from a truncated one, so no tier stores it; and each tier relays
 * it unframed (no Content-Length, no chunked coding, `Connection: close`, the end at the close)
 * so the next tier cannot store it either: framed by node:http as chunked, it would reach the
 * edge as a complete body and be stored there. A body that fails mid-way is cut off with a TCP
 * reset, since a clean close would read as its end. Raw client sockets read the exact framing.
 */
import net from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import t, { type Test } from 'tap'
import { fetchRaw } from '../../helpers/http-client.ts'
import { edgeFor, rawResponse, sendPart, startRawOrigin, startTiers, stored, TIMEOUTS, type RawHandler } from '../../helpers/raw-origin.ts'
import { cacheStatusMembers, gate, until, type CacheStatusParams } from '../rfc9111/harness.ts'

const EDGE = 'streamedge-test-edge'
const SHIELD = 'streamedge-test-shield'
/** A header the fast path declines: the request goes through node:http. */
const SLOW = ['x-force-slow: 1']
/** Several socket reads' worth, so the body reaches readers in more than one piece. */
const BODY = Buffer.alloc(300 * 1024)
for (let i = 0; i < BODY.length; i++) BODY[i] = (i * 31 + 7) & 0xff
const UNFRAMED_FIELDS = ['cache-control: max-age=60', 'content-type: application/octet-stream']

// ---- a raw client: the exact bytes, and how the connection ended ---------------------------

/** A response as a raw socket saw it. */
interface Wire {
  readonly status: number
  /** Lower-case names; repeated fields joined with ', '. */
  readonly headers: Readonly<Record<string, string>>
  readonly body: Buffer
  /** The connection ended with an error (a reset), not a clean close. */
  readonly reset: boolean
}

/**
 * Sends one request on a new connection and reads until the server closes it (a framed
 * response on a kept-alive connection would never close: the read gives up after 5 s).
 */
async function rawGet (url: string, path: string, fields: readonly string[] = [], method = 'GET', onBytes?: (bytes: number, chunk: Buffer) => void): Promise<Wire> {
  const socket = net.connect(Number(new URL(url).port), '127.0.0.1')
  const chunks: Buffer[] = []
  let bytes = 0
  let reset = false
  socket.on('data', (chunk: Buffer) => {
    chunks.push(chunk)
    bytes += chunk.length
    onBytes?.(bytes, chunk)
  })
  socket.on('error', () => { reset = true })
  const timer = setTimeout(() => socket.destroy(new Error('the server kept the connection open')), 5000)
  socket.write(`${method} ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n${fields.map((f) => f + '\r\n').join('')}\r\n`)
  await new Promise((resolve) => socket.once('close', resolve))
  clearTimeout(timer)
  const all = Buffer.concat(chunks)
  const end = all.indexOf('\r\n\r\n')
  if (end < 0) return { status: 0, headers: {}, body: Buffer.alloc(0), reset }
  const [statusLine = '', ...lines] = all.subarray(0, end).toString('latin1').split('\r\n')
  const headers: Record<string, string> = {}
  for (const line of lines) {
    const colon = line.indexOf(':')
    const name = line.slice(0, colon).trim().toLowerCase()
    const value = line.slice(colon + 1).trim()
    headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`
  }
  return { status: Number(statusLine.split(' ')[1]), headers, body: all.subarray(end + 4), reset }
}

/** The Cache-Status member of cache `name`, if any. */
function member (res: { readonly headers: Readonly<Record<string, string | string[] | undefined>> }, name: string): CacheStatusParams | undefined {
  return cacheStatusMembers(res.headers['cache-status']).filter(([n]) => n === name).at(-1)?.[1]
}

/** Checks that `res` came whole, unframed and ended by a clean close, and says nothing was stored. */
function checkUnframed (t: Test, res: Wire, label: string, body: Buffer = BODY): void {
  t.equal(res.status, 200, `${label}: 200`)
  t.equal(res.headers['content-length'], undefined, `${label}: no Content-Length`)
  t.equal(res.headers['transfer-encoding'], undefined, `${label}: not chunked`)
  t.equal(res.headers.connection, 'close', `${label}: Connection: close`)
  t.notOk(res.reset, `${label}: a clean close ends it`)
  t.ok(res.body.equals(body), `${label}: the body as the origin sent it (${res.body.length} of ${body.length} bytes)`)
  t.notOk(member(res, EDGE)?.stored, `${label}: Cache-Status does not say stored`)
}

/** What follows the head in raw response bytes (nothing before the head is complete). */
function bodyOf (bytes: Buffer): Buffer {
  const end = bytes.indexOf('\r\n\r\n')
  return end < 0 ? Buffer.alloc(0) : bytes.subarray(end + 4)
}

/** Answers with `body` unframed and closes the connection. */
function unframed (body: Buffer = BODY, held?: Promise<void>): RawHandler {
  return async (_req, socket) => {
    if (held !== undefined) await held
    socket.end(rawResponse(200, UNFRAMED_FIELDS, body, 'none'))
  }
}

/** Writes an unframed head and the first `sent` body bytes, then `cut`s the connection. */
function cutAfter (sent: number, cut: (socket: net.Socket) => void): RawHandler {
  return sendPart(UNFRAMED_FIELDS, BODY, sent, () => sleep(50), cut)
}

// ---- (a) the edge alone ----------------------------------------------------------------------

t.test('edge alone: an unframed body goes to the client unframed and is not stored; the next request goes to the origin again', async (t) => {
  const origin = await startRawOrigin(t, { '/u.bin': unframed() })
  const edge = await edgeFor(t, origin)
  const first = await rawGet(edge.url, '/u.bin')
  checkUnframed(t, first, 'first')
  t.match(member(first, EDGE), { fwd: 'uri-miss', 'fwd-status': '200' })
  t.notOk(stored(edge, '/u.bin'), 'not stored')
  t.equal(await edge.metrics.admissionRejections.value({ reason: 'unframed' }), 1, 'refused as unframed')
  const second = await rawGet(edge.url, '/u.bin')
  checkUnframed(t, second, 'second')
  t.equal(member(second, EDGE)?.hit, undefined, 'second: no hit')
  t.equal(origin.count('/u.bin'), 2, 'both requests reached the origin')
})

t.test('edge alone: joiners of an unframed fill, on the fast path (handed to node:http) and on node:http, get it unframed too', async (t) => {
  const held = gate()
  const origin = await startRawOrigin(t, { '/u.bin': unframed(BODY, held.promise) })
  const edge = await edgeFor(t, origin)
  const first = rawGet(edge.url, '/u.bin')
  await until(() => origin.count('/u.bin') === 1, 'the fill request')
  const joiners = [rawGet(edge.url, '/u.bin'), rawGet(edge.url, '/u.bin', SLOW)]
  await until(() => edge.proxy.fillReaders('/u.bin') === 3, 'the joiners')
  held.open()
  const [initiator, fast, slow] = await Promise.all([first, ...joiners])
  checkUnframed(t, initiator!, 'initiator')
  checkUnframed(t, fast!, 'fast-path joiner')
  checkUnframed(t, slow!, 'node:http joiner')
  t.equal(member(fast!, EDGE)?.collapsed, true, 'the fast-path joiner shared the fill')
  t.equal(origin.count('/u.bin'), 1, 'one origin request for the three')
  t.notOk(stored(edge, '/u.bin'))
})

t.test('edge alone: a fast-path joiner arriving mid-body is handed to node:http and gets the body unframed from its first byte', async (t) => {
  const rest = gate()
  const origin = await startRawOrigin(t, {
    '/u.bin': sendPart(UNFRAMED_FIELDS, BODY, 1000, () => rest.promise, (socket) => { socket.end(BODY.subarray(1000)) }),
  })
  const edge = await edgeFor(t, origin)
  let received = 0
  const first = rawGet(edge.url, '/u.bin', [], 'GET', (bytes) => { received = bytes })
  await until(() => received > 1000, 'the first body bytes at the first client')
  // the fill has its head and body bytes: the fast path answers a plain GET at once when it can
  const joiner = rawGet(edge.url, '/u.bin')
  await until(() => edge.proxy.fillReaders('/u.bin') === 2, 'the joiner')
  rest.open()
  checkUnframed(t, await first, 'initiator')
  checkUnframed(t, await joiner, 'mid-body joiner')
  t.equal(origin.count('/u.bin'), 1)
})

t.test('edge alone: HEAD of an unframed object says no length; the connection stays usable', async (t) => {
  const origin = await startRawOrigin(t, { '/u.bin': unframed() })
  const edge = await edgeFor(t, origin)
  const res = await fetchRaw(edge.url + '/u.bin', { method: 'HEAD' })
  t.equal(res.status, 200)
  t.equal(res.error, undefined)
  t.equal(res.headers['content-length'], undefined, 'no length: the body\'s is not known')
  t.equal(res.headers['transfer-encoding'], undefined)
  t.notOk(stored(edge, '/u.bin'))
})

t.test('edge alone: a pass-through (a method the cache does not store) with an unframed answer goes on unframed', async (t) => {
  const origin = await startRawOrigin(t, { '/p': unframed(Buffer.from('deleted, as far as anyone can tell')) })
  const edge = await edgeFor(t, origin)
  const res = await rawGet(edge.url, '/p', [], 'DELETE')
  checkUnframed(t, res, 'DELETE', Buffer.from('deleted, as far as anyone can tell'))
  t.match(member(res, EDGE), { fwd: 'method' })
})

t.test('edge alone: a playlist rewritten for its client (content steering) from an unframed body: unframed, and its preconditions as for a framed one', async (t) => {
  const master = Buffer.from(['#EXTM3U', '#EXT-X-STREAM-INF:BANDWIDTH=800000,RESOLUTION=640x360', 'v/index.m3u8', ''].join('\n'))
  const fields = ['cache-control: max-age=60', 'content-type: application/vnd.apple.mpegurl', 'etag: "m1"']
  const origin = await startRawOrigin(t, { '/vod/t/master.m3u8': (_req, socket) => { socket.end(rawResponse(200, fields, master, 'none')) } })
  const edge = await edgeFor(t, origin, { controlPlane: { url: 'http://127.0.0.1:9', heartbeatIntervalMs: 60_000 } })
  const rewritten = (t: Test, res: Wire, label: string): void => {
    t.equal(res.status, 200, `${label}: 200`)
    t.match(res.body.toString(), /#EXT-X-CONTENT-STEERING/, `${label}: the rewritten body`)
    t.equal(res.headers.etag, 'W/"m1"', `${label}: its validator weak`)
    t.equal(res.headers['content-length'], undefined, `${label}: unframed, as it came`)
    t.equal(res.headers.connection, 'close', `${label}: Connection: close`)
  }
  rewritten(t, await rawGet(edge.url, '/vod/t/master.m3u8'), 'plain GET')
  // the rewrite may differ per session: no 304 for it, whatever the stored tag (as deliverRewritten)
  rewritten(t, await rawGet(edge.url, '/vod/t/master.m3u8', ['if-none-match: "m1"']), 'If-None-Match of the stored tag')
  // If-Match compares strongly, and the rewrite's tag is weak: only * holds
  t.equal((await rawGet(edge.url, '/vod/t/master.m3u8', ['if-match: "m1"'])).status, 412, 'If-Match of the stored tag: 412')
  rewritten(t, await rawGet(edge.url, '/vod/t/master.m3u8', ['if-match: *']), 'If-Match: *')
  t.equal(origin.count('/vod/t/master.m3u8'), 4, 'never stored: each request a fill of its own')
})

// ---- (b) origin → shield → edge ---------------------------------------------------------------

t.test('origin → shield → edge: the body stays unframed at every hop, neither tier stores it, every request reaches the origin', async (t) => {
  const origin = await startRawOrigin(t, { '/u.bin': unframed() })
  const { shield, edge } = await startTiers(t, origin)
  for (const label of ['first', 'second']) {
    const res = await rawGet(edge.url, '/u.bin')
    checkUnframed(t, res, label)
    t.match(member(res, SHIELD), { fwd: 'uri-miss', 'fwd-status': '200' }, `${label}: the shield forwarded`)
    t.notOk(member(res, SHIELD)?.stored, `${label}: the shield did not store`)
    t.match(member(res, EDGE), { fwd: 'uri-miss', 'fwd-status': '200' }, `${label}: the edge forwarded (no hit)`)
  }
  t.equal(origin.count('/u.bin'), 2, 'both requests reached the origin')
  t.notOk(stored(shield, '/u.bin'), 'not at the shield')
  t.notOk(stored(edge, '/u.bin'), 'not at the edge')
  t.equal(await shield.metrics.admissionRejections.value({ reason: 'unframed' }), 2, 'the shield saw the origin\'s body unframed')
  t.equal(await edge.metrics.admissionRejections.value({ reason: 'unframed' }), 2, 'the edge saw the shield\'s body unframed')
  // the shield's own answer, read raw: what the edge receives
  checkUnframed(t, await rawGet(shield.url, '/u.bin'), 'the shield\'s answer')
})

t.test('origin → shield → edge: a pass-through with an unframed answer stays unframed at both tiers', async (t) => {
  const text = Buffer.from('gone, probably')
  const origin = await startRawOrigin(t, { '/p': unframed(text) })
  const { edge } = await startTiers(t, origin)
  const res = await rawGet(edge.url, '/p', [], 'DELETE')
  checkUnframed(t, res, 'DELETE', text)
  t.match(member(res, SHIELD), { fwd: 'method' })
  t.match(member(res, EDGE), { fwd: 'method' })
})

// ---- (c) a body that fails mid-way -----------------------------------------------------------

t.test('edge alone: an unframed body that stalls mid-way resets every reader\'s connection (never a clean close); the next request refetches', async (t) => {
  let calls = 0
  const origin = await startRawOrigin(t, {
    '/s.bin': (_req, socket) => {
      // the first answer stalls after 1000 bytes (the edge's idle timeout ends it), the next one is whole
      if (calls++ === 0) socket.write(rawResponse(200, UNFRAMED_FIELDS, BODY.subarray(0, 1000), 'none'))
      else socket.end(rawResponse(200, UNFRAMED_FIELDS, BODY, 'none'))
    },
  })
  // long enough for the joiners to attach before the fill fails
  const edge = await edgeFor(t, origin, { upstreamTimeouts: { ...TIMEOUTS, idleTimeoutMs: 1000 } })
  let received = 0
  const first = rawGet(edge.url, '/s.bin', [], 'GET', (bytes) => { received = bytes })
  await until(() => received > 1000, 'the first body bytes')
  const joiners = [rawGet(edge.url, '/s.bin'), rawGet(edge.url, '/s.bin', SLOW)]
  await until(() => edge.proxy.fillReaders('/s.bin') === 3, 'the joiners')
  for (const [i, res] of (await Promise.all([first, ...joiners])).entries()) {
    t.equal(res.status, 200, `reader ${i}: the head was out`)
    t.ok(res.reset, `reader ${i}: the connection was reset, not closed cleanly`)
    t.ok(res.body.length <= 1000, `reader ${i}: never more than the origin sent`)
  }
  t.notOk(stored(edge, '/s.bin'))
  checkUnframed(t, await rawGet(edge.url, '/s.bin'), 'next')
})

t.test('edge alone: a pass-through whose unframed body stalls mid-way resets the client\'s connection', async (t) => {
  const origin = await startRawOrigin(t, { '/p': (_req, socket) => { socket.write(rawResponse(200, UNFRAMED_FIELDS, BODY.subarray(0, 1000), 'none')) } })
  // a range far beyond a miss's first byte goes upstream on its own, uncached (#forward)
  const edge = await edgeFor(t, origin, { upstreamTimeouts: { ...TIMEOUTS, idleTimeoutMs: 300 }, rangeMissOffsetBytes: 1000 })
  const res = await rawGet(edge.url, '/p', ['range: bytes=5000-'])
  t.match(member(res, EDGE), { detail: 'range-offset' }, 'passed through')
  t.equal(res.status, 200)
  t.equal(res.headers['content-length'], undefined)
  t.ok(res.reset, 'reset, not closed cleanly')
  t.equal(await edge.metrics.upstreamErrors.value({ code: 'CDN_ERR_UPSTREAM_BODY_TIMEOUT' }), 1, 'counted once')
})

t.test('origin → shield: an unframed body that stalls at the origin resets the shield\'s downstream connection', async (t) => {
  const origin = await startRawOrigin(t, { '/s.bin': cutAfter(1000, () => {}) })
  const { shield } = await startTiers(t, origin, 300)
  const res = await rawGet(shield.url, '/s.bin')
  t.equal(res.status, 200)
  t.equal(res.headers['content-length'], undefined)
  t.ok(res.reset, 'reset: what the shield sends the edge shows the cut')
  t.notOk(stored(shield, '/s.bin'))
})

t.test('edge alone: an origin that resets mid-body: not stored, and the client\'s connection is reset too', async (t) => {
  const cut = gate()
  const origin = await startRawOrigin(t, {
    '/r.bin': sendPart(UNFRAMED_FIELDS, BODY, 1000, () => cut.promise, (socket) => { socket.resetAndDestroy() }),
  })
  const edge = await edgeFor(t, origin)
  const seen: Buffer[] = []
  const pending = rawGet(edge.url, '/r.bin', [], 'GET', (_bytes, chunk) => { seen.push(chunk) })
  // the reset goes out once the edge has read all that came before it: a reset that finds bytes
  // still unread in the edge's socket reads there as a clean close (libuv reports EOF on POLLHUP)
  await until(() => bodyOf(Buffer.concat(seen)).length >= 1000, 'the body bytes at the client')
  cut.open()
  const res = await pending
  t.equal(res.headers['content-length'], undefined, 'unframed, whichever way it ends')
  t.ok(res.body.equals(BODY.subarray(0, 1000)), 'the bytes the origin sent, and no more')
  t.notOk(stored(edge, '/r.bin'), 'not stored')
  t.ok(res.reset, 'reset, not closed cleanly')
  await until(async () => await edge.metrics.upstreamErrors.value({ code: 'CDN_ERR_UPSTREAM_TRUNCATED' }) === 1, 'the cut counted as a truncated body')
  t.pass('the edge counted the cut as CDN_ERR_UPSTREAM_TRUNCATED')
})

t.test('origin → shield → edge: a stall at the origin: stored by neither tier, and the edge\'s client sees a reset', async (t) => {
  const origin = await startRawOrigin(t, { '/s.bin': cutAfter(1000, () => {}) })
  const { shield, edge } = await startTiers(t, origin, 300)
  const res = await rawGet(edge.url, '/s.bin')
  t.equal(res.headers['content-length'], undefined, 'unframed, whichever way it ends')
  t.ok(res.body.length <= 1000)
  t.notOk(stored(shield, '/s.bin'), 'not at the shield')
  t.notOk(stored(edge, '/s.bin'), 'not at the edge')
  t.ok(res.reset, 'reset, not closed cleanly')
  // the shield's idle timeout resets the edge's connection: the edge reads that as a cut, not an end
  await until(async () => await edge.metrics.upstreamErrors.value({ code: 'CDN_ERR_UPSTREAM_TRUNCATED' }) === 1, 'the edge counted a truncated body')
  t.pass('the edge counted the shield\'s reset as CDN_ERR_UPSTREAM_TRUNCATED')
})

// ---- (d) control: framed bodies are still stored ----------------------------------------------

t.test('origin → shield → edge (control): framed bodies, by Content-Length or chunked, are stored at both tiers', async (t) => {
  const origin = await startRawOrigin(t, {
    '/len.bin': (_req, socket) => { socket.write(rawResponse(200, UNFRAMED_FIELDS, BODY)) },
    '/chunked.bin': (_req, socket) => {
      socket.write(rawResponse(200, [...UNFRAMED_FIELDS, 'transfer-encoding: chunked'], `5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n`, 'none'))
    },
  })
  const { shield, edge } = await startTiers(t, origin)
  for (const [path, body] of [['/len.bin', BODY], ['/chunked.bin', Buffer.from('hello world')]] as const) {
    const first = await fetchRaw(edge.url + path)
    t.equal(first.error, undefined, `${path}: complete`)
    t.ok(first.body.equals(body), `${path}: body`)
    t.ok(first.headers['content-length'] !== undefined || first.headers['transfer-encoding'] === 'chunked', `${path}: framed`)
    await until(() => stored(shield, path) && stored(edge, path), `${path} stored at both tiers`)
    const second = await fetchRaw(edge.url + path)
    t.ok(second.body.equals(body))
    t.equal(member(second, EDGE)?.hit, true, `${path}: a hit at the edge`)
    t.equal(origin.count(path), 1, `${path}: one origin request`)
  }
})
