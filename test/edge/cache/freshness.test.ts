import t from 'tap'
import {
  ageHeaderValue,
  computeFreshness,
  currentAgeSeconds,
  HEURISTICALLY_CACHEABLE,
  initialAgeSeconds,
  isFresh,
  responseDirectives,
  storability,
  ttlSeconds
} from '../../../edge/cache/freshness.ts'
import type { FreshnessInput, NoStoreReason, StorabilityInput } from '../../../edge/cache/freshness.ts'
import type { ObjectMeta, StoredHeaders } from '../../../edge/cache/types.ts'
import { formatHttpDate } from '../../../lib/http/dates.ts'

const T0 = Date.UTC(2024, 0, 1, 12) // the response's Date
const date = (offsetSeconds: number): string => formatHttpDate(T0 + offsetSeconds * 1000)

// A response received at T0 with no network delay unless a case says otherwise.
function lifetimeOf (headers: StoredHeaders, extra: Partial<FreshnessInput> = {}): number {
  return computeFreshness({ status: 200, headers, requestTimeMs: T0, responseTimeMs: T0, ...extra }).freshnessLifetimeSeconds
}

function meta (fields: Partial<ObjectMeta>): ObjectMeta {
  return {
    key: '/a',
    status: 200,
    headers: {},
    bodyBytes: 0,
    requestTimeMs: T0,
    responseTimeMs: T0,
    initialAgeSeconds: 0,
    freshnessLifetimeSeconds: 0,
    ...fields
  }
}

t.test('RFC 9111 §4.2.1 freshness lifetime: explicit sources and their precedence', async (t) => {
  const d = date(0)
  const cases: Array<[string, StoredHeaders, number]> = [
    ['max-age', { 'cache-control': 'max-age=60', date: d }, 60],
    ['s-maxage beats max-age in a shared cache', { 'cache-control': 'max-age=60, s-maxage=30' }, 30],
    ['s-maxage=0 beats max-age', { 'cache-control': 's-maxage=0, max-age=600' }, 0],
    ['max-age beats Expires', { 'cache-control': 'max-age=60', expires: date(3600), date: d }, 60],
    ['Expires - Date', { expires: date(3600), date: d }, 3600],
    ['Expires in the past', { expires: date(-10), date: d }, 0],
    ['Expires equal to Date', { expires: d, date: d }, 0],
    ['§5.3 invalid Expires means already expired', { expires: '0', date: d, 'last-modified': date(-86400) }, 0],
    ['§4.2.1 repeated Expires means stale', { expires: [date(60), date(120)], date: d }, 0],
    ['Expires with no Date uses the response time', { expires: date(120) }, 120],
    ['Expires with an invalid Date uses the response time', { expires: date(120), date: 'garbage' }, 120],
    ['invalid max-age is stale even with Expires', { 'cache-control': 'max-age=soon', expires: date(3600), date: d }, 0],
    ['conflicting max-age is stale', { 'cache-control': 'max-age=60, max-age=3600' }, 0],
    ['no-cache still has a lifetime (revalidation is the caller\'s job)', { 'cache-control': 'no-cache, max-age=60' }, 60],
    ['max-age overflow is 2^31', { 'cache-control': 'max-age=99999999999' }, 2 ** 31],
    ['repeated Cache-Control lines are one list', { 'cache-control': ['public', 'max-age=90'] }, 90]
  ]
  for (const [name, headers, expected] of cases) t.equal(lifetimeOf(headers), expected, name)
  t.equal(lifetimeOf({ expires: date(100) }, { responseTimeMs: T0 + 40_000 }), 60,
    'no Date: Expires minus the time we received it')
})

t.test('RFC 9213 §2.2 CDN-Cache-Control takes precedence and hides Cache-Control and Expires', async (t) => {
  const d = date(0)
  const cases: Array<[string, StoredHeaders, number]> = [
    ['CDN max-age over CC max-age', { 'cdn-cache-control': 'max-age=600', 'cache-control': 'max-age=60' }, 600],
    ['CDN s-maxage over CDN max-age', { 'cdn-cache-control': 's-maxage=5, max-age=600' }, 5],
    ['CDN max-age over CC s-maxage', { 'cdn-cache-control': 'max-age=600', 'cache-control': 's-maxage=60' }, 600],
    ['CDN field without a lifetime ignores Expires (heuristic instead)',
      { 'cdn-cache-control': 'public', expires: date(3600), date: d, 'last-modified': date(-1000) }, 100],
    ['CDN field without a lifetime ignores CC max-age', { 'cdn-cache-control': 'public', 'cache-control': 'max-age=60' }, 0],
    ['an invalid CDN field is ignored', { 'cdn-cache-control': 'Max-Age=600', 'cache-control': 'max-age=60' }, 60],
    ['an empty CDN field is ignored', { 'cdn-cache-control': '', 'cache-control': 'max-age=60' }, 60],
    ['a CDN value of the wrong type is not consumed', { 'cdn-cache-control': 'max-age=1.5', 'cache-control': 'max-age=60' }, 0]
  ]
  for (const [name, headers, expected] of cases) t.equal(lifetimeOf(headers), expected, name)
  t.equal(responseDirectives({ 'cdn-cache-control': 'no-store', 'cache-control': 'max-age=5' }).targeted, true)
  t.equal(responseDirectives({ 'cdn-cache-control': 'x,', 'cache-control': 'max-age=5' }).targeted, false)
})

t.test('RFC 9111 §4.2.2 heuristic freshness', async (t) => {
  const d = date(0)
  const lm = date(-100_000) // Last-Modified 100000 s before Date
  const cases: Array<[string, number, StoredHeaders, Partial<FreshnessInput>, number]> = [
    ['10% of Date - Last-Modified', 200, { date: d, 'last-modified': lm }, {}, 10_000],
    ['custom fraction', 200, { date: d, 'last-modified': lm }, { heuristicFraction: 0.5 }, 50_000],
    ['capped at maxHeuristicSeconds', 200, { date: d, 'last-modified': date(-10_000_000) }, {}, 86_400],
    ['custom cap', 200, { date: d, 'last-modified': lm }, { maxHeuristicSeconds: 60 }, 60],
    ['fraction 0 disables the heuristic', 200, { date: d, 'last-modified': lm }, { heuristicFraction: 0 }, 0],
    ['404 is heuristically cacheable', 404, { date: d, 'last-modified': lm }, {}, 10_000],
    ['301 is heuristically cacheable', 301, { date: d, 'last-modified': lm }, {}, 10_000],
    ['302 is not', 302, { date: d, 'last-modified': lm }, {}, 0],
    ['500 is not', 500, { date: d, 'last-modified': lm }, {}, 0],
    ['public makes any status heuristically fresh', 500, { date: d, 'last-modified': lm, 'cache-control': 'public' }, {}, 10_000],
    ['no Last-Modified → 0', 200, { date: d, etag: '"x"' }, {}, 0],
    ['invalid Last-Modified → 0', 200, { date: d, 'last-modified': 'yesterday' }, {}, 0],
    ['Last-Modified after Date → 0', 200, { date: d, 'last-modified': date(10) }, {}, 0],
    ['no Date: measured from the response time', 200, { 'last-modified': lm }, {}, 10_000],
    ['never when max-age is present', 200, { date: d, 'last-modified': lm, 'cache-control': 'max-age=5' }, {}, 5],
    ['never when Expires is present (even invalid)', 200, { date: d, 'last-modified': lm, expires: 'junk' }, {}, 0]
  ]
  for (const [name, status, headers, extra, expected] of cases) t.equal(lifetimeOf(headers, { status, ...extra }), expected, name)
  t.same([...HEURISTICALLY_CACHEABLE].sort((a, b) => a - b), [200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501],
    'RFC 9110 §15.1 list')
})

t.test('computeFreshness rejects bad heuristic options', async (t) => {
  const input = { status: 200, headers: {}, requestTimeMs: T0, responseTimeMs: T0 }
  for (const bad of [-0.1, 1.1, Number.NaN]) {
    t.throws(() => computeFreshness({ ...input, heuristicFraction: bad }),
      { name: 'TypeError', message: `Expected heuristicFraction to be a number in [0, 1], got ${bad}` })
  }
  for (const bad of [-1, Number.NaN]) {
    t.throws(() => computeFreshness({ ...input, maxHeuristicSeconds: bad }), { name: 'TypeError' })
  }
})

t.test('RFC 9111 §4.2.3 initial age', async (t) => {
  const age = (headers: StoredHeaders, requestTimeMs: number, responseTimeMs: number): number =>
    computeFreshness({ status: 200, headers, requestTimeMs, responseTimeMs }).initialAgeSeconds
  const cases: Array<[string, StoredHeaders, number, number, number]> = [
    ['no Age, no delay, Date = receipt', { date: date(0) }, T0, T0, 0],
    ['Age header', { date: date(0), age: '30' }, T0, T0, 30],
    ['Age plus response_delay', { date: date(0), age: '30' }, T0 - 2000, T0, 32],
    ['response_delay alone', { date: date(0) }, T0 - 1500, T0, 1.5],
    ['apparent_age when Date lags receipt', { date: date(-50) }, T0, T0, 50],
    ['the larger of apparent and corrected age', { date: date(-50), age: '10' }, T0 - 1000, T0, 50],
    ['corrected age wins when larger', { date: date(-5), age: '100' }, T0 - 1000, T0, 101],
    ['Date in the future: apparent_age clamps to 0', { date: date(60) }, T0, T0, 0],
    ['no Date: apparent age 0', { age: '7' }, T0, T0, 7],
    ['§5.1 invalid Age is ignored', { date: date(0), age: 'ten' }, T0, T0, 0],
    ['§5.1 negative Age is ignored', { date: date(0), age: '-5' }, T0, T0, 0],
    ['§5.1 a list Age is ignored', { date: date(0), age: '5, 6' }, T0, T0, 0],
    ['§5.1 repeated Age is ignored', { date: date(0), age: ['5', '6'] }, T0, T0, 0],
    ['Age with spaces around', { date: date(0), age: ' 5 ' }, T0, T0, 5],
    ['§1.2.2 Age overflow is 2^31', { date: date(0), age: '99999999999999' }, T0, T0, 2 ** 31],
    ['request sent after response (clock skew) adds no delay', { date: date(0), age: '3' }, T0 + 5000, T0, 3]
  ]
  for (const [name, headers, req, res, expected] of cases) t.equal(age(headers, req, res), expected, name)
})

t.test('RFC 9111 §4.2.3 current age, ttl, isFresh, Age header', async (t) => {
  const m = meta({ initialAgeSeconds: 10, freshnessLifetimeSeconds: 60 })
  t.equal(currentAgeSeconds(m, T0), 10)
  t.equal(currentAgeSeconds(m, T0 + 5_500), 15.5, 'resident time in fractional seconds')
  t.equal(currentAgeSeconds(m, T0 - 60_000), 10, 'a clock that went back adds nothing')
  t.equal(ttlSeconds(m, T0), 50)
  t.equal(ttlSeconds(m, T0 + 50_000), 0)
  t.equal(ttlSeconds(m, T0 + 80_000), -30, 'negative once stale')
  t.equal(isFresh(m, T0 + 49_999), true)
  t.equal(isFresh(m, T0 + 50_000), false, 'fresh only while lifetime > age')
  t.equal(isFresh(meta({ freshnessLifetimeSeconds: 0 }), T0), false, 'zero lifetime is never fresh')
  t.equal(ageHeaderValue(m, T0 + 5_999), '15', 'whole seconds, floored')
  t.equal(ageHeaderValue(meta({ initialAgeSeconds: 2 ** 31 }), T0 + 10_000_000), String(2 ** 31), '§5.1 capped at 2^31')
})

t.test('computeFreshness + meta end to end', async (t) => {
  const f = computeFreshness({
    status: 200,
    headers: { 'cache-control': 'max-age=100', date: date(-20), age: '5' },
    requestTimeMs: T0 - 1000,
    responseTimeMs: T0
  })
  t.same(f, { freshnessLifetimeSeconds: 100, initialAgeSeconds: 20 })
  const m = meta(f)
  t.equal(ttlSeconds(m, T0 + 30_000), 50)
  t.equal(isFresh(m, T0 + 79_000), true)
  t.equal(isFresh(m, T0 + 80_000), false)
})

t.test('RFC 9111 §3 storability', async (t) => {
  const base: StorabilityInput = {
    method: 'GET',
    status: 200,
    reqHeaders: {},
    resHeaders: { 'cache-control': 'max-age=60' },
    shared: true
  }
  const cases: Array<[string, Partial<StorabilityInput>, NoStoreReason | undefined]> = [
    ['plain max-age', {}, undefined],
    ['HEAD', { method: 'HEAD' }, undefined],
    ['POST', { method: 'POST' }, 'method'],
    ['lower-case get is not GET', { method: 'get' }, 'method'],
    ['OPTIONS', { method: 'OPTIONS' }, 'method'],
    ['§5.2.1.5 request no-store', { reqHeaders: { 'cache-control': 'no-store' } }, 'request-no-store'],
    ['request no-cache does not prevent storing', { reqHeaders: { 'cache-control': 'no-cache' } }, undefined],
    ['response no-store', { resHeaders: { 'cache-control': 'max-age=60, no-store' } }, 'no-store'],
    ['CDN-Cache-Control no-store', { resHeaders: { 'cdn-cache-control': 'no-store', 'cache-control': 'max-age=60' } }, 'no-store'],
    ['CDN-Cache-Control overrides a Cache-Control no-store', { resHeaders: { 'cdn-cache-control': 'max-age=60', 'cache-control': 'no-store' } }, undefined],
    ['CDN-Cache-Control overrides a Cache-Control private', { resHeaders: { 'cdn-cache-control': 'max-age=60', 'cache-control': 'private' } }, undefined],
    ['CDN-Cache-Control hides Expires', { resHeaders: { 'cdn-cache-control': 'none', expires: date(60) } }, 'no-freshness'],
    ['304 is not a storable response', { status: 304 }, 'status'],
    ['1xx', { status: 100 }, 'status'],
    ['§5.2.2.3 must-understand with an understood status ignores no-store',
      { resHeaders: { 'cache-control': 'must-understand, no-store, max-age=60' } }, undefined],
    ['must-understand with an unknown status', { status: 299, resHeaders: { 'cache-control': 'must-understand, no-store, max-age=60' } }, 'must-understand'],
    ['§4.1 Vary: *', { resHeaders: { 'cache-control': 'max-age=60', vary: '*' } }, 'vary-star'],
    ['Vary: * inside a list', { resHeaders: { 'cache-control': 'max-age=60', vary: 'accept, *' } }, 'vary-star'],
    ['Vary: * on a second line', { resHeaders: { 'cache-control': 'max-age=60', vary: ['accept', ' * '] } }, 'vary-star'],
    ['Vary on a header is not vary-star', { resHeaders: { 'cache-control': 'max-age=60', vary: 'accept-encoding' } }, undefined],
    ['206 is not stored yet', { status: 206 }, 'partial'],
    ['§5.2.2.7 private', { resHeaders: { 'cache-control': 'private, max-age=60' } }, 'private'],
    ['qualified private', { resHeaders: { 'cache-control': 'private="set-cookie", max-age=60' } }, 'private'],
    ['§3.5 Authorization', { reqHeaders: { authorization: 'Bearer x' } }, 'authorization'],
    ['Authorization with public', { reqHeaders: { authorization: 'Bearer x' }, resHeaders: { 'cache-control': 'public, max-age=60' } }, undefined],
    ['Authorization with s-maxage', { reqHeaders: { authorization: 'Bearer x' }, resHeaders: { 'cache-control': 's-maxage=60' } }, undefined],
    ['Authorization with must-revalidate', { reqHeaders: { authorization: 'Bearer x' }, resHeaders: { 'cache-control': 'must-revalidate, max-age=60' } }, undefined],
    ['Set-Cookie', { resHeaders: { 'cache-control': 'max-age=60', 'set-cookie': ['a=1'] } }, 'set-cookie'],
    ['Set-Cookie allowed', { allowSetCookie: true, resHeaders: { 'cache-control': 'max-age=60', 'set-cookie': ['a=1'] } }, undefined],
    ['Expires alone', { resHeaders: { expires: date(60) } }, undefined],
    ['invalid Expires still counts as explicit (stored stale)', { resHeaders: { expires: '0' } }, undefined],
    ['s-maxage alone', { resHeaders: { 'cache-control': 's-maxage=5' } }, undefined],
    ['max-age=0 is storable (serve after revalidation)', { resHeaders: { 'cache-control': 'max-age=0' } }, undefined],
    ['no-cache with nothing to revalidate against', { resHeaders: { 'cache-control': 'no-cache' } }, 'no-freshness'],
    ['no-cache with a validator is storable', { resHeaders: { 'cache-control': 'no-cache', etag: '"a"' } }, undefined],
    ['public alone', { resHeaders: { 'cache-control': 'public' } }, undefined],
    ['heuristic status with Last-Modified', { resHeaders: { 'last-modified': date(-100) } }, undefined],
    ['heuristic status with ETag only', { resHeaders: { etag: '"a"' } }, undefined],
    ['heuristic status with nothing to go on', { resHeaders: {} }, 'no-freshness'],
    ['404 with Last-Modified', { status: 404, resHeaders: { 'last-modified': date(-100) } }, undefined],
    ['302 without explicit freshness', { status: 302, resHeaders: { 'last-modified': date(-100) } }, 'status'],
    ['302 with max-age', { status: 302 }, undefined],
    ['500 with max-age', { status: 500 }, undefined],
    ['503 without explicit freshness', { status: 503, resHeaders: { etag: '"a"' } }, 'status']
  ]
  for (const [name, overrides, reason] of cases) {
    const verdict = storability({ ...base, ...overrides })
    t.same(verdict, reason === undefined ? { storable: true } : { storable: false, reason }, name)
  }
})

t.test('initialAgeSeconds is the corrected initial age computeFreshness keeps (Date and Age as received)', async (t) => {
  const responseTimeMs = Date.UTC(2026, 0, 1, 12, 0, 0)
  const cases: StoredHeaders[] = [
    {},
    { date: formatHttpDate(responseTimeMs - 30_000) },
    { date: formatHttpDate(responseTimeMs - 30_000), age: '100' },
    { age: '99999999999' },
    { date: formatHttpDate(responseTimeMs + 3_600_000) },
  ]
  for (const headers of cases) {
    const input = { status: 200, headers, requestTimeMs: responseTimeMs - 2000, responseTimeMs }
    t.equal(initialAgeSeconds(input), computeFreshness(input).initialAgeSeconds, JSON.stringify(headers))
  }
  t.equal(initialAgeSeconds({ headers: { date: formatHttpDate(responseTimeMs - 30_000) }, requestTimeMs: responseTimeMs, responseTimeMs }), 30, 'a Date 30 s back')
})
