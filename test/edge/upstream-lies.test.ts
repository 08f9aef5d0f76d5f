/**
 * Lying or broken upstreams, seen through a real edge: framing that lies (bytes past
 * Content-Length, conflicting lengths, broken or foreign transfer codings), statuses that
 * lie (206 and Content-Range where none was asked, 304 to no condition or naming another
 * ETag), interim responses, heads and bodies that stall, oversized heads. The origin is a
 * raw `net` server (test/helpers/raw-origin.ts) that writes whatever bytes a case needs.
 * upstream-lies-caching.test.ts has the cases about what is shared, stored and aged, and
 * the ones through a shield.
 *
 * What every case holds the edge to: a lying or truncated response is never stored; a
 * client gets either a complete, correct body or an aborted transfer (never a short body
 * presented as complete); Cache-Status says what happened; and the edge keeps serving
 * (the next request, to the same origin, is answered normally).
 */
import { gzipSync } from 'node:zlib'
import t, { type Test } from 'tap'
import { fetchRaw } from '../helpers/http-client.ts'
import type { TestNode } from '../helpers/cache-node.ts'
import { countHandled, edgeFor, herd, TIMEOUTS, type RawHandler, type RawOrigin, rawResponse, startRawOrigin, status, stored } from '../helpers/raw-origin.ts'
import { Clock, gate, until } from './rfc9111/harness.ts'

/** A well-behaved cacheable answer (for "the edge keeps serving" checks). */
function good (body: string, extra: readonly string[] = []): RawHandler {
  return (_req, socket) => { socket.write(rawResponse(200, ['content-type: text/plain', 'cache-control: max-age=60', ...extra], body)) }
}


async function sleep (ms: number): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, ms))
}

// ---- framing ---------------------------------------------------------------------------

t.test('bytes past Content-Length on a keep-alive connection: the body is what Content-Length says, and the junk never answers another request', async (t) => {
  // The junk is a whole, cacheable response: if the edge reused the connection and read it
  // as the answer to its next request, /b would be poisoned with it (response splitting).
  const smuggled = rawResponse(200, ['cache-control: max-age=600'], 'POISON').toString('latin1')
  const origin = await startRawOrigin(t, {
    '/a': (_req, socket) => { socket.write(Buffer.concat([rawResponse(200, ['cache-control: max-age=60'], 'hello'), Buffer.from(smuggled, 'latin1')])) },
    '/late': (_req, socket) => {
      // The junk arrives later, while the connection sits idle in the pool.
      socket.write(rawResponse(200, ['cache-control: max-age=60'], 'late'))
      setTimeout(() => { if (!socket.destroyed) socket.write(smuggled) }, 50)
    },
    '/b': good('real b'),
    '/c': good('real c'),
  })
  // One connection, so the next request would have to reuse the one the junk came on.
  const edge = await edgeFor(t, origin, { upstreamTimeouts: { ...TIMEOUTS, connections: 1 } })
  const a = await fetchRaw(edge.url + '/a')
  t.equal(a.status, 200)
  t.equal(a.error, undefined)
  t.equal(a.body.toString(), 'hello', 'Content-Length decides where the body ends (RFC 9112 §6.3)')
  t.equal(a.headers['content-length'], '5')
  t.match(status(a), { fwd: 'uri-miss', 'fwd-status': '200', stored: true })
  const b = await fetchRaw(edge.url + '/b')
  t.equal(b.body.toString(), 'real b', 'the next request gets its own answer, not the junk')
  t.equal(origin.count('/b'), 1, 'and it really went to the origin')
  t.ok(origin.requests.find((r) => r.path === '/b')!.connection > origin.requests.find((r) => r.path === '/a')!.connection,
    'on a new connection: the one that carried junk was dropped')
  const late = await fetchRaw(edge.url + '/late')
  t.equal(late.body.toString(), 'late')
  await sleep(100) // the junk lands while the connection is idle
  const c = await fetchRaw(edge.url + '/c')
  t.equal(c.body.toString(), 'real c', 'junk on an idle connection is not kept for the next request either')
  const hit = await fetchRaw(edge.url + '/a')
  t.equal(hit.body.toString(), 'hello')
  t.equal(status(hit).hit, true, 'the 5-byte body was stored, and only it')
})

// undici refuses all of these before it hands over a head (it sums every Content-Length it
// sees and checks the body against that, chunked or not), so the pipeline never starts a
// body: a clean 502. RFC 9112 §6.3 allows it: CL with TE "ought to be handled as an error",
// and a Content-Length list that is not one repeated value is unrecoverable. The detail
// says TRUNCATED (undici's error is a length mismatch), which is at least an upstream fault.
for (const { name, head, body } of [
  { name: 'two Content-Length fields that disagree', head: ['content-length: 5', 'content-length: 7'], body: 'hello12' },
  { name: 'one Content-Length with two values', head: ['content-length: 5, 7'], body: 'hello12' },
  { name: 'Content-Length and Transfer-Encoding: chunked that disagree', head: ['content-length: 3', 'transfer-encoding: chunked'], body: '5\r\nhello\r\n0\r\n\r\n' },
  { name: 'Content-Length and Transfer-Encoding: chunked that agree', head: ['content-length: 5', 'transfer-encoding: chunked'], body: '5\r\nhello\r\n0\r\n\r\n' },
]) {
  t.test(`${name}: 502 that says so, nothing stored, the next request asks again`, async (t) => {
    const origin = await startRawOrigin(t, {
      '/x': (req, socket) => {
        if (req.index === 0) socket.write(rawResponse(200, ['cache-control: max-age=60', ...head], body, 'none'))
        else socket.write(rawResponse(200, ['cache-control: max-age=60'], 'fixed'))
      },
    })
    const edge = await edgeFor(t, origin)
    const bad = await fetchRaw(edge.url + '/x')
    t.equal(bad.status, 502, 'no guess at which length is right')
    t.equal(bad.error, undefined, 'a complete error response')
    t.match(status(bad), { fwd: 'uri-miss', detail: 'CDN_ERR_UPSTREAM_TRUNCATED' })
    t.notOk(stored(edge, '/x'))
    t.equal(await edge.metrics.upstreamErrors.value({ code: 'CDN_ERR_UPSTREAM_TRUNCATED' }), 1, 'counted as an upstream error')
    const again = await fetchRaw(edge.url + '/x')
    t.equal(again.status, 200)
    t.equal(again.body.toString(), 'fixed')
    t.equal(origin.count('/x'), 2)
  })
}

/** Resolves when `n` requests have joined another request's fill. */
async function joined (edge: TestNode, n: number): Promise<void> {
  await until(async () => await edge.metrics.collapsed.value({ outcome: 'joined' }) >= n, `${n} requests to join the fill`)
}

t.test('malformed chunked framing mid-body: every reader of the fill is aborted, nothing stored, the next request refetches', async (t) => {
  let release = (): void => {}
  const released = new Promise<void>((resolve) => { release = resolve })
  const origin = await startRawOrigin(t, {
    '/x': async (req, socket) => {
      if (req.index > 0) {
        socket.write(rawResponse(200, ['cache-control: max-age=60'], 'hello world'))
        return
      }
      socket.write(rawResponse(200, ['cache-control: max-age=60', 'transfer-encoding: chunked'], '5\r\nhello\r\n', 'none'))
      await released
      socket.write('zz\r\nnot a chunk size\r\n0\r\n\r\n')
    },
  })
  const edge = await edgeFor(t, origin)
  const first = fetchRaw(edge.url + '/x')
  await until(() => origin.count('/x') === 1, 'the fill request')
  const others = [fetchRaw(edge.url + '/x'), fetchRaw(edge.url + '/x')]
  await joined(edge, 2)
  release()
  const results = await Promise.all([first, ...others])
  for (const [i, r] of results.entries()) {
    t.equal(r.status, 200, `reader ${i}: the head was out before the framing broke`)
    t.ok(r.error !== undefined, `reader ${i}: the transfer is aborted, not ended`)
    t.ok(r.body.length <= 5, `reader ${i}: never more than the good chunk`)
  }
  t.equal(origin.count('/x'), 1, 'the readers shared one fill')
  t.notOk(stored(edge, '/x'))
  t.equal(await edge.metrics.fills.value({ outcome: 'failed' }), 1)
  t.equal(await edge.metrics.upstreamErrors.value({ code: 'CDN_ERR_UPSTREAM_PROTOCOL' }), 1, 'counted as a protocol error')
  const again = await fetchRaw(edge.url + '/x')
  t.equal(again.body.toString(), 'hello world')
  t.match(status(again), { fwd: 'uri-miss', stored: true })
})

t.test('Transfer-Encoding: gzip, chunked: the transfer-coded bytes are never served or stored as the content', async (t) => {
  const content = 'a playlist or a segment, say\n'.repeat(20)
  const coded = gzipSync(content)
  const chunked = Buffer.concat([Buffer.from(coded.length.toString(16) + '\r\n'), coded, Buffer.from('\r\n0\r\n\r\n')])
  const origin = await startRawOrigin(t, {
    '/x': (req, socket) => {
      if (req.index === 0) socket.write(rawResponse(200, ['cache-control: max-age=60', 'content-type: text/plain', 'transfer-encoding: gzip, chunked'], chunked, 'none'))
      else socket.write(rawResponse(200, ['cache-control: max-age=60', 'content-type: text/plain'], content))
    },
  })
  const edge = await edgeFor(t, origin)
  const res = await fetchRaw(edge.url + '/x')
  // undici undoes only chunked; Transfer-Encoding is hop-by-hop, so once the edge drops it the
  // gzip bytes would pass for the content itself (served, and stored for a minute).
  t.equal(res.status, 502, 'a transfer coding the edge cannot undo is an upstream protocol error')
  t.match(status(res), { fwd: 'uri-miss', detail: 'CDN_ERR_UPSTREAM_PROTOCOL' })
  t.notOk(stored(edge, '/x'))
  const again = await fetchRaw(edge.url + '/x')
  t.equal(again.body.toString(), content)
  t.equal(origin.count('/x'), 2)
})

// ---- statuses that lie -----------------------------------------------------------------

t.test('a 206 to a request that asked for no range: relayed with its Content-Range to every reader, never stored', async (t) => {
  const held = gate()
  const origin = await startRawOrigin(t, {
    '/x': async (req, socket) => {
      if (req.index === 0) await held.promise
      socket.write(rawResponse(206, ['cache-control: max-age=60', 'etag: "v1"', 'content-range: bytes 0-3/10'], 'abcd'))
    },
  })
  const edge = await edgeFor(t, origin)
  const results = await herd(edge, origin, '/x', held, 3)
  for (const [i, r] of results.entries()) {
    t.equal(r.status, 206, `reader ${i}`)
    t.equal(r.body.toString(), 'abcd')
    // Without Content-Range a 206 does not say which bytes it holds (RFC 9110 §15.3.7).
    t.equal(r.headers['content-range'], 'bytes 0-3/10', `reader ${i}: the origin's Content-Range`)
    t.equal(r.error, undefined)
  }
  t.match(status(results[0]!), { fwd: 'uri-miss', 'fwd-status': '206' })
  t.notOk(status(results[0]!).stored, 'not stored (RFC 9111 §3.3: we keep no partial content)')
  t.notOk(stored(edge, '/x'))
  t.equal(origin.count('/x'), 1, 'one fill shared (the same request would get the same answer)')
  const next = await fetchRaw(edge.url + '/x')
  t.equal(next.status, 206)
  t.equal(origin.count('/x'), 2, 'asked again')
})

t.test('a 200 carrying Content-Range: relayed as it came, never stored as the whole object', async (t) => {
  // "200" with Content-Range: bytes 0-3/10 and four bytes: the origin says complete and partial at once.
  const origin = await startRawOrigin(t, {
    '/x': (req, socket) => { socket.write(rawResponse(200, ['cache-control: max-age=60', 'content-range: bytes 0-3/10'], 'abcd')) },
  })
  const edge = await edgeFor(t, origin)
  const res = await fetchRaw(edge.url + '/x')
  t.equal(res.status, 200)
  t.equal(res.body.toString(), 'abcd')
  t.equal(res.headers['content-range'], 'bytes 0-3/10', 'the client sees what the origin said')
  t.notOk(status(res).stored)
  t.notOk(stored(edge, '/x'), 'four bytes of ten are not kept as the object')
  t.equal(await edge.metrics.admissionRejections.value({ reason: 'partial' }), 1)
  const next = await fetchRaw(edge.url + '/x')
  t.notOk(status(next).hit, 'never a hit')
  t.equal(origin.count('/x'), 2)
})

t.test('a 206 whose Content-Range is not the range asked for (a range miss sent upstream): relayed verbatim, nothing stored', async (t) => {
  const body = Buffer.alloc(2000, 'x')
  const origin = await startRawOrigin(t, {
    '/big': (req, socket) => {
      if (req.headers.range !== undefined) socket.write(rawResponse(206, ['cache-control: max-age=60', 'content-range: bytes 0-9/2000'], 'wrong part'))
      else socket.write(rawResponse(200, ['cache-control: max-age=60'], body))
    },
  })
  // A range starting past 100 bytes on a cold miss goes upstream as a range request of its own.
  const edge = await edgeFor(t, origin, { rangeMissOffsetBytes: 100 })
  const res = await fetchRaw(edge.url + '/big', { headers: { range: 'bytes=1000-1009' } })
  t.equal(origin.requests[0]?.headers.range, 'bytes=1000-1009', 'the range went upstream')
  // Passed through, not rewritten: Content-Range says which bytes these are, and a client
  // must check it (RFC 9110 §15.3.7.1). The edge has nothing better to offer without a
  // second fetch, and it stores none of it.
  t.equal(res.status, 206)
  t.equal(res.headers['content-range'], 'bytes 0-9/2000')
  t.equal(res.body.toString(), 'wrong part')
  t.match(status(res), { fwd: 'uri-miss', 'fwd-status': '206', detail: 'range-offset' })
  t.notOk(stored(edge, '/big'))
  const whole = await fetchRaw(edge.url + '/big')
  t.ok(whole.body.equals(body), 'a whole GET afterwards gets the whole object')
  t.match(status(whole), { fwd: 'uri-miss', stored: true })
  const range = await fetchRaw(edge.url + '/big', { headers: { range: 'bytes=1000-1009' } })
  t.equal(range.headers['content-range'], 'bytes 1000-1009/2000', 'and the range from storage is the one asked for')
  t.equal(origin.count('/big'), 2)
})

t.test('a 304 to the unconditional HEAD that revalidates a stale object: a 502 (or stale-if-error), never a 304 the client did not ask for', async (t) => {
  const clock = new Clock()
  const origin = await startRawOrigin(t, {
    '/x': (req, socket) => {
      if (req.method === 'HEAD') {
        socket.write(rawResponse(304, [`date: ${clock.date()}`, 'cache-control: max-age=10', 'etag: "v1"'], '', 'none'))
        return
      }
      socket.write(rawResponse(200, [`date: ${clock.date()}`, 'cache-control: max-age=10', 'etag: "v1"'], 'the body'))
    },
    '/y': (req, socket) => {
      if (req.method === 'HEAD') {
        socket.write(rawResponse(304, [`date: ${clock.date()}`, 'etag: "v1"'], '', 'none'))
        return
      }
      socket.write(rawResponse(200, [`date: ${clock.date()}`, 'cache-control: max-age=10, stale-if-error=600', 'etag: "v1"'], 'the y body'))
    },
  })
  const edge = await edgeFor(t, origin, { now: clock.now, staleIfErrorSeconds: 0 })
  t.equal((await fetchRaw(edge.url + '/x')).status, 200)
  t.equal((await fetchRaw(edge.url + '/y')).status, 200)
  clock.advance(20)
  const head = await fetchRaw(edge.url + '/x', { method: 'HEAD' })
  t.equal(origin.requests.at(-1)?.method, 'HEAD', 'the stale object was revalidated with a HEAD')
  t.notOk('if-none-match' in origin.requests.at(-1)!.headers, 'an unconditional one')
  t.equal(head.status, 502, 'not the 304')
  t.equal(status(head).detail, 'CDN_ERR_UPSTREAM_PROTOCOL')
  const withGrace = await fetchRaw(edge.url + '/y', { method: 'HEAD' })
  t.equal(withGrace.status, 200, 'stale-if-error covers it')
  t.match(status(withGrace), { fwd: 'stale', detail: 'stale-if-error' })
})

t.test('a 304 to an unconditional request: every reader gets a 502 that says so, nothing stored', async (t) => {
  const held = gate()
  const origin = await startRawOrigin(t, {
    '/x': async (req, socket) => {
      if (req.index === 0) {
        await held.promise
        socket.write(rawResponse(304, ['cache-control: max-age=60', 'etag: "v1"'], '', 'none'))
        return
      }
      socket.write(rawResponse(200, ['cache-control: max-age=60', 'etag: "v1"'], 'the body'))
    },
  })
  const edge = await edgeFor(t, origin)
  const results = await herd(edge, origin, '/x', held, 3)
  t.notOk('if-none-match' in origin.requests[0]!.headers, 'the fill was unconditional')
  for (const [i, r] of results.entries()) {
    // A 304 answers a condition; passed to a client that set none it is a response with no content to show.
    t.equal(r.status, 502, `reader ${i}: never a 304 to a client that sent no condition`)
    t.equal(status(r).detail, 'CDN_ERR_UPSTREAM_PROTOCOL', `reader ${i}`)
  }
  t.equal(status(results[1]!).collapsed, true, 'the joiners shared the one answer')
  t.equal(origin.count('/x'), 1)
  t.notOk(stored(edge, '/x'))
  const next = await fetchRaw(edge.url + '/x')
  t.equal(next.status, 200)
  t.equal(next.body.toString(), 'the body')
})

t.test('revalidation answered by a 304 that carries the representation\'s Content-Length (RFC 9110 §8.6 allows it): freshened, served whole', async (t) => {
  const clock = new Clock()
  const origin = await startRawOrigin(t, {
    '/x': (req, socket) => {
      if (req.headers['if-none-match'] === '"v1"') {
        // A 304 has no content whatever Content-Length says; some servers send the 200's length.
        socket.write(rawResponse(304, [`date: ${clock.date()}`, 'cache-control: max-age=100', 'etag: "v1"', 'content-length: 12'], '', 'none'))
        return
      }
      socket.write(rawResponse(200, [`date: ${clock.date()}`, 'cache-control: max-age=10', 'etag: "v1"'], 'twelve bytes'))
    },
    '/other': good('still here'),
  })
  const edge = await edgeFor(t, origin, { now: clock.now })
  t.equal((await fetchRaw(edge.url + '/x')).body.toString(), 'twelve bytes')
  clock.advance(20)
  const revalidated = await fetchRaw(edge.url + '/x')
  t.equal(revalidated.status, 200)
  t.equal(revalidated.error, undefined)
  t.equal(revalidated.body.toString(), 'twelve bytes')
  t.match(status(revalidated), { fwd: 'stale', 'fwd-status': '304' })
  clock.advance(50)
  const hit = await fetchRaw(edge.url + '/x')
  t.equal(status(hit).hit, true, 'freshened by the 304 (max-age=100 from the validation)')
  t.equal(hit.body.toString(), 'twelve bytes')
  t.equal(origin.count('/x'), 2)
  t.equal((await fetchRaw(edge.url + '/other')).body.toString(), 'still here', 'the edge keeps serving')
})

t.test('revalidation answered by a 304 naming another ETag: every waiting reader gets a 502, the stale copy goes, the next request fetches anew', async (t) => {
  const clock = new Clock()
  const held = gate()
  const origin = await startRawOrigin(t, {
    '/x': async (req, socket) => {
      if (req.index === 0) {
        socket.write(rawResponse(200, [`date: ${clock.date()}`, 'cache-control: max-age=10', 'etag: "v1"'], 'version 1'))
      } else if (req.headers['if-none-match'] !== undefined) {
        await held.promise
        socket.write(rawResponse(304, [`date: ${clock.date()}`, 'cache-control: max-age=100', 'etag: "v2"'], '', 'none'))
      } else {
        socket.write(rawResponse(200, [`date: ${clock.date()}`, 'cache-control: max-age=100', 'etag: "v2"'], 'version 2'))
      }
    },
  })
  const edge = await edgeFor(t, origin, { now: clock.now })
  await fetchRaw(edge.url + '/x')
  clock.advance(20)
  const handled = countHandled(edge)
  const results = Array.from({ length: 3 }, () => fetchRaw(edge.url + '/x'))
  await until(() => handled() === 3 && origin.count('/x') === 2, 'the revalidation and its joiners')
  held.open()
  for (const [i, r] of (await Promise.all(results)).entries()) {
    // "Not modified" about something we do not hold: neither the stored v1 (it may be outdated) nor a 304.
    t.equal(r.status, 502, `reader ${i}`)
    t.match(status(r), { fwd: 'stale', detail: 'CDN_ERR_UPSTREAM_PROTOCOL' }, `reader ${i}`)
  }
  t.equal(origin.count('/x'), 2, 'one revalidation for all of them')
  t.equal(await edge.metrics.revalidations.value({ outcome: 'failed' }), 1)
  t.equal(edge.store.memory.peek('/x'), undefined, 'the stored v1 is dropped: the origin no longer vouches for it')
  await until(() => !stored(edge, '/x'), 'the disk copy of v1 to go too')
  const next = await fetchRaw(edge.url + '/x')
  t.equal(next.body.toString(), 'version 2')
  t.notOk('if-none-match' in origin.requests[2]!.headers, 'fetched unconditionally')
  t.match(status(next), { fwd: 'uri-miss', stored: true })
})

t.test('revalidation answered by a 304 followed by body bytes (a 304 has none): no crash, the junk is never served', async (t) => {
  const clock = new Clock()
  const origin = await startRawOrigin(t, {
    '/x': (req, socket) => {
      if (req.headers['if-none-match'] === '"v1"') {
        socket.write(rawResponse(304, [`date: ${clock.date()}`, 'cache-control: max-age=100', 'etag: "v1"', 'content-length: 5'], 'JUNK!', 'none'))
        return
      }
      socket.write(rawResponse(200, [`date: ${clock.date()}`, 'cache-control: max-age=10', 'etag: "v1"'], 'twelve bytes'))
    },
    '/other': good('still here'),
  })
  const edge = await edgeFor(t, origin, { now: clock.now })
  await fetchRaw(edge.url + '/x')
  clock.advance(20)
  const res = await fetchRaw(edge.url + '/x')
  t.equal(res.error, undefined)
  t.equal(res.body.toString(), 'twelve bytes')
  await sleep(50)
  t.equal((await fetchRaw(edge.url + '/other')).body.toString(), 'still here', 'the edge keeps serving')
})

t.test('a 5xx whose body breaks off while stale-if-error serves the stored copy: no crash, the stale copy is served whole', async (t) => {
  const clock = new Clock()
  const origin = await startRawOrigin(t, {
    '/x': (req, socket) => {
      if (req.index === 0) {
        socket.write(rawResponse(200, [`date: ${clock.date()}`, 'cache-control: max-age=10, stale-if-error=600', 'etag: "v1"'], 'the stored one'))
        return
      }
      // 100 bytes promised, 10 sent, then the connection drops.
      socket.end(rawResponse(500, [`date: ${clock.date()}`, 'content-length: 100'], 'oops......', 'none'))
    },
    '/other': good('still here'),
  })
  const edge = await edgeFor(t, origin, { now: clock.now })
  await fetchRaw(edge.url + '/x')
  clock.advance(20)
  const res = await fetchRaw(edge.url + '/x')
  t.equal(res.status, 200)
  t.equal(res.error, undefined)
  t.equal(res.body.toString(), 'the stored one')
  t.match(status(res), { fwd: 'stale', 'fwd-status': '500', detail: 'stale-if-error' })
  await sleep(50)
  t.equal((await fetchRaw(edge.url + '/other')).body.toString(), 'still here', 'the edge keeps serving')
})

// ---- interim responses -----------------------------------------------------------------

t.test('interim 102 and 103 before the response: the final response is served and stored, no interim field leaks into it', async (t) => {
  const origin = await startRawOrigin(t, {
    '/x': (_req, socket) => {
      socket.write(rawResponse(102, ['x-interim: processing'], '', 'none'))
      socket.write(rawResponse(103, ['link: </style.css>; rel=preload'], '', 'none'))
      socket.write(rawResponse(200, ['cache-control: max-age=60', 'content-type: text/plain'], 'final'))
    },
  })
  const edge = await edgeFor(t, origin)
  const res = await fetchRaw(edge.url + '/x')
  t.equal(res.status, 200)
  t.equal(res.body.toString(), 'final')
  t.equal(res.headers['x-interim'], undefined)
  t.equal(res.headers.link, undefined)
  t.match(status(res), { 'fwd-status': '200', stored: true })
  const hit = await fetchRaw(edge.url + '/x')
  t.equal(status(hit).hit, true)
  t.equal(hit.headers.link, undefined, 'nor into the stored one')
})

t.test('an unsolicited 100 Continue before the response: a clean 502 (undici refuses it), nothing stored, the edge keeps serving', async (t) => {
  // RFC 9110 §15.2 says a client MUST parse 1xx responses it did not expect; undici 7
  // destroys the connection on a 100 to a request that sent no Expect ("bad response").
  // We cannot make undici read past it, so the contract here is only: no hang, no garbage,
  // nothing stored, and the next request works.
  const origin = await startRawOrigin(t, {
    '/x': (_req, socket) => {
      socket.write(rawResponse(100, [], '', 'none'))
      socket.write(rawResponse(200, ['cache-control: max-age=60'], 'final'))
    },
    '/other': good('still here'),
  })
  const edge = await edgeFor(t, origin)
  const res = await fetchRaw(edge.url + '/x')
  t.equal(res.status, 502)
  t.equal(res.error, undefined)
  t.match(status(res), { fwd: 'uri-miss', detail: 'CDN_ERR_UPSTREAM_PROTOCOL' }, 'named a protocol error, not a network one')
  t.notOk(stored(edge, '/x'))
  t.equal((await fetchRaw(edge.url + '/other')).body.toString(), 'still here')
})

// ---- timeouts and sizes ----------------------------------------------------------------

const SHORT = { ...TIMEOUTS, firstByteTimeoutMs: 300, idleTimeoutMs: 300 }

t.test('a response head that never completes: the fill and every joined reader get a 504, nothing stored, the next request asks again', async (t) => {
  const origin = await startRawOrigin(t, {
    '/x': (req, socket) => {
      if (req.index === 0) socket.write('HTTP/1.1 200 OK\r\ncache-control: max-age=60\r\nx-half: a head with no end') // and nothing more
      else socket.write(rawResponse(200, ['cache-control: max-age=60'], 'now complete'))
    },
  })
  // Joiners wait for the fill's head longer than the fill waits for the origin's; a second
  // leaves them ample time to join before the fill gives up.
  const edge = await edgeFor(t, origin, { upstreamTimeouts: { ...SHORT, firstByteTimeoutMs: 1000 }, lockTimeoutMs: 5000 })
  const handled = countHandled(edge)
  const first = fetchRaw(edge.url + '/x')
  await until(() => origin.count('/x') === 1, 'the fill request')
  const rest = [fetchRaw(edge.url + '/x'), fetchRaw(edge.url + '/x')]
  await until(() => handled() === 3, 'the joiners')
  const results = await Promise.all([first, ...rest])
  for (const [i, r] of results.entries()) {
    t.equal(r.status, 504, `reader ${i}`)
    t.equal(r.error, undefined, `reader ${i}: a complete error response`)
    t.match(status(r), { fwd: 'uri-miss', detail: 'CDN_ERR_UPSTREAM_TIMEOUT' }, `reader ${i}`)
  }
  t.equal(status(results[2]!).collapsed, true)
  t.equal(origin.count('/x'), 1, 'the joiners did not go upstream on their own')
  t.notOk(stored(edge, '/x'))
  t.equal(await edge.metrics.fills.value({ outcome: 'failed' }), 1)
  const next = await fetchRaw(edge.url + '/x')
  t.equal(next.body.toString(), 'now complete')
})

t.test('a body that stalls mid-way: every reader of the fill is aborted after the idle timeout, nothing stored, the next request asks again', async (t) => {
  const body = Buffer.alloc(5000, 'b')
  const held = gate()
  const origin = await startRawOrigin(t, {
    '/x': async (req, socket) => {
      if (req.index > 0) {
        socket.write(rawResponse(200, ['cache-control: max-age=60'], body))
        return
      }
      await held.promise // until the others have joined
      socket.write(rawResponse(200, ['cache-control: max-age=60', `content-length: ${body.length}`], body.subarray(0, 1000), 'none'))
    },
  })
  const edge = await edgeFor(t, origin, { upstreamTimeouts: SHORT })
  const results = await herd(edge, origin, '/x', held, 3)
  for (const [i, r] of results.entries()) {
    t.equal(r.status, 200, `reader ${i}: the head went out with the first bytes`)
    t.ok(r.error !== undefined, `reader ${i}: aborted, not ended`)
    t.ok(r.body.length <= 1000, `reader ${i}: at most the bytes that came (${r.body.length})`)
  }
  t.equal(origin.count('/x'), 1)
  t.equal(await edge.metrics.collapsed.value({ outcome: 'joined' }), 2, 'the others joined the stalled fill')
  t.notOk(stored(edge, '/x'))
  t.equal(await edge.metrics.upstreamErrors.value({ code: 'CDN_ERR_UPSTREAM_BODY_TIMEOUT' }), 1)
  const next = await fetchRaw(edge.url + '/x')
  t.ok(next.body.equals(body))
  t.equal(next.error, undefined)
})

t.test('an oversized response head: a clean 502, nothing stored, the edge keeps serving', async (t) => {
  const origin = await startRawOrigin(t, {
    '/x': (_req, socket) => { socket.write(rawResponse(200, ['cache-control: max-age=60', `x-huge: ${'h'.repeat(70_000)}`], 'small body')) },
    '/other': good('still here'),
  })
  const edge = await edgeFor(t, origin)
  const res = await fetchRaw(edge.url + '/x')
  t.equal(res.status, 502)
  t.equal(res.error, undefined)
  t.match(status(res), { fwd: 'uri-miss', detail: 'CDN_ERR_UPSTREAM_PROTOCOL' }, 'named a protocol error, not a network one')
  t.notOk(stored(edge, '/x'))
  t.equal((await fetchRaw(edge.url + '/other')).body.toString(), 'still here')
})
