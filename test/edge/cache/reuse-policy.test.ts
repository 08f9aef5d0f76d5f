/**
 * The reuse decision (RFC 9111 §4, §5.2; RFC 5861) as pure functions: request directives
 * (Pragma folded in only without Cache-Control), every outcome of decideReuse at and around
 * its boundaries, what the stored response's own directives allow (CDN-Cache-Control
 * winning over Cache-Control), and stale-if-error with the operator's grace.
 */
import t from 'tap'
import { canServeStaleOnError, decideReuse, requestDirectives, storedDirectives, type RequestDirectives } from '../../../edge/cache/reuse-policy.ts'
import type { ObjectMeta, StoredHeaders } from '../../../edge/cache/types.ts'

const T0 = 1_700_000_000_000

/** A stored response received at T0 with `lifetime` seconds of freshness and `initialAge` seconds of age. */
function stored (headers: StoredHeaders, lifetime: number, initialAge = 0): ObjectMeta {
  return {
    key: 'example.com/vod/t/seg-1.ts',
    status: 200,
    headers,
    bodyBytes: 10,
    requestTimeMs: T0 - 20,
    responseTimeMs: T0,
    initialAgeSeconds: initialAge,
    freshnessLifetimeSeconds: lifetime,
  }
}

/** The wall clock when the object is `ageSeconds` old (received with no initial age). */
const at = (ageSeconds: number): number => T0 + ageSeconds * 1000

const req = (headers: Record<string, string | string[]>): RequestDirectives => requestDirectives(headers)
const NO_REQ = requestDirectives({})

t.test('requestDirectives: Cache-Control parsed; Pragma: no-cache counts only without Cache-Control', async (t) => {
  t.same(NO_REQ, { noCache: false, noStore: false, maxAge: undefined, maxStale: undefined, minFresh: undefined, onlyIfCached: false })
  t.ok(Object.isFrozen(NO_REQ), 'the no-directives answer is shared and frozen')
  t.equal(requestDirectives({ accept: '*/*' }), NO_REQ, 'requests without either field share it')

  t.equal(req({ pragma: 'no-cache' }).noCache, true)
  t.equal(req({ pragma: 'foo=1, No-Cache' }).noCache, true, 'case-insensitive, in a list')
  t.equal(req({ pragma: ['foo', ' no-cache '] }).noCache, true, 'on any field line')
  t.equal(req({ pragma: 'no-cache-please' }).noCache, false)
  t.equal(req({ pragma: 'foo' }), NO_REQ, 'another Pragma is nothing')
  t.equal(req({ pragma: 'no-cache', 'cache-control': 'max-age=5' }).noCache, false, 'Cache-Control present: Pragma ignored (§5.4)')

  t.same(req({ 'cache-control': 'max-age=5, max-stale=10, min-fresh=3, only-if-cached, no-store' }), {
    noCache: false, noStore: true, maxAge: 5, maxStale: 10, minFresh: 3, onlyIfCached: true,
  })
  t.equal(req({ 'cache-control': 'max-stale' }).maxStale, true, 'bare max-stale: any staleness')
  t.equal(req({ 'cache-control': 'no-cache' }).noCache, true)
  t.equal(req({ 'cache-control': 'no-cache="x-foo"' }).noCache, true, 'a qualified no-cache in a request still forbids reuse')
  t.equal(req({ 'cache-control': 'max-age=soon' }).maxAge, 0, 'a bad max-age caches less')
})

t.test('no request directives: fresh while lifetime > age, then stale-while-revalidate, then revalidate', async (t) => {
  const plain = stored({ 'cache-control': 'max-age=60' }, 60)
  t.same(decideReuse(plain, NO_REQ, at(0)), { kind: 'fresh' })
  t.same(decideReuse(plain, NO_REQ, at(59.999)), { kind: 'fresh' })
  t.same(decideReuse(plain, NO_REQ, at(60)), { kind: 'revalidate', reason: 'stale' }, 'age == lifetime is stale (§4.2)')

  const swr = stored({ 'cache-control': 'max-age=60, stale-while-revalidate=30' }, 60)
  t.same(decideReuse(swr, NO_REQ, at(60)), { kind: 'stale-while-revalidate' })
  t.same(decideReuse(swr, NO_REQ, at(90)), { kind: 'stale-while-revalidate' }, 'stale by exactly the window')
  t.same(decideReuse(swr, NO_REQ, at(90.001)), { kind: 'revalidate', reason: 'stale' })

  const zero = stored({ 'cache-control': 'max-age=0' }, 0)
  t.same(decideReuse(zero, NO_REQ, at(0)), { kind: 'revalidate', reason: 'stale' }, 'max-age=0 is never fresh')
})

t.test('age is the corrected initial age plus resident time; a clock that went back adds none', async (t) => {
  const aged = stored({ 'cache-control': 'max-age=60' }, 60, 59)
  t.same(decideReuse(aged, NO_REQ, at(0.5)), { kind: 'fresh' })
  t.same(decideReuse(aged, NO_REQ, at(1)), { kind: 'revalidate', reason: 'stale' }, 'the Age it arrived with counts')
  t.same(decideReuse(aged, NO_REQ, T0 - 3_600_000), { kind: 'fresh' }, 'now before the response time: not younger than it arrived')
  t.same(decideReuse(stored({}, 60, 61), NO_REQ, T0 - 3_600_000), { kind: 'revalidate', reason: 'stale' }, '…and not younger either')
})

t.test('must-revalidate, proxy-revalidate and s-maxage: never served stale, whatever the client or the window says', async (t) => {
  for (const cc of ['max-age=60, must-revalidate', 'max-age=60, proxy-revalidate', 's-maxage=60']) {
    const meta = stored({ 'cache-control': `${cc}, stale-while-revalidate=600` }, 60)
    t.same(decideReuse(meta, NO_REQ, at(10)), { kind: 'fresh' }, `${cc}: fresh is fine`)
    t.same(decideReuse(meta, NO_REQ, at(61)), { kind: 'revalidate', reason: 'stale' }, `${cc}: no stale-while-revalidate`)
    t.same(decideReuse(meta, req({ 'cache-control': 'max-stale' }), at(61)), { kind: 'revalidate', reason: 'stale' }, `${cc}: no max-stale`)
    t.equal(storedDirectives(meta).neverStale, true)
  }
})

t.test('request no-cache, Pragma no-cache and max-age force validation of a fresh entry (fwd=request)', async (t) => {
  const meta = stored({ 'cache-control': 'max-age=60, stale-while-revalidate=60' }, 60)
  for (const headers of [{ 'cache-control': 'no-cache' }, { pragma: 'no-cache' }, { 'cache-control': 'max-age=9' }]) {
    t.same(decideReuse(meta, req(headers), at(10)), { kind: 'revalidate', reason: 'request' }, JSON.stringify(headers))
    t.same(decideReuse(meta, req(headers), at(61)), { kind: 'revalidate', reason: 'stale' }, `${JSON.stringify(headers)}, stale entry`)
  }
  t.same(decideReuse(meta, req({ 'cache-control': 'max-age=10' }), at(10)), { kind: 'fresh' }, 'age == max-age is acceptable')
  t.same(decideReuse(meta, req({ 'cache-control': 'max-age=0' }), at(0)), { kind: 'fresh' }, 'max-age=0 accepts an entry of age 0')
  t.same(decideReuse(meta, req({ 'cache-control': 'max-age=0' }), at(0.001)), { kind: 'revalidate', reason: 'request' })
  t.same(decideReuse(meta, req({ 'cache-control': 'no-store' }), at(10)), { kind: 'fresh' }, 'request no-store does not forbid reuse (§5.2.1.5)')
})

t.test('min-fresh: at least that much freshness left, else validate', async (t) => {
  const meta = stored({ 'cache-control': 'max-age=60' }, 60)
  t.same(decideReuse(meta, req({ 'cache-control': 'min-fresh=20' }), at(40)), { kind: 'fresh' }, 'exactly 20 s left')
  t.same(decideReuse(meta, req({ 'cache-control': 'min-fresh=20' }), at(40.5)), { kind: 'revalidate', reason: 'request' })
  t.same(decideReuse(meta, req({ 'cache-control': 'min-fresh=600' }), at(0)), { kind: 'revalidate', reason: 'request' }, 'more than the lifetime')
})

t.test('max-stale: stale up to that many seconds is acceptable, bare accepts any; beyond it the window still applies', async (t) => {
  const plain = stored({ 'cache-control': 'max-age=60' }, 60)
  t.same(decideReuse(plain, req({ 'cache-control': 'max-stale=30' }), at(90)), { kind: 'stale-acceptable' }, 'stale by exactly 30')
  t.same(decideReuse(plain, req({ 'cache-control': 'max-stale=30' }), at(90.5)), { kind: 'revalidate', reason: 'stale' })
  t.same(decideReuse(plain, req({ 'cache-control': 'max-stale' }), at(86_400 * 365)), { kind: 'stale-acceptable' })
  t.same(decideReuse(plain, req({ 'cache-control': 'max-stale=0' }), at(60)), { kind: 'stale-acceptable' }, 'stale by 0 s')
  t.same(decideReuse(plain, req({ 'cache-control': 'max-stale=100' }), at(10)), { kind: 'fresh' }, 'a fresh entry is just fresh')
  t.same(decideReuse(plain, req({ 'cache-control': 'max-stale=100, max-age=70' }), at(80)), { kind: 'revalidate', reason: 'stale' }, 'max-age still caps the age')

  const swr = stored({ 'cache-control': 'max-age=60, stale-while-revalidate=100' }, 60)
  t.same(decideReuse(swr, req({ 'cache-control': 'max-stale=10' }), at(100)), { kind: 'stale-while-revalidate' }, 'past max-stale, inside the window')
  t.same(decideReuse(swr, req({ 'cache-control': 'only-if-cached' }), at(100)), { kind: 'stale-while-revalidate' }, 'other directives leave the window alone')
})

t.test('a stored no-cache response is always validated first; no-cache="field" only restricts those fields', async (t) => {
  const meta = stored({ 'cache-control': 'no-cache, max-age=60, stale-while-revalidate=60' }, 60)
  t.same(decideReuse(meta, NO_REQ, at(1)), { kind: 'revalidate', reason: 'stale' }, 'fresh: validated, and the reason is the response (fwd=stale), not the request')
  t.equal(decideReuse(meta, NO_REQ, at(70)).kind, 'revalidate', 'in its stale window')
  t.equal(decideReuse(meta, req({ 'cache-control': 'max-stale' }), at(70)).kind, 'revalidate', 'whatever the client accepts')
  t.same(decideReuse(meta, NO_REQ, at(70)), { kind: 'revalidate', reason: 'stale' })

  const fields = stored({ 'cache-control': 'max-age=60, no-cache="Set-Cookie, X-Session"' }, 60)
  t.same(decideReuse(fields, NO_REQ, at(1)), { kind: 'fresh' })
  t.same(storedDirectives(fields).noCacheFields, ['set-cookie', 'x-session'], 'lower-cased field names')
  t.equal(storedDirectives(fields).noCache, false)
})

t.test('CDN-Cache-Control, when valid, replaces Cache-Control for every stored directive (RFC 9213 §2.2)', async (t) => {
  const lenient = stored({ 'cache-control': 'max-age=60, must-revalidate', 'cdn-cache-control': 'max-age=60, stale-while-revalidate=30' }, 60)
  t.same(decideReuse(lenient, NO_REQ, at(70)), { kind: 'stale-while-revalidate' }, 'must-revalidate in Cache-Control is not ours')
  t.equal(storedDirectives(lenient).sharedWithAuthorization, false)

  const strict = stored({ 'cache-control': 'max-age=60, stale-while-revalidate=30', 'cdn-cache-control': 'max-age=60, must-revalidate' }, 60)
  t.same(decideReuse(strict, NO_REQ, at(70)), { kind: 'revalidate', reason: 'stale' })
  t.equal(storedDirectives(strict).sharedWithAuthorization, true)

  const invalid = stored({ 'cache-control': 'max-age=60, stale-while-revalidate=30', 'cdn-cache-control': 'max-age=(' }, 60)
  t.same(decideReuse(invalid, NO_REQ, at(70)), { kind: 'stale-while-revalidate' }, 'an invalid CDN-Cache-Control falls back to Cache-Control')
})

t.test('storedDirectives: what may answer requests with Authorization (§3.5); parsed once per stored object', async (t) => {
  const cases: Array<[string, boolean]> = [
    ['max-age=60', false],
    ['public, max-age=60', true],
    ['s-maxage=60', true],
    ['max-age=60, must-revalidate', true],
    ['max-age=60, proxy-revalidate', false],
  ]
  for (const [cc, shared] of cases) t.equal(storedDirectives(stored({ 'cache-control': cc }, 60)).sharedWithAuthorization, shared, cc)

  const meta = stored({ 'cache-control': 'max-age=60, stale-while-revalidate=5, stale-if-error=7' }, 60)
  const first = storedDirectives(meta)
  t.same(first, { noCache: false, noCacheFields: [], neverStale: false, staleWhileRevalidateSeconds: 5, staleIfErrorSeconds: 7, sharedWithAuthorization: false })
  t.equal(storedDirectives(meta), first, 'the same object on every hit')
  t.not(storedDirectives({ ...meta }), first, 'another stored object (a replaced entry) is parsed afresh')
})

t.test('canServeStaleOnError: stale-if-error or the operator grace, whichever is longer; never when stale use is forbidden', async (t) => {
  const sie = stored({ 'cache-control': 'max-age=60, stale-if-error=30' }, 60)
  t.equal(canServeStaleOnError(sie, at(90), 0), true, 'stale by exactly stale-if-error')
  t.equal(canServeStaleOnError(sie, at(90.5), 0), false)
  t.equal(canServeStaleOnError(sie, at(150), 100), true, 'the grace is longer')
  t.equal(canServeStaleOnError(sie, at(150), 10), false, 'the grace is shorter')

  const plain = stored({ 'cache-control': 'max-age=60' }, 60)
  t.equal(canServeStaleOnError(plain, at(61), 0), false, 'neither: no stale on error')
  t.equal(canServeStaleOnError(plain, at(61), 5), true)

  for (const cc of ['max-age=60, must-revalidate', 'max-age=60, proxy-revalidate', 's-maxage=60', 'no-cache, max-age=60']) {
    t.equal(canServeStaleOnError(stored({ 'cache-control': `${cc}, stale-if-error=600` }, 60), at(61), 600), false, cc)
  }
})
