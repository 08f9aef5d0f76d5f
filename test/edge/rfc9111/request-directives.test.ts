/**
 * RFC 9111 §5.2.1 request directives (max-age, max-stale, min-fresh, no-cache,
 * no-store, only-if-cached) and §5.4 Pragma, through the edge. The stored object is
 * `max-age=100` with ETag "v1" from an origin that answers 304 to a matching
 * If-None-Match, so a forced validation costs one conditional request.
 */
import t from 'tap'
import type { ScriptStep } from '../../helpers/scripted-origin.ts'
import { cacheStatusText, conditionalOrigin, play, startRig, type Step } from './harness.ts'

const PATH = '/req/object.txt'

interface Case {
  readonly name: string
  /** Response Cache-Control of the stored object (default max-age=100). */
  readonly cacheControl?: string
  readonly steps: readonly Step[]
  /** ETag the origin's validation requests must carry, checked on every request after the first. */
  readonly validatedWith?: string
}

const FILL: Step = { expect: { status: 200, body: 'v1', hit: false, cacheStatus: { stored: true }, originRequests: 1 } }
const FORCED_VALIDATION = { status: 200, body: 'v1', hit: false, cacheStatus: { fwd: 'request', 'fwd-status': '304' }, originRequests: 2 }

const cases: Case[] = [
  {
    name: 'RFC 9111 §5.2.1.1: request max-age younger than the stored response\'s age forces validation',
    steps: [
      FILL,
      { advance: 30, headers: { 'cache-control': 'max-age=10' }, expect: FORCED_VALIDATION },
      { advance: 1, expect: { status: 200, body: 'v1', hit: true, headers: { age: '1' }, originRequests: 2 } },
    ],
    validatedWith: '"v1"',
  },
  {
    name: 'RFC 9111 §5.2.1.1: request max-age at least the stored response\'s age allows reuse',
    steps: [
      FILL,
      { advance: 30, headers: { 'cache-control': 'max-age=60' }, expect: { status: 200, body: 'v1', hit: true, originRequests: 1 } },
    ],
  },
  {
    // Age 0 is "less than or equal to" 0, so a response received this very second may be reused.
    name: 'RFC 9111 §5.2.1.1: request max-age=0 validates any response older than zero seconds',
    steps: [
      FILL,
      { advance: 1, headers: { 'cache-control': 'max-age=0' }, expect: FORCED_VALIDATION },
    ],
    validatedWith: '"v1"',
  },
  {
    name: 'RFC 9111 §5.2.1.2: max-stale accepts a response stale by less than its value',
    steps: [
      FILL,
      { advance: 120, headers: { 'cache-control': 'max-stale=30' }, expect: { status: 200, body: 'v1', hit: true, headers: { age: '120' }, cacheStatus: { ttl: '-20' }, originRequests: 1 } },
    ],
  },
  {
    name: 'RFC 9111 §5.2.1.2: max-stale without a value accepts any staleness',
    steps: [
      FILL,
      { advance: 5000, headers: { 'cache-control': 'max-stale' }, expect: { status: 200, body: 'v1', hit: true, originRequests: 1 } },
    ],
  },
  {
    name: 'RFC 9111 §5.2.1.2: a response staler than max-stale is validated',
    steps: [
      FILL,
      { advance: 150, headers: { 'cache-control': 'max-stale=30' }, expect: { status: 200, body: 'v1', hit: false, cacheStatus: { fwd: 'stale', 'fwd-status': '304' }, originRequests: 2 } },
    ],
    validatedWith: '"v1"',
  },
  ...[
    ['RFC 9111 §5.2.2.2: must-revalidate overrides max-stale', 'max-age=100, must-revalidate'],
    ['RFC 9111 §5.2.2.8: proxy-revalidate overrides max-stale in a shared cache', 'max-age=100, proxy-revalidate'],
    ['RFC 9111 §5.2.2.10: s-maxage (implied proxy-revalidate) overrides max-stale in a shared cache', 's-maxage=100'],
    ['RFC 9111 §5.2.2.4: a no-cache response is never reused stale on max-stale', 'max-age=100, no-cache'],
  ].map(([name, cacheControl]): Case => ({
    name: name!,
    cacheControl: cacheControl!,
    steps: [
      FILL,
      { advance: 120, headers: { 'cache-control': 'max-stale=600' }, expect: { status: 200, body: 'v1', hit: false, originRequests: 2 } },
    ],
    validatedWith: '"v1"',
  })),
  {
    name: 'RFC 9111 §5.2.1.3: min-fresh within the remaining lifetime is a hit',
    steps: [
      FILL,
      { advance: 30, headers: { 'cache-control': 'min-fresh=60' }, expect: { status: 200, body: 'v1', hit: true, cacheStatus: { ttl: '70' }, originRequests: 1 } },
    ],
  },
  {
    name: 'RFC 9111 §5.2.1.3: min-fresh beyond the remaining lifetime forces validation',
    steps: [
      FILL,
      { advance: 30, headers: { 'cache-control': 'min-fresh=80' }, expect: FORCED_VALIDATION },
    ],
    validatedWith: '"v1"',
  },
  {
    name: 'RFC 9111 §5.2.1.4: request no-cache validates a fresh stored response',
    steps: [
      FILL,
      { advance: 10, headers: { 'cache-control': 'no-cache' }, expect: FORCED_VALIDATION },
      { advance: 1, expect: { status: 200, body: 'v1', hit: true, originRequests: 2 } },
    ],
    validatedWith: '"v1"',
  },
  {
    name: 'RFC 9111 §5.2: request directive names are case-insensitive (NO-CACHE)',
    steps: [
      FILL,
      { headers: { 'cache-control': 'NO-CACHE' }, expect: FORCED_VALIDATION },
    ],
  },
  {
    name: 'RFC 9111 §5.4: Pragma: no-cache acts as Cache-Control: no-cache when the request has no Cache-Control',
    steps: [
      FILL,
      { advance: 10, headers: { pragma: 'no-cache' }, expect: FORCED_VALIDATION },
    ],
    validatedWith: '"v1"',
  },
  {
    name: 'RFC 9111 §5.4: Pragma is ignored when the request has Cache-Control',
    steps: [
      FILL,
      { advance: 10, headers: { pragma: 'no-cache', 'cache-control': 'max-stale=5' }, expect: { status: 200, body: 'v1', hit: true, originRequests: 1 } },
    ],
  },
  {
    name: 'RFC 9111 §5.2.3: unknown request directives are ignored',
    steps: [
      FILL,
      { advance: 10, headers: { 'cache-control': 'x-foo, x-bar="a, b"' }, expect: { status: 200, body: 'v1', hit: true, originRequests: 1 } },
    ],
  },
  {
    name: 'RFC 9111 §5.2.1.5: the response to a no-store request is not stored',
    steps: [
      { headers: { 'cache-control': 'no-store' }, expect: { status: 200, body: 'v1', notCacheStatus: ['stored'], originRequests: 1 } },
      { expect: { status: 200, body: 'v1', hit: false, originRequests: 2 } },
      { expect: { status: 200, body: 'v1', hit: true, originRequests: 2 } },
    ],
  },
  {
    name: 'RFC 9111 §5.2.1.5: no-store on a request does not touch the response already stored',
    steps: [
      FILL,
      { advance: 10, headers: { 'cache-control': 'no-store' }, expect: { status: 200, body: 'v1' } },
      { advance: 1, expect: { status: 200, body: 'v1', hit: true } },
    ],
  },
  {
    name: 'RFC 9111 §5.2.1.7: only-if-cached with nothing stored answers 504 without contacting the origin',
    steps: [
      { headers: { 'cache-control': 'only-if-cached' }, expect: { status: 504, cacheStatus: { detail: 'only-if-cached' }, notCacheStatus: ['hit', 'fwd', 'stored'], originRequests: 0 } },
    ],
  },
  {
    name: 'RFC 9111 §5.2.1.7: only-if-cached with a fresh stored response is a hit',
    steps: [
      FILL,
      { advance: 10, headers: { 'cache-control': 'only-if-cached' }, expect: { status: 200, body: 'v1', hit: true, originRequests: 1 } },
    ],
  },
  {
    name: 'RFC 9111 §5.2.1.7: only-if-cached with only a stale stored response answers 504',
    steps: [
      FILL,
      { advance: 150, headers: { 'cache-control': 'only-if-cached' }, expect: { status: 504, cacheStatus: { detail: 'only-if-cached' }, notCacheStatus: ['hit', 'fwd'], originRequests: 1 } },
    ],
  },
  {
    name: 'RFC 9111 §5.2.1.7 with §5.2.1.2: only-if-cached, max-stale serves the stale response',
    steps: [
      FILL,
      { advance: 150, headers: { 'cache-control': 'only-if-cached, max-stale' }, expect: { status: 200, body: 'v1', hit: true, cacheStatus: { ttl: '-50' }, originRequests: 1 } },
    ],
  },
]

for (const c of cases) {
  t.test(c.name, async (t) => {
    const rig = await startRig(t)
    const step: ScriptStep = conditionalOrigin(() => ({ body: 'v1', etag: '"v1"', headers: { 'cache-control': c.cacheControl ?? 'max-age=100' } }))
    rig.origin.script(PATH, step)
    await play(t, rig, PATH, c.steps)
    if (c.validatedWith !== undefined) {
      for (const req of rig.origin.requestsTo(PATH).slice(1)) {
        t.equal(req.headers['if-none-match'], c.validatedWith, 'RFC 9111 §4.3.1: the validation request carries the stored ETag')
      }
    }
  })
}

t.test('RFC 9111 §5.2.1.4 / §4.3.3: a changed response to a no-cache request replaces the stored one', async (t) => {
  const rig = await startRig(t)
  let version = 1
  rig.origin.script(PATH, conditionalOrigin(() => ({ body: `v${version}`, etag: `"v${version}"`, headers: { 'cache-control': 'max-age=100' } })))
  await play(t, rig, PATH, [FILL])
  version = 2
  const [forced, after] = await play(t, rig, PATH, [
    { advance: 10, headers: { 'cache-control': 'no-cache' }, expect: { status: 200, body: 'v2', hit: false, cacheStatus: { fwd: 'request', 'fwd-status': '200', stored: true }, originRequests: 2 } },
    { advance: 1, expect: { status: 200, body: 'v2', hit: true, headers: { etag: '"v2"' }, originRequests: 2 } },
  ])
  t.ok(forced !== undefined && after !== undefined)
  t.equal(rig.origin.last(PATH)?.headers['if-none-match'], '"v1"', 'validated with the old ETag')
})

t.test('RFC 9211 §2.2: only-if-cached 504 names no forward and no hit', async (t) => {
  const rig = await startRig(t)
  rig.origin.script(PATH, conditionalOrigin(() => ({ body: 'v1', etag: '"v1"', headers: { 'cache-control': 'max-age=100' } })))
  const res = await rig.fetch(PATH, { headers: { 'cache-control': 'only-if-cached' } })
  t.equal(res.status, 504)
  t.equal(cacheStatusText(res), 'streamedge-test-edge; detail=only-if-cached')
})
