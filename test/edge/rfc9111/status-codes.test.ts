/**
 * Which statuses the edge stores (RFC 9111 §3, RFC 9110 §15.1): any final status it
 * understands with explicit freshness, heuristic freshness only for the heuristically
 * cacheable ones, negative caching of 404/410 (`negativeTtlSeconds`, capped by
 * `negativeTtlMaxSeconds`), never a 1xx, never a 206 from upstream, never a 5xx over
 * a fresh stored response, and must-understand (§5.2.2.3).
 */
import t from 'tap'
import { checkResponse, ok, play, startRig, text, type EdgeOverrides, type Step } from './harness.ts'

const PATH = '/status/object'

/** Body of a status: none for 204 and 304. */
function bodyFor (status: number): string {
  return status === 204 || status === 304 ? '' : `status ${status}`
}

function answer (status: number, headers: Record<string, string>): ReturnType<typeof ok> {
  const location = status >= 300 && status < 400 ? { location: '/status/elsewhere' } : {}
  return ok({ ...location, ...headers }, bodyFor(status), status)
}

for (const status of [200, 203, 204, 300, 301, 302, 303, 307, 308, 404, 405, 410, 414, 501]) {
  t.test(`RFC 9111 §3: ${status} with explicit freshness (max-age=60) is stored and reused`, async (t) => {
    const rig = await startRig(t)
    rig.origin.script(PATH, answer(status, { 'cache-control': 'max-age=60' }))
    const redirect = status >= 300 && status < 400
    await play(t, rig, PATH, [
      { expect: { status, body: bodyFor(status), cacheStatus: { 'fwd-status': String(status), stored: true }, originRequests: 1 } },
      {
        advance: 30,
        expect: { status, body: bodyFor(status), hit: true, headers: redirect ? { location: '/status/elsewhere' } : {}, originRequests: 1 },
      },
    ])
  })
}

for (const status of [200, 203, 204, 300, 301, 308, 405, 414, 501]) {
  t.test(`RFC 9111 §4.2.2 / RFC 9110 §15.1: ${status} is heuristically cacheable (10% of its Last-Modified age)`, async (t) => {
    const rig = await startRig(t)
    rig.origin.script(PATH, answer(status, { 'last-modified': rig.clock.date(-1000) }))
    await play(t, rig, PATH, [
      { expect: { status, cacheStatus: { stored: true }, originRequests: 1 } },
      { advance: 50, expect: { status, body: bodyFor(status), hit: true, cacheStatus: { ttl: '50' }, originRequests: 1 } },
      { advance: 50, expect: { status, hit: false, originRequests: 2 } },
    ])
  })
}

for (const status of [302, 303, 307, 400, 403, 500, 502, 503]) {
  t.test(`RFC 9111 §3 / RFC 9110 §15.1: ${status} is not heuristically cacheable: without explicit freshness it is not stored`, async (t) => {
    const rig = await startRig(t)
    rig.origin.script(PATH, answer(status, { 'last-modified': rig.clock.date(-100_000), etag: '"x"' }))
    await play(t, rig, PATH, [
      { expect: { status, body: bodyFor(status), notCacheStatus: ['stored'], originRequests: 1 } },
      { advance: 1, expect: { status, hit: false, originRequests: 2 } },
    ])
  })
}

interface NegativeCase {
  readonly name: string
  readonly edge?: EdgeOverrides
  readonly headers?: (rig: { clock: { date (s: number): string } }) => Record<string, string>
  /** Seconds the 404/410 must stay fresh. */
  readonly lifetime: number
}

const negative: NegativeCase[] = [
  { name: 'without explicit freshness lives negativeTtlSeconds (default 10)', lifetime: 10 },
  { name: 'without explicit freshness lives negativeTtlSeconds (configured 3)', edge: { negativeTtlSeconds: 3 }, lifetime: 3 },
  { name: 'explicit max-age is capped by negativeTtlMaxSeconds (default 60)', headers: () => ({ 'cache-control': 'max-age=3600' }), lifetime: 60 },
  { name: 'explicit s-maxage is capped by negativeTtlMaxSeconds (default 60)', headers: () => ({ 'cache-control': 's-maxage=3600' }), lifetime: 60 },
  { name: 'Expires is capped by negativeTtlMaxSeconds (default 60)', headers: (rig) => ({ expires: rig.clock.date(3600) }), lifetime: 60 },
  { name: 'explicit max-age is capped by negativeTtlMaxSeconds (configured 20)', edge: { negativeTtlMaxSeconds: 20 }, headers: () => ({ 'cache-control': 'max-age=3600' }), lifetime: 20 },
  { name: 'explicit max-age below the cap is kept', headers: () => ({ 'cache-control': 'max-age=30' }), lifetime: 30 },
  { name: 'the default lifetime is capped too (negativeTtlSeconds 30 over negativeTtlMaxSeconds 5)', edge: { negativeTtlSeconds: 30, negativeTtlMaxSeconds: 5 }, lifetime: 5 },
]

for (const status of [404, 410]) {
  for (const c of negative) {
    t.test(`RFC 9111 §3 / RFC 9110 §15.1 (negative caching): ${status} ${c.name}`, async (t) => {
      const rig = await startRig(t, c.edge)
      rig.origin.script(PATH, answer(status, c.headers?.(rig) ?? {}))
      const steps: Step[] = [
        { expect: { status, body: bodyFor(status), cacheStatus: { fwd: 'uri-miss', 'fwd-status': String(status), stored: true }, originRequests: 1 } },
        { advance: c.lifetime - 1, expect: { status, body: bodyFor(status), hit: true, cacheStatus: { ttl: '1' }, originRequests: 1 } },
        { advance: 1, expect: { status, hit: false, originRequests: 2 } },
      ]
      await play(t, rig, PATH, steps)
    })
  }
}

for (const cc of ['no-store', 'private', 'max-age=0', 's-maxage=0']) {
  t.test(`RFC 9111 §5.2.2: negative caching never overrides the origin's "${cc}" on a 404`, async (t) => {
    const rig = await startRig(t)
    rig.origin.script(PATH, answer(404, { 'cache-control': cc }))
    await play(t, rig, PATH, [
      { expect: { status: 404, originRequests: 1 } },
      { advance: 1, expect: { status: 404, hit: false, originRequests: 2 } },
    ])
  })
}

for (const status of [500, 502, 503, 504]) {
  t.test(`RFC 9111 §4.3.3: a ${status} (even with explicit freshness) never replaces a fresh stored response`, async (t) => {
    const rig = await startRig(t)
    rig.origin.script(PATH, ok({ 'cache-control': 'max-age=100', etag: '"v1"' }), ok({ 'cache-control': 'max-age=100' }, 'broken', status))
    await rig.fetch(PATH)
    rig.clock.advance(10)
    const forced = await rig.fetch(PATH, { headers: { 'cache-control': 'no-cache' } })
    t.ok(forced.status === status || (forced.status === 200 && text(forced) === 'v1'),
      `the client gets the error or the stored response (got ${forced.status})`)
    t.equal(rig.origin.count(PATH), 2)
    rig.clock.advance(1)
    const next = await rig.fetch(PATH)
    checkResponse(t, next, { status: 200, body: 'v1', hit: true, headers: { etag: '"v1"' } }, 'the stored 200 is still served')
    t.equal(rig.origin.count(PATH), 2)
  })
}

t.test('RFC 9111 §3: 1xx responses are never stored; the final response is', async (t) => {
  const rig = await startRig(t)
  rig.origin.script(PATH, { ...ok({ 'cache-control': 'max-age=60' }, 'final'), earlyHints: { link: '</style.css>; rel=preload; as=style' } })
  await play(t, rig, PATH, [
    { expect: { status: 200, body: 'final', cacheStatus: { stored: true }, originRequests: 1 } },
    { advance: 1, expect: { status: 200, body: 'final', hit: true, headers: { link: null }, originRequests: 1 } },
  ])
})

t.test('RFC 9111 §3.3 / §3.4: a 206 from upstream is never stored', async (t) => {
  const rig = await startRig(t)
  rig.origin.script(PATH, ok({ 'cache-control': 'max-age=60', 'content-range': 'bytes 0-3/10', etag: '"v1"' }, 'abcd', 206))
  await play(t, rig, PATH, [
    { expect: { status: 206, body: 'abcd', notCacheStatus: ['stored'], originRequests: 1 } },
    { advance: 1, expect: { status: 206, hit: false, originRequests: 2 } },
  ])
})

t.test('RFC 9111 §5.2.2.3: must-understand with an understood status is stored even with no-store', async (t) => {
  const rig = await startRig(t)
  rig.origin.script(PATH, ok({ 'cache-control': 'max-age=60, no-store, must-understand' }))
  await play(t, rig, PATH, [
    { expect: { status: 200, body: 'v1', cacheStatus: { stored: true }, originRequests: 1 } },
    { advance: 1, expect: { status: 200, body: 'v1', hit: true, originRequests: 1 } },
  ])
})

t.test('RFC 9111 §5.2.2.3: must-understand with a status the cache does not understand (299) is not stored', async (t) => {
  const rig = await startRig(t)
  rig.origin.script(PATH, ok({ 'cache-control': 'max-age=60, must-understand' }, 'odd', 299))
  await play(t, rig, PATH, [
    { expect: { status: 299, body: 'odd', notCacheStatus: ['stored'], originRequests: 1 } },
    { advance: 1, expect: { status: 299, hit: false, originRequests: 2 } },
  ])
})
