/**
 * Client preconditions answered from the cache (edge/proxy/deliver.ts) over real sockets:
 * If-Match (RFC 9110 §13.1.1, strong comparison) and If-Unmodified-Since (§13.1.4) fail
 * with 412, evaluated in the §13.2.2 order before If-None-Match / If-Modified-Since (304)
 * and Range; only a 2xx is subject to them (§13.2.1); on hits, HEAD, and requests that
 * join a fill in flight. The edge runs with its fast path on, so a request the fast path
 * wrongly admitted would be answered 200 there and fail these tests.
 */
import t, { type Test } from 'tap'
import { fetchRaw, type Fetched, type FetchOptions } from '../../helpers/http-client.ts'
import { edgeFor, sendPart, startRawOrigin } from '../../helpers/raw-origin.ts'
import { startHlsNode } from '../../helpers/hls.ts'
import { httpDate, startScriptedOrigin } from '../../helpers/scripted-origin.ts'
import { cacheStatus, Clock, gate, ok, startRig, text, until, type Rig } from '../rfc9111/harness.ts'

const BODY = 'the stored body\n'

interface Stored {
  readonly rig: Rig
  readonly path: string
  /** The stored response's Last-Modified. */
  readonly lastModified: string
  /** Sends a request for the stored path. */
  get (headers?: Record<string, string>, method?: string): Promise<Fetched>
}

/** A rig whose edge holds `path` (fresh for 600 s) with these headers; the fill is done. */
async function stored (t: Test, headers: Record<string, string | null>, path = '/p/object.txt', status = 200): Promise<Stored> {
  const rig = await startRig(t)
  const lastModified = rig.clock.date(-3600)
  rig.origin.script(path, ok({ 'cache-control': 'max-age=600', 'last-modified': lastModified, ...headers }, status === 204 ? '' : BODY, status))
  const fill = await rig.fetch(path)
  t.equal(fill.status, status, 'the fill')
  rig.clock.advance(2)
  const get = (h: Record<string, string> = {}, method = 'GET'): Promise<Fetched> => {
    const options: FetchOptions = { headers: h, method }
    return rig.fetch(path, options)
  }
  return { rig, path, lastModified, get }
}

/** What a 412 from storage must be: no content, Date, the hit's Cache-Status, no range or representation fields. */
function is412 (t: Test, res: Fetched, label: string): void {
  t.equal(res.status, 412, `${label}: 412`)
  t.equal(res.error, undefined, `${label}: a complete response`)
  t.equal(res.body.length, 0, `${label}: no content`)
  t.equal(res.headers['content-length'], '0', `${label}: Content-Length 0`)
  t.equal(res.headers['content-range'], undefined, `${label}: no Content-Range`)
  t.equal(res.headers['accept-ranges'], undefined, `${label}: no Accept-Ranges`)
  t.equal(res.headers['content-type'], undefined, `${label}: no Content-Type of the stored body`)
  t.ok(res.headers.date !== undefined, `${label}: Date`)
}

t.test('RFC 9110 §13.1.1 If-Match on a hit: a strong match or * proceeds; no match or a weak tag is 412', async (t) => {
  const s = await stored(t, { etag: '"v1"' })
  const hit = await s.get()
  t.equal(hit.status, 200)
  for (const im of ['"v1"', '"v0", "v1"', '"v0","v1"', '*', ' * ']) {
    const res = await s.get({ 'if-match': im })
    t.equal(res.status, 200, `If-Match: ${im} proceeds`)
    t.equal(text(res), BODY, `If-Match: ${im}: the body`)
    t.same(cacheStatus(res), cacheStatus(hit), `If-Match: ${im}: the hit's Cache-Status`)
  }
  for (const im of ['"v2"', '"v0", "v2"', 'W/"v1"', 'v1', '"v1', '"V1"']) {
    const res = await s.get({ 'if-match': im })
    is412(t, res, `If-Match: ${im}`)
    t.same(cacheStatus(res), cacheStatus(hit), `If-Match: ${im}: the Cache-Status the 200 would have`)
    t.equal(res.headers.etag, undefined, `If-Match: ${im}: no representation fields`)
  }
  t.equal(s.rig.origin.count(s.path), 1, 'all answered from storage, nothing forwarded')
})

t.test('RFC 9110 §8.8.3.2: a weak stored ETag never matches strongly; * still matches a stored representation', async (t) => {
  const s = await stored(t, { etag: 'W/"w1"' })
  is412(t, await s.get({ 'if-match': 'W/"w1"' }), 'If-Match: W/"w1" against W/"w1"')
  is412(t, await s.get({ 'if-match': '"w1"' }), 'If-Match: "w1" against W/"w1"')
  t.equal((await s.get({ 'if-match': '*' })).status, 200, 'If-Match: * against a weak tag')
  t.equal(s.rig.origin.count(s.path), 1)
})

t.test('RFC 9110 §13.1.1: without a stored ETag only * matches', async (t) => {
  const s = await stored(t, {})
  is412(t, await s.get({ 'if-match': '"v1"' }), 'If-Match: "v1" without an ETag')
  t.equal((await s.get({ 'if-match': '*' })).status, 200, 'If-Match: *')
})

t.test('RFC 9110 §13.1.4 If-Unmodified-Since: a date before Last-Modified is 412; equal or later proceeds; an invalid date is ignored', async (t) => {
  const s = await stored(t, { etag: '"v1"' })
  const lm = Date.parse(s.lastModified)
  is412(t, await s.get({ 'if-unmodified-since': httpDate(lm - 1000) }), 'one second before Last-Modified')
  is412(t, await s.get({ 'if-unmodified-since': httpDate(lm - 86_400_000) }), 'a day before')
  for (const [label, ius] of [
    ['equal to Last-Modified', s.lastModified],
    ['later than Last-Modified', httpDate(lm + 1000)],
    ['not a date', 'yesterday'],
    ['a list of dates (§13.1.4: not a valid HTTP-date)', `${httpDate(lm - 1000)}, ${httpDate(lm - 2000)}`],
  ] as const) {
    const res = await s.get({ 'if-unmodified-since': ius })
    t.equal(res.status, 200, `${label}: proceeds`)
    t.equal(text(res), BODY)
  }
  t.equal(s.rig.origin.count(s.path), 1)
})

t.test('RFC 9110 §13.1.4: If-Unmodified-Since is ignored when the stored response has no valid Last-Modified', async (t) => {
  const missing = await stored(t, { 'last-modified': null }, '/p/no-lm.txt')
  t.equal((await missing.get({ 'if-unmodified-since': httpDate(0) })).status, 200, 'no Last-Modified')
  const invalid = await stored(t, { 'last-modified': 'last tuesday' }, '/p/bad-lm.txt')
  t.equal((await invalid.get({ 'if-unmodified-since': httpDate(0) })).status, 200, 'an invalid Last-Modified')
})

t.test('RFC 9110 §13.1.4: with If-Match present, If-Unmodified-Since is ignored', async (t) => {
  const s = await stored(t, { etag: '"v1"' })
  const before = httpDate(Date.parse(s.lastModified) - 60_000)
  const after = httpDate(Date.parse(s.lastModified) + 60_000)
  const passes = await s.get({ 'if-match': '"v1"', 'if-unmodified-since': before })
  t.equal(passes.status, 200, 'a matching If-Match decides, the failing date is not looked at')
  t.equal(text(passes), BODY)
  is412(t, await s.get({ 'if-match': '"v2"', 'if-unmodified-since': after }), 'a failing If-Match decides, the passing date is not looked at')
})

t.test('RFC 9110 §13.2.2: If-Match and If-Unmodified-Since are evaluated before If-None-Match and If-Modified-Since (412 over 304)', async (t) => {
  const s = await stored(t, { etag: '"v1"' })
  const lm = Date.parse(s.lastModified)
  is412(t, await s.get({ 'if-match': '"v2"', 'if-none-match': '"v1"' }), 'If-Match fails, If-None-Match would give 304')
  is412(t, await s.get({ 'if-unmodified-since': httpDate(lm - 1000), 'if-none-match': '"v1"' }), 'If-Unmodified-Since fails, If-None-Match would give 304')
  is412(t, await s.get({ 'if-unmodified-since': httpDate(lm - 1000), 'if-modified-since': httpDate(lm + 1000) }), 'If-Unmodified-Since fails, If-Modified-Since would give 304')
  for (const h of [
    { 'if-match': '"v1"', 'if-none-match': '"v1"' },
    { 'if-match': '*', 'if-none-match': '*' },
    { 'if-unmodified-since': httpDate(lm + 1000), 'if-modified-since': httpDate(lm + 1000) },
    { 'if-match': '"v1"', 'if-unmodified-since': httpDate(lm - 1000), 'if-none-match': 'W/"v1"' },
  ]) {
    const res = await s.get(h)
    t.equal(res.status, 304, `${JSON.stringify(h)}: the preconditions hold, then 304`)
    t.equal(res.headers.etag, '"v1"', '304 still carries its fields')
  }
  const changed = await s.get({ 'if-match': '"v1"', 'if-none-match': '"v0"' })
  t.equal(changed.status, 200, 'If-Match holds, If-None-Match does not match: the body')
  t.equal(text(changed), BODY)
})

t.test('RFC 9110 §13.2.2 step 5: preconditions before Range; a 412 has no Content-Range', async (t) => {
  const s = await stored(t, { etag: '"v1"' })
  is412(t, await s.get({ range: 'bytes=0-3', 'if-match': '"v2"' }), 'a range with a failing If-Match')
  is412(t, await s.get({ range: 'bytes=0-1,4-5', 'if-match': '"v2"' }), 'several ranges with a failing If-Match')
  is412(t, await s.get({ range: 'bytes=999-', 'if-match': '"v2"' }), 'an unsatisfiable range with a failing If-Match: 412, not 416')
  const part = await s.get({ range: 'bytes=0-3', 'if-match': '"v1"' })
  t.equal(part.status, 206, 'a range with a matching If-Match')
  t.equal(text(part), BODY.slice(0, 4))
  t.equal(part.headers['content-range'], `bytes 0-3/${BODY.length}`)
})

t.test('HEAD: the same 412 without content; a passing precondition gets the 200 head', async (t) => {
  const s = await stored(t, { etag: '"v1"' })
  const lm = Date.parse(s.lastModified)
  is412(t, await s.get({ 'if-match': '"v2"' }, 'HEAD'), 'HEAD with a failing If-Match')
  is412(t, await s.get({ 'if-unmodified-since': httpDate(lm - 1000) }, 'HEAD'), 'HEAD with a failing If-Unmodified-Since')
  const head = await s.get({ 'if-match': '"v1"' }, 'HEAD')
  t.equal(head.status, 200)
  t.equal(head.body.length, 0)
  t.equal(head.headers['content-length'], String(BODY.length), 'the length of the body a GET would get')
  t.equal(head.headers.etag, '"v1"')
  t.equal(s.rig.origin.count(s.path), 1)
})

t.test('RFC 9110 §13.2.1: a stored 404 ignores the preconditions; a stored 204 (2xx) does not', async (t) => {
  const missing = await stored(t, { etag: '"n1"', 'cache-control': 'max-age=60' }, '/p/missing.txt', 404)
  for (const h of [{ 'if-match': '"other"' }, { 'if-unmodified-since': httpDate(0) }, { 'if-none-match': '"n1"' }, { 'if-match': '"other"', 'if-none-match': '*' }]) {
    const res = await missing.get(h)
    t.equal(res.status, 404, `${JSON.stringify(h)}: the stored 404`)
    t.equal(text(res), BODY)
    t.equal(cacheStatus(res)?.hit, true, 'from storage')
  }
  t.equal(missing.rig.origin.count(missing.path), 1)
  const empty = await stored(t, { etag: '"e1"' }, '/p/empty.txt', 204)
  is412(t, await empty.get({ 'if-match': '"other"' }), 'a stored 204 with a failing If-Match')
  // RFC 9110 §15.4.5: a 304 stands for a 200 only
  t.equal((await empty.get({ 'if-none-match': '"e1"' })).status, 204, 'a stored 204 with a matching If-None-Match')
})

t.test('a 412 is logged and counted like any hit', async (t) => {
  const s = await stored(t, { etag: '"v1"' })
  const before = await s.rig.edge.metrics.requests.value({ phase: 'hit', status: 412 })
  is412(t, await s.get({ 'if-match': '"v2"' }), 'If-Match: "v2"')
  await until(async () => await s.rig.edge.metrics.requests.value({ phase: 'hit', status: 412 }) === before + 1, 'the request counted as a 412 hit')
  await until(() => s.rig.edge.logs.some((l) => l.status === 412 && l.path === s.path), 'the access-log line')
  const line = s.rig.edge.logs.find((l) => l.status === 412 && l.path === s.path)!
  t.match(line, { cachePhase: 'hit', source: 'memory', bytes: 0, completed: true })
})

t.test('a request joining a fill in flight (a slow origin body) has its preconditions evaluated; the fill goes on', async (t) => {
  const body = Buffer.alloc(64 * 1024, 'x')
  const lastModified = httpDate(Date.UTC(2025, 0, 1))
  const rest = gate()
  const origin = await startRawOrigin(t, {
    '/slow.bin': (req, socket) => sendPart(
      ['content-type: application/octet-stream', 'cache-control: max-age=600', 'etag: "s1"', `last-modified: ${lastModified}`, `date: ${httpDate(Date.now())}`, `content-length: ${body.length}`],
      body, 1024, () => rest.promise, (s) => { s.write(body.subarray(1024)) })(req, socket),
  })
  const edge = await edgeFor(t, origin)
  const url = edge.url + '/slow.bin'
  // the initiator's own precondition fails: it gets its 412, the fill it started goes on
  const initiator = await fetchRaw(url, { headers: { 'if-match': '"other"' } })
  is412(t, initiator, 'the initiator with a failing If-Match')
  t.match(cacheStatus(initiator), { fwd: 'uri-miss', 'fwd-status': '200', stored: true })
  await until(() => edge.proxy.fillReaders('/slow.bin') === 1, 'the fill to stream')
  const cases: Array<[Record<string, string>, string, number]> = [
    [{ 'if-match': '"s2"' }, 'GET', 412],
    [{ 'if-match': 'W/"s1"' }, 'GET', 412],
    [{ 'if-unmodified-since': httpDate(Date.UTC(2024, 0, 1)) }, 'GET', 412],
    [{ 'if-match': '"s2"' }, 'HEAD', 412],
    [{ 'if-match': '"s2"', 'if-none-match': '"s1"' }, 'GET', 412],
    [{ 'if-match': '"s1"', 'if-none-match': '"s1"' }, 'GET', 304],
    [{ 'if-match': '"s1"' }, 'GET', 200],
    [{ 'if-unmodified-since': lastModified }, 'GET', 200],
  ]
  const joins = cases.map(([headers, method]) => fetchRaw(url, { headers, method }))
  await until(() => edge.proxy.fillReaders('/slow.bin') === 1 + cases.length, 'every request to join the fill')
  // the failed and not-modified ones are answered before the body is complete
  const early = await Promise.all(joins.filter((_, i) => cases[i]![2] !== 200))
  t.equal(early.length, 6)
  rest.open()
  const answers = await Promise.all(joins)
  for (const [i, [headers, method, status]] of cases.entries()) {
    const res = answers[i]!
    const label = `${method} joining with ${JSON.stringify(headers)}`
    if (status === 412) is412(t, res, label)
    t.equal(res.status, status, label)
    t.match(cacheStatus(res), { fwd: 'uri-miss', 'fwd-status': '200', collapsed: true }, `${label}: a collapsed request's Cache-Status`)
    if (status === 200) t.ok(res.body.equals(body), `${label}: the whole body`)
  }
  t.equal(origin.count('/slow.bin'), 1, 'one origin request for all of them')
  const hit = await fetchRaw(url)
  t.equal(hit.status, 200)
  t.ok(hit.body.equals(body), 'the fill was stored whole')
  t.equal(cacheStatus(hit)?.hit, true)
  t.equal(origin.count('/slow.bin'), 1)
})

t.test('pass-through: requests the edge forwards carry If-Match and If-Unmodified-Since upstream untouched', async (t) => {
  const rig = await startRig(t)
  const path = '/p/resource.txt'
  // an origin that evaluates If-Match itself
  rig.origin.script(path, (req) => {
    const im = req.headers['if-match']
    return im === undefined || im === '"v1"' ? ok({ 'cache-control': 'max-age=600', etag: '"v1"' }, BODY) : { status: 412, headers: { 'x-from': 'origin' } }
  })
  t.equal((await rig.fetch(path)).status, 200, 'stored')
  const ius = rig.clock.date(-10)
  // RFC 9110 §13.1.1: the state-changing use; never answered from storage
  const put = await rig.fetch(path, { method: 'PUT', headers: { 'if-match': '"v2"', 'if-unmodified-since': ius }, body: 'new' })
  t.equal(put.status, 412, "the origin's 412 relayed")
  t.equal(put.headers['x-from'], 'origin')
  const sent = rig.origin.last(path)!
  t.equal(sent.method, 'PUT')
  t.equal(sent.headers['if-match'], '"v2"')
  t.equal(sent.headers['if-unmodified-since'], ius)
  // RFC 9111 §3.5: a stored response not shared with Authorization: the GET goes upstream as it came
  t.equal((await rig.fetch(path)).status, 200, 'a 412 to the PUT invalidated nothing')
  const auth = await rig.fetch(path, { headers: { authorization: 'Bearer x', 'if-match': '"v2"', 'if-unmodified-since': ius } })
  t.equal(auth.status, 412)
  t.equal(auth.headers['x-from'], 'origin', 'the origin decided, not the edge')
  t.match(cacheStatus(auth), { fwd: 'bypass' })
  const bypassed = rig.origin.last(path)!
  t.equal(bypassed.headers['if-match'], '"v2"')
  t.equal(bypassed.headers['if-unmodified-since'], ius)
})

t.test('a playlist rewritten for its client (content steering): its ETag is weak, so only If-Match: * holds', async (t) => {
  const clock = new Clock()
  const origin = await startScriptedOrigin(t, { now: clock.now })
  const master = ['#EXTM3U', '#EXT-X-STREAM-INF:BANDWIDTH=800000,RESOLUTION=640x360', 'v/index.m3u8', ''].join('\n')
  const lastModified = clock.date(-3600)
  origin.script('/vod/t/master.m3u8', { headers: { 'content-type': 'application/vnd.apple.mpegurl', 'cache-control': 'max-age=60', etag: '"m1"', 'last-modified': lastModified }, body: master })
  const { node } = await startHlsNode(t, { origin: origin.url, now: clock.now, controlPlane: { url: 'http://127.0.0.1:9', heartbeatIntervalMs: 60_000 } })
  const url = node.url + '/vod/t/master.m3u8'
  const fill = await fetchRaw(url, { headers: { 'if-match': '"m1"' } })
  is412(t, fill, 'the fill, If-Match: "m1" against the rewrite\'s W/"m1"')
  const any = await fetchRaw(url, { headers: { 'if-match': '*' } })
  t.equal(any.status, 200, 'If-Match: *')
  t.match(text(any), /#EXT-X-CONTENT-STEERING/, 'the rewritten body')
  t.equal(any.headers.etag, 'W/"m1"')
  is412(t, await fetchRaw(url, { headers: { 'if-match': '"m1"' } }), 'a hit, If-Match: "m1"')
  is412(t, await fetchRaw(url, { headers: { 'if-match': 'W/"m1"' } }), 'a hit, If-Match: W/"m1"')
  is412(t, await fetchRaw(url, { headers: { 'if-unmodified-since': httpDate(Date.parse(lastModified) - 1000) } }), 'a hit, If-Unmodified-Since before Last-Modified')
  t.equal((await fetchRaw(url, { headers: { 'if-unmodified-since': lastModified } })).status, 200, 'a hit, If-Unmodified-Since at Last-Modified')
  t.equal(origin.count('/vod/t/master.m3u8'), 1)
})
