/**
 * Serving stale (RFC 9111 §4.2.4) through the edge: stale-while-revalidate and
 * stale-if-error (RFC 5861 §3, §4), the configured grace (`staleIfErrorSeconds`), and
 * the directives that forbid serving stale (must-revalidate, proxy-revalidate,
 * s-maxage, no-cache). Background refreshes are held at the origin by a gate the test
 * opens, so "served before the refresh finished" needs no timing.
 */
import t from 'tap'
import { CACHE_NODE_DEFAULTS } from '../../../edge/cache-node.ts'
import type { ScriptedResponse } from '../../helpers/scripted-origin.ts'
import { cacheStatus, checkResponse, fetchUntil, gate, isHit, ok, play, startRig, text, type EdgeOverrides } from './harness.ts'

const PATH = '/stale/object.txt'
const SWR = 'max-age=10, stale-while-revalidate=30'

t.test('RFC 5861 §3: stale-while-revalidate serves the stale response at once and validates in the background', async (t) => {
  const rig = await startRig(t)
  const release = gate()
  rig.origin.script(PATH,
    ok({ 'cache-control': SWR, etag: '"v1"' }),
    { status: 304, headers: { 'cache-control': SWR, etag: '"v1"' }, waitFor: release.promise })
  await play(t, rig, PATH, [
    { expect: { status: 200, body: 'v1', originRequests: 1 } },
    {
      advance: 15,
      expect: {
        status: 200,
        body: 'v1',
        cacheStatus: { fwd: 'stale', ttl: '-5', detail: 'stale-while-revalidate' },
        notCacheStatus: ['fwd-status'],
        headers: { age: '15' },
      },
    },
  ])
  await rig.origin.waitForRequests(PATH, 2)
  t.equal(rig.origin.last(PATH)?.headers['if-none-match'], '"v1"', 'the background refresh is a conditional request')
  release.open()
  const fresh = await fetchUntil(rig, PATH, isHit, 'the refreshed response to be served as a hit')
  checkResponse(t, fresh, { status: 200, body: 'v1', hit: true, headers: { age: '0' }, cacheStatus: { ttl: '10' } }, 'after the refresh')
  t.equal(rig.origin.count(PATH), 2, 'one refresh, no other origin request')
})

t.test('RFC 5861 §3: one background refresh per key however many requests arrive while it runs', async (t) => {
  const rig = await startRig(t)
  const release = gate()
  rig.origin.script(PATH,
    ok({ 'cache-control': SWR, etag: '"v1"' }),
    { ...ok({ 'cache-control': SWR, etag: '"v2"' }, 'v2'), waitFor: release.promise })
  await rig.fetch(PATH)
  rig.clock.advance(15)
  const stale = await Promise.all(Array.from({ length: 20 }, () => rig.fetch(PATH)))
  for (const [i, res] of stale.entries()) {
    checkResponse(t, res, { status: 200, body: 'v1', cacheStatus: { fwd: 'stale', detail: 'stale-while-revalidate' } }, `client ${i}`)
  }
  await rig.origin.waitForRequests(PATH, 2)
  const again = await rig.fetch(PATH)
  checkResponse(t, again, { status: 200, body: 'v1', cacheStatus: { detail: 'stale-while-revalidate' } }, 'still stale while the refresh is held')
  t.equal(rig.origin.count(PATH), 2, 'exactly one refresh in flight')
  release.open()
  const fresh = await fetchUntil(rig, PATH, isHit, 'the refreshed response to be served as a hit')
  checkResponse(t, fresh, { status: 200, body: 'v2', headers: { etag: '"v2"' } }, 'the refreshed response replaced the stale one')
  t.equal(rig.origin.count(PATH), 2)
})

t.test('RFC 5861 §3: past the stale-while-revalidate window the cache validates before answering', async (t) => {
  const rig = await startRig(t)
  rig.origin.script(PATH, ok({ 'cache-control': SWR, etag: '"v1"' }), ok({ 'cache-control': SWR, etag: '"v2"' }, 'v2'))
  await play(t, rig, PATH, [
    { expect: { status: 200, body: 'v1', originRequests: 1 } },
    { advance: 45, expect: { status: 200, body: 'v2', hit: false, cacheStatus: { fwd: 'stale', 'fwd-status': '200' }, originRequests: 2 } },
  ])
})

t.test('RFC 9111 §4.2.4 / §5.2.2.2: must-revalidate forbids stale-while-revalidate (most restrictive wins)', async (t) => {
  const rig = await startRig(t)
  const cc = `${SWR}, must-revalidate`
  rig.origin.script(PATH, ok({ 'cache-control': cc, etag: '"v1"' }), ok({ 'cache-control': cc, etag: '"v2"' }, 'v2'))
  await play(t, rig, PATH, [
    { expect: { status: 200, body: 'v1', originRequests: 1 } },
    { advance: 15, expect: { status: 200, body: 'v2', cacheStatus: { fwd: 'stale', 'fwd-status': '200' }, originRequests: 2 } },
  ])
})

const SIE = 'max-age=10, stale-if-error=60'

for (const status of [500, 502, 503, 504]) {
  t.test(`RFC 5861 §4: stale-if-error serves the stale response when the origin answers ${status}`, async (t) => {
    const rig = await startRig(t)
    rig.origin.script(PATH, ok({ 'cache-control': SIE, etag: '"v1"' }), ok({ 'cache-control': 'no-store' }, 'origin error', status))
    await play(t, rig, PATH, [
      { expect: { status: 200, body: 'v1', originRequests: 1 } },
      {
        advance: 20,
        expect: {
          status: 200,
          body: 'v1',
          cacheStatus: { fwd: 'stale', 'fwd-status': String(status), ttl: '-10', detail: 'stale-if-error' },
          headers: { age: '20', etag: '"v1"' },
          originRequests: 2,
        },
      },
    ])
  })
}

const unreachable: Array<[string, ScriptedResponse, EdgeOverrides]> = [
  ['the connection fails', { reset: true }, {}],
  ['the origin does not answer in time', { waitFor: new Promise(() => {}) },
    { upstreamTimeouts: { ...CACHE_NODE_DEFAULTS.upstreamTimeouts, firstByteTimeoutMs: 300 } }],
]

for (const [what, failure, edge] of unreachable) {
  t.test(`RFC 5861 §4: stale-if-error serves the stale response when ${what}`, async (t) => {
    const rig = await startRig(t, edge)
    rig.origin.script(PATH, ok({ 'cache-control': SIE, etag: '"v1"' }), failure)
    await play(t, rig, PATH, [
      { expect: { status: 200, body: 'v1', originRequests: 1 } },
      {
        advance: 20,
        expect: { status: 200, body: 'v1', cacheStatus: { fwd: 'stale', ttl: '-10', detail: 'stale-if-error' }, notCacheStatus: ['fwd-status'] },
      },
    ])
    t.ok(rig.origin.count(PATH) >= 2, 'the origin was tried (a retry of the idempotent GET is allowed)')
  })
}

t.test('RFC 5861 §4: beyond the stale-if-error window the error is passed on', async (t) => {
  const rig = await startRig(t)
  rig.origin.script(PATH, ok({ 'cache-control': SIE, etag: '"v1"' }), ok({ 'cache-control': 'no-store' }, 'origin error', 503))
  await play(t, rig, PATH, [
    { expect: { status: 200, body: 'v1', originRequests: 1 } },
    { advance: 80, expect: { status: 503, body: 'origin error', cacheStatus: { fwd: 'stale', 'fwd-status': '503' }, originRequests: 2 } },
  ])
})

t.test('RFC 5861 §4: a 404 is not an error: passed on, not replaced by the stale response', async (t) => {
  const rig = await startRig(t)
  rig.origin.script(PATH, ok({ 'cache-control': SIE, etag: '"v1"' }), ok({ 'cache-control': 'no-store' }, 'gone', 404))
  await play(t, rig, PATH, [
    { expect: { status: 200, body: 'v1', originRequests: 1 } },
    { advance: 20, expect: { status: 404, body: 'gone', originRequests: 2 } },
  ])
})

t.test('RFC 5861 §4: after serving stale on an error, the next request tries the origin again', async (t) => {
  const rig = await startRig(t)
  rig.origin.script(PATH,
    ok({ 'cache-control': SIE, etag: '"v1"' }),
    ok({ 'cache-control': 'no-store' }, 'origin error', 503),
    ok({ 'cache-control': SIE, etag: '"v2"' }, 'v2'))
  await play(t, rig, PATH, [
    { expect: { status: 200, body: 'v1', originRequests: 1 } },
    { advance: 20, expect: { status: 200, body: 'v1', cacheStatus: { detail: 'stale-if-error' }, originRequests: 2 } },
    { advance: 1, expect: { status: 200, body: 'v2', hit: false, originRequests: 3 } },
    { advance: 1, expect: { status: 200, body: 'v2', hit: true, originRequests: 3 } },
  ])
})

t.test('RFC 9111 §4.2.4: the configured grace (staleIfErrorSeconds) serves stale on errors when the response has no stale-if-error', async (t) => {
  const rig = await startRig(t, { staleIfErrorSeconds: 30 })
  rig.origin.script(PATH, ok({ 'cache-control': 'max-age=10', etag: '"v1"' }), ok({ 'cache-control': 'no-store' }, 'origin error', 503))
  await play(t, rig, PATH, [
    { expect: { status: 200, body: 'v1', originRequests: 1 } },
    { advance: 20, expect: { status: 200, body: 'v1', cacheStatus: { fwd: 'stale', 'fwd-status': '503', ttl: '-10', detail: 'stale-if-error' }, originRequests: 2 } },
    { advance: 30, expect: { status: 503, body: 'origin error', originRequests: 3 } },
  ])
})

t.test('RFC 9111 §4.2.4: with no grace configured (default 0) and no stale-if-error, an upstream error is passed on', async (t) => {
  const rig = await startRig(t)
  rig.origin.script(PATH, ok({ 'cache-control': 'max-age=10', etag: '"v1"' }), ok({ 'cache-control': 'no-store' }, 'origin error', 503))
  await play(t, rig, PATH, [
    { expect: { status: 200, body: 'v1', originRequests: 1 } },
    { advance: 20, expect: { status: 503, body: 'origin error', originRequests: 2 } },
  ])
})

const FORBIDDING: Array<[string, string]> = [
  ['RFC 9111 §5.2.2.2: must-revalidate', 'max-age=10, must-revalidate, stale-if-error=60'],
  ['RFC 9111 §5.2.2.8: proxy-revalidate', 'max-age=10, proxy-revalidate, stale-if-error=60'],
  ['RFC 9111 §5.2.2.10: s-maxage (implies proxy-revalidate)', 's-maxage=10, stale-if-error=60'],
]
const FAILURES: Array<[string, ScriptedResponse]> = [
  ['the origin answers 503', ok({ 'cache-control': 'no-store' }, 'origin error', 503)],
  ['the connection fails', { reset: true }],
]

for (const [rule, cc] of FORBIDDING) {
  for (const [what, failure] of FAILURES) {
    t.test(`${rule} forbids serving stale when ${what}, over stale-if-error and the configured grace`, async (t) => {
      const rig = await startRig(t, { staleIfErrorSeconds: 60 })
      rig.origin.script(PATH, ok({ 'cache-control': cc, etag: '"v1"' }), failure)
      await rig.fetch(PATH)
      rig.clock.advance(20)
      const res = await rig.fetch(PATH)
      t.ok(res.status >= 500 && res.status <= 599, `an error status (RFC 9111 §5.2.2.2: 504 unless another is more applicable), got ${res.status}`)
      t.not(text(res), 'v1', 'never the stale body')
      t.not(cacheStatus(res)?.detail, 'stale-if-error')
      t.ok(rig.origin.count(PATH) >= 2, 'the origin was tried')
    })
  }
}

t.test('RFC 9111 §4.2.4 / §5.2.2.4: a no-cache response is never served unvalidated when validation fails', async (t) => {
  const rig = await startRig(t, { staleIfErrorSeconds: 600 })
  rig.origin.script(PATH, ok({ 'cache-control': 'no-cache, max-age=600, stale-if-error=600', etag: '"v1"' }), ok({ 'cache-control': 'no-store' }, 'origin error', 503))
  await rig.fetch(PATH)
  rig.clock.advance(1)
  const res = await rig.fetch(PATH)
  t.ok(res.status >= 500, `an error status, got ${res.status}`)
  t.not(text(res), 'v1')
  t.equal(rig.origin.count(PATH), 2)
})
