/**
 * RFC 9111 §4.2 freshness through the edge, table-driven: for each case the origin's
 * answer, then requests at given clock offsets with the expected origin count, hit or
 * forward, Age and Cache-Status ttl. Covers max-age, s-maxage, Expires, Date and Age
 * (§4.2.3), duplicate and invalid directives, heuristics (§4.2.2), CDN-Cache-Control
 * (RFC 9213), private, no-store, no-cache and Pragma.
 */
import t from 'tap'
import type { ScriptStep } from '../../helpers/scripted-origin.ts'
import { conditionalOrigin, ok, play, startRig, type Clock, type EdgeOverrides, type Step } from './harness.ts'

const PATH = '/fresh/object.txt'

interface Case {
  readonly name: string
  readonly script: (clock: Clock) => ScriptStep[]
  readonly steps: readonly Step[]
  readonly edge?: EdgeOverrides
}

const MISS_STORED = { status: 200, body: 'v1', hit: false, cacheStatus: { fwd: 'uri-miss', 'fwd-status': '200', stored: true as const }, originRequests: 1 }

const cases: Case[] = [
  {
    name: 'RFC 9111 §4.2.1 / §5.2.2.1: max-age sets the lifetime; fresh while lifetime > current age',
    script: () => [ok({ 'cache-control': 'max-age=60' })],
    steps: [
      { expect: MISS_STORED },
      { advance: 30, expect: { status: 200, body: 'v1', hit: true, cacheStatus: { ttl: '30' }, headers: { age: '30' }, originRequests: 1 } },
      { advance: 29, expect: { hit: true, cacheStatus: { ttl: '1' }, headers: { age: '59' }, originRequests: 1 } },
      { advance: 1, expect: { status: 200, hit: false, originRequests: 2 } },
    ],
  },
  {
    name: 'RFC 9111 §5.2.2.10: s-maxage overrides max-age for a shared cache (longer)',
    script: () => [ok({ 'cache-control': 'max-age=10, s-maxage=100' })],
    steps: [
      { expect: MISS_STORED },
      { advance: 50, expect: { hit: true, cacheStatus: { ttl: '50' }, originRequests: 1 } },
      { advance: 50, expect: { hit: false, originRequests: 2 } },
    ],
  },
  {
    name: 'RFC 9111 §5.2.2.10: s-maxage overrides max-age for a shared cache (shorter)',
    script: () => [ok({ 'cache-control': 'max-age=600, s-maxage=10' })],
    steps: [
      { expect: MISS_STORED },
      { advance: 9, expect: { hit: true, originRequests: 1 } },
      { advance: 1, expect: { hit: false, originRequests: 2 } },
    ],
  },
  {
    name: 'RFC 9111 §4.2.1 / §5.3: without max-age, the lifetime is Expires minus Date',
    script: (clock) => [ok({ expires: clock.date(30) })],
    steps: [
      { expect: MISS_STORED },
      { advance: 29, expect: { hit: true, cacheStatus: { ttl: '1' }, originRequests: 1 } },
      { advance: 1, expect: { hit: false, originRequests: 2 } },
    ],
  },
  {
    name: 'RFC 9111 §5.3: max-age overrides Expires',
    script: (clock) => [ok({ 'cache-control': 'max-age=100', expires: clock.date(-100) })],
    steps: [
      { expect: MISS_STORED },
      { advance: 50, expect: { hit: true, originRequests: 1 } },
    ],
  },
  {
    name: 'RFC 9111 §5.2.2.10 / §5.3: s-maxage overrides Expires',
    script: (clock) => [ok({ 'cache-control': 's-maxage=100', expires: clock.date(5) })],
    steps: [
      { expect: MISS_STORED },
      { advance: 50, expect: { hit: true, originRequests: 1 } },
    ],
  },
  {
    name: 'RFC 9111 §5.3: an invalid Expires ("0") means already expired',
    script: () => [ok({ expires: '0', etag: '"v1"' })],
    steps: [
      { expect: { status: 200, body: 'v1', originRequests: 1 } },
      { expect: { status: 200, body: 'v1', hit: false, originRequests: 2 } },
    ],
  },
  {
    name: 'RFC 9111 §4.2.1: Expires counts from the origin\'s Date, not from the cache\'s clock (origin clock an hour fast)',
    script: (clock) => [ok({ date: clock.date(3600), expires: clock.date(3660) })],
    steps: [
      { expect: MISS_STORED },
      { advance: 59, expect: { hit: true, originRequests: 1 } },
      { advance: 1, expect: { hit: false, originRequests: 2 } },
    ],
  },
  {
    name: 'RFC 9111 §4.2.1 / RFC 9110 §6.6.1: without Date, Expires counts from when the response was received',
    script: (clock) => [ok({ date: null, expires: clock.date(30) })],
    steps: [
      { expect: MISS_STORED },
      { advance: 29, expect: { hit: true, originRequests: 1 } },
      { advance: 1, expect: { hit: false, originRequests: 2 } },
    ],
  },
  {
    name: 'RFC 9111 §4.2.3: the Age the origin sent counts toward current age',
    script: () => [ok({ 'cache-control': 'max-age=60', age: '50' })],
    steps: [
      { expect: MISS_STORED },
      { advance: 5, expect: { hit: true, headers: { age: '55' }, cacheStatus: { ttl: '5' }, originRequests: 1 } },
      { advance: 5, expect: { hit: false, originRequests: 2 } },
    ],
  },
  {
    name: 'RFC 9111 §4.2.3: apparent age from a Date in the past counts toward current age',
    script: (clock) => [ok({ 'cache-control': 'max-age=60', date: clock.date(-20) })],
    steps: [
      { expect: MISS_STORED },
      { expect: { hit: true, headers: { age: '20' }, cacheStatus: { ttl: '40' }, originRequests: 1 } },
      { advance: 39, expect: { hit: true, headers: { age: '59' }, originRequests: 1 } },
      { advance: 1, expect: { hit: false, originRequests: 2 } },
    ],
  },
  {
    name: 'RFC 9111 §4.2.3: a Date in the future never makes the age negative',
    script: (clock) => [ok({ 'cache-control': 'max-age=60', date: clock.date(300) })],
    steps: [
      { expect: MISS_STORED },
      { expect: { hit: true, headers: { age: '0' }, cacheStatus: { ttl: '60' }, originRequests: 1 } },
      { advance: 60, expect: { hit: false, originRequests: 2 } },
    ],
  },
  {
    name: 'RFC 9111 §4.2.3: corrected initial age is the larger of apparent age and the Age header',
    script: (clock) => [ok({ 'cache-control': 'max-age=60', date: clock.date(-20), age: '5' })],
    steps: [
      { expect: MISS_STORED },
      { expect: { hit: true, headers: { age: '20' }, originRequests: 1 } },
    ],
  },
  {
    name: 'RFC 9111 §4.2.1: duplicate max-age: the first one or "stale", never a later, longer one',
    script: () => [ok({ 'cache-control': 'max-age=10, max-age=600' })],
    steps: [
      { expect: { status: 200, originRequests: 1 } },
      { advance: 30, expect: { hit: false, originRequests: 2 } },
    ],
  },
  {
    name: 'RFC 9111 §4.2.1: max-age repeated over two Cache-Control lines: the first one or "stale"',
    script: () => [ok({ 'cache-control': ['max-age=10', 'max-age=600'] })],
    steps: [
      { expect: { status: 200, originRequests: 1 } },
      { advance: 30, expect: { hit: false, originRequests: 2 } },
    ],
  },
  {
    name: 'RFC 9111 §4.2.1: two Expires lines: the first one or "stale"',
    script: (clock) => [ok({ expires: [clock.date(10), clock.date(600)] })],
    steps: [
      { expect: { status: 200, originRequests: 1 } },
      { advance: 30, expect: { hit: false, originRequests: 2 } },
    ],
  },
  {
    name: 'RFC 9111 §4.2.1: conflicting directives: the most restrictive (no-cache) wins over max-age',
    script: () => [conditionalOrigin(() => ({ body: 'v1', etag: '"v1"', headers: { 'cache-control': 'max-age=600, no-cache' } }))],
    steps: [
      { expect: { status: 200, body: 'v1', originRequests: 1 } },
      { advance: 1, expect: { status: 200, body: 'v1', hit: false, originRequests: 2 } },
    ],
  },
  ...['max-age=abc', 'max-age=-5', 'max-age=1.5', 'max-age='].map((cc): Case => ({
    name: `RFC 9111 §4.2.1: invalid freshness information (${cc}) is treated as stale`,
    script: () => [ok({ 'cache-control': cc, etag: '"v1"' })],
    steps: [
      { expect: { status: 200, body: 'v1', originRequests: 1 } },
      { advance: 1, expect: { status: 200, hit: false, originRequests: 2 } },
    ],
  })),
  {
    name: 'RFC 9111 §5.2: recipients accept the quoted-string form of max-age ("60")',
    script: () => [ok({ 'cache-control': 'max-age="60"' })],
    steps: [
      { expect: { status: 200, originRequests: 1 } },
      { advance: 30, expect: { hit: true, cacheStatus: { ttl: '30' }, originRequests: 1 } },
    ],
  },
  {
    name: 'RFC 9111 §5.2: cache directive names are case-insensitive',
    script: () => [ok({ 'cache-control': 'MAX-AGE=60' })],
    steps: [
      { expect: { status: 200, originRequests: 1 } },
      { advance: 30, expect: { hit: true, originRequests: 1 } },
    ],
  },
  {
    name: 'RFC 9111 §5.2.3: unknown response directives are ignored',
    script: () => [ok({ 'cache-control': 'max-age=60, x-vendor="a, b", community=UCI' })],
    steps: [
      { expect: { status: 200, originRequests: 1 } },
      { advance: 30, expect: { hit: true, originRequests: 1 } },
    ],
  },
  {
    name: 'RFC 9111 §4.2.2: heuristic freshness is 10% of Date minus Last-Modified',
    script: (clock) => [ok({ 'last-modified': clock.date(-1000) })],
    steps: [
      { expect: MISS_STORED },
      { advance: 99, expect: { hit: true, cacheStatus: { ttl: '1' }, originRequests: 1 } },
      { advance: 1, expect: { hit: false, originRequests: 2 } },
    ],
  },
  {
    name: 'RFC 9111 §4.2.2: heuristic freshness is bounded (Last-Modified ten years ago is not fresh for a month)',
    script: (clock) => [ok({ 'last-modified': clock.date(-10 * 365 * 86400) })],
    steps: [
      { expect: MISS_STORED },
      { advance: 30 * 86400, expect: { hit: false, originRequests: 2 } },
    ],
  },
  {
    name: 'RFC 9111 §4.2.2: no heuristic freshness when an explicit expiration time is present (even an invalid one)',
    script: (clock) => [ok({ expires: '0', 'last-modified': clock.date(-100_000) })],
    steps: [
      { expect: { status: 200, originRequests: 1 } },
      { advance: 1, expect: { hit: false, originRequests: 2 } },
    ],
  },
  {
    name: 'RFC 9213 §2.2: CDN-Cache-Control takes precedence over Cache-Control for this cache',
    script: () => [ok({ 'cache-control': 'max-age=10', 'cdn-cache-control': 'max-age=100' })],
    steps: [
      { expect: MISS_STORED },
      { advance: 50, expect: { hit: true, cacheStatus: { ttl: '50' }, originRequests: 1 } },
      { advance: 50, expect: { hit: false, originRequests: 2 } },
    ],
  },
  {
    name: 'RFC 9213 §2.2: with a valid CDN-Cache-Control, Cache-Control: no-store is ignored',
    script: () => [ok({ 'cache-control': 'no-store', 'cdn-cache-control': 'max-age=100' })],
    steps: [
      { expect: MISS_STORED },
      { advance: 50, expect: { hit: true, originRequests: 1 } },
    ],
  },
  {
    name: 'RFC 9213 §2.2: CDN-Cache-Control: no-store prevents storing despite Cache-Control max-age',
    script: () => [ok({ 'cache-control': 'max-age=100', 'cdn-cache-control': 'no-store' })],
    steps: [
      { expect: { status: 200, notCacheStatus: ['stored'], originRequests: 1 } },
      { expect: { hit: false, originRequests: 2 } },
    ],
  },
  {
    name: 'RFC 9213 §2.2: with a valid CDN-Cache-Control, Expires is ignored too',
    script: () => [ok({ 'cdn-cache-control': 'max-age=100', expires: '0' })],
    steps: [
      { expect: MISS_STORED },
      { advance: 50, expect: { hit: true, originRequests: 1 } },
    ],
  },
  ...['max-age=100, (', ''].map((cdn): Case => ({
    name: `RFC 9213 §2.1: an ${cdn === '' ? 'empty' : 'unparsable'} CDN-Cache-Control is ignored and Cache-Control applies`,
    script: () => [ok({ 'cache-control': 'no-store', 'cdn-cache-control': cdn })],
    steps: [
      { expect: { status: 200, notCacheStatus: ['stored'], originRequests: 1 } },
      { expect: { hit: false, originRequests: 2 } },
    ],
  })),
  {
    name: 'RFC 9111 §5.2.2.7: private responses are never stored by a shared cache',
    script: () => [ok({ 'cache-control': 'private, max-age=600' })],
    steps: [
      { expect: { status: 200, body: 'v1', notCacheStatus: ['stored'], originRequests: 1 } },
      { expect: { status: 200, hit: false, originRequests: 2 } },
    ],
  },
  {
    name: 'RFC 9111 §5.2.2.5: no-store responses are never stored',
    script: () => [ok({ 'cache-control': 'no-store, max-age=600' })],
    steps: [
      { expect: { status: 200, body: 'v1', notCacheStatus: ['stored'], originRequests: 1 } },
      { expect: { status: 200, hit: false, originRequests: 2 } },
    ],
  },
  {
    name: 'RFC 9111 §5.4: Pragma in a response has no meaning; Cache-Control governs',
    script: () => [ok({ 'cache-control': 'max-age=600', pragma: 'no-cache' })],
    steps: [
      { expect: MISS_STORED },
      { advance: 10, expect: { hit: true, originRequests: 1 } },
    ],
  },
]

for (const c of cases) {
  t.test(c.name, async (t) => {
    const rig = await startRig(t, c.edge)
    rig.origin.script(PATH, ...c.script(rig.clock))
    await play(t, rig, PATH, c.steps)
  })
}

t.test('RFC 9111 §5.2.2.4: no-cache responses are stored but validated before every reuse', async (t) => {
  const rig = await startRig(t)
  rig.origin.script(PATH, conditionalOrigin(() => ({ body: 'v1', etag: '"v1"', headers: { 'cache-control': 'no-cache, max-age=600' } })))
  await play(t, rig, PATH, [
    { expect: { status: 200, body: 'v1', cacheStatus: { stored: true }, originRequests: 1 } },
    { advance: 1, expect: { status: 200, body: 'v1', hit: false, originRequests: 2 } },
    { advance: 1, expect: { status: 200, body: 'v1', hit: false, originRequests: 3 } },
  ])
  const [first, ...validations] = rig.origin.requestsTo(PATH)
  t.equal(first?.headers['if-none-match'], undefined, 'the fill is unconditional')
  for (const req of validations) t.equal(req.headers['if-none-match'], '"v1"', 'each reuse is validated with the stored ETag')
})

t.test('RFC 9111 §5.2.2.4: no-cache="field": the field is never reused without validation', async (t) => {
  const rig = await startRig(t)
  rig.origin.script(PATH, conditionalOrigin(() => ({
    body: 'v1',
    etag: '"v1"',
    headers: { 'cache-control': 'max-age=600, no-cache="x-secret"', 'x-secret': 'for-the-first-client' },
  })))
  const [first, second] = await play(t, rig, PATH, [
    { expect: { status: 200, body: 'v1', originRequests: 1 } },
    { advance: 1, expect: { status: 200, body: 'v1' } },
  ])
  t.equal(first?.headers['x-secret'], 'for-the-first-client', 'the origin\'s own answer carries the field')
  if (second !== undefined && rig.origin.count(PATH) === 1) {
    t.equal(second.headers['x-secret'], undefined, 'reused without validation: the field is left out')
  } else {
    t.equal(rig.origin.last(PATH)?.headers['if-none-match'], '"v1"', 'or the cache validated before sending it')
  }
})

t.test('RFC 9111 §5.2.2.7: private="field": the field is never served from storage', async (t) => {
  const rig = await startRig(t)
  rig.origin.script(PATH, ok({ 'cache-control': 'max-age=600, private="x-user"', 'x-user': 'alice' }))
  const [, second] = await play(t, rig, PATH, [
    { expect: { status: 200, body: 'v1', originRequests: 1 } },
    { advance: 1, expect: { status: 200, body: 'v1' } },
  ])
  if (second !== undefined && rig.origin.count(PATH) === 1) {
    t.equal(second.headers['x-user'], undefined, 'served from storage without the private field')
  } else {
    t.equal(rig.origin.count(PATH), 2, 'or not stored at all')
  }
})
