/**
 * Header handling through the edge: hop-by-hop and Connection-listed fields
 * (RFC 9110 §7.6.1, RFC 9111 §3.1), Set-Cookie (RFC 9111 §7.3; our policy is stricter:
 * never shared unless `allowSetCookie`, then stored without the cookie), Authorization
 * (RFC 9111 §3.5), and Date and Age on responses from storage (RFC 9111 §5.1).
 */
import t from 'tap'
import type { OriginRequest, ScriptedResponse } from '../../helpers/scripted-origin.ts'
import { cacheStatus, checkResponse, isHit, ok, play, startRig, text } from './harness.ts'

const PATH = '/hdr/object.txt'

t.test('RFC 9110 §7.6.1 / RFC 9111 §3.1: hop-by-hop and Connection-listed response fields are neither stored nor forwarded', async (t) => {
  const rig = await startRig(t)
  rig.origin.script(PATH, ok({
    'cache-control': 'max-age=60',
    connection: 'x-hop-a, X-Hop-B',
    'x-hop-a': 'one',
    'x-hop-b': 'two',
    'proxy-authenticate': 'Basic realm="origin"',
    'x-end-to-end': 'kept',
  }))
  const [miss, hit] = await play(t, rig, PATH, [
    { expect: { status: 200, body: 'v1', originRequests: 1 } },
    { advance: 1, expect: { status: 200, body: 'v1', hit: true, originRequests: 1 } },
  ])
  for (const [what, res] of [['miss', miss], ['hit', hit]] as const) {
    t.equal(res?.headers['x-hop-a'], undefined, `${what}: Connection-listed x-hop-a dropped`)
    t.equal(res?.headers['x-hop-b'], undefined, `${what}: Connection-listed X-Hop-B dropped (names are case-insensitive)`)
    t.equal(res?.headers['proxy-authenticate'], undefined, `${what}: proxy-authenticate dropped`)
    t.equal(res?.headers['x-end-to-end'], 'kept', `${what}: end-to-end fields kept`)
  }
})

t.test('RFC 9110 §7.6.1: hop-by-hop and Connection-listed request fields are not forwarded', async (t) => {
  const rig = await startRig(t)
  rig.origin.script(PATH, ok({ 'cache-control': 'max-age=60' }))
  const res = await rig.fetch(PATH, {
    headers: {
      connection: 'x-req-hop, close',
      'x-req-hop': 'secret',
      'proxy-authorization': 'Basic dXNlcjpwYXNz',
      'x-req-end': 'kept',
    },
  })
  t.equal(res.status, 200)
  const seen = rig.origin.last(PATH)?.headers ?? {}
  t.equal(seen['x-req-hop'], undefined, 'Connection-listed request field dropped')
  t.equal(seen['proxy-authorization'], undefined, 'proxy-authorization dropped')
  t.equal(seen['x-req-end'], 'kept', 'end-to-end request fields kept')
})

/** A cacheable answer that sets a different cookie on every origin request. */
function cookieJar (delayMs = 0): (req: OriginRequest) => ScriptedResponse {
  return (req) => ({ ...ok({ 'cache-control': 'max-age=60', 'set-cookie': `session=s${req.index}; Path=/` }, 'shared body'), delayMs })
}

t.test('RFC 9111 §7.3 (policy): a response with Set-Cookie is not stored by default', async (t) => {
  const rig = await startRig(t)
  rig.origin.script(PATH, cookieJar())
  const [first, second] = await play(t, rig, PATH, [
    { expect: { status: 200, body: 'shared body', notCacheStatus: ['stored'], originRequests: 1 } },
    { advance: 1, expect: { status: 200, body: 'shared body', hit: false, originRequests: 2 } },
  ])
  t.same(first?.headers['set-cookie'], ['session=s0; Path=/'])
  t.same(second?.headers['set-cookie'], ['session=s1; Path=/'], 'each client gets its own cookie from the origin')
})

t.test('RFC 9111 §7.3 (policy): allowSetCookie stores the response without the cookie; only the filling client gets it', async (t) => {
  const rig = await startRig(t, { allowSetCookie: true })
  rig.origin.script(PATH, cookieJar())
  const [first, second] = await play(t, rig, PATH, [
    { expect: { status: 200, body: 'shared body', cacheStatus: { stored: true }, originRequests: 1 } },
    { advance: 1, expect: { status: 200, body: 'shared body', hit: true, headers: { 'set-cookie': null }, originRequests: 1 } },
  ])
  t.same(first?.headers['set-cookie'], ['session=s0; Path=/'], 'the client that triggered the fill gets its cookie')
  t.ok(second !== undefined)
})

t.test('RFC 9111 §7.3 (policy): allowSetCookie: the filling client gets its cookie on an answer that waited for the whole body (several ranges)', async (t) => {
  const rig = await startRig(t, { allowSetCookie: true })
  rig.origin.script(PATH, cookieJar())
  const first = await rig.fetch(PATH, { headers: { range: 'bytes=0-1,7-10' } })
  // answered once the body is whole (a comma: several ranges; these two are close enough to be sent as one)
  t.equal(first.status, 206)
  t.same(first.headers['set-cookie'], ['session=s0; Path=/'], 'the client that triggered the fill gets its cookie')
  const second = await rig.fetch(PATH, { headers: { range: 'bytes=0-1,7-10' } })
  t.equal(second.status, 206)
  t.equal(second.headers['set-cookie'], undefined, 'a hit gets none')
  t.equal(rig.origin.count(PATH), 1)
})

for (const allowSetCookie of [false, true]) {
  t.test(`RFC 9111 §7.3 (policy): a Set-Cookie is never handed to collapsed requests (allowSetCookie ${String(allowSetCookie)})`, async (t) => {
    const rig = await startRig(t, { allowSetCookie })
    rig.origin.script(PATH, cookieJar(100))
    const results = await Promise.all(Array.from({ length: 6 }, () => rig.fetch(PATH)))
    const cookies = results.flatMap((r) => r.headers['set-cookie'] ?? [])
    for (const r of results) t.equal(text(r), 'shared body')
    t.equal(new Set(cookies).size, cookies.length, `no cookie went to two clients (${cookies.join(' | ')})`)
    t.equal(cookies.length, rig.origin.count(PATH), 'one cookie per origin answer, each to one client')
  })
}

/** Echoes whether the request was authorized, so a leak shows up in the body. */
function authEcho (cacheControl: string): (req: OriginRequest) => ScriptedResponse {
  return (req) => ok({ 'cache-control': cacheControl }, req.headers.authorization === undefined ? 'public body' : `private body for ${req.headers.authorization}`)
}

t.test('RFC 9111 §3.5: a response to a request with Authorization is not reused for any request', async (t) => {
  const rig = await startRig(t)
  rig.origin.script(PATH, authEcho('max-age=60'))
  const alice = { authorization: 'Bearer alice' }
  await play(t, rig, PATH, [
    { headers: alice, expect: { status: 200, body: 'private body for Bearer alice', notCacheStatus: ['stored'], originRequests: 1 } },
    { headers: alice, expect: { status: 200, body: 'private body for Bearer alice', hit: false, originRequests: 2 } },
    { expect: { status: 200, body: 'public body', hit: false, originRequests: 3 } },
    { expect: { status: 200, body: 'public body', hit: true, originRequests: 3 } },
  ])
})

t.test('RFC 9111 §3.5 (policy): a request with Authorization is not answered from a response stored without public, s-maxage or must-revalidate', async (t) => {
  const rig = await startRig(t)
  rig.origin.script(PATH, authEcho('max-age=60'))
  await rig.fetch(PATH)
  const bob = await rig.fetch(PATH, { headers: { authorization: 'Bearer bob' } })
  checkResponse(t, bob, { status: 200, body: 'private body for Bearer bob', hit: false, cacheStatus: { fwd: /^(bypass|uri-miss)$/, detail: /./ } }, 'authorized request')
  t.equal(rig.origin.count(PATH), 2)
  const anon = await rig.fetch(PATH)
  checkResponse(t, anon, { status: 200, body: 'public body', hit: true }, 'the anonymous response is still the stored one')
})

for (const cc of ['public, max-age=60', 's-maxage=60', 'max-age=60, must-revalidate']) {
  t.test(`RFC 9111 §3.5: "${cc}" allows a shared cache to store and reuse a response to an authorized request`, async (t) => {
    const rig = await startRig(t)
    rig.origin.script(PATH, authEcho(cc))
    const alice = { authorization: 'Bearer alice' }
    await play(t, rig, PATH, [
      { headers: alice, expect: { status: 200, body: 'private body for Bearer alice', cacheStatus: { stored: true }, originRequests: 1 } },
      { advance: 1, headers: alice, expect: { status: 200, body: 'private body for Bearer alice', hit: true, originRequests: 1 } },
    ])
  })
}

t.test('RFC 9111 §4 / §5.1: responses from storage keep the origin\'s Date and carry Age', async (t) => {
  const rig = await startRig(t)
  const date = rig.clock.date(-5)
  rig.origin.script(PATH, ok({ 'cache-control': 'max-age=60', date, etag: '"v1"' }))
  await rig.fetch(PATH)
  rig.clock.advance(10)
  const hit = await rig.fetch(PATH)
  checkResponse(t, hit, { status: 200, hit: true, headers: { date, age: '15' } }, 'hit')
  const notModified = await rig.fetch(PATH, { headers: { 'if-none-match': '"v1"' } })
  checkResponse(t, notModified, { status: 304, hit: true, headers: { date, age: '15' } }, '304 from storage')
  rig.clock.advance(100)
  const stale = await rig.fetch(PATH, { headers: { 'cache-control': 'max-stale' } })
  checkResponse(t, stale, { status: 200, hit: true, headers: { date, age: '115' } }, 'stale hit (max-stale)')
  t.ok(isHit(stale) && cacheStatus(stale)?.ttl === '-55', 'ttl is negative once stale')
})
