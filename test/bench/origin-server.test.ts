import t from 'tap'
import { readFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { startOrigin } from '../../bench/origin/origin-server.ts'
import { syntheticBody } from '../../bench/origin/synthetic-body.ts'
import { originRequest, startTestOrigin } from '../helpers/origin-fixture.ts'

const MEDIA = fileURLToPath(new URL('../../bench/origin/media/', import.meta.url))
const SEGMENT = '/vod/bbb-test/360p/seg-0.ts'
const IMMUTABLE = 'public, max-age=31536000, immutable'

function mediaFile (path: string): Promise<Buffer> {
  return readFile(MEDIA + path.replace(/^\//, ''))
}

t.test('VOD routes answer the committed bytes with the right metadata', async (t) => {
  const origin = await startTestOrigin(t)
  t.match(origin.url, /^http:\/\/127\.0\.0\.1:\d+$/)
  t.equal(origin.url, `http://127.0.0.1:${origin.port}`)
  const cases = [
    { path: '/vod/bbb-test/master.m3u8', type: 'application/vnd.apple.mpegurl', cc: 'public, max-age=300' },
    { path: '/vod/bbb-test/180p/index.m3u8', type: 'application/vnd.apple.mpegurl', cc: 'public, max-age=300' },
    { path: SEGMENT, type: 'video/mp2t', cc: IMMUTABLE },
    { path: '/vod/bars/360p/init.mp4', type: 'video/mp4', cc: IMMUTABLE },
    { path: '/vod/bars/180p/seg-5.m4s', type: 'video/iso.segment', cc: IMMUTABLE },
  ]
  for (const c of cases) {
    const res = await originRequest(origin.url + c.path)
    t.equal(res.status, 200, c.path)
    t.equal(res.headers['content-type'], c.type, `${c.path} content-type`)
    t.equal(res.headers['cache-control'], c.cc, `${c.path} cache-control`)
    t.match(res.headers.etag, /^"[A-Za-z0-9_-]{22}"$/, `${c.path} strong etag`)
    t.equal(res.headers['accept-ranges'], 'bytes')
    t.ok(Number.isFinite(Date.parse(res.headers['last-modified'] ?? '')), 'last-modified is a date')
    t.ok(Number.isFinite(Date.parse(res.headers.date ?? '')), 'date is a date')
    const expected = await mediaFile(c.path)
    t.equal(res.headers['content-length'], String(expected.length))
    t.ok(res.body.equals(expected), `${c.path} body equals the committed file`)
  }
  const a = await originRequest(origin.url + '/vod/bbb-test/360p/seg-1.ts')
  const b = await originRequest(origin.url + '/vod/bbb-test/360p/seg-2.ts')
  t.not(a.headers.etag, b.headers.etag, 'different content, different etag')
})

t.test('unknown paths are 404, other methods 405', async (t) => {
  const origin = await startTestOrigin(t)
  for (const path of ['/nope', '/vod/bbb-test/720p/index.m3u8', '/vod/nope/master.m3u8', '/live/nope/master.m3u8', '/synthetic/bad.ts', '/vod/bbb-test/../bars/master.m3u8x']) {
    t.equal((await originRequest(origin.url + path)).status, 404, path)
  }
  const post = await originRequest(origin.url + SEGMENT, { method: 'POST', body: 'x' })
  t.equal(post.status, 405)
  t.equal(post.headers.allow, 'GET, HEAD')
})

t.test('HEAD sends the GET headers without a body', async (t) => {
  const origin = await startTestOrigin(t)
  const get = await originRequest(origin.url + SEGMENT)
  const head = await originRequest(origin.url + SEGMENT, { method: 'HEAD' })
  t.equal(head.status, 200)
  t.equal(head.body.length, 0)
  for (const name of ['content-length', 'content-type', 'etag', 'last-modified', 'cache-control', 'accept-ranges']) {
    t.equal(head.headers[name], get.headers[name], name)
  }
  const synthetic = await originRequest(origin.url + '/synthetic/huge-536870912.bin', { method: 'HEAD' })
  t.equal(synthetic.headers['content-length'], '536870912', 'a 512 MiB HEAD never builds the body')
})

t.test('conditional requests get 304 (RFC 9110 §13.1)', async (t) => {
  const origin = await startTestOrigin(t)
  const first = await originRequest(origin.url + SEGMENT)
  const etag = first.headers.etag ?? ''
  const lastModified = first.headers['last-modified'] ?? ''
  const conditional = [
    { 'if-none-match': etag },
    { 'if-none-match': `W/${etag}` },
    { 'if-none-match': `"nope", ${etag}` },
    { 'if-none-match': '*' },
    { 'if-modified-since': lastModified },
    { 'if-modified-since': new Date(Date.parse(lastModified) + 60_000).toUTCString() },
  ]
  for (const headers of conditional) {
    const res = await originRequest(origin.url + SEGMENT, { headers })
    t.equal(res.status, 304, JSON.stringify(headers))
    t.equal(res.body.length, 0)
    t.equal(res.headers.etag, etag)
    t.equal(res.headers['cache-control'], IMMUTABLE)
  }
  const fresh = [
    { 'if-none-match': '"other"' },
    { 'if-modified-since': new Date(Date.parse(lastModified) - 1000).toUTCString() },
    { 'if-modified-since': 'not a date' },
    { 'if-none-match': '"other"', 'if-modified-since': lastModified }, // If-None-Match takes precedence
  ]
  for (const headers of fresh) {
    t.equal((await originRequest(origin.url + SEGMENT, { headers })).status, 200, JSON.stringify(headers))
  }
})

t.test('single byte ranges, 416 and ignored forms (RFC 9110 §14)', async (t) => {
  const origin = await startTestOrigin(t)
  const full = await mediaFile(SEGMENT)
  const len = full.length
  const ranges: Array<[string, number, number]> = [
    ['bytes=0-0', 0, 0],
    ['bytes=100-1099', 100, 1099],
    ['bytes=1000-', 1000, len - 1],
    ['bytes=-500', len - 500, len - 1],
    ['bytes=-99999999', 0, len - 1],
    [`bytes=${len - 10}-${len + 1000}`, len - 10, len - 1],
  ]
  for (const [range, start, end] of ranges) {
    const res = await originRequest(origin.url + SEGMENT, { headers: { range } })
    t.equal(res.status, 206, range)
    t.equal(res.headers['content-range'], `bytes ${start}-${end}/${len}`, `${range} content-range`)
    t.equal(res.headers['content-length'], String(end - start + 1))
    t.ok(res.body.equals(full.subarray(start, end + 1)), `${range} body`)
  }
  for (const range of [`bytes=${len}-`, `bytes=${len + 5}-${len + 10}`, 'bytes=-0']) {
    const res = await originRequest(origin.url + SEGMENT, { headers: { range } })
    t.equal(res.status, 416, range)
    t.equal(res.headers['content-range'], `bytes */${len}`)
  }
  for (const range of ['bytes=5-2', 'items=0-10', 'bytes=0-1,5-6', 'bytes=', 'bytes=a-b', 'bytes=-']) {
    const res = await originRequest(origin.url + SEGMENT, { headers: { range } })
    t.equal(res.status, 200, `${range} is ignored`)
    t.equal(res.body.length, len)
  }
  const head = await originRequest(origin.url + SEGMENT, { method: 'HEAD', headers: { range: 'bytes=0-9' } })
  t.equal(head.status, 200, 'Range applies to GET only')
  const etag = head.headers.etag ?? ''
  const matching = await originRequest(origin.url + SEGMENT, { headers: { range: 'bytes=0-9', 'if-range': etag } })
  t.equal(matching.status, 206, 'If-Range with the current strong etag')
  const byDate = await originRequest(origin.url + SEGMENT, { headers: { range: 'bytes=0-9', 'if-range': head.headers['last-modified'] ?? '' } })
  t.equal(byDate.status, 206, 'If-Range with the exact Last-Modified')
  for (const ifRange of ['"stale"', `W/${etag}`]) {
    const res = await originRequest(origin.url + SEGMENT, { headers: { range: 'bytes=0-9', 'if-range': ifRange } })
    t.equal(res.status, 200, `If-Range ${ifRange} sends the whole representation`)
  }
})

t.test('counters per path without query, content only; in-flight high-water mark', async (t) => {
  const origin = await startTestOrigin(t)
  await originRequest(origin.url + SEGMENT)
  await originRequest(origin.url + SEGMENT + '?token=abc')
  await originRequest(origin.url + '/nope')
  await originRequest(origin.url + '/_origin/counts')
  t.equal(origin.count(SEGMENT), 2)
  t.equal(origin.count('/nope'), 1, '404s are counted too')
  t.equal(origin.count('/_origin/counts'), 0, 'admin requests are not counted')
  t.equal(origin.totalRequests(), 3)
  t.equal(origin.maxInFlight(), 1)

  origin.setFault(SEGMENT, { delayMs: 200 })
  const pending = [1, 2, 3].map(() => originRequest(origin.url + SEGMENT))
  while (origin.inFlight() < 3) await new Promise((resolve) => setTimeout(resolve, 5))
  t.equal(origin.inFlight(), 3, 'all three wait inside the origin')
  await Promise.all(pending)
  t.equal(origin.maxInFlight(), 3)
  await new Promise((resolve) => setImmediate(resolve))
  t.equal(origin.inFlight(), 0)

  origin.resetCounts()
  t.equal(origin.count(SEGMENT), 0)
  t.equal(origin.totalRequests(), 0)
  t.equal(origin.maxInFlight(), 0)
})

t.test('fault: delay holds the headers back', async (t) => {
  const origin = await startTestOrigin(t)
  origin.setFault(SEGMENT, { delayMs: 300 })
  const order: string[] = []
  const startedAt = performance.now()
  const slow = originRequest(origin.url + SEGMENT).then((res) => { order.push('slow'); return res })
  const fast = originRequest(origin.url + '/vod/bbb-test/360p/seg-1.ts').then((res) => { order.push('fast'); return res })
  const [slowRes] = await Promise.all([slow, fast])
  t.same(order, ['fast', 'slow'], 'the undelayed request, sent second, finished first')
  t.equal(slowRes.status, 200)
  t.ok(performance.now() - startedAt >= 290, 'the delayed response took at least the delay')
})

t.test('fault: throttle streams the body progressively', async (t) => {
  const origin = await startTestOrigin(t)
  const size = 60_000
  const path = `/synthetic/slow-${size}.bin`
  origin.setFault(path, { bytesPerSecond: 100_000 }) // about 0.6 s
  const res = await originRequest(origin.url + path)
  t.equal(res.status, 200)
  t.ok(res.body.equals(syntheticBody('slow', size, 'bin')), 'every byte arrives, in order')
  t.ok(res.chunks.length >= 5, `arrived in many pieces (${res.chunks.length})`)
  t.ok((res.chunks[0]?.bytes ?? size) < size / 4, 'the first piece is a small slice')
  const first = res.chunks[0]?.atMs ?? 0
  const last = res.chunks.at(-1)?.atMs ?? 0
  t.ok(last > first, 'later bytes arrived later')
})

t.test('fault: truncation announces the full length then cuts the socket mid-body', async (t) => {
  const origin = await startTestOrigin(t)
  const full = await mediaFile(SEGMENT)
  origin.setFault(SEGMENT, { truncateAtBytes: 10_000 })
  const res = await originRequest(origin.url + SEGMENT)
  t.equal(res.status, 200)
  t.equal(res.headers['content-length'], String(full.length), 'declares the whole body')
  t.equal(res.complete, false)
  t.ok(res.error, 'the client sees a socket error')
  t.equal(res.body.length, 10_000, 'exactly the truncated prefix arrived')
  t.ok(res.body.equals(full.subarray(0, 10_000)))

  origin.setFault(SEGMENT, { truncateAtBytes: 5_000, bytesPerSecond: 50_000 })
  const slow = await originRequest(origin.url + SEGMENT)
  t.equal(slow.complete, false, 'throttled truncation also cuts')
  t.equal(slow.body.length, 5_000)

  origin.setFault(SEGMENT, { truncateAtBytes: 0 })
  const empty = await originRequest(origin.url + SEGMENT)
  t.equal(empty.status, 200, 'headers still arrive')
  t.equal(empty.complete, false)
  t.equal(empty.body.length, 0)

  origin.setFault(SEGMENT, { truncateAtBytes: 100, headers: { 'transfer-encoding': 'chunked' } })
  const chunked = await originRequest(origin.url + SEGMENT)
  t.equal(chunked.headers['transfer-encoding'], 'chunked')
  t.equal(chunked.headers['content-length'], undefined, 'chunked framing drops Content-Length')
  t.equal(chunked.complete, false, 'no terminating chunk')
})

t.test('fault: status, headers, times, prefix matching', async (t) => {
  const origin = await startTestOrigin(t)
  origin.setFault(SEGMENT, { status: 503, headers: { 'Retry-After': '1', 'cache-control': 'no-store' }, times: 2 })
  for (const n of [1, 2]) {
    const res = await originRequest(origin.url + SEGMENT)
    t.equal(res.status, 503, `request ${n} fails`)
    t.equal(res.headers['retry-after'], '1')
    t.equal(res.headers['cache-control'], 'no-store')
    t.match(res.body.toString(), /503/)
  }
  t.equal((await originRequest(origin.url + SEGMENT)).status, 200, 'the fault is gone after `times` requests')

  origin.setFault(SEGMENT, { headers: { 'cache-control': 'private, max-age=5', 'x-test': 'yes' } })
  const overridden = await originRequest(origin.url + SEGMENT)
  t.equal(overridden.status, 200)
  t.equal(overridden.headers['cache-control'], 'private, max-age=5')
  t.equal(overridden.headers['x-test'], 'yes')
  origin.clearFaults()
  t.equal((await originRequest(origin.url + SEGMENT)).headers['cache-control'], IMMUTABLE, 'clearFaults removes it')

  origin.setFault('/vod/bars/*', { status: 500 })
  origin.setFault('/vod/bars/360p/*', { status: 502 })
  origin.setFault('/vod/bars/360p/seg-0.m4s', { status: 504 })
  t.equal((await originRequest(origin.url + '/vod/bars/master.m3u8')).status, 500, 'prefix')
  t.equal((await originRequest(origin.url + '/vod/bars/360p/seg-1.m4s')).status, 502, 'longest prefix wins')
  t.equal((await originRequest(origin.url + '/vod/bars/360p/seg-0.m4s')).status, 504, 'exact beats prefix')
  t.equal((await originRequest(origin.url + SEGMENT)).status, 200, 'other paths untouched')

  origin.setFault('/missing', { status: 204 })
  const noContent = await originRequest(origin.url + '/missing')
  t.equal(noContent.status, 204)
  t.equal(noContent.headers['content-length'], undefined)

  t.throws(() => origin.setFault(SEGMENT, { delayMs: -1 }), TypeError)
  t.throws(() => origin.setFault(SEGMENT, { status: 99 }), TypeError)
  t.throws(() => origin.setFault(SEGMENT, { times: 0 }), TypeError)
  t.throws(() => origin.setFault(SEGMENT, { headers: { 'bad name': 'x' } }), TypeError)
  t.throws(() => origin.setFault('no-slash', {}), TypeError)
  t.throws(() => origin.setFault(SEGMENT, { delay: 5 } as never), /Unknown field fault\.delay/)
})

t.test('query knobs', async (t) => {
  const origin = await startTestOrigin(t)
  t.equal((await originRequest(origin.url + SEGMENT + '?status=503')).status, 503)
  const cc = await originRequest(origin.url + SEGMENT + '?cc=' + encodeURIComponent('no-store'))
  t.equal(cc.headers['cache-control'], 'no-store')
  const cut = await originRequest(origin.url + SEGMENT + '?truncate=10')
  t.equal(cut.body.length, 10)
  t.equal(cut.complete, false)
  const slow = await originRequest(origin.url + '/synthetic/knob-20000.bin?rate=50000')
  t.ok(slow.chunks.length >= 3, 'rate throttles')
  const delayed = await originRequest(origin.url + SEGMENT + '?delay=20')
  t.equal(delayed.status, 200)
  const bad = await originRequest(origin.url + SEGMENT + '?delay=soon')
  t.equal(bad.status, 400)
  t.match(bad.body.toString(), /delayMs/)
  t.equal(origin.count(SEGMENT), 5, 'knob requests count under the path without query')
})

t.test('admin API for out-of-process control', async (t) => {
  const origin = await startTestOrigin(t)
  const admin = origin.url + '/_origin/'
  const json = { 'content-type': 'application/json' }
  await originRequest(origin.url + SEGMENT)
  await originRequest(origin.url + SEGMENT)
  const counts = await originRequest(admin + 'counts')
  t.equal(counts.status, 200)
  t.same(JSON.parse(counts.body.toString()), { [SEGMENT]: 2 })

  const set = await originRequest(admin + 'fault', { method: 'POST', headers: json, body: JSON.stringify({ path: '/vod/*', status: 503, times: 1 }) })
  t.equal(set.status, 204)
  t.equal((await originRequest(origin.url + SEGMENT)).status, 503)
  t.equal((await originRequest(origin.url + SEGMENT)).status, 200, 'times=1 over the admin API')

  await originRequest(admin + 'fault', { method: 'POST', headers: json, body: JSON.stringify({ path: SEGMENT, status: 500 }) })
  const stats = JSON.parse((await originRequest(admin + 'stats')).body.toString()) as Record<string, number>
  t.equal(stats['faults'], 1)
  t.equal(stats['totalRequests'], 4)
  t.equal((await originRequest(admin + 'fault', { method: 'DELETE' })).status, 204)
  t.equal((await originRequest(origin.url + SEGMENT)).status, 200, 'DELETE clears faults')

  for (const body of ['{"path": 5}', '{"path": "/x", "delayMs": "slow"}', 'not json', '{"path": "/x", "bogus": 1}']) {
    const res = await originRequest(admin + 'fault', { method: 'POST', headers: json, body })
    t.equal(res.status, 400, body)
    t.type(JSON.parse(res.body.toString()).error, 'string')
  }
  t.equal((await originRequest(admin + 'reset', { method: 'POST' })).status, 204)
  t.same(JSON.parse((await originRequest(admin + 'counts')).body.toString()), {})
  t.equal(origin.totalRequests(), 0)
  t.equal((await originRequest(admin + 'nope')).status, 404)
})

t.test('options are validated once, with the field and value named', async (t) => {
  await t.rejects(startOrigin({ port: -1 }), { name: 'TypeError', message: 'Expected options.port to be an integer between 0 and 65535, got -1' })
  await t.rejects(startOrigin({ liveWindowSegments: 0 }), /options\.liveWindowSegments.*got 0/)
  await t.rejects(startOrigin({ host: '' }), /options\.host/)
  await t.rejects(startOrigin({ now: 5 as never }), /options\.now/)
  await t.rejects(startOrigin({ syntheticCacheMaxBytes: 1.5 }), /options\.syntheticCacheMaxBytes/)
  await t.rejects(startOrigin({ mediaDir: '/nonexistent-streamedge-media' }), { code: 'CDN_ERR_CONFIG_INVALID' })
})

t.test('close() ends in-flight throttled responses and is idempotent', async (t) => {
  const origin = await startOrigin()
  origin.setFault('/synthetic/*', { bytesPerSecond: 10_000 })
  const pending = originRequest(origin.url + '/synthetic/endless-1000000.bin')
  while (origin.inFlight() < 1) await new Promise((resolve) => setTimeout(resolve, 5))
  await Promise.all([origin.close(), origin.close()])
  const res = await pending
  t.equal(res.complete, false, 'the client sees the cut')
  await t.rejects(originRequest(origin.url + SEGMENT), 'no longer listening')
})
