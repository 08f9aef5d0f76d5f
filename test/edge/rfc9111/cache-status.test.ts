/**
 * The edge's Cache-Status member (RFC 9211) for each way a request can go: exact
 * strings for the outcomes the contract fixes (hit, miss, collapsed, method,
 * vary-miss, stale-while-revalidate, stale-if-error, only-if-cached), parameters for the
 * rest; every field value a valid RFC 8941 List; an upstream's members kept, ours last.
 */
import t, { type Test } from 'tap'
import { parseSfList } from '../../../lib/http/structured-fields.ts'
import { fetchRaw, type Fetched } from '../../helpers/http-client.ts'
import {
  CACHE_NAME, cacheStatus, cacheStatusMembers, cacheStatusText, conditionalOrigin, gate, ok, startEdge, startRig, until,
} from './harness.ts'

const PATH = '/cs/object.txt'

/** The field must parse as an sf-list and hold exactly one member of ours. */
function wellFormed (t: Test, res: Fetched, label: string): void {
  const value = res.headers['cache-status']
  t.ok(value !== undefined, `${label}: has Cache-Status`)
  if (value === undefined) return
  t.ok(parseSfList(value) !== undefined, `${label}: Cache-Status is a valid RFC 8941 List (${String(value)})`)
  t.equal(cacheStatusMembers(value).filter(([name]) => name === CACHE_NAME).length, 1, `${label}: exactly one member of ours`)
}

function exactly (t: Test, res: Fetched, expected: string, label: string): void {
  wellFormed(t, res, label)
  t.equal(cacheStatusText(res), expected, label)
}

t.test('RFC 9211 §2.1-§2.5: a stored miss, then hits with ttl counting down', async (t) => {
  const rig = await startRig(t)
  rig.origin.script(PATH, ok({ 'cache-control': 'max-age=100' }))
  exactly(t, await rig.fetch(PATH), `${CACHE_NAME}; fwd=uri-miss; fwd-status=200; stored`, 'miss')
  rig.clock.advance(30)
  exactly(t, await rig.fetch(PATH), `${CACHE_NAME}; hit; ttl=70`, 'hit at +30 s')
  rig.clock.advance(69)
  exactly(t, await rig.fetch(PATH), `${CACHE_NAME}; hit; ttl=1`, 'hit at +99 s')
})

t.test('RFC 9211 §2.2, §2.5: a miss that is not stored has no "stored"', async (t) => {
  const rig = await startRig(t)
  rig.origin.script(PATH, ok({ 'cache-control': 'no-store' }))
  const res = await rig.fetch(PATH)
  wellFormed(t, res, 'no-store miss')
  t.match(cacheStatusText(res), new RegExp(`^${CACHE_NAME}; fwd=uri-miss; fwd-status=200(; stored=\\?0)?$`))
})

t.test('RFC 9211 §2.6: requests that joined another request\'s fill are marked collapsed', async (t) => {
  const rig = await startRig(t)
  const release = gate()
  rig.origin.script(PATH, { ...ok({ 'cache-control': 'max-age=100' }), waitFor: release.promise })
  const pending = Array.from({ length: 3 }, () => rig.fetch(PATH))
  await rig.origin.waitForRequests(PATH, 1)
  // The two followers reach the edge in the same tick as the first, but give them a moment.
  await until(async () => await rig.edge.metrics.lookups.value({ result: 'miss' }) >= 3, 'three lookups', 2000).catch(() => {})
  release.open()
  const results = await Promise.all(pending)
  const texts = results.map((r) => cacheStatusText(r))
  t.equal(rig.origin.count(PATH), 1, 'one origin request')
  t.equal(texts.filter((s) => s === `${CACHE_NAME}; fwd=uri-miss; fwd-status=200; stored`).length, 1, `one initiator (${texts.join(' | ')})`)
  t.equal(texts.filter((s) => s === `${CACHE_NAME}; fwd=uri-miss; fwd-status=200; stored; collapsed`).length, 2, 'two collapsed followers')
  for (const r of results) wellFormed(t, r, 'collapsed')
})

t.test('RFC 9211 §2.2: methods other than GET and HEAD are fwd=method', async (t) => {
  const rig = await startRig(t)
  rig.origin.script(PATH, ok({}, 'created', 201))
  exactly(t, await rig.fetch(PATH, { method: 'POST', body: 'x' }), `${CACHE_NAME}; fwd=method; fwd-status=201`, 'POST')
})

t.test('RFC 9211 §2.2: a missing variant of a cached URL is fwd=vary-miss', async (t) => {
  const rig = await startRig(t)
  rig.origin.script(PATH, (req) => ok({ 'cache-control': 'max-age=100', vary: 'Accept-Language' }, String(req.headers['accept-language'])))
  await rig.fetch(PATH, { headers: { 'accept-language': 'en' } })
  exactly(t, await rig.fetch(PATH, { headers: { 'accept-language': 'fr' } }), `${CACHE_NAME}; fwd=vary-miss; fwd-status=200; stored`, 'second variant')
})

t.test('RFC 9211 §2.2: request directives that prevent reuse are fwd=request', async (t) => {
  const rig = await startRig(t)
  rig.origin.script(PATH, conditionalOrigin(() => ({ body: 'v1', etag: '"v1"', headers: { 'cache-control': 'max-age=100' } })))
  await rig.fetch(PATH)
  for (const headers of [{ 'cache-control': 'no-cache' }, { 'cache-control': 'max-age=1' }, { 'cache-control': 'min-fresh=99' }, { pragma: 'no-cache' }]) {
    rig.clock.advance(5)
    const res = await rig.fetch(PATH, { headers })
    wellFormed(t, res, JSON.stringify(headers))
    t.match(cacheStatus(res), { fwd: 'request', 'fwd-status': '304' }, JSON.stringify(headers))
    t.equal(cacheStatus(res)?.hit, undefined)
  }
})

t.test('RFC 9211 §2.2, §2.3: a stale response validated upstream is fwd=stale with the 304 or 200 it got', async (t) => {
  const rig = await startRig(t)
  rig.origin.script(PATH,
    ok({ 'cache-control': 'max-age=10', etag: '"v1"' }),
    { status: 304, headers: { 'cache-control': 'max-age=10', etag: '"v1"' } },
    ok({ 'cache-control': 'max-age=10', etag: '"v2"' }, 'v2'))
  await rig.fetch(PATH)
  rig.clock.advance(20)
  const validated = await rig.fetch(PATH)
  wellFormed(t, validated, '304')
  t.match(cacheStatus(validated), { fwd: 'stale', 'fwd-status': '304', stored: true })
  rig.clock.advance(20)
  const replaced = await rig.fetch(PATH)
  wellFormed(t, replaced, '200')
  t.match(cacheStatus(replaced), { fwd: 'stale', 'fwd-status': '200', stored: true })
})

t.test('RFC 9211 §2.2, §2.4, §2.8: stale-while-revalidate and stale-if-error say so, with a negative ttl', async (t) => {
  const rig = await startRig(t)
  const held = gate()
  t.teardown(held.open)
  rig.origin.script('/cs/swr.txt', ok({ 'cache-control': 'max-age=10, stale-while-revalidate=60' }), { ...ok({ 'cache-control': 'max-age=10' }), waitFor: held.promise })
  rig.origin.script('/cs/sie.txt', ok({ 'cache-control': 'max-age=10, stale-if-error=60' }), ok({}, 'down', 503))
  await rig.fetch('/cs/swr.txt')
  await rig.fetch('/cs/sie.txt')
  rig.clock.advance(15)
  exactly(t, await rig.fetch('/cs/swr.txt'), `${CACHE_NAME}; fwd=stale; ttl=-5; detail=stale-while-revalidate`, 'stale-while-revalidate')
  exactly(t, await rig.fetch('/cs/sie.txt'), `${CACHE_NAME}; fwd=stale; fwd-status=503; ttl=-5; detail=stale-if-error`, 'stale-if-error')
})

t.test('RFC 9211 §2.8: only-if-cached without a usable response has only a detail', async (t) => {
  const rig = await startRig(t)
  rig.origin.script(PATH, ok({ 'cache-control': 'max-age=100' }))
  exactly(t, await rig.fetch(PATH, { headers: { 'cache-control': 'only-if-cached' } }), `${CACHE_NAME}; detail=only-if-cached`, 'only-if-cached')
})

t.test('RFC 9211 §2.8: errors name their CDN_ERR_* code in detail', async (t) => {
  const rig = await startRig(t)
  const dead = await startEdge(t, { origin: 'http://127.0.0.1:1', now: rig.clock.now })
  const res = await fetchRaw(dead.url + PATH)
  t.equal(res.status, 502)
  wellFormed(t, res, 'unreachable origin')
  t.match(cacheStatus(res), { detail: 'CDN_ERR_UPSTREAM_CONNECT' })
  t.equal(cacheStatus(res)?.hit, undefined)
})

t.test('RFC 9211 §2: upstream members are kept and ours comes last, on a miss and on a hit', async (t) => {
  const rig = await startRig(t)
  rig.origin.script(PATH, ok({ 'cache-control': 'max-age=100', 'cache-status': 'OriginShield; fwd=uri-miss; stored' }))
  for (const label of ['miss', 'hit']) {
    const res = await rig.fetch(PATH)
    wellFormed(t, res, label)
    const members = cacheStatusMembers(res.headers['cache-status'])
    t.equal(members[0]?.[0], 'OriginShield', `${label}: the upstream member comes first`)
    t.equal(members.at(-1)?.[0], CACHE_NAME, `${label}: ours is last (nearest the client)`)
    t.equal(members.length, 2, `${label}: two members`)
  }
})
