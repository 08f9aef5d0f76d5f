/**
 * Adversarial cases for shared fills through a real edge: upstreams that lie about framing
 * or status, fail or stall at every phase of a fill, and joiners that arrive at every phase,
 * on both paths (the fast path below node:http answers plain GETs and HEADs; a request with a
 * header it declines, here `x-force-slow`, or with a Range on a miss goes through node:http).
 * The origin is a raw `net` server (test/helpers/raw-origin.ts) writing exactly the bytes a
 * case needs; a raw client socket is used where the exact bytes on the wire matter.
 *
 * What every case holds the edge to: nothing damaged or unframed is stored; a client gets a
 * complete correct response, a complete error response with Cache-Status, or a closed
 * connection (an aborted transfer), never a short body presented as complete; a joiner that
 * has been sent nothing when the writer is stuck fetches alone; and the next request elects
 * a new writer and succeeds.
 */
import net from 'node:net'
import t from 'tap'
import { TrackedBodies } from '../../edge/proxy/tracked-bodies.ts'
import { HttpUpstream, type Upstream } from '../../edge/proxy/upstream.ts'
import type { TestNode } from '../helpers/cache-node.ts'
import { fetchRaw, type Fetched, type FetchOptions } from '../helpers/http-client.ts'
import { edgeFor, rawResponse, startRawOrigin, status, stored, TIMEOUTS } from '../helpers/raw-origin.ts'
import { gate, until } from './rfc9111/harness.ts'

/** A header the fast path declines: the request goes through node:http. */
const SLOW = { 'x-force-slow': '1' }

/** fetchRaw that reports a connection closed before any response as `error` instead of rejecting. */
async function get (url: string, options: FetchOptions = {}): Promise<Fetched> {
  const startedAt = performance.now()
  try {
    return await fetchRaw(url, options)
  } catch (err) {
    return { status: 0, headers: {}, body: Buffer.alloc(0), startedAt, headersAt: 0, firstByteAt: undefined, endAt: performance.now(), error: err as Error }
  }
}

/** Resolves once the fill's upstream head has reached the edge (it counts the response then). */
async function headArrived (edge: TestNode, n = 1): Promise<void> {
  await until(async () => await edge.metrics.upstreamResponses.value() >= n, 'the upstream head at the edge')
}

/** A cacheable body of `bytes` bytes. */
function bodyOf (bytes: number, seed = 1): Buffer {
  const out = Buffer.allocUnsafe(bytes)
  for (let i = 0; i < bytes; i++) out[i] = (i * 31 + seed) & 0xff
  return out
}

/** Sends `request` on a new connection and returns every byte the edge sends until it closes. */
async function rawExchange (url: string, request: string): Promise<string> {
  const { port } = new URL(url)
  const socket = net.connect(Number(port), '127.0.0.1')
  socket.on('error', () => {})
  let out = ''
  socket.on('data', (chunk: Buffer) => { out += chunk.toString('latin1') })
  socket.write(request)
  await new Promise((resolve) => socket.once('close', resolve))
  return out
}

// ---- framing ---------------------------------------------------------------------------

t.test('a close-delimited body (no Content-Length, not chunked): shared with joiners, never stored (a cut there looks like the end)', async (t) => {
  const held = gate()
  const body = 'the first part of a body the origin crashed in the middle of'
  const origin = await startRawOrigin(t, {
    '/x.bin': async (req, socket) => {
      if (req.index === 0) {
        await held.promise
        socket.end(rawResponse(200, ['cache-control: max-age=60', 'connection: close'], body, 'none'))
        return
      }
      socket.write(rawResponse(200, ['cache-control: max-age=60'], 'the whole body'))
    },
  })
  const edge = await edgeFor(t, origin)
  const first = get(edge.url + '/x.bin')
  await until(() => origin.count('/x.bin') === 1, 'the fill request')
  const joiners = [get(edge.url + '/x.bin'), get(edge.url + '/x.bin', { headers: SLOW })]
  await until(() => edge.proxy.fillReaders('/x.bin') === 3, 'the joiners')
  held.open()
  for (const [i, r] of (await Promise.all([first, ...joiners])).entries()) {
    t.equal(r.status, 200, `reader ${i}`)
    t.equal(r.body.toString(), body, `reader ${i}: relayed as it came`)
    t.notOk(status(r).stored, `reader ${i}: Cache-Status does not say stored`)
  }
  t.equal(origin.count('/x.bin'), 1, 'one upstream request for all three')
  t.notOk(stored(edge, '/x.bin'), 'nothing stored: its end cannot be told from a cut')
  t.equal(await edge.metrics.admissionRejections.value({ reason: 'unframed' }), 1, 'counted')
  const next = await get(edge.url + '/x.bin')
  t.equal(next.body.toString(), 'the whole body', 'the next request elects a writer again')
  t.match(status(next), { fwd: 'uri-miss', stored: true })
  t.equal(status(await get(edge.url + '/x.bin')).hit, true)
  t.equal(origin.count('/x.bin'), 2)
})

t.test('a chunked body reset (RST) mid-body: fast and node:http joiners aborted, nothing stored, the next request refetches', async (t) => {
  const held = gate()
  const origin = await startRawOrigin(t, {
    '/c.bin': async (req, socket) => {
      if (req.index > 0) {
        socket.write(rawResponse(200, ['cache-control: max-age=60'], 'hello world'))
        return
      }
      await held.promise
      socket.write(rawResponse(200, ['cache-control: max-age=60', 'transfer-encoding: chunked'], '5\r\nhello\r\n', 'none'))
      setTimeout(() => socket.resetAndDestroy(), 30)
    },
  })
  const edge = await edgeFor(t, origin)
  const first = get(edge.url + '/c.bin')
  await until(() => origin.count('/c.bin') === 1, 'the fill request')
  const joiners = [get(edge.url + '/c.bin'), get(edge.url + '/c.bin', { headers: SLOW })]
  await until(() => edge.proxy.fillReaders('/c.bin') === 3, 'the joiners')
  held.open()
  for (const [i, r] of (await Promise.all([first, ...joiners])).entries()) {
    t.ok(r.error !== undefined, `reader ${i}: an aborted transfer, not a complete response`)
    t.ok(r.body.length <= 5, `reader ${i}`)
  }
  t.notOk(stored(edge, '/c.bin'))
  const next = await get(edge.url + '/c.bin')
  t.equal(next.body.toString(), 'hello world')
  t.equal(next.error, undefined)
})

t.test('a .ts body failing the sync check with joiners: every reader gets the bytes as they came, nothing stored, the next request refetches', async (t) => {
  const held = gate()
  const bad = Buffer.alloc(188 * 3, 0x47)
  bad[188] = 0x00
  const good = Buffer.alloc(188 * 3, 0x47)
  const origin = await startRawOrigin(t, {
    '/seg1.ts': async (req, socket) => {
      if (req.index === 0) await held.promise
      socket.write(rawResponse(200, ['cache-control: max-age=60', 'content-type: video/mp2t'], req.index === 0 ? bad : good))
    },
  })
  const edge = await edgeFor(t, origin)
  const first = get(edge.url + '/seg1.ts')
  await until(() => origin.count('/seg1.ts') === 1, 'the fill request')
  const joiners = [get(edge.url + '/seg1.ts'), get(edge.url + '/seg1.ts', { headers: SLOW })]
  await until(() => edge.proxy.fillReaders('/seg1.ts') === 3, 'the joiners')
  held.open()
  for (const r of await Promise.all([first, ...joiners])) t.ok(r.body.equals(bad) && r.error === undefined)
  t.notOk(stored(edge, '/seg1.ts'))
  t.equal(await edge.metrics.admissionRejections.value({ reason: 'integrity' }), 1)
  t.ok((await get(edge.url + '/seg1.ts')).body.equals(good))
  t.equal(status(await get(edge.url + '/seg1.ts')).hit, true)
})

// ---- a writer stuck after its head -----------------------------------------------------

t.test('head, then the upstream stalls: joiners sent nothing yet go upstream alone after the lock timeout (both paths, before and after the head)', async (t) => {
  const body = bodyOf(1000)
  const headGate = gate()
  let stalled: net.Socket | undefined
  const origin = await startRawOrigin(t, {
    '/stuck.bin': async (req, socket) => {
      if (req.index === 0) {
        stalled = socket
        await headGate.promise
        socket.write(rawResponse(200, ['cache-control: max-age=60', `content-length: ${body.length}`], '', 'none'))
        return // and not a byte more
      }
      socket.write(rawResponse(200, ['cache-control: max-age=60'], body))
    },
  })
  // The idle timeout (5 s) is far longer than the lock timeout: the joiners must not wait for it.
  const lockTimeoutMs = 300
  const edge = await edgeFor(t, origin, { lockTimeoutMs })
  const first = get(edge.url + '/stuck.bin')
  await until(() => origin.count('/stuck.bin') === 1, 'the fill request')
  const before = [get(edge.url + '/stuck.bin'), get(edge.url + '/stuck.bin', { headers: SLOW })]
  await until(() => edge.proxy.fillReaders('/stuck.bin') === 3, 'the joiners before the head')
  headGate.open()
  await headArrived(edge)
  const after = get(edge.url + '/stuck.bin', { headers: SLOW })
  const fastAfter = get(edge.url + '/stuck.bin')
  const head = await get(edge.url + '/stuck.bin', { method: 'HEAD' })
  t.equal(head.status, 200, 'a HEAD joiner needs no body: the fill\'s head answers it')
  t.equal(head.headers['content-length'], String(body.length))
  const startedMs = performance.now()
  for (const [name, r] of [['fast, before the head', await before[0]!], ['node:http, before the head', await before[1]!], ['node:http, after the head', await after], ['fast, after the head', await fastAfter]] as const) {
    t.equal(r.status, 200, name)
    t.equal(r.error, undefined, `${name}: complete`)
    t.ok(r.body.equals(body), `${name}: the whole body, fetched on its own`)
    t.match(status(r), { fwd: 'uri-miss', detail: 'lock-timeout' }, name)
  }
  t.ok(performance.now() - startedMs < 4000, 'well before the upstream idle timeout')
  t.equal(origin.count('/stuck.bin'), 5, 'the stuck fill and one request of its own per GET joiner')
  t.equal(await edge.metrics.collapsed.value({ outcome: 'lock-timeout' }), 4)
  t.notOk(stored(edge, '/stuck.bin'), 'uncached')
  stalled!.destroy() // the writer dies before sending a byte
  const r = await first
  t.ok(r.error !== undefined, 'the first client: a clean error, never a short 200')
  t.equal(r.body.length, 0)
  t.notOk(stored(edge, '/stuck.bin'))
  const next = await get(edge.url + '/stuck.bin')
  t.ok(next.body.equals(body), 'the next request elects a writer again')
  t.match(status(next), { fwd: 'uri-miss', stored: true })
})

t.test('head, then the upstream dies before any body byte: the writer\'s client and waiting joiners on both paths are cut off, the next request refetches', async (t) => {
  const held = gate()
  const origin = await startRawOrigin(t, {
    '/dies.bin': async (req, socket) => {
      if (req.index > 0) {
        socket.write(rawResponse(200, ['cache-control: max-age=60'], 'fine now'))
        return
      }
      socket.write(rawResponse(200, ['cache-control: max-age=60', 'content-length: 5000'], '', 'none'))
      await held.promise
      socket.destroy()
    },
  })
  const edge = await edgeFor(t, origin)
  const first = get(edge.url + '/dies.bin')
  await headArrived(edge)
  const joiners = [get(edge.url + '/dies.bin'), get(edge.url + '/dies.bin', { headers: SLOW })]
  await until(() => edge.proxy.fillReaders('/dies.bin') === 3, 'the joiners')
  held.open()
  for (const [i, r] of (await Promise.all([first, ...joiners])).entries()) {
    t.ok(r.error !== undefined, `reader ${i}: no complete response`)
    t.equal(r.body.length, 0, `reader ${i}`)
  }
  t.equal(origin.count('/dies.bin'), 1)
  t.notOk(stored(edge, '/dies.bin'))
  t.equal((await get(edge.url + '/dies.bin')).body.toString(), 'fine now')
})

// ---- ranges on a miss ------------------------------------------------------------------

t.test('ranges on a miss served from a fill that fails at byte 100: a range already there is served, ranges it never reaches are cut off', async (t) => {
  const body = bodyOf(1000, 3)
  const held = gate()
  const origin = await startRawOrigin(t, {
    '/r.bin': async (req, socket) => {
      if (req.index > 0) {
        socket.write(rawResponse(200, ['cache-control: max-age=60'], body))
        return
      }
      socket.write(rawResponse(200, ['cache-control: max-age=60', `content-length: ${body.length}`], body.subarray(0, 100), 'none'))
      await held.promise
      socket.destroy()
    },
  })
  const edge = await edgeFor(t, origin)
  // the first request (the writer's) asks for a range the fill never reaches
  const never = get(edge.url + '/r.bin', { headers: { range: 'bytes=500-599' } })
  await headArrived(edge)
  await until(() => edge.proxy.fillReaders('/r.bin') === 1, 'the fill')
  const early = get(edge.url + '/r.bin', { headers: { range: 'bytes=10-19' } })
  const late = get(edge.url + '/r.bin', { headers: { range: 'bytes=900-' } })
  const whole = get(edge.url + '/r.bin')
  await until(() => edge.proxy.fillReaders('/r.bin') === 4, 'the joiners')
  const e = await early
  t.equal(e.status, 206)
  t.equal(e.headers['content-range'], 'bytes 10-19/1000')
  t.ok(e.body.equals(body.subarray(10, 20)), 'a range the fill already had')
  held.open()
  for (const [name, r] of [['the writer\'s', await never], ['a late joiner\'s', await late]] as const) {
    t.ok(r.error !== undefined, `${name} range: no complete response`)
    t.equal(r.body.length, 0, `${name}: none of the bytes before its offset`)
  }
  const w = await whole
  t.equal(w.status, 200)
  t.ok(w.error !== undefined, 'the whole-body joiner had bytes: aborted, never short')
  t.equal(w.body.length, 100)
  t.notOk(stored(edge, '/r.bin'))
  const next = await get(edge.url + '/r.bin', { headers: { range: 'bytes=500-599' } })
  t.equal(next.status, 206)
  t.ok(next.body.equals(body.subarray(500, 600)), 'the next request elects a writer and gets its range')
})

t.test('a 200 carrying Content-Range, asked with Range: relayed as it came, never a 206 with a length of our own making', async (t) => {
  const origin = await startRawOrigin(t, {
    '/cr.bin': (_req, socket) => { socket.write(rawResponse(200, ['cache-control: max-age=60', 'content-range: bytes 0-3/10'], 'abcd')) },
  })
  const edge = await edgeFor(t, origin)
  for (const range of ['bytes=1-2', 'bytes=0-0,2-3']) {
    const r = await get(edge.url + '/cr.bin', { headers: { range } })
    t.equal(r.status, 200, `${range}: the origin's 200`)
    t.equal(r.headers['content-range'], 'bytes 0-3/10', `${range}: with the origin's Content-Range (the representation is 10 bytes, not 4)`)
    t.equal(r.body.toString(), 'abcd')
    t.equal(r.error, undefined)
    t.equal(r.headers['accept-ranges'], undefined, `${range}: and no promise of ranges it does not keep`)
  }
  t.notOk(stored(edge, '/cr.bin'))
})

// ---- statuses that lie on the forward paths ----------------------------------------------

t.test('a 304 to an unconditional request sent upstream alone (a range beyond the guard): a 502 that says so, never the 304', async (t) => {
  const origin = await startRawOrigin(t, {
    '/far.bin': (_req, socket) => { socket.write(rawResponse(304, ['cache-control: max-age=60', 'etag: "v1"'], '', 'none')) },
  })
  const edge = await edgeFor(t, origin, { rangeMissOffsetBytes: 100 })
  const r = await get(edge.url + '/far.bin', { headers: { range: 'bytes=1000-1999' } })
  t.equal(origin.requests[0]?.headers.range, 'bytes=1000-1999', 'sent upstream as a range request of its own')
  t.equal(r.status, 502, 'the client set no condition: a 304 would show it nothing')
  t.equal(r.error, undefined)
  t.match(status(r), { fwd: 'uri-miss', 'fwd-status': '304', detail: 'CDN_ERR_UPSTREAM_PROTOCOL' })
  const conditional = await get(edge.url + '/far.bin', { headers: { range: 'bytes=1000-1999', 'if-none-match': '"v1"' } })
  t.equal(conditional.status, 304, 'a client that asked with a condition still gets its 304')
  const raw = await rawExchange(edge.url, 'GET /far.bin HTTP/1.1\r\nhost: x\r\nrange: bytes=1000-\r\nconnection: close\r\n\r\n')
  t.match(raw, /^HTTP\/1\.1 502 /, 'on the wire too')
  t.match(raw, /\r\ncache-status: streamedge-test-edge; fwd=uri-miss; fwd-status=304; detail=CDN_ERR_UPSTREAM_PROTOCOL\r\n/i)
})

t.test('a 304 to an unconditional request of a joiner gone upstream after the lock timeout: a 502, never the 304', async (t) => {
  const held = gate()
  const origin = await startRawOrigin(t, {
    '/lt.bin': async (req, socket) => {
      if (req.index === 0) {
        await held.promise
        socket.write(rawResponse(200, ['cache-control: max-age=60'], 'late'))
        return
      }
      socket.write(rawResponse(304, ['cache-control: max-age=60', 'etag: "v1"'], '', 'none'))
    },
  })
  const edge = await edgeFor(t, origin, { lockTimeoutMs: 100 })
  const first = get(edge.url + '/lt.bin')
  await until(() => origin.count('/lt.bin') === 1, 'the fill request')
  for (const headers of [{}, SLOW]) {
    const r = await get(edge.url + '/lt.bin', { headers })
    t.equal(r.status, 502)
    t.match(status(r), { detail: 'CDN_ERR_UPSTREAM_PROTOCOL' })
  }
  held.open()
  t.equal((await first).body.toString(), 'late')
})

// ---- joiners at every phase, clients that leave, slow readers ---------------------------------

t.test('joiners before the head, after it, mid-body, and after the end while the disk copy is written: all get the whole body; leavers cancel nothing', async (t) => {
  const body = bodyOf(200_000, 7)
  const headGate = gate()
  const midGate = gate()
  const endGate = gate()
  const origin = await startRawOrigin(t, {
    '/big.bin': async (req, socket) => {
      if (req.index > 0) {
        socket.write(rawResponse(200, ['cache-control: max-age=60'], body))
        return
      }
      await headGate.promise
      socket.write(rawResponse(200, ['cache-control: max-age=60', `content-length: ${body.length}`], '', 'none'))
      await midGate.promise
      socket.write(body.subarray(0, 100_000))
      await endGate.promise
      socket.write(body.subarray(100_000))
    },
  })
  // too big for memory: the fill answers joiners until the disk copy exists
  const edge = await edgeFor(t, origin, { memoryMaxObjectBytes: 1000 })
  const all: Array<Promise<Fetched>> = []
  const leaving: Array<Promise<Fetched>> = []
  all.push(get(edge.url + '/big.bin'))
  await until(() => origin.count('/big.bin') === 1, 'the fill request')
  all.push(get(edge.url + '/big.bin'), get(edge.url + '/big.bin', { headers: SLOW }))
  const firstByte = get(edge.url + '/big.bin', { abortAfterBytes: 1 })
  leaving.push(firstByte)
  await until(() => edge.proxy.fillReaders('/big.bin') === 4, 'the joiners before the head')
  headGate.open()
  await headArrived(edge)
  all.push(get(edge.url + '/big.bin'), get(edge.url + '/big.bin', { headers: SLOW }))
  await until(() => edge.proxy.fillReaders('/big.bin') === 6, 'the joiners after the head')
  midGate.open()
  await firstByte // bytes are flowing: the fill is mid-body (the rest is held)
  all.push(get(edge.url + '/big.bin'), get(edge.url + '/big.bin', { headers: SLOW }), get(edge.url + '/big.bin', { method: 'HEAD' }))
  leaving.push(get(edge.url + '/big.bin', { abortAfterBytes: 50_000, headers: SLOW }))
  await until(() => edge.proxy.fillReaders('/big.bin') >= 9, 'the joiners mid-body')
  for (const r of await Promise.all(leaving)) t.ok(r.error !== undefined, 'a leaver leaves')
  endGate.open()
  // after the end, before the disk copy is done (or a hit from it): either way the whole body
  all.push(get(edge.url + '/big.bin'), get(edge.url + '/big.bin', { headers: SLOW }))
  for (const [i, r] of (await Promise.all(all)).entries()) {
    t.equal(r.status, 200, `reader ${i}`)
    t.equal(r.error, undefined, `reader ${i}`)
    if (r.headers['content-length'] !== undefined) t.equal(r.headers['content-length'], String(body.length), `reader ${i}`)
  }
  for (const r of (await Promise.all(all)).filter((_, i) => i !== 7)) t.ok(r.body.equals(body))
  t.equal(origin.count('/big.bin'), 1, 'one upstream request for all of them')
  await until(() => edge.store.disk.has('/big.bin'), 'the disk copy')
  const hit = await get(edge.url + '/big.bin')
  t.ok(hit.body.equals(body))
  t.equal(status(hit).hit, true)
})

t.test('a fast-path reader that stops reading stalls neither the fill nor the others; the fill is stored', async (t) => {
  const body = bodyOf(4 * 1024 * 1024, 9)
  const held = gate()
  const origin = await startRawOrigin(t, {
    '/slow.bin': async (req, socket) => {
      if (req.index === 0) await held.promise
      socket.write(rawResponse(200, ['cache-control: max-age=60'], body))
    },
  })
  const edge = await edgeFor(t, origin)
  const first = get(edge.url + '/slow.bin')
  await until(() => origin.count('/slow.bin') === 1, 'the fill request')
  // a raw client that sends a plain GET (the fast path) and never reads
  const { port } = new URL(edge.url)
  const stuck = net.connect(Number(port), '127.0.0.1')
  stuck.on('error', () => {})
  t.teardown(() => { stuck.destroy() })
  stuck.pause()
  stuck.write('GET /slow.bin HTTP/1.1\r\nhost: x\r\n\r\n')
  const others = [get(edge.url + '/slow.bin'), get(edge.url + '/slow.bin', { headers: SLOW })]
  await until(() => edge.proxy.fillReaders('/slow.bin') === 4, 'the joiners')
  held.open()
  for (const r of await Promise.all([first, ...others])) t.ok(r.error === undefined && r.body.equals(body))
  await until(() => edge.store.memory.peek('/slow.bin') !== undefined, 'stored while one reader still reads nothing')
  t.equal(origin.count('/slow.bin'), 1)
})

t.test('an upstream body destroyed without an error (a chain cutting its bodies at close): the fill fails instead of hanging, its readers and warm() are told', async (t) => {
  const held = gate()
  const origin = await startRawOrigin(t, {
    '/cut.bin': async (req, socket) => {
      if (req.index > 0) {
        socket.write(rawResponse(200, ['cache-control: max-age=60'], 'whole'))
        return
      }
      socket.write(rawResponse(200, ['cache-control: max-age=60', 'content-length: 5000'], 'x'.repeat(100), 'none'))
      await held.promise
    },
  })
  t.teardown(() => held.open())
  // What the shield chain and the origin pool hand the pipeline: an undici body wrapped by TrackedBodies.
  const http = new HttpUpstream({ url: origin.url, ...TIMEOUTS })
  const bodies = new TrackedBodies()
  const upstream: Upstream = {
    name: 'tracked',
    request: async (req) => bodies.track(await http.request(req), 'tracked', () => {}),
    close: async () => {
      bodies.destroyAll()
      await http.close()
    },
  }
  const edge = await edgeFor(t, origin, { upstream })
  const first = get(edge.url + '/cut.bin')
  await until(() => origin.count('/cut.bin') === 1, 'the fill request')
  const joiner = get(edge.url + '/cut.bin', { headers: SLOW })
  const warmed = edge.proxy.warm('/cut.bin')
  await until(() => edge.proxy.fillReaders('/cut.bin') === 2, 'the joiner')
  await until(async () => await edge.metrics.upstreamResponses.value() >= 1, 'the head')
  bodies.destroyAll() // no error, no end: only 'close'
  const timeout = new Promise<'hung'>((resolve) => setTimeout(() => resolve('hung'), 3000).unref())
  const outcome = await Promise.race([warmed, timeout])
  t.not(outcome, 'hung', 'warm() is told')
  t.match(outcome, { result: 'failed' })
  for (const r of await Promise.all([first, joiner].map((p) => Promise.race([p, timeout])))) {
    t.not(r, 'hung', 'the reader is told')
    if (r !== 'hung') t.ok(r.error !== undefined, 'aborted, never ended short')
  }
  t.notOk(stored(edge, '/cut.bin'))
  t.equal(edge.proxy.fillsInFlight, 0, 'the fill is gone')
  t.equal((await get(edge.url + '/cut.bin')).body.toString(), 'whole', 'the next request elects a writer again')
})

t.test('range joiners of a chunked fill (answered once it is whole) when it fails: a 502 whose Cache-Status says they were collapsed', async (t) => {
  const held = gate()
  const origin = await startRawOrigin(t, {
    '/chunked.bin': async (req, socket) => {
      if (req.index > 0) {
        socket.write(rawResponse(200, ['cache-control: max-age=60'], 'hello world'))
        return
      }
      socket.write(rawResponse(200, ['cache-control: max-age=60', 'transfer-encoding: chunked'], '5\r\nhello\r\n', 'none'))
      await held.promise
      socket.destroy()
    },
  })
  const edge = await edgeFor(t, origin)
  const first = get(edge.url + '/chunked.bin')
  await headArrived(edge)
  // a range of a body of unknown length, and several ranges: answered from the whole body
  const joiners = [get(edge.url + '/chunked.bin', { headers: { range: 'bytes=0-1' } }), get(edge.url + '/chunked.bin', { headers: { range: 'bytes=0-0,2-3' } })]
  await until(() => edge.proxy.fillReaders('/chunked.bin') === 3, 'the joiners')
  held.open()
  for (const [i, r] of (await Promise.all(joiners)).entries()) {
    t.equal(r.status, 502, `joiner ${i}: nothing was sent yet: a complete error response`)
    t.equal(r.error, undefined, `joiner ${i}`)
    t.match(status(r), { fwd: 'uri-miss', collapsed: true, detail: 'CDN_ERR_UPSTREAM_TRUNCATED' }, `joiner ${i}`)
    t.notOk(status(r).stored, `joiner ${i}: and does not claim anything was stored`)
  }
  t.ok((await first).error !== undefined, 'the first client had bytes: aborted')
  t.notOk(stored(edge, '/chunked.bin'))
  const next = await get(edge.url + '/chunked.bin', { headers: { range: 'bytes=0-1' } })
  t.equal(next.status, 206)
  t.equal(next.body.toString(), 'he')
})
