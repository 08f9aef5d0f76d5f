import t from 'tap'
import { DELTA_SECONDS_MAX, parseCacheControl, parseCdnCacheControl } from '../../../lib/http/cache-control.ts'
import type { CacheControl } from '../../../lib/http/cache-control.ts'

const BASE: CacheControl = {
  noStore: false,
  noCache: false,
  private: false,
  public: false,
  mustRevalidate: false,
  proxyRevalidate: false,
  noTransform: false,
  immutable: false,
  mustUnderstand: false,
  onlyIfCached: false
}

const cc = (fields: Partial<CacheControl>): CacheControl => ({ ...BASE, ...fields })

t.test('RFC 9111 §5.2 parseCacheControl: every directive', async (t) => {
  const cases: Array<[string, CacheControl]> = [
    ['max-age=60', cc({ maxAge: 60 })],
    ['s-maxage=30', cc({ sMaxage: 30 })],
    ['no-store', cc({ noStore: true })],
    ['no-cache', cc({ noCache: true })],
    ['private', cc({ private: true })],
    ['public', cc({ public: true })],
    ['must-revalidate', cc({ mustRevalidate: true })],
    ['proxy-revalidate', cc({ proxyRevalidate: true })],
    ['no-transform', cc({ noTransform: true })],
    ['immutable', cc({ immutable: true })],
    ['must-understand', cc({ mustUnderstand: true })],
    ['stale-while-revalidate=10', cc({ staleWhileRevalidate: 10 })],
    ['stale-if-error=86400', cc({ staleIfError: 86400 })],
    ['max-stale', cc({ maxStale: true })],
    ['max-stale=5', cc({ maxStale: 5 })],
    ['min-fresh=7', cc({ minFresh: 7 })],
    ['only-if-cached', cc({ onlyIfCached: true })],
    ['public, max-age=31536000, immutable', cc({ public: true, maxAge: 31536000, immutable: true })],
    ['max-age=0, must-revalidate', cc({ maxAge: 0, mustRevalidate: true })]
  ]
  for (const [value, expected] of cases) t.same(parseCacheControl(value), expected, value)
})

t.test('RFC 9111 §5.2: names are case-insensitive, arguments may be quoted', async (t) => {
  const cases: Array<[string, CacheControl]> = [
    ['MAX-AGE=60', cc({ maxAge: 60 })],
    ['Max-Age=60, No-Store, PUBLIC', cc({ maxAge: 60, noStore: true, public: true })],
    ['max-age="60"', cc({ maxAge: 60 })], // §5.2: recipients accept the quoted form
    ['s-maxage="0"', cc({ sMaxage: 0 })],
    ['no-cache="Set-Cookie"', cc({ noCache: ['set-cookie'] })],
    ['no-cache="set-cookie, X-Foo"', cc({ noCache: ['set-cookie', 'x-foo'] })],
    ['private="a,,b , c"', cc({ private: ['a', 'b', 'c'] })],
    ['no-cache=set-cookie', cc({ noCache: ['set-cookie'] })], // token form
    ['no-cache="a, b", max-age=5', cc({ noCache: ['a', 'b'], maxAge: 5 })], // comma inside quotes
    ['private="x\\"y", public', cc({ private: ['x"y'], public: true })], // quoted-pair
    ['  max-age=60  ,  public  ', cc({ maxAge: 60, public: true })],
    ['max-age = 60', cc({ maxAge: 60 })], // tolerated OWS around "="
    ['\tmax-age=60\t', cc({ maxAge: 60 })],
    [',,max-age=60,,', cc({ maxAge: 60 })]
  ]
  for (const [value, expected] of cases) t.same(parseCacheControl(value), expected, value)
})

t.test('RFC 9111 §1.2.2 delta-seconds: invalid max-age means stale, overflow means 2^31', async (t) => {
  const cases: Array<[string, CacheControl]> = [
    ['max-age', cc({ maxAge: 0 })],
    ['max-age=', cc({ maxAge: 0 })],
    ['max-age=abc', cc({ maxAge: 0 })],
    ['max-age=-1', cc({ maxAge: 0 })],
    ['max-age=1.5', cc({ maxAge: 0 })],
    ['max-age=60abc', cc({ maxAge: 0 })],
    ['max-age=60 abc', cc({ maxAge: 0 })], // junk after the argument
    ['max-age=0x10', cc({ maxAge: 0 })],
    ['max-age=+5', cc({ maxAge: 0 })],
    ['max-age=""', cc({ maxAge: 0 })],
    ['max-age="6', cc({ maxAge: 0 })], // unterminated quote
    ['max-age=６０', cc({ maxAge: 0 })],
    ['s-maxage=junk', cc({ sMaxage: 0 })],
    ['max-age=2147483647', cc({ maxAge: 2147483647 })],
    ['max-age=2147483648', cc({ maxAge: DELTA_SECONDS_MAX })],
    ['max-age=99999999999999999999999999', cc({ maxAge: DELTA_SECONDS_MAX })],
    ['max-age=007', cc({ maxAge: 7 })],
    ['stale-while-revalidate=abc', BASE], // invalid: directive dropped (serve no stale)
    ['stale-if-error', BASE],
    ['min-fresh=-3', BASE],
    ['max-stale=abc', BASE],
    ['stale-if-error=99999999999', cc({ staleIfError: DELTA_SECONDS_MAX })]
  ]
  for (const [value, expected] of cases) t.same(parseCacheControl(value), expected, value)
})

t.test('RFC 9111 §4.2.1 duplicates resolve towards caching less', async (t) => {
  const cases: Array<[string | string[], CacheControl]> = [
    ['max-age=60, max-age=60', cc({ maxAge: 60 })], // identical repeats are harmless
    ['max-age=60, max-age=3600', cc({ maxAge: 0 })], // conflicting → stale
    ['max-age=3600, max-age=60', cc({ maxAge: 0 })],
    [['max-age=60', 'max-age=120'], cc({ maxAge: 0 })], // across field lines too
    ['max-age=60, max-age=abc', cc({ maxAge: 0 })],
    ['s-maxage=10, s-maxage=20', cc({ sMaxage: 0 })],
    ['stale-while-revalidate=60, stale-while-revalidate=10', cc({ staleWhileRevalidate: 10 })],
    ['stale-if-error=10, stale-if-error=60', cc({ staleIfError: 10 })],
    ['max-stale, max-stale=10', cc({ maxStale: 10 })],
    ['max-stale=10, max-stale', cc({ maxStale: 10 })],
    ['max-stale=10, max-stale=5', cc({ maxStale: 5 })],
    ['min-fresh=5, min-fresh=10', cc({ minFresh: 10 })],
    ['no-cache="a", no-cache="b"', cc({ noCache: ['a', 'b'] })],
    ['no-cache="a", no-cache', cc({ noCache: true })],
    ['no-cache, no-cache="a"', cc({ noCache: true })],
    ['private="a", private', cc({ private: true })]
  ]
  for (const [value, expected] of cases) t.same(parseCacheControl(value), expected, JSON.stringify(value))
})

t.test('parseCacheControl tolerates junk: bad directives are skipped, never thrown on', async (t) => {
  const cases: Array<[string | string[] | undefined, CacheControl]> = [
    [undefined, BASE],
    ['', BASE],
    [[], BASE],
    [',', BASE],
    ['unknown-directive', BASE],
    ['unknown="x, max-age=5"', BASE], // comma inside an extension's quotes
    ['"quoted", max-age=5', cc({ maxAge: 5 })],
    ['=5, public', cc({ public: true })],
    ['@@@, max-age=5', cc({ maxAge: 5 })],
    ['max-age=5;public', cc({ maxAge: 0 })], // ";" is junk after the argument
    ['no-store garbage', cc({ noStore: true })], // junk never weakens no-store
    ['private junk', cc({ private: true })],
    ['no-cache="a" junk', cc({ noCache: true })],
    ['no-cache="unterminated', cc({ noCache: true })],
    ['no-cache=""', cc({ noCache: true })], // an empty field list counts as bare
    ['no-cache=', cc({ noCache: true })],
    ['public=yes', cc({ public: true })],
    [['max-age=5', 'no-store'], cc({ maxAge: 5, noStore: true })],
    ['\u0000max-age=5', BASE], // an element starting with junk is skipped whole
    ['\u0000, max-age=5', cc({ maxAge: 5 })],
    ['max-age=5\u0000', cc({ maxAge: 0 })],
    ['ｍax-age=5', BASE]
  ]
  for (const [value, expected] of cases) t.same(parseCacheControl(value), expected, JSON.stringify(value))
})

t.test('parseCacheControl survives hostile input', async (t) => {
  const samples = [
    '"'.repeat(10_000),
    '\\'.repeat(10_000),
    ','.repeat(100_000),
    'max-age='.repeat(5000),
    'no-cache="' + 'a,'.repeat(10_000),
    Array.from({ length: 2000 }, (_, i) => `x${i}=${i}`).join(', ')
  ]
  for (const s of samples) t.doesNotThrow(() => parseCacheControl(s), `${s.slice(0, 20)}…`)
  t.same(parseCacheControl('max-age='.repeat(5000)), cc({ maxAge: 0 }))
})

t.test('RFC 9213 §2.1 parseCdnCacheControl: Dictionary syntax', async (t) => {
  const cases: Array<[string | string[] | undefined, CacheControl | undefined]> = [
    ['max-age=60', cc({ maxAge: 60 })],
    ['s-maxage=10, max-age=60', cc({ sMaxage: 10, maxAge: 60 })],
    ['no-store', cc({ noStore: true })],
    ['none', BASE], // RFC 9213 §3.1: a valid field with no known directive still overrides
    ['public, max-age=600, stale-while-revalidate=30, stale-if-error=60',
      cc({ public: true, maxAge: 600, staleWhileRevalidate: 30, staleIfError: 60 })],
    ['private', cc({ private: true })],
    ['no-cache="set-cookie, x-a"', cc({ noCache: ['set-cookie', 'x-a'] })],
    ['no-cache', cc({ noCache: true })],
    ['no-cache=?0, no-store=?0', BASE],
    ['must-revalidate, immutable, proxy-revalidate, no-transform, must-understand',
      cc({ mustRevalidate: true, immutable: true, proxyRevalidate: true, noTransform: true, mustUnderstand: true })],
    ['max-age=60;foo=1', cc({ maxAge: 60 })], // parameters are allowed and ignored
    ['max-age=10, max-age=20', cc({ maxAge: 20 })], // §4.2.2 of RFC 8941: last wins
    [['max-age=60', 'no-store'], cc({ maxAge: 60, noStore: true })],
    // §2.1: values of the wrong type are not consumed
    ['max-age=1.5', BASE],
    ['max-age="60"', BASE],
    ['max-age=-1', BASE],
    ['max-age=abc', BASE],
    ['max-age=(1 2)', BASE],
    ['no-store="yes"', BASE],
    ['max-age=999999999999999', cc({ maxAge: DELTA_SECONDS_MAX })],
    // absent, empty or unparsable: undefined, so Cache-Control applies (§2.2)
    [undefined, undefined],
    ['', undefined],
    ['   ', undefined],
    ['Max-Age=60', undefined], // Dictionary keys are lower-case
    ['max-age=60,', undefined],
    ['max-age=60 public', undefined],
    ['max-age = 60', undefined],
    ['max-age=1234567890123456', undefined], // more than 15 digits
    ['no-cache="unterminated', undefined],
    ['max-age=60, ', undefined]
  ]
  for (const [value, expected] of cases) t.same(parseCdnCacheControl(value), expected, JSON.stringify(value))
})
