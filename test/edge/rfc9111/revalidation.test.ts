/**
 * RFC 9111 §4.3 validation through the edge: the conditional requests the edge sends
 * for stale responses (§4.3.1), how it handles 304 and 200 answers (§4.3.3, §4.3.4,
 * §3.2), and how it answers its clients' own conditional requests (§4.3.2,
 * RFC 9110 §13).
 */
import t, { type Test } from 'tap'
import { checkResponse, conditionalOrigin, ok, play, startRig, text, type Rig } from './harness.ts'

const PATH = '/reval/object.txt'

t.test('RFC 9111 §4.3.1: a stale response with an ETag is validated with If-None-Match; §4.3.4: the 304 freshens it', async (t) => {
  const rig = await startRig(t)
  rig.origin.script(PATH,
    ok({ 'cache-control': 'max-age=10', etag: '"v1"', 'x-version': '1' }),
    { status: 304, headers: { 'cache-control': 'max-age=10', etag: '"v1"', 'x-version': '2' } })
  await play(t, rig, PATH, [
    { expect: { status: 200, body: 'v1', cacheStatus: { stored: true }, originRequests: 1 } },
    {
      advance: 20,
      expect: {
        status: 200,
        body: 'v1',
        hit: false,
        cacheStatus: { fwd: 'stale', 'fwd-status': '304', stored: true },
        headers: { 'x-version': '2', age: '0', etag: '"v1"' },
        originRequests: 2,
      },
    },
    { advance: 5, expect: { status: 200, body: 'v1', hit: true, cacheStatus: { ttl: '5' }, headers: { 'x-version': '2', age: '5' }, originRequests: 2 } },
    { advance: 5, expect: { status: 200, body: 'v1', hit: false, cacheStatus: { fwd: 'stale' }, originRequests: 3 } },
  ])
  const [, validation] = rig.origin.requestsTo(PATH)
  t.equal(validation?.method, 'GET')
  t.equal(validation?.headers['if-none-match'], '"v1"')
})

t.test('RFC 9111 §4.3.1: a stored Last-Modified is sent as If-Modified-Since', async (t) => {
  const rig = await startRig(t)
  const lastModified = rig.clock.date(-3600)
  rig.origin.script(PATH, conditionalOrigin(() => ({ body: 'v1', lastModified, headers: { 'cache-control': 'max-age=10' } })))
  await play(t, rig, PATH, [
    { expect: { status: 200, body: 'v1', originRequests: 1 } },
    { advance: 20, expect: { status: 200, body: 'v1', cacheStatus: { fwd: 'stale', 'fwd-status': '304' }, originRequests: 2 } },
  ])
  t.equal(rig.origin.last(PATH)?.headers['if-modified-since'], lastModified)
  t.equal(rig.origin.last(PATH)?.headers['if-none-match'], undefined)
})

t.test('RFC 9111 §4.3.1: with both validators stored, both are sent', async (t) => {
  const rig = await startRig(t)
  const lastModified = rig.clock.date(-3600)
  rig.origin.script(PATH, conditionalOrigin(() => ({ body: 'v1', etag: '"v1"', lastModified, headers: { 'cache-control': 'max-age=10' } })))
  await play(t, rig, PATH, [
    { expect: { status: 200, originRequests: 1 } },
    { advance: 20, expect: { status: 200, body: 'v1', cacheStatus: { 'fwd-status': '304' }, originRequests: 2 } },
  ])
  t.equal(rig.origin.last(PATH)?.headers['if-none-match'], '"v1"')
  t.equal(rig.origin.last(PATH)?.headers['if-modified-since'], lastModified)
})

t.test('RFC 9111 §4.3.1: a weak ETag is sent as it was received', async (t) => {
  const rig = await startRig(t)
  rig.origin.script(PATH, conditionalOrigin(() => ({ body: 'v1', etag: 'W/"v1"', headers: { 'cache-control': 'max-age=10' } })))
  await play(t, rig, PATH, [
    { expect: { status: 200, originRequests: 1 } },
    { advance: 20, expect: { status: 200, body: 'v1', cacheStatus: { 'fwd-status': '304' }, originRequests: 2 } },
  ])
  t.equal(rig.origin.last(PATH)?.headers['if-none-match'], 'W/"v1"')
})

t.test('RFC 9111 §4.3.1: a stale response without validators is fetched again unconditionally', async (t) => {
  const rig = await startRig(t)
  rig.origin.script(PATH, ok({ 'cache-control': 'max-age=10' }), ok({ 'cache-control': 'max-age=10' }, 'v2'))
  await play(t, rig, PATH, [
    { expect: { status: 200, body: 'v1', originRequests: 1 } },
    { advance: 20, expect: { status: 200, body: 'v2', hit: false, cacheStatus: { fwd: /^(stale|uri-miss)$/, 'fwd-status': '200' }, originRequests: 2 } },
    { advance: 1, expect: { status: 200, body: 'v2', hit: true, originRequests: 2 } },
  ])
  const last = rig.origin.last(PATH)
  t.equal(last?.headers['if-none-match'], undefined)
  t.equal(last?.headers['if-modified-since'], undefined)
})

t.test('RFC 9111 §4.3.3: a full 200 answer to a validation replaces the stored response', async (t) => {
  const rig = await startRig(t)
  rig.origin.script(PATH,
    ok({ 'cache-control': 'max-age=10', etag: '"v1"' }),
    ok({ 'cache-control': 'max-age=10', etag: '"v2"' }, 'v2-longer'))
  await play(t, rig, PATH, [
    { expect: { status: 200, body: 'v1', originRequests: 1 } },
    {
      advance: 20,
      expect: { status: 200, body: 'v2-longer', hit: false, cacheStatus: { fwd: 'stale', 'fwd-status': '200', stored: true }, headers: { etag: '"v2"', 'content-length': '9' }, originRequests: 2 },
    },
    { advance: 5, expect: { status: 200, body: 'v2-longer', hit: true, headers: { etag: '"v2"', 'content-length': '9' }, originRequests: 2 } },
  ])
  t.equal(rig.origin.last(PATH)?.headers['if-none-match'], '"v1"')
})

t.test('RFC 9111 §3.2: a 304 updates stored header fields but never the framing (Content-Length)', async (t) => {
  const rig = await startRig(t)
  rig.origin.script(PATH,
    ok({ 'cache-control': 'max-age=10', etag: '"v1"', 'x-version': '1' }, 'twelve bytes'),
    { status: 304, headers: { 'cache-control': 'max-age=100', etag: '"v1"', 'x-version': '2', 'content-length': '0' } })
  await play(t, rig, PATH, [
    { expect: { status: 200, body: 'twelve bytes', originRequests: 1 } },
    { advance: 20, expect: { status: 200, body: 'twelve bytes', headers: { 'content-length': '12', 'x-version': '2' }, originRequests: 2 } },
    { advance: 50, expect: { status: 200, body: 'twelve bytes', hit: true, headers: { 'content-length': '12', 'x-version': '2', 'cache-control': 'max-age=100' }, originRequests: 2 } },
  ])
})

t.test('RFC 9111 §4.3.4: a 304 without freshness fields keeps the stored max-age, counted from the validation', async (t) => {
  const rig = await startRig(t)
  rig.origin.script(PATH,
    ok({ 'cache-control': 'max-age=10', etag: '"v1"' }),
    { status: 304, headers: { etag: '"v1"' } })
  await play(t, rig, PATH, [
    { expect: { status: 200, originRequests: 1 } },
    { advance: 20, expect: { status: 200, body: 'v1', cacheStatus: { 'fwd-status': '304' }, originRequests: 2 } },
    { advance: 9, expect: { status: 200, body: 'v1', hit: true, cacheStatus: { ttl: '1' }, originRequests: 2 } },
    { advance: 1, expect: { status: 200, body: 'v1', hit: false, originRequests: 3 } },
  ])
})

t.test('RFC 9111 §4.3.4: a 304 whose strong ETag matches no stored response updates nothing', async (t) => {
  const rig = await startRig(t)
  let calls = 0
  rig.origin.script(PATH, (req) => {
    calls++
    if (calls === 1) return ok({ 'cache-control': 'max-age=10', etag: '"v1"' })
    // A broken origin (or a race with a deploy): "not modified", but naming another representation.
    if (req.headers['if-none-match'] !== undefined) return { status: 304, headers: { 'cache-control': 'max-age=100', etag: '"v2"' } }
    return ok({ 'cache-control': 'max-age=100', etag: '"v2"' }, 'v2')
  })
  await play(t, rig, PATH, [{ expect: { status: 200, body: 'v1', originRequests: 1 } }])
  rig.clock.advance(20)
  const res = await rig.fetch(PATH)
  t.not(res.status, 304, 'an unconditional client never gets a 304')
  if (res.status === 200) t.equal(text(res), 'v2', 'a 200 carries the current representation (fetched unconditionally)')
  else t.ok(res.status >= 500, `or the cache reports the upstream failure (got ${res.status})`)
  const before = rig.origin.count(PATH)
  rig.clock.advance(1)
  const next = await rig.fetch(PATH)
  t.ok(next.status !== 200 || text(next) !== 'v1' || rig.origin.count(PATH) > before,
    'the stored v1 was not freshened by the mismatched 304 (never served again without validation)')
})

t.test('RFC 9111 §4.3.2 / RFC 9110 §13.1.2: If-None-Match matching a fresh stored response gets a 304 from the cache', async (t) => {
  const rig = await startRig(t)
  rig.origin.script(PATH, ok({ 'cache-control': 'max-age=100', etag: '"v1"', 'content-type': 'text/plain', 'x-other': 'kept' }))
  await primed(t, rig)
  for (const inm of ['"v1"', 'W/"v1"', '"x", "v1"', '*']) {
    const res = await rig.fetch(PATH, { headers: { 'if-none-match': inm } })
    checkResponse(t, res, {
      status: 304,
      body: '',
      hit: true,
      headers: { etag: '"v1"', 'cache-control': 'max-age=100', age: '5', date: /GMT$/ },
    }, `If-None-Match: ${inm}`)
  }
  const miss = await rig.fetch(PATH, { headers: { 'if-none-match': '"x", "y"' } })
  checkResponse(t, miss, { status: 200, body: 'v1', hit: true }, 'If-None-Match without a match')
  t.equal(rig.origin.count(PATH), 1, 'the origin was asked once')
})

t.test('RFC 9110 §8.8.3.2: If-None-Match uses weak comparison against a stored weak ETag', async (t) => {
  const rig = await startRig(t)
  rig.origin.script(PATH, ok({ 'cache-control': 'max-age=100', etag: 'W/"v1"' }))
  await primed(t, rig)
  for (const inm of ['"v1"', 'W/"v1"']) {
    const res = await rig.fetch(PATH, { headers: { 'if-none-match': inm } })
    checkResponse(t, res, { status: 304, hit: true, headers: { etag: 'W/"v1"' } }, `If-None-Match: ${inm}`)
  }
})

t.test('RFC 9110 §13.1.3: If-Modified-Since is answered against the stored Last-Modified', async (t) => {
  const rig = await startRig(t)
  const lastModified = rig.clock.date(-3600)
  rig.origin.script(PATH, ok({ 'cache-control': 'max-age=100', 'last-modified': lastModified }))
  await primed(t, rig)
  const cases: Array<[string, string, number]> = [
    ['equal to Last-Modified', lastModified, 304],
    ['after Last-Modified', rig.clock.date(-60), 304],
    ['before Last-Modified', rig.clock.date(-7200), 200],
    ['not a date (ignored)', 'yesterday', 200],
  ]
  for (const [what, ims, status] of cases) {
    const res = await rig.fetch(PATH, { headers: { 'if-modified-since': ims } })
    checkResponse(t, res, { status, hit: true, body: status === 200 ? 'v1' : '' }, `If-Modified-Since ${what}`)
  }
  t.equal(rig.origin.count(PATH), 1)
})

t.test('RFC 9110 §13.2.2: If-Modified-Since is ignored when If-None-Match is present', async (t) => {
  const rig = await startRig(t)
  const lastModified = rig.clock.date(-3600)
  rig.origin.script(PATH, ok({ 'cache-control': 'max-age=100', etag: '"v1"', 'last-modified': lastModified }))
  await primed(t, rig)
  const res = await rig.fetch(PATH, { headers: { 'if-none-match': '"other"', 'if-modified-since': rig.clock.date() } })
  checkResponse(t, res, { status: 200, body: 'v1', hit: true }, 'non-matching If-None-Match wins over a matching If-Modified-Since')
})

t.test('RFC 9111 §4.3.2: a client\'s conditional on a stale response: validated upstream, then the client\'s condition is answered', async (t) => {
  const rig = await startRig(t)
  rig.origin.script(PATH, conditionalOrigin(() => ({ body: 'v1', etag: '"v1"', headers: { 'cache-control': 'max-age=10' } })))
  await primed(t, rig, 0)
  rig.clock.advance(20)
  const same = await rig.fetch(PATH, { headers: { 'if-none-match': '"v1"' } })
  checkResponse(t, same, { status: 304, body: '', headers: { etag: '"v1"' } }, 'the client holds the current representation')
  t.equal(rig.origin.count(PATH), 2)
  t.match(rig.origin.last(PATH)?.headers['if-none-match'], /"v1"/, 'the validation carries the stored ETag')
  rig.clock.advance(20)
  const other = await rig.fetch(PATH, { headers: { 'if-none-match': '"v0"' } })
  // §4.3.2: a 304 for a tag the client does not hold MUST become a 200 from the updated stored response.
  checkResponse(t, other, { status: 200, body: 'v1', headers: { etag: '"v1"' } }, 'the client holds an older representation')
  t.equal(rig.origin.count(PATH), 3)
})

t.test('RFC 9111 §4.3.2: a conditional request on a miss never leaves a 304 (or an empty body) in the cache', async (t) => {
  const rig = await startRig(t)
  rig.origin.script(PATH, conditionalOrigin(() => ({ body: 'v1', etag: '"v1"', headers: { 'cache-control': 'max-age=100' } })))
  const first = await rig.fetch(PATH, { headers: { 'if-none-match': '"v1"' } })
  t.ok(first.status === 304 || (first.status === 200 && text(first) === 'v1'), `conditional miss answered ${first.status}`)
  for (let i = 0; i < 2; i++) {
    const plain = await rig.fetch(PATH)
    checkResponse(t, plain, { status: 200, body: 'v1', headers: { 'content-length': '2' } }, `unconditional request ${i + 1}`)
  }
})

t.test('RFC 9111 §5.2.2.4 / §4.3: a no-cache object is validated on every request, fresh or not (fwd=stale: its own directive, not the request) and served from storage on 304', async (t) => {
  const rig = await startRig(t)
  rig.origin.script(PATH, conditionalOrigin(() => ({ body: 'v1', etag: '"v1"', headers: { 'cache-control': 'no-cache, max-age=60' } })))
  await play(t, rig, PATH, [
    { expect: { status: 200, body: 'v1', cacheStatus: { stored: true }, originRequests: 1 } },
    { expect: { status: 200, body: 'v1', hit: false, cacheStatus: { fwd: 'stale', 'fwd-status': '304' }, headers: { 'content-length': '2' }, originRequests: 2 } },
    { advance: 100, expect: { status: 200, body: 'v1', hit: false, cacheStatus: { 'fwd-status': '304' }, originRequests: 3 } },
  ])
  for (const req of rig.origin.requestsTo(PATH).slice(1)) t.equal(req.headers['if-none-match'], '"v1"')
})

/** Fills PATH, then moves the clock `advanceSeconds` (default 5) so stored ages are non-zero. */
async function primed (t: Test, rig: Rig, advanceSeconds = 5): Promise<void> {
  const fill = await rig.fetch(PATH)
  t.equal(fill.status, 200, 'fill')
  rig.clock.advance(advanceSeconds)
}
