/**
 * Shared fills whose body grows past maxObjectBytes are released (edge/cache/shared-fill.ts,
 * `release`) whatever else keeps them out of storage: an unframed (close-delimited) body, a
 * framed one that is shareable but not storable (no freshness), a private one, a buffered
 * playlist. Released, a fill leaves the map (a later request fetches on its own instead of
 * joining) and keeps only its readers' lag (a paused client pauses the origin), while its
 * first client still gets the whole body and nothing is stored. Real sockets: a raw origin
 * (test/helpers/raw-origin.ts) and a real edge with a small maxObjectBytes.
 */
import { createHash } from 'node:crypto'
import http from 'node:http'
import type net from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import t, { type Test } from 'tap'
import { RELEASED_WINDOW_BYTES } from '../../../edge/cache/shared-fill.ts'
import { TokenKey, TokenSigner, TokenVerifier } from '../../../lib/protocol/token.ts'
import type { ContentPolicy } from '../../../edge/proxy/content-policy.ts'
import { fetchRaw, type Fetched } from '../../helpers/http-client.ts'
import { edgeFor, rawResponse, startRawOrigin, stored, type RawHandler } from '../../helpers/raw-origin.ts'
import type { TestNode } from '../../helpers/cache-node.ts'
import { cacheStatusMembers, gate, until, type CacheStatusParams } from '../rfc9111/harness.ts'

const EDGE = 'streamedge-test-edge'
const KiB = 1024
const MiB = 1024 * KiB
/** The edge's maxObjectBytes in these tests. */
const MAX_OBJECT_BYTES = 64 * KiB
/** What the origin sends before it holds the rest back: well past maxObjectBytes. */
const FIRST_BYTES = 4 * MAX_OBJECT_BYTES
const BODY = Buffer.alloc(1 * MiB)
for (let i = 0; i < BODY.length; i++) BODY[i] = (i * 31 + 7) & 0xff

type Framing = 'unframed' | 'chunked' | 'length'

/** A response head with the framing asked for (the body follows in `piece`s, then `end`). */
function head (status: number, fields: readonly string[], framing: Framing, length: number): Buffer {
  const framingField = framing === 'chunked' ? ['transfer-encoding: chunked'] : framing === 'length' ? [`content-length: ${length}`] : []
  return rawResponse(status, [...fields, ...framingField], '', 'none')
}

/** Body bytes as they go on the wire (one chunk of the chunked coding, or as they are). */
function piece (framing: Framing, bytes: Buffer): Buffer {
  return framing === 'chunked' ? Buffer.concat([Buffer.from(`${bytes.length.toString(16)}\r\n`), bytes, Buffer.from('\r\n')]) : bytes
}

/** The end of the body: the last chunk, or the close of the connection for an unframed one. */
function end (framing: Framing, socket: net.Socket): void {
  if (framing === 'chunked') socket.write('0\r\n\r\n')
  else if (framing === 'unframed') socket.end()
}

/**
 * The first request for a path gets FIRST_BYTES of BODY, then the rest once `held` opens;
 * any later one gets BODY at once.
 */
function slowThenWhole (status: number, fields: readonly string[], framing: Framing, held: Promise<void>): RawHandler {
  return async (req, socket) => {
    socket.write(head(status, fields, framing, BODY.length))
    if (req.index === 0) {
      socket.write(piece(framing, BODY.subarray(0, FIRST_BYTES)))
      await held
      socket.write(piece(framing, BODY.subarray(FIRST_BYTES)))
    } else {
      socket.write(piece(framing, BODY))
    }
    end(framing, socket)
  }
}

/** What the origin has handed to its socket. */
interface Sent { bytes: number }

/** Sends `total` bytes of 0x47 with backpressure, counting them in `sent` (after `held`, when given). */
function flood (status: number, fields: readonly string[], framing: Framing, total: number, sent: Sent, held?: Promise<void>): RawHandler {
  const raw = Buffer.alloc(64 * KiB, 0x47)
  const wire = piece(framing, raw)
  return async (_req, socket) => {
    if (held !== undefined) await held
    socket.write(head(status, fields, framing, total))
    let left = total
    const pump = (): void => {
      while (left > 0) {
        left -= raw.length
        sent.bytes += raw.length
        if (!socket.write(wire)) {
          socket.once('drain', pump)
          return
        }
      }
      end(framing, socket)
    }
    pump()
  }
}

/** A GET read as it arrives: bytes so far, the response (to pause it), and how it ended. */
interface Streamed {
  readonly response: Promise<http.IncomingMessage>
  received (): number
  readonly done: Promise<{ readonly body: Buffer, readonly sha256: string, readonly error: Error | undefined }>
}

/** GETs `url` on a connection of its own; `keep` keeps the body (else only its hash). */
function streamGet (url: string, keep = true, headers: Readonly<Record<string, string>> = {}): Streamed {
  let received = 0
  const response = new Promise<http.IncomingMessage>((resolve, reject) => { http.get(url, { agent: false, headers }, resolve).on('error', reject) })
  const done = response.then((res) => new Promise<{ body: Buffer, sha256: string, error: Error | undefined }>((resolve) => {
    const chunks: Buffer[] = []
    const hash = createHash('sha256')
    let settled = false
    const finish = (error: Error | undefined): void => {
      if (settled) return
      settled = true
      resolve({ body: Buffer.concat(chunks), sha256: hash.digest('hex'), error })
    }
    res.on('data', (chunk: Buffer) => {
      received += chunk.length
      hash.update(chunk)
      if (keep) chunks.push(chunk)
    })
    res.on('end', () => finish(res.complete ? undefined : new Error('response incomplete')))
    res.on('error', finish)
    res.on('close', () => finish(res.complete ? undefined : new Error('response closed before it completed')))
  }))
  return { response, received: () => received, done }
}

/** Our Cache-Status member. */
function member (headers: http.IncomingHttpHeaders, name = EDGE): CacheStatusParams | undefined {
  return cacheStatusMembers(headers['cache-status']).filter(([n]) => n === name).at(-1)?.[1]
}

/** The access log's noCacheReason of every request for `path`. */
function loggedReasons (edge: TestNode, path: string): unknown[] {
  return edge.logs.filter((l) => l.msg === 'request' && l.path === path).map((l) => l.noCacheReason)
}

/** A content policy that buffers every response whole (as the HLS policy does playlists) and stores all. */
const BUFFER_ALL: ContentPolicy = {
  bufferWhole: () => true,
  admit: () => ({ action: 'store' }),
  refreshAhead: () => false,
  onServed: () => {},
}

interface ReleaseCase {
  readonly name: string
  readonly status: number
  readonly fields: readonly string[]
  readonly framing: Framing
  /** The reason the access log and the admission metrics give. */
  readonly reason: string
  readonly contentPolicy?: ContentPolicy
}

const CASES: readonly ReleaseCase[] = [
  { name: 'an unframed (close-delimited) body', status: 200, fields: ['cache-control: max-age=60'], framing: 'unframed', reason: 'unframed' },
  // shareable (SHAREABLE_REASONS) but not storable: a bare 200 has no freshness and no validator
  { name: 'a chunked body with no freshness (found out mid-way)', status: 200, fields: [], framing: 'chunked', reason: 'no-freshness' },
  { name: 'a body with no freshness and a Content-Length past the limit (known at the head)', status: 200, fields: [], framing: 'length', reason: 'no-freshness' },
  // storable, but judged whole by the content policy: streamed once past the limit
  { name: 'a buffered chunked body', status: 200, fields: ['cache-control: max-age=60'], framing: 'chunked', reason: 'too-large', contentPolicy: BUFFER_ALL },
]

for (const c of CASES) {
  t.test(`${c.name} past maxObjectBytes: the fill is released (a later request fetches on its own), its client gets it whole, nothing is stored`, async (t) => {
    const held = gate()
    t.teardown(() => held.open())
    const origin = await startRawOrigin(t, { '/big.bin': slowThenWhole(c.status, c.fields, c.framing, held.promise) })
    const edge = await edgeFor(t, origin, { maxObjectBytes: MAX_OBJECT_BYTES, ...(c.contentPolicy === undefined ? {} : { contentPolicy: () => c.contentPolicy! }) })
    const first = streamGet(edge.url + '/big.bin')
    // the edge has relayed more than it would ever store while the origin still holds the rest
    await until(() => first.received() >= FIRST_BYTES, 'the first client to get the bytes before the hold')
    t.equal(edge.proxy.fillsInFlight, 0, 'the fill is out of the map while its body streams')
    t.equal(edge.proxy.fillReaders('/big.bin'), 0, 'nobody can attach to it')

    const late = await fetchRaw(edge.url + '/big.bin')
    t.equal(origin.count('/big.bin'), 2, 'the late request went to the origin on its own')
    t.equal(late.error, undefined, 'late: complete')
    t.ok(late.body.equals(BODY), `late: the whole body (${late.body.length} bytes)`)
    t.notOk(member(late.headers)?.collapsed, 'late: not collapsed into the first fill')
    t.equal(await edge.metrics.collapsed.value({ outcome: 'joined' }), 0, 'no request joined')

    held.open()
    const res = await first.response
    const { body, error } = await first.done
    t.equal(res.statusCode, 200)
    t.equal(error, undefined, 'first: complete')
    t.ok(body.equals(BODY), `first: the whole body, byte for byte (${body.length} of ${BODY.length})`)
    t.notOk(member(res.headers)?.stored, 'first: Cache-Status does not say stored')
    if (c.framing === 'unframed') {
      t.equal(res.headers['content-length'], undefined, 'relayed unframed still')
      t.equal(res.headers.connection, 'close')
    }

    t.notOk(stored(edge, '/big.bin'), 'not stored')
    t.equal(await edge.metrics.admissionRejections.value({ reason: c.reason }), 2, `both refused as ${c.reason}`)
    if (c.reason !== 'too-large') t.equal(await edge.metrics.admissionRejections.value({ reason: 'too-large' }), 0, 'the first reason is the one counted')
    await until(() => loggedReasons(edge, '/big.bin').length === 2, 'both access-log lines')
    t.same(loggedReasons(edge, '/big.bin'), [c.reason, c.reason], `the access log says ${c.reason}`)
  })
}

// ---- memory: a released fill keeps its readers' lag, not the body --------------------------

const OBJECT_BYTES = 96 * MiB

/**
 * Reads 8 MiB of `client`, pauses it until the origin stops sending, checks the origin is
 * held back (the edge keeps its window, not the body), then reads the rest.
 */
async function pausedClientPausesOrigin (t: Test, client: Streamed, sent: Sent): Promise<void> {
  const res = await client.response
  t.equal(res.statusCode, 200)
  while (client.received() < 8 * MiB) await sleep(5)
  res.pause()
  let before = -1
  for (let i = 0; i < 100 && sent.bytes !== before; i++) {
    before = sent.bytes
    await sleep(50)
  }
  const stalledAt = sent.bytes
  t.ok(stalledAt < OBJECT_BYTES, `the origin stopped before the end (${(stalledAt / MiB).toFixed(1)} MiB sent of ${OBJECT_BYTES / MiB})`)
  // what the edge can hold: its window, plus socket buffers on both sides of it (a few MiB each on loopback)
  t.ok(stalledAt - client.received() < RELEASED_WINDOW_BYTES + 24 * MiB, `bounded lag: ${((stalledAt - client.received()) / MiB).toFixed(1)} MiB ahead of the client`)
  res.resume()
  const { sha256, error } = await client.done
  t.equal(error, undefined, 'complete')
  t.equal(client.received(), OBJECT_BYTES, 'the whole body')
  t.equal(sha256, createHash('sha256').update(Buffer.alloc(OBJECT_BYTES, 0x47)).digest('hex'), 'byte for byte')
}

t.test('an unframed body past maxObjectBytes: a paused client pauses the origin (the fill does not keep the body)', async (t) => {
  const sent: Sent = { bytes: 0 }
  const origin = await startRawOrigin(t, { '/big.bin': flood(200, ['cache-control: max-age=60'], 'unframed', OBJECT_BYTES, sent) })
  const edge = await edgeFor(t, origin, { maxObjectBytes: MAX_OBJECT_BYTES })
  await pausedClientPausesOrigin(t, streamGet(edge.url + '/big.bin', false), sent)
  t.notOk(stored(edge, '/big.bin'))
  t.equal(await edge.metrics.admissionRejections.value({ reason: 'unframed' }), 1)
})

// A request whose answer needs the body whole (several ranges; one range of a body whose length
// is unknown until its end) must not make a released fill keep the body: it gets it as it came.
for (const c of [
  { framing: 'length', range: 'bytes=0-0,1000-1999', what: 'several ranges of a body whose Content-Length is past the limit (released at its head)' },
  { framing: 'chunked', range: 'bytes=0-0,1000-1999', what: 'several ranges of a chunked body (released mid-way)' },
  { framing: 'chunked', range: 'bytes=1000-1999', what: 'one range of a chunked body (its length unknown until its end)' },
] as const) {
  t.test(`${c.what}: the whole body as a 200, Range ignored, and a paused client pauses the origin`, async (t) => {
    const sent: Sent = { bytes: 0 }
    const origin = await startRawOrigin(t, { '/r.bin': flood(200, ['cache-control: max-age=60'], c.framing, OBJECT_BYTES, sent) })
    const edge = await edgeFor(t, origin, { maxObjectBytes: MAX_OBJECT_BYTES })
    const client = streamGet(edge.url + '/r.bin', false, { range: c.range })
    await pausedClientPausesOrigin(t, client, sent)
    t.equal((await client.response).headers['content-range'], undefined)
    t.notOk(stored(edge, '/r.bin'))
  })
}

// A playlist the edge rewrites (tokens required: its URIs carry the token) is rewritten once
// whole; past maxObjectBytes it is relayed as it came instead of being held whole.
for (const framing of ['unframed', 'chunked'] as const) {
  t.test(`a playlist to rewrite past maxObjectBytes (${framing}): relayed as it came, and a paused client pauses the origin`, async (t) => {
    const key = new TokenKey('k1', 'fill-release-test-key-0123456789abcdef')
    const token = new TokenSigner([key]).sign({ exp: Math.floor(Date.now() / 1000) + 3600, path: '/vod/' })
    const sent: Sent = { bytes: 0 }
    const small = '#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXTINF:4,\n/vod/seg-0.ts\n#EXT-X-ENDLIST\n'
    const origin = await startRawOrigin(t, {
      '/vod/big.m3u8': flood(200, ['cache-control: max-age=60', 'content-type: application/vnd.apple.mpegurl'], framing, OBJECT_BYTES, sent),
      '/vod/small.m3u8': (_req, socket) => void socket.write(rawResponse(200, ['cache-control: max-age=60', 'content-type: application/vnd.apple.mpegurl'], small)),
    })
    const edge = await edgeFor(t, origin, { maxObjectBytes: MAX_OBJECT_BYTES, token: { required: true, verifier: new TokenVerifier([key]) } })
    const rewritten = await fetchRaw(`${edge.url}/t/${token}/vod/small.m3u8`)
    t.match(rewritten.body.toString(), `/t/${token}/vod/seg-0.ts`, 'a playlist within the limit is rewritten')
    await pausedClientPausesOrigin(t, streamGet(`${edge.url}/t/${token}/vod/big.m3u8`, false), sent)
    t.notOk(stored(edge, '/vod/big.m3u8'))
  })
}

t.test('a private body past maxObjectBytes, with a joiner from before the head that then fetched alone: a paused client still pauses the origin', async (t) => {
  const held = gate()
  t.teardown(() => held.open())
  const sent: Sent = { bytes: 0 }
  const big = flood(200, ['cache-control: private, max-age=60'], 'chunked', OBJECT_BYTES, sent, held.promise)
  const origin = await startRawOrigin(t, {
    '/p.bin': (req, socket) => req.index === 0 ? big(req, socket) : void socket.write(rawResponse(200, ['cache-control: private'], 'yours alone')),
  })
  const edge = await edgeFor(t, origin, { maxObjectBytes: MAX_OBJECT_BYTES })
  const first = streamGet(edge.url + '/p.bin', false)
  await until(() => origin.count('/p.bin') === 1, 'the fill request')
  const joiner = fetchRaw(edge.url + '/p.bin')
  // attached to the fill, which it cannot share once the head says private
  await until(() => edge.proxy.fillReaders('/p.bin') === 2, 'the joiner to attach')
  held.open()
  const alone: Fetched = await joiner
  t.equal(alone.body.toString(), 'yours alone', 'the joiner fetched on its own')
  t.equal(await edge.metrics.collapsed.value({ outcome: 'not-shareable' }), 1)
  await pausedClientPausesOrigin(t, first, sent)
  t.notOk(stored(edge, '/p.bin'))
})

t.test('a released fill with a HEAD joiner from before the head (it never reads the body) does not stall: the GET gets it whole', async (t) => {
  // Nothing can be dropped while a reader that attached has no cursor (it might start at byte
  // 0): a pause past the window would then never end. The fill keeps the body instead.
  const held = gate()
  t.teardown(() => held.open())
  const sent: Sent = { bytes: 0 }
  const total = RELEASED_WINDOW_BYTES + 16 * MiB
  const origin = await startRawOrigin(t, { '/h.bin': flood(200, ['cache-control: max-age=60'], 'unframed', total, sent, held.promise) })
  const edge = await edgeFor(t, origin, { maxObjectBytes: MAX_OBJECT_BYTES })
  const first = streamGet(edge.url + '/h.bin', false)
  await until(() => origin.count('/h.bin') === 1, 'the fill request')
  const headReq = fetchRaw(edge.url + '/h.bin', { method: 'HEAD' })
  await until(() => edge.proxy.fillReaders('/h.bin') === 2, 'the HEAD to attach')
  held.open()
  const headRes = await headReq
  t.equal(headRes.status, 200, 'HEAD answered from the fill')
  t.equal(headRes.headers['content-length'], undefined, 'unframed: no length')
  const { error } = await Promise.race([
    first.done,
    sleep(30_000, undefined, { ref: false }).then(() => ({ error: new Error(`stalled at ${first.received()} of ${total} bytes`) })),
  ])
  t.equal(error, undefined, 'complete')
  t.equal(first.received(), total, 'the whole body')
  t.equal(origin.count('/h.bin'), 1, 'one origin request')
})

// ---- readers that attach and read no body: each detaches, so a released fill still drops -----------
//
// A reader attached to a fill reads through a cursor or detaches (SharedFill.detach); until each
// has done one or the other, a released fill drops nothing and never pauses its upstream. So in
// each case below, with the reader under test left attached, the origin sends all of it to a
// paused client's edge (pausedClientPausesOrigin fails).

/**
 * A GET whose client sends it and then leaves before any answer, with a reset: a FIN alone
 * would read as a half-close, which the edge still answers.
 */
function leaveEarly (url: string): { leave (): void } {
  const req = http.request(url, { agent: false })
  req.on('error', () => {})
  req.end()
  return { leave: () => req.socket?.resetAndDestroy() }
}

for (const way of ['the fast path', 'node:http'] as const) {
  t.test(`a fill released at its head (Content-Length past maxObjectBytes) with a HEAD joiner on ${way}: the HEAD gets the head, a paused client still pauses the origin`, async (t) => {
    const held = gate()
    t.teardown(() => held.open())
    const sent: Sent = { bytes: 0 }
    const origin = await startRawOrigin(t, { '/big.bin': flood(200, ['cache-control: max-age=60'], 'length', OBJECT_BYTES, sent, held.promise) })
    const edge = await edgeFor(t, origin, { maxObjectBytes: MAX_OBJECT_BYTES })
    const first = streamGet(edge.url + '/big.bin', false)
    await until(() => origin.count('/big.bin') === 1, 'the fill request')
    // x-force-slow: a field the fast path declines (FAST_HIT_FIELDS), so node:http joins
    const headReq = fetchRaw(edge.url + '/big.bin', { method: 'HEAD', headers: way === 'the fast path' ? {} : { 'x-force-slow': '1' } })
    await until(() => edge.proxy.fillReaders('/big.bin') === 2, 'the HEAD to attach')
    held.open()
    const headRes = await headReq
    t.equal(headRes.status, 200, 'HEAD answered from the fill')
    t.equal(headRes.headers['content-length'], String(OBJECT_BYTES), 'with the whole length')
    t.ok(member(headRes.headers)?.collapsed, 'collapsed')
    t.equal(edge.fastPathStats()?.answered, way === 'the fast path' ? 1 : 0, `answered on ${way}`)
    await pausedClientPausesOrigin(t, first, sent)
    t.equal(origin.count('/big.bin'), 1, 'one origin request')
  })
}

t.test('an unframed fill past maxObjectBytes with a HEAD joiner the fast path hands to node:http: answered there from the fill, a paused client still pauses the origin', async (t) => {
  const held = gate()
  t.teardown(() => held.open())
  const sent: Sent = { bytes: 0 }
  const origin = await startRawOrigin(t, { '/h.bin': flood(200, ['cache-control: max-age=60'], 'unframed', OBJECT_BYTES, sent, held.promise) })
  const edge = await edgeFor(t, origin, { maxObjectBytes: MAX_OBJECT_BYTES })
  const first = streamGet(edge.url + '/h.bin', false)
  await until(() => origin.count('/h.bin') === 1, 'the fill request')
  const headReq = fetchRaw(edge.url + '/h.bin', { method: 'HEAD' })
  await until(() => edge.proxy.fillReaders('/h.bin') === 2, 'the HEAD to attach on the fast path')
  held.open()
  const headRes = await headReq
  t.equal(headRes.status, 200, 'HEAD answered from the fill')
  t.equal(headRes.headers['content-length'], undefined, 'unframed: no length')
  t.ok(member(headRes.headers)?.collapsed, 'collapsed')
  t.equal(edge.fastPathStats()?.answered, 0, 'not answered on the fast path')
  t.equal(edge.fastPathStats()?.handedOff, 2, 'both connections went to node:http')
  await pausedClientPausesOrigin(t, first, sent)
  t.equal(origin.count('/h.bin'), 1, 'one origin request: the HEAD rejoined the same fill')
})

const HEAD_ONLY_ANSWERS = [
  { status: 304, what: 'a 304 (If-None-Match matches)', headers: { 'if-none-match': '"v1"' } },
  { status: 412, what: 'a 412 (If-Match does not)', headers: { 'if-match': '"v0"' } },
  { status: 416, what: 'a 416 (a Range past the end)', headers: { range: `bytes=${OBJECT_BYTES}-` } },
] as const

for (const c of HEAD_ONLY_ANSWERS) {
  t.test(`a fill released at its head with a GET joiner answered ${c.what} from the head: a paused client still pauses the origin`, async (t) => {
    const held = gate()
    t.teardown(() => held.open())
    const sent: Sent = { bytes: 0 }
    const origin = await startRawOrigin(t, { '/c.bin': flood(200, ['cache-control: max-age=60', 'etag: "v1"'], 'length', OBJECT_BYTES, sent, held.promise) })
    // no range guard: the 416 joiner joins the fill instead of asking upstream for its range
    const edge = await edgeFor(t, origin, { maxObjectBytes: MAX_OBJECT_BYTES, rangeMissOffsetBytes: 0 })
    const first = streamGet(edge.url + '/c.bin', false)
    await until(() => origin.count('/c.bin') === 1, 'the fill request')
    const joiner = fetchRaw(edge.url + '/c.bin', { headers: c.headers })
    await until(() => edge.proxy.fillReaders('/c.bin') === 2, 'the joiner to attach')
    held.open()
    const res = await joiner
    t.equal(res.status, c.status, `${c.status} from the fill's head`)
    t.ok(member(res.headers)?.collapsed, 'collapsed')
    await pausedClientPausesOrigin(t, first, sent)
    t.equal(origin.count('/c.bin'), 1, 'one origin request')
  })
}

t.test('a HEAD that starts a fill released at its head, and a GET that joined it: a paused GET still pauses the origin', async (t) => {
  const held = gate()
  t.teardown(() => held.open())
  const sent: Sent = { bytes: 0 }
  const origin = await startRawOrigin(t, { '/i.bin': flood(200, ['cache-control: max-age=60'], 'length', OBJECT_BYTES, sent, held.promise) })
  const edge = await edgeFor(t, origin, { maxObjectBytes: MAX_OBJECT_BYTES })
  const headReq = fetchRaw(edge.url + '/i.bin', { method: 'HEAD' })
  await until(() => origin.count('/i.bin') === 1, 'the fill request')
  const joiner = streamGet(edge.url + '/i.bin', false)
  await until(() => edge.proxy.fillReaders('/i.bin') === 2, 'the GET to attach')
  held.open()
  const headRes = await headReq
  t.equal(headRes.status, 200, 'HEAD answered from its own fill')
  t.equal(headRes.headers['content-length'], String(OBJECT_BYTES))
  t.notOk(member(headRes.headers)?.collapsed, 'the initiator')
  await pausedClientPausesOrigin(t, joiner, sent)
  t.equal(origin.count('/i.bin'), 1, 'one origin request')
})

for (const framing of ['length', 'unframed'] as const) {
  const kind = framing === 'length' ? 'a Content-Length past maxObjectBytes (answered on the fast path)' : 'an unframed body (handed to node:http)'
  t.test(`a fast-path joiner whose client left before the head of ${kind}: a paused client still pauses the origin, the abort is counted once`, async (t) => {
    const held = gate()
    t.teardown(() => held.open())
    const sent: Sent = { bytes: 0 }
    const origin = await startRawOrigin(t, { '/g.bin': flood(200, ['cache-control: max-age=60'], framing, OBJECT_BYTES, sent, held.promise) })
    const edge = await edgeFor(t, origin, { maxObjectBytes: MAX_OBJECT_BYTES })
    const first = streamGet(edge.url + '/g.bin', false)
    await until(() => origin.count('/g.bin') === 1, 'the fill request')
    const gone = leaveEarly(edge.url + '/g.bin')
    await until(() => edge.proxy.fillReaders('/g.bin') === 2, 'the joiner to attach')
    t.equal(edge.fastPathStats()?.open, 1, 'it waits on the fast path')
    gone.leave()
    await until(() => edge.fastPathStats()?.open === 0, 'the edge to see the client go')
    held.open()
    await pausedClientPausesOrigin(t, first, sent)
    t.equal(await edge.metrics.clientAborts.value({ phase: 'collapsed' }), 1, 'the joiner counted as a client abort')
    t.equal(edge.fastPathStats()?.handedOff, 1, 'only the first client went to node:http')
    t.equal(origin.count('/g.bin'), 1, 'one origin request')
  })
}

t.test('a fast-path join handed to node:http, which refuses it there (its Via names the edge: a loop, 508): a paused client still pauses the origin', async (t) => {
  const held = gate()
  t.teardown(() => held.open())
  const sent: Sent = { bytes: 0 }
  const origin = await startRawOrigin(t, { '/v.bin': flood(200, ['cache-control: max-age=60'], 'unframed', OBJECT_BYTES, sent, held.promise) })
  const edge = await edgeFor(t, origin, { maxObjectBytes: MAX_OBJECT_BYTES })
  const first = streamGet(edge.url + '/v.bin', false)
  await until(() => origin.count('/v.bin') === 1, 'the fill request')
  // the fast path checks CDN-Loop only; node:http's loop check reads Via too
  const looped = fetchRaw(edge.url + '/v.bin', { headers: { via: `1.1 ${EDGE}` } })
  await until(() => edge.proxy.fillReaders('/v.bin') === 2, 'the joiner to attach on the fast path')
  held.open()
  const res = await looped
  t.equal(res.status, 508, 'refused by node:http as a loop')
  t.equal(edge.fastPathStats()?.handedOff, 2, 'handed over')
  await pausedClientPausesOrigin(t, first, sent)
  t.equal(origin.count('/v.bin'), 1, 'one origin request')
})
