/**
 * The edge pipeline over real sockets: demo origin on port 0 → edge on port 0 → test clients.
 * Covers hits and misses per tier, shared fills (coalescing with streaming to every
 * waiter), pass-through of other methods, Cache-Status, access logs and metrics.
 */
import t, { type Test } from 'tap'
import { startOrigin } from '../../../bench/origin/origin-server.ts'
import { syntheticBody } from '../../../bench/origin/synthetic-body.ts'
import { fetchRaw } from '../../helpers/http-client.ts'
import { startTestNode } from '../../helpers/cache-node.ts'

async function setup (t: Test, overrides = {}) {
  const origin = await startOrigin()
  t.teardown(() => origin.close())
  const edge = await startTestNode(t, { origin: origin.url, ...overrides })
  return { origin, edge }
}

t.test('miss, then memory hit: one origin request, identical bytes, Cache-Status and Age', async (t) => {
  const { origin, edge } = await setup(t)
  const path = '/synthetic/hit-65800.ts'
  const expected = syntheticBody('hit', 65800, 'ts')
  const first = await fetchRaw(edge.url + path)
  t.equal(first.status, 200)
  t.same(first.body, expected, 'miss body is the origin body')
  t.match(first.headers['cache-status'], /fwd=uri-miss; fwd-status=200; stored/)
  t.equal(first.headers['content-length'], '65800')
  t.equal(first.headers['content-type'], 'video/mp2t')
  const second = await fetchRaw(edge.url + path)
  t.equal(second.status, 200)
  t.same(second.body, expected, 'hit body is identical')
  t.match(second.headers['cache-status'], /^streamedge-test-edge; hit; ttl=\d+$/)
  t.ok(second.headers.age !== undefined, 'Age header on a hit')
  t.equal(second.headers['accept-ranges'], 'bytes')
  t.equal(origin.count(path), 1, 'origin saw the object once')
  t.equal(await edge.metrics.lookups.value({ result: 'hit', tier: 'memory' }), 1)
})

t.test('HEAD is answered from the cached GET and fills with a GET', async (t) => {
  const { origin, edge } = await setup(t)
  const path = '/synthetic/head-4136.ts'
  const head = await fetchRaw(edge.url + path, { method: 'HEAD' })
  t.equal(head.status, 200)
  t.equal(head.body.length, 0)
  t.equal(head.headers['content-length'], '4136')
  const get = await fetchRaw(edge.url + path)
  t.same(get.body, syntheticBody('head', 4136, 'ts'))
  t.match(get.headers['cache-status'], /; hit/)
  t.equal(origin.count(path), 1)
})

t.test('100 concurrent requests for a cold object: one origin request, every client streams before the origin finishes', async (t) => {
  const { origin, edge } = await setup(t)
  const size = 188 * 1395 // 256 KiB; MPEG-TS bodies are whole 188-byte packets
  const path = `/synthetic/herd-${size}.ts`
  // ~2 s to send the body: a client that waited for the whole fill would get its first byte after that.
  // Kept small so 100 in-process clients cost little CPU: clients, edge and origin share this
  // process, and on a busy 2-core machine requests reach the edge over a few hundred ms.
  origin.setFault(path, { delayMs: 200, bytesPerSecond: 128 * 1024 })
  const results = await Promise.all(Array.from({ length: 100 }, () => fetchRaw(edge.url + path)))
  const expected = syntheticBody('herd', size, 'ts')
  t.equal(origin.count(path), 1, 'exactly one origin request')
  const firstDone = Math.min(...results.map((r) => r.endAt))
  for (const [i, r] of results.entries()) {
    if (r.error !== undefined || r.status !== 200 || !r.body.equals(expected)) {
      t.fail(`client ${i}: status ${r.status}, ${r.body.length} bytes, error ${String(r.error)}`)
      continue
    }
    if (r.firstByteAt === undefined || r.firstByteAt >= firstDone) t.fail(`client ${i} got its first byte only after the fill completed`)
  }
  const collapsed = results.filter((r) => /collapsed/.test(String(r.headers['cache-status']))).length
  t.equal(collapsed, 99, '99 responses are marked collapsed')
  t.equal(await edge.metrics.collapsed.value({ outcome: 'joined' }), 99)
  const again = await fetchRaw(edge.url + path)
  t.match(again.headers['cache-status'], /; hit/, 'stored after the fill')
  t.equal(origin.count(path), 1)
})

t.test('a slow reader does not slow the fill or the other readers', async (t) => {
  const { origin, edge } = await setup(t)
  const size = 188 * 22310
  const path = `/synthetic/slowreader-${size}.ts`
  origin.setFault(path, { bytesPerSecond: 16 * 1024 * 1024 })
  // The slow client reads 64 KiB and then stops reading (its socket buffers fill up).
  const http = await import('node:http')
  const slow = http.get(edge.url + path, { agent: false }, (res) => {
    let got = 0
    res.on('data', (c: Buffer) => { got += c.length; if (got > 65536) res.pause() })
  })
  t.teardown(() => { slow.destroy() })
  await new Promise((resolve) => setTimeout(resolve, 50))
  const fast = await fetchRaw(edge.url + path)
  t.equal(fast.status, 200)
  t.ok(fast.body.equals(syntheticBody('slowreader', size, 'ts')), 'fast reader got the whole body while the slow one stalled')
  t.equal(origin.count(path), 1)
})

t.test('other methods pass through uncached with their body', async (t) => {
  const { origin, edge } = await setup(t)
  const res = await fetchRaw(edge.url + '/synthetic/post-1000.bin', { method: 'POST', body: 'hello', headers: { 'content-type': 'text/plain' } })
  t.equal(origin.count('/synthetic/post-1000.bin'), 1)
  t.match(res.headers['cache-status'], /fwd=method/)
  const again = await fetchRaw(edge.url + '/synthetic/post-1000.bin', { method: 'POST', body: 'hello' })
  t.equal(again.status, res.status)
  t.equal(origin.count('/synthetic/post-1000.bin'), 2, 'never served from cache')
})

t.test('uncacheable responses are passed on, not stored, and counted', async (t) => {
  const { origin, edge } = await setup(t)
  const path = '/synthetic/private-1000.bin'
  origin.setFault(path, { headers: { 'cache-control': 'private, max-age=60' } })
  const a = await fetchRaw(edge.url + path)
  const b = await fetchRaw(edge.url + path)
  t.equal(a.status, 200)
  t.equal(b.status, 200)
  t.equal(origin.count(path), 2)
  t.notMatch(String(a.headers['cache-status']), /stored/)
  t.equal(await edge.metrics.admissionRejections.value({ reason: 'private' }), 2)
})

t.test('private responses are never shared with collapsed requests', async (t) => {
  const { origin, edge } = await setup(t)
  const path = '/synthetic/priv-herd-100000.bin'
  origin.setFault(path, { delayMs: 150, headers: { 'cache-control': 'private' } })
  const results = await Promise.all(Array.from({ length: 5 }, () => fetchRaw(edge.url + path)))
  for (const r of results) t.equal(r.status, 200)
  t.equal(origin.count(path), 5, 'each client got its own upstream answer')
})

t.test('upstream 5xx and connection failures: clear errors, nothing stored', async (t) => {
  const { origin, edge } = await setup(t)
  const path = '/synthetic/err-100.bin'
  origin.setFault(path, { status: 503, times: 1 })
  const failed = await fetchRaw(edge.url + path)
  t.equal(failed.status, 503)
  t.match(failed.headers['cache-status'], /fwd-status=503/)
  const ok = await fetchRaw(edge.url + path)
  t.equal(ok.status, 200, 'the 503 was not cached')
  t.equal(origin.count(path), 2)

  const dead = await startTestNode(t, { origin: 'http://127.0.0.1:1' })
  const refused = await fetchRaw(dead.url + '/x.ts')
  t.equal(refused.status, 502)
  t.match(refused.headers['cache-status'], /detail=CDN_ERR_UPSTREAM_CONNECT/)
})

t.test('a collapsed request that waits past the lock timeout fetches on its own', async (t) => {
  const { origin, edge } = await setup(t, { lockTimeoutMs: 100 })
  const path = '/synthetic/locktimeout-1000.bin'
  origin.setFault(path, { delayMs: 600, times: 1 })
  const first = fetchRaw(edge.url + path)
  await new Promise((resolve) => setTimeout(resolve, 30))
  const second = await fetchRaw(edge.url + path)
  t.equal(second.status, 200)
  t.match(second.headers['cache-status'], /detail=lock-timeout/)
  t.ok(second.endAt < (await first).endAt, 'the waiter did not wait for the stuck fill')
  t.equal(origin.count(path), 2)
  t.equal(await edge.metrics.collapsed.value({ outcome: 'lock-timeout' }), 1)
})

t.test('access log: one JSON line per request with phase, status, bytes', async (t) => {
  const { edge } = await setup(t)
  await fetchRaw(edge.url + '/synthetic/log-100.bin')
  await fetchRaw(edge.url + '/synthetic/log-100.bin')
  await new Promise((resolve) => setTimeout(resolve, 20))
  const lines = edge.logs.filter((l) => l.msg === 'request')
  t.equal(lines.length, 2)
  t.match(lines[0], { method: 'GET', path: '/synthetic/log-100.bin', status: 200, cachePhase: 'miss', bytes: 100, completed: true })
  t.match(lines[1], { cachePhase: 'hit', source: 'memory', bytes: 100 })
  // rendered by the proxy itself (lib/log.ts infoLineWriter): pino's field order, undefined fields left out
  t.same(Object.keys(lines[0]!), ['level', 'time', 'reqId', 'method', 'path', 'status', 'cachePhase', 'source', 'bytes', 'durationMs', 'completed', 'cacheKey', 'upstream', 'client', 'msg'])
  t.same(Object.keys(lines[1]!), ['level', 'time', 'reqId', 'method', 'path', 'status', 'cachePhase', 'source', 'bytes', 'durationMs', 'completed', 'cacheKey', 'client', 'msg'], 'a hit names no upstream')
  t.match(lines[0], { level: 'info', cacheKey: '/synthetic/log-100.bin', client: '127.0.0.1' })
  t.type(lines[0]!['durationMs'], 'number')
  t.type(lines[0]!['reqId'], 'number')
  // percent-encoded quotes and backslashes come back as sent
  await fetchRaw(edge.url + '/synthetic/log%22q%5C-10.bin')
  await new Promise((resolve) => setTimeout(resolve, 20))
  const odd = edge.logs.filter((l) => l.msg === 'request').at(-1)
  t.match(odd, { path: '/synthetic/log%22q%5C-10.bin' })
})

t.test('/healthz, /readyz and /metrics', async (t) => {
  const { edge } = await setup(t)
  t.equal((await fetchRaw(edge.url + '/healthz')).status, 200)
  t.equal((await fetchRaw(edge.url + '/readyz')).status, 200)
  await fetchRaw(edge.url + '/synthetic/m-10.bin')
  const metrics = await fetchRaw(edge.url + '/metrics')
  t.equal(metrics.status, 200)
  const text = metrics.body.toString()
  for (const name of ['streamedge_requests_total', 'streamedge_served_bytes_total', 'streamedge_cache_lookups_total', 'streamedge_fills_total',
    'streamedge_upstream_first_byte_seconds', 'streamedge_store_bytes', 'streamedge_store_evictions_total', 'streamedge_admission_rejections_total']) {
    t.match(text, name, `exports ${name}`)
  }
  t.match(text, /streamedge_requests_total\{phase="miss",status="200",role="edge",node="test-edge"\} 1/)
})

t.test('malformed request targets get 400 with Cache-Status', async (t) => {
  const { edge } = await setup(t)
  const res = await fetchRaw(edge.url + '/a%00b')
  t.equal(res.status, 400)
  t.match(res.headers['cache-status'], /fwd=bypass/)
})

t.test('freshness basics through the edge (RFC 9111 §4.2): max-age, s-maxage, Expires, no-store, Age', async (t) => {
  let now = Date.now()
  const { origin, edge } = await setup(t, { now: () => now })
  const cases = [
    { path: '/synthetic/fresh-maxage-100.bin', cc: { 'cache-control': 'max-age=60' }, freshFor: 60 },
    { path: '/synthetic/fresh-smaxage-100.bin', cc: { 'cache-control': 'max-age=5, s-maxage=120' }, freshFor: 120 },
    { path: '/synthetic/fresh-expires-100.bin', cc: { 'cache-control': '', expires: new Date(now + 30_000).toUTCString(), date: new Date(now).toUTCString() }, freshFor: 30 },
  ]
  for (const c of cases) {
    origin.setFault(c.path, { headers: c.cc })
    await fetchRaw(edge.url + c.path)
  }
  now += 10_000
  for (const c of cases) {
    const hit = await fetchRaw(edge.url + c.path)
    t.match(hit.headers['cache-status'], /; hit/, `${c.path} fresh after 10 s`)
    t.ok(Number(hit.headers.age) >= 10, `${c.path}: Age counts resident time`)
    t.equal(origin.count(c.path), 1)
  }
  for (const c of cases) {
    const before = origin.count(c.path)
    const saved = now
    now = saved + (c.freshFor + 1) * 1000
    const stale = await fetchRaw(edge.url + c.path)
    // Stale with a validator (the origin sends ETag): revalidated conditionally (RFC 9111 §4.3).
    t.match(stale.headers['cache-status'], /fwd=stale; fwd-status=304/, `${c.path} revalidated once stale`)
    t.equal(origin.count(c.path), before + 1)
    now = saved
  }
  const noStore = '/synthetic/nostore-100.bin'
  origin.setFault(noStore, { headers: { 'cache-control': 'no-store' } })
  await fetchRaw(edge.url + noStore)
  await fetchRaw(edge.url + noStore)
  t.equal(origin.count(noStore), 2, 'no-store is never stored')
  t.equal(await edge.metrics.admissionRejections.value({ reason: 'no-store' }), 2)
})
