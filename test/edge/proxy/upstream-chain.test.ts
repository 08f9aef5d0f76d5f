/**
 * The edge's shield chain over real sockets. Demo origins stand in for shields so faults
 * can be scripted per path (status, delay, truncation, relayed Cache-Status); a closed
 * port is a dead shield. Assertions are on where requests landed (per-server counters),
 * on breaker state, and on what the caller got: never on elapsed time.
 */
import t, { type Test } from 'tap'
import { syntheticBody } from '../../../bench/origin/synthetic-body.ts'
import type { BreakerSettings } from '../../../edge/proxy/circuit-breaker.ts'
import { relaysUpstreamFailure, UpstreamChain, type UpstreamChainOptions } from '../../../edge/proxy/upstream-chain.ts'
import { HttpUpstream } from '../../../edge/proxy/upstream.ts'
import { isCdnError } from '../../../lib/errors.ts'
import { deadOriginUrl, startTestOrigin } from '../../helpers/origin-fixture.ts'
import { pathsRankedFirst, readBody, upstreamGet } from '../../helpers/upstream-client.ts'

const BREAKER: BreakerSettings = { failureThreshold: 2, errorRatePercent: 0, minRequests: 0, windowMs: 10_000, coolDownMs: 60_000 }

function upstream (url: string, name: string, firstByteTimeoutMs = 5000): HttpUpstream {
  return new HttpUpstream({ url, name, connectTimeoutMs: 1000, firstByteTimeoutMs, idleTimeoutMs: 5000, connections: 16, keepAliveTimeoutMs: 1000 })
}

function chain (t: Test, options: Partial<UpstreamChainOptions> & Pick<UpstreamChainOptions, 'shields'>): UpstreamChain {
  const c = new UpstreamChain({ breaker: BREAKER, ...options })
  t.teardown(() => c.close())
  return c
}

t.test('each key goes to its top-ranked shield; the response names who answered', async (t) => {
  const a = await startTestOrigin(t)
  const b = await startTestOrigin(t)
  const c = chain(t, { shields: [{ upstream: upstream(a.url, 'shield-a') }, { upstream: upstream(b.url, 'shield-b') }], allowDirectOrigin: false })
  const seen = { 'shield-a': 0, 'shield-b': 0 }
  for (let i = 0; i < 40; i++) {
    const path = `/synthetic/key-${i}-1880.ts`
    const res = await upstreamGet(c, path)
    const first = c.rank(path)[0] as 'shield-a' | 'shield-b'
    t.equal(res.upstream, first, `${path} answered by ${first}`)
    t.equal((first === 'shield-a' ? a : b).count(path), 1)
    t.equal((first === 'shield-a' ? b : a).count(path), 0)
    seen[first]++
  }
  t.ok(seen['shield-a'] > 5 && seen['shield-b'] > 5, `keys are spread (${seen['shield-a']} / ${seen['shield-b']})`)
})

t.test('the request key, not the path, picks the shield', async (t) => {
  const a = await startTestOrigin(t)
  const b = await startTestOrigin(t)
  const c = chain(t, { shields: [{ upstream: upstream(a.url, 'shield-a') }, { upstream: upstream(b.url, 'shield-b') }], allowDirectOrigin: false })
  const path = '/synthetic/keyed-1880.ts'
  const key = pathsRankedFirst(c, c.rank(path)[1]!, 1, 'other-key')[0]!
  const res = await upstreamGet(c, path, key)
  t.equal(res.upstream, c.rank(key)[0])
  t.not(res.upstream, c.rank(path)[0])
})

t.test('a dead shield: its keys fail over to the next one, and after the threshold it is skipped', async (t) => {
  const b = await startTestOrigin(t)
  const c = chain(t, { shields: [{ upstream: upstream(await deadOriginUrl(), 'shield-a') }, { upstream: upstream(b.url, 'shield-b') }], allowDirectOrigin: false })
  const paths = pathsRankedFirst(c, 'shield-a', 4, 'dead')
  for (const path of paths) {
    const res = await upstreamGet(c, path)
    t.equal(res.status, 200)
    t.equal(res.upstream, 'shield-b')
    t.same(res.bytes, syntheticBody(path.slice(11, path.lastIndexOf('-')), 1880, 'ts'))
  }
  t.match(c.health(), [{ name: 'shield-a', state: 'open' }, { name: 'shield-b', state: 'closed' }])
})

t.test('a shield\'s own 5xx is charged to it and failed over; once open it gets no more requests', async (t) => {
  const a = await startTestOrigin(t)
  const b = await startTestOrigin(t)
  a.setFault('/synthetic/*', { status: 500 })
  const c = chain(t, { shields: [{ upstream: upstream(a.url, 'shield-a') }, { upstream: upstream(b.url, 'shield-b') }], allowDirectOrigin: false })
  const paths = pathsRankedFirst(c, 'shield-a', 5, 'own5xx')
  for (const path of paths) {
    const res = await upstreamGet(c, path)
    t.equal(res.status, 200, `${path} served by the next shield`)
    t.equal(res.upstream, 'shield-b')
  }
  t.equal(a.totalRequests(), 2, 'shield-a was asked until its breaker opened (threshold 2), then skipped')
  t.equal(c.health()[0]?.state, 'open')
})

t.test('a 5xx the shield relays from its origin: next shield asked, no breaker charged, never direct to origin', async (t) => {
  const a = await startTestOrigin(t)
  const b = await startTestOrigin(t)
  const direct = await startTestOrigin(t)
  const relayed = { 'cache-status': 'streamedge-shield; fwd=uri-miss; fwd-status=502' }
  a.setFault('/synthetic/*', { status: 502, headers: relayed })
  b.setFault('/synthetic/*', { status: 502, headers: { 'cache-status': 'streamedge-shield; fwd=uri-miss; detail=CDN_ERR_UPSTREAM_CONNECT' } })
  const c = chain(t, {
    shields: [{ upstream: upstream(a.url, 'shield-a') }, { upstream: upstream(b.url, 'shield-b') }],
    origin: upstream(direct.url, 'origin'),
    allowDirectOrigin: true,
  })
  for (let i = 0; i < 4; i++) {
    const path = `/synthetic/relayed-${i}-1880.ts`
    const res = await upstreamGet(c, path)
    t.equal(res.status, 502, 'the shields\' answer is returned')
    t.equal(res.upstream, c.rank(path)[1], 'from the last shield asked')
    t.equal(a.count(path) + b.count(path), 2, 'both shields were asked once')
  }
  t.equal(direct.totalRequests(), 0, 'the origin was never asked by the edge')
  t.match(c.health(), [{ state: 'closed' }, { state: 'closed' }], 'relayed failures do not mark shields down')

  a.clearFaults()
  const recovered = pathsRankedFirst(c, 'shield-b', 1, 'relayed-then-ok')[0]!
  const res = await upstreamGet(c, recovered)
  t.equal(res.status, 200, 'a relayed 5xx from the first shield, a 200 from the second')
  t.equal(res.upstream, 'shield-a')
})

t.test('a shield\'s 503 "origin overloaded" is returned at once: no failover, no breaker charge', async (t) => {
  const a = await startTestOrigin(t)
  const b = await startTestOrigin(t)
  const direct = await startTestOrigin(t)
  const overloaded = { 'cache-status': 'streamedge-shield; fwd=uri-miss; detail=CDN_ERR_UPSTREAM_OVERLOADED', 'retry-after': '2' }
  a.setFault('/synthetic/*', { status: 503, headers: overloaded })
  const c = chain(t, {
    shields: [{ upstream: upstream(a.url, 'shield-a') }, { upstream: upstream(b.url, 'shield-b') }],
    origin: upstream(direct.url, 'origin'),
  })
  for (const path of pathsRankedFirst(c, 'shield-a', 3, 'overloaded')) {
    const res = await upstreamGet(c, path)
    t.equal(res.status, 503)
    t.equal(res.headers['retry-after'], '2')
    t.equal(res.upstream, 'shield-a')
  }
  t.equal(b.totalRequests() + direct.totalRequests(), 0, 'nobody else was asked')
  t.equal(c.health()[0]?.state, 'closed')
})

t.test('a shield that sends no head before its first-byte timeout is failed over', async (t) => {
  const a = await startTestOrigin(t)
  const b = await startTestOrigin(t)
  a.setFault('/synthetic/*', { delayMs: 5000 })
  const c = chain(t, { shields: [{ upstream: upstream(a.url, 'shield-a', 100) }, { upstream: upstream(b.url, 'shield-b', 100) }], allowDirectOrigin: false })
  const path = pathsRankedFirst(c, 'shield-a', 1, 'slow')[0]!
  const res = await upstreamGet(c, path)
  t.equal(res.status, 200)
  t.equal(res.upstream, 'shield-b')
  t.equal(a.count(path), 1)
})

t.test('every shield down: straight to the origin, or a clear 502/504 when that is forbidden', async (t) => {
  const direct = await startTestOrigin(t)
  const shields = [{ upstream: upstream(await deadOriginUrl(), 'shield-a') }, { upstream: upstream(await deadOriginUrl(), 'shield-b') }]
  const open = chain(t, { shields, origin: upstream(direct.url, 'origin'), allowDirectOrigin: true })
  const res = await upstreamGet(open, '/synthetic/direct-1880.ts')
  t.equal(res.status, 200)
  t.equal(res.upstream, 'origin')
  t.equal(direct.count('/synthetic/direct-1880.ts'), 1)

  const closed = chain(t, { shields: [{ upstream: upstream(await deadOriginUrl(), 'shield-a') }, { upstream: upstream(await deadOriginUrl(), 'shield-b') }], allowDirectOrigin: false })
  const err = await closed.request({ method: 'GET', path: '/synthetic/nodirect-1880.ts', headers: {} }).catch((e: unknown) => e)
  t.ok(isCdnError(err, 'CDN_ERR_UPSTREAM_UNAVAILABLE'), 'CdnError UNAVAILABLE')
  t.equal((err as { status: number }).status, 502)
  t.match((err as Error).message, /No shield could serve \/synthetic\/nodirect-1880\.ts \(shield-.: CDN_ERR_UPSTREAM_CONNECT; shield-.: CDN_ERR_UPSTREAM_CONNECT\) and direct origin access is disabled/)

  // Once both breakers are open the chain fails fast without touching the network.
  await closed.request({ method: 'GET', path: '/synthetic/nodirect-1880.ts', headers: {} }).catch(() => {})
  t.match(closed.health(), [{ state: 'open' }, { state: 'open' }])
  const fast = await closed.request({ method: 'GET', path: '/synthetic/nodirect-1880.ts', headers: {} }).catch((e: unknown) => e)
  t.match((fast as Error).message, /shield-.: marked down; shield-.: marked down/)
})

t.test('shields that only time out give a 504', async (t) => {
  const a = await startTestOrigin(t)
  const b = await startTestOrigin(t)
  a.setFault('/synthetic/*', { delayMs: 5000 })
  b.setFault('/synthetic/*', { delayMs: 5000 })
  const c = chain(t, { shields: [{ upstream: upstream(a.url, 'shield-a', 50) }, { upstream: upstream(b.url, 'shield-b', 50) }], allowDirectOrigin: false })
  const err = await c.request({ method: 'GET', path: '/synthetic/t-1880.ts', headers: {} }).catch((e: unknown) => e)
  t.ok(isCdnError(err, 'CDN_ERR_UPSTREAM_TIMEOUT'))
  t.equal((err as { status: number }).status, 504)
})

t.test('POST is sent once: no failover, no direct origin', async (t) => {
  const b = await startTestOrigin(t)
  const direct = await startTestOrigin(t)
  const c = chain(t, { shields: [{ upstream: upstream(await deadOriginUrl(), 'shield-a') }, { upstream: upstream(b.url, 'shield-b') }], origin: upstream(direct.url, 'origin') })
  const path = pathsRankedFirst(c, 'shield-a', 1, 'post')[0]!
  const err = await c.request({ method: 'POST', path, headers: {}, body: null }).catch((e: unknown) => e)
  t.ok(isCdnError(err), 'the first shield\'s failure is the answer')
  t.equal(b.totalRequests() + direct.totalRequests(), 0)
})

t.test('a body that breaks after the head is not retried, reaches the caller as an error, and counts against the shield', async (t) => {
  const a = await startTestOrigin(t)
  const b = await startTestOrigin(t)
  const c = chain(t, { shields: [{ upstream: upstream(a.url, 'shield-a') }, { upstream: upstream(b.url, 'shield-b') }], allowDirectOrigin: false, breaker: { ...BREAKER, failureThreshold: 1 } })
  const path = pathsRankedFirst(c, 'shield-a', 1, 'cut', 188_000)[0]!
  a.setFault(path, { truncateAtBytes: 10_000 })
  const res = await c.request({ method: 'GET', path, headers: {} })
  t.equal(res.status, 200)
  t.equal(res.upstream, 'shield-a')
  const { bytes, error } = await readBody(res.body)
  t.ok(error !== undefined, 'the body fails')
  t.ok(bytes.length < 188_000)
  t.equal(b.totalRequests(), 0, 'no retry after the head')
  t.equal(c.health()[0]?.state, 'open', 'charged to the shield')
})

t.test('a caller that drops the body does not count against the shield', async (t) => {
  const a = await startTestOrigin(t)
  const c = chain(t, { shields: [{ upstream: upstream(a.url, 'shield-a') }], allowDirectOrigin: false, breaker: { ...BREAKER, failureThreshold: 1 } })
  a.setFault('/synthetic/*', { bytesPerSecond: 100_000 })
  const res = await c.request({ method: 'GET', path: '/synthetic/dropped-188000.ts', headers: {} })
  await new Promise<void>((resolve) => res.body.once('data', () => resolve()))
  res.body.destroy()
  await new Promise((resolve) => setTimeout(resolve, 20))
  t.equal(c.health()[0]?.state, 'closed')
})

t.test('half-open: after the cool-down one trial goes back to the recovered shield and closes it', async (t) => {
  const a = await startTestOrigin(t)
  const b = await startTestOrigin(t)
  const clock = { ms: 0 }
  const c = chain(t, {
    shields: [{ upstream: upstream(a.url, 'shield-a') }, { upstream: upstream(b.url, 'shield-b') }],
    allowDirectOrigin: false,
    breaker: { ...BREAKER, failureThreshold: 1, coolDownMs: 1000 },
    now: () => clock.ms,
  })
  const [p1, p2, p3] = pathsRankedFirst(c, 'shield-a', 3, 'halfopen')
  const port = a.port
  await a.close()
  t.equal((await upstreamGet(c, p1!)).upstream, 'shield-b')
  t.equal(c.health()[0]?.state, 'open')
  const revived = await startTestOrigin(t, { port })
  t.equal((await upstreamGet(c, p2!)).upstream, 'shield-b', 'still cooling down: skipped')
  t.equal(revived.totalRequests(), 0)
  clock.ms += 1000
  t.equal((await upstreamGet(c, p3!)).upstream, 'shield-a', 'the trial request goes back to it')
  t.equal(c.health()[0]?.state, 'closed')
})

t.test('active probes mark a shield down before traffic finds out, and back up', async (t) => {
  const a = await startTestOrigin(t)
  const b = await startTestOrigin(t)
  const probePath = '/vod/bars/master.m3u8'
  const c = chain(t, {
    shields: [{ upstream: upstream(a.url, 'shield-a') }, { upstream: upstream(b.url, 'shield-b') }],
    allowDirectOrigin: false,
    probe: { intervalMs: 10, timeoutMs: 1000, path: probePath, failuresToDown: 2, successesToUp: 2 },
  })
  a.setFault(probePath, { status: 503 })
  await waitFor(() => c.health()[0]?.probeDown === true, 'probe marks shield-a down')
  t.equal(c.health()[0]?.state, 'open')
  const path = pathsRankedFirst(c, 'shield-a', 1, 'probed')[0]!
  t.equal((await upstreamGet(c, path)).upstream, 'shield-b')
  t.equal(a.count(path), 0, 'no request was wasted on the down shield')
  a.clearFaults()
  await waitFor(() => c.health()[0]?.state === 'closed', 'probe marks shield-a up')
  const back = pathsRankedFirst(c, 'shield-a', 2, 'probed')[1]!
  t.equal((await upstreamGet(c, back)).upstream, 'shield-a')
})

t.test('close() cuts shield bodies nobody is reading instead of waiting on them', async (t) => {
  const a = await startTestOrigin(t)
  const c = chain(t, { shields: [{ upstream: upstream(a.url, 'shield-a') }], allowDirectOrigin: false })
  const unread = await c.request({ method: 'GET', path: '/synthetic/unread-8000000.bin', headers: {} })
  await c.close()
  t.ok(unread.body.destroyed, 'the body was cut')
  t.equal(c.health()[0]?.state, 'closed', 'a cut at shutdown is no verdict on the shield')
  await c.close()
})

t.test('relaysUpstreamFailure reads Cache-Status', async (t) => {
  t.equal(relaysUpstreamFailure({}), 'own')
  t.equal(relaysUpstreamFailure({ 'cache-status': 'streamedge-s; detail=CDN_ERR_INTERNAL' }), 'own')
  t.equal(relaysUpstreamFailure({ 'cache-status': 'streamedge-s; fwd=uri-miss; fwd-status=500' }), 'relayed')
  t.equal(relaysUpstreamFailure({ 'cache-status': 'streamedge-s; fwd=uri-miss; detail=CDN_ERR_UPSTREAM_TIMEOUT' }), 'relayed')
  t.equal(relaysUpstreamFailure({ 'cache-status': 'streamedge-s; fwd=uri-miss; detail=CDN_ERR_LOCK_TIMEOUT' }), 'relayed')
  t.equal(relaysUpstreamFailure({ 'cache-status': 'other; hit, streamedge-s; fwd=uri-miss; detail=CDN_ERR_UPSTREAM_OVERLOADED' }), 'overloaded')
  t.equal(relaysUpstreamFailure({ 'cache-status': '"not valid' }), 'own')
})

t.test('bad options are refused with a TypeError naming the field', async (t) => {
  const u = upstream('http://127.0.0.1:1', 'x')
  t.teardown(() => u.close())
  t.throws(() => new UpstreamChain({ shields: [], breaker: BREAKER }), { name: 'TypeError', message: /options\.shields to be a non-empty array/ })
  t.throws(() => new UpstreamChain({ shields: [{ upstream: u }], breaker: BREAKER }), { name: 'TypeError', message: /options\.origin to be set when options\.allowDirectOrigin is true/ })
  t.throws(() => new UpstreamChain({ shields: [{ upstream: u }, { upstream: u }], breaker: BREAKER, allowDirectOrigin: false }), { name: 'TypeError', message: /unique/ })
  t.throws(() => new UpstreamChain({ shields: [{ upstream: u }], breaker: { ...BREAKER, coolDownMs: -1 }, allowDirectOrigin: false }), { name: 'TypeError', message: /options\.breaker\.coolDownMs/ })
})

async function waitFor (cond: () => boolean, what: string, ms = 5000): Promise<void> {
  const until = Date.now() + ms
  while (!cond()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}
