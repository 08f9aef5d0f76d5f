/**
 * The shield's origin pool over real sockets, with demo origins whose faults are scripted
 * per path: prefix routing, priority groups and weights, failover and retries, the
 * concurrency cap and its queue, slots held until the body is done, breakers and probes.
 */
import t, { type Test } from 'tap'
import { syntheticBody } from '../../bench/origin/synthetic-body.ts'
import type { BreakerSettings } from '../../edge/proxy/circuit-breaker.ts'
import { type CdnError, isCdnError } from '../../lib/errors.ts'
import { OriginPool, type OriginPoolOptions } from '../../shield/origin-pool.ts'
import { deadOriginUrl, startTestOrigin } from '../helpers/origin-fixture.ts'
import { readBody, upstreamGet } from '../helpers/upstream-client.ts'

const BREAKER: BreakerSettings = { failureThreshold: 2, errorRatePercent: 0, minRequests: 0, windowMs: 10_000, coolDownMs: 60_000 }
const TIMEOUTS = { connectTimeoutMs: 1000, firstByteTimeoutMs: 5000, idleTimeoutMs: 5000, keepAliveTimeoutMs: 1000 }

function pool (t: Test, options: Partial<OriginPoolOptions> & Pick<OriginPoolOptions, 'origins'>): OriginPool {
  const p = new OriginPool({ timeouts: TIMEOUTS, maxConcurrent: 8, maxQueue: 16, queueTimeoutMs: 5000, retries: 2, breaker: BREAKER, ...options })
  t.teardown(() => p.close())
  return p
}

async function waitFor (cond: () => boolean, what: string, ms = 5000): Promise<void> {
  const until = Date.now() + ms
  while (!cond()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}

/** A deterministic "random" source cycling through 0, 1/n, 2/n, ... */
function cycle (n: number): () => number {
  let i = 0
  return () => (i++ % n) / n
}

t.test('longest prefix wins', async (t) => {
  const root = await startTestOrigin(t)
  const vod = await startTestOrigin(t)
  const bars = await startTestOrigin(t)
  const p = pool(t, {
    origins: [
      { url: root.url, name: 'root' },
      { url: vod.url, prefix: '/vod/', name: 'vod' },
      { url: bars.url, prefix: '/vod/bars/', name: 'bars' },
    ],
  })
  t.equal((await upstreamGet(p, '/vod/bars/360p/index.m3u8')).upstream, 'bars')
  t.equal((await upstreamGet(p, '/vod/bbb-test/360p/index.m3u8')).upstream, 'vod')
  t.equal((await upstreamGet(p, '/synthetic/root-1880.ts')).upstream, 'root')
  t.same([root.totalRequests(), vod.totalRequests(), bars.totalRequests()], [1, 1, 1])
  const unrouted = pool(t, { origins: [{ url: vod.url, prefix: '/vod/' }] })
  await t.rejects(unrouted.request({ method: 'GET', path: '/live/x', headers: {} }), { code: 'CDN_ERR_UPSTREAM_UNAVAILABLE', message: 'No origin is configured for /live/x' })
})

t.test('the lowest priority group takes all traffic; weights split it inside a group', async (t) => {
  const a = await startTestOrigin(t)
  const b = await startTestOrigin(t)
  const backup = await startTestOrigin(t)
  const p = pool(t, {
    origins: [
      { url: a.url, name: 'a', weight: 3 },
      { url: b.url, name: 'b', weight: 1 },
      { url: backup.url, name: 'backup', priority: 1 },
    ],
    random: cycle(100),
  })
  for (let i = 0; i < 100; i++) await upstreamGet(p, `/synthetic/w-${i}-1880.ts`)
  t.equal(a.totalRequests(), 75, 'weight 3 of 4')
  t.equal(b.totalRequests(), 25, 'weight 1 of 4')
  t.equal(backup.totalRequests(), 0, 'the backup group is idle while the primary group is healthy')
})

t.test('primary origin down: the secondary serves, and once the breaker opens the primary is not even tried', async (t) => {
  const secondary = await startTestOrigin(t)
  const p = pool(t, { origins: [{ url: await deadOriginUrl(), name: 'primary' }, { url: secondary.url, name: 'secondary', priority: 1 }] })
  for (let i = 0; i < 3; i++) {
    const path = `/synthetic/fo-${i}-1880.ts`
    const res = await upstreamGet(p, path)
    t.equal(res.status, 200)
    t.equal(res.upstream, 'secondary')
    t.same(res.bytes, syntheticBody(`fo-${i}`, 1880, 'ts'))
  }
  t.match(p.health(), [{ name: 'primary', state: 'open' }, { name: 'secondary', state: 'closed' }])
})

t.test('a 5xx from the primary is charged to it and retried on the secondary', async (t) => {
  const primary = await startTestOrigin(t)
  const secondary = await startTestOrigin(t)
  primary.setFault('/synthetic/*', { status: 503 })
  const p = pool(t, { origins: [{ url: primary.url, name: 'primary' }, { url: secondary.url, name: 'secondary', priority: 1 }] })
  for (let i = 0; i < 4; i++) t.equal((await upstreamGet(p, `/synthetic/5xx-${i}-1880.ts`)).upstream, 'secondary')
  t.equal(primary.totalRequests(), 2, 'asked until its breaker opened (threshold 2)')
  t.equal(secondary.totalRequests(), 4)
})

t.test('a 5xx followed by nothing better is answered with its body intact', async (t) => {
  const primary = await startTestOrigin(t)
  primary.setFault('/synthetic/*', { status: 503 })
  const p = pool(t, { origins: [{ url: primary.url, name: 'primary' }, { url: await deadOriginUrl(), name: 'secondary', priority: 1 }] })
  const res = await upstreamGet(p, '/synthetic/kept-1880.ts')
  t.equal(res.status, 503, 'the primary\'s answer, since the secondary could not be reached')
  t.equal(res.upstream, 'primary')
  t.equal(res.bytes.toString(), '503 injected by origin fault\n', 'the body was kept for the caller')
  t.equal(p.health()[0]?.active, 0, 'its slot is free again')
})

t.test('without retries a failure is answered, yet the breaker still steers later requests to the secondary', async (t) => {
  const primary = await startTestOrigin(t)
  const secondary = await startTestOrigin(t)
  primary.setFault('/synthetic/*', { status: 500 })
  const p = pool(t, { retries: 0, origins: [{ url: primary.url, name: 'primary' }, { url: secondary.url, name: 'secondary', priority: 1 }] })
  const first = await upstreamGet(p, '/synthetic/nr-0-1880.ts')
  t.equal(first.status, 500, 'the 5xx is passed on')
  t.equal(first.upstream, 'primary')
  await upstreamGet(p, '/synthetic/nr-1-1880.ts')
  const third = await upstreamGet(p, '/synthetic/nr-2-1880.ts')
  t.equal(third.status, 200)
  t.equal(third.upstream, 'secondary')
})

t.test('every origin down: a clear 502; timeouts only: 504; each origin is tried once', async (t) => {
  const p = pool(t, { retries: 5, origins: [{ url: await deadOriginUrl(), name: 'a' }, { url: await deadOriginUrl(), name: 'b', priority: 1 }] })
  const err = await p.request({ method: 'GET', path: '/synthetic/x-1880.ts', headers: {} }).catch((e: unknown) => e)
  t.ok(isCdnError(err, 'CDN_ERR_UPSTREAM_UNAVAILABLE'))
  t.equal((err as CdnError).status, 502)
  t.equal((err as Error).message, 'No origin could serve /synthetic/x-1880.ts (a: CDN_ERR_UPSTREAM_CONNECT; b: CDN_ERR_UPSTREAM_CONNECT)')

  const slow = await startTestOrigin(t)
  slow.setFault('/synthetic/*', { delayMs: 5000 })
  const timing = pool(t, { timeouts: { ...TIMEOUTS, firstByteTimeoutMs: 50 }, origins: [{ url: slow.url, name: 'slow' }] })
  const timeout = await timing.request({ method: 'GET', path: '/synthetic/y-1880.ts', headers: {} }).catch((e: unknown) => e)
  t.ok(isCdnError(timeout, 'CDN_ERR_UPSTREAM_TIMEOUT'))
  t.equal((timeout as CdnError).status, 504)
  t.equal(slow.count('/synthetic/y-1880.ts'), 1, 'a single origin is not retried')
})

t.test('POST is sent once, never retried', async (t) => {
  const secondary = await startTestOrigin(t)
  const p = pool(t, { origins: [{ url: await deadOriginUrl(), name: 'primary' }, { url: secondary.url, name: 'secondary', priority: 1 }] })
  await t.rejects(p.request({ method: 'POST', path: '/synthetic/post-1880.ts', headers: {}, body: null }), { code: 'CDN_ERR_UPSTREAM_UNAVAILABLE' })
  t.equal(secondary.totalRequests(), 0)
})

t.test('the cap holds: 12 concurrent requests, never more than 3 at the origin', async (t) => {
  const o = await startTestOrigin(t)
  o.setFault('/synthetic/*', { delayMs: 30 })
  const p = pool(t, { maxConcurrent: 3, maxQueue: 20, origins: [{ url: o.url, name: 'o' }] })
  const results = await Promise.all(Array.from({ length: 12 }, (_, i) => upstreamGet(p, `/synthetic/cap-${i}-1880.ts`)))
  t.ok(results.every((r) => r.status === 200))
  t.equal(o.maxInFlight(), 3, 'the origin saw exactly the cap at once')
  t.match(p.health(), [{ maxActiveSeen: 3, active: 0, queued: 0 }])
})

t.test('queue full: refused at once with 503 + Retry-After; overload never spills to the backup', async (t) => {
  const o = await startTestOrigin(t)
  const backup = await startTestOrigin(t)
  o.setFault('/synthetic/*', { delayMs: 200 })
  const p = pool(t, {
    maxConcurrent: 1,
    maxQueue: 1,
    retryAfterSeconds: 3,
    origins: [{ url: o.url, name: 'o' }, { url: backup.url, name: 'backup', priority: 1 }],
  })
  const settled = await Promise.allSettled([1, 2, 3].map((i) => upstreamGet(p, `/synthetic/full-${i}-1880.ts`)))
  const refused = settled.filter((s) => s.status === 'rejected').map((s) => (s as PromiseRejectedResult).reason as CdnError)
  t.equal(refused.length, 1, 'one over cap + queue')
  t.equal(refused[0]?.code, 'CDN_ERR_UPSTREAM_OVERLOADED')
  t.equal(refused[0]?.status, 503)
  t.equal(refused[0]?.retryAfterSeconds, 3)
  t.equal(o.totalRequests(), 2)
  t.equal(backup.totalRequests(), 0, 'backups are for outages, not load')
  t.equal(p.health()[0]?.state, 'closed', 'overload is not a failure')
})

t.test('queue wait deadline: a request waiting too long gets a 503, not a hang', async (t) => {
  const o = await startTestOrigin(t)
  o.setFault('/synthetic/*', { delayMs: 2000 })
  const p = pool(t, { maxConcurrent: 1, maxQueue: 10, queueTimeoutMs: 50, origins: [{ url: o.url, name: 'o' }] })
  const first = upstreamGet(p, '/synthetic/long-1880.ts')
  const err = await p.request({ method: 'GET', path: '/synthetic/waits-1880.ts', headers: {} }).catch((e: unknown) => e)
  t.ok(isCdnError(err, 'CDN_ERR_UPSTREAM_OVERLOADED'))
  t.match((err as Error).message, /waited 50 ms for a free connection to o/)
  t.equal(o.count('/synthetic/waits-1880.ts'), 0, 'it never reached the origin')
  o.clearFaults()
  await first
})

t.test('the slot is held until the body is done, not when the head arrives', async (t) => {
  const o = await startTestOrigin(t)
  const p = pool(t, { maxConcurrent: 1, origins: [{ url: o.url, name: 'o' }] })
  const big = '/synthetic/held-4000000.bin'
  const res = await p.request({ method: 'GET', path: big, headers: {} })
  t.equal(res.status, 200, 'head of the first response is in')
  const second = upstreamGet(p, '/synthetic/after-1880.ts')
  await new Promise((resolve) => setTimeout(resolve, 50))
  t.equal(o.count('/synthetic/after-1880.ts'), 0, 'the second request waits while the first body is unread')
  const { bytes, error } = await readBody(res.body)
  t.equal(error, undefined)
  t.equal(bytes.length, 4_000_000)
  t.equal((await second).status, 200, 'the slot passed on when the body ended')
})

t.test('the slot is released when the body fails or the consumer drops it', async (t) => {
  const o = await startTestOrigin(t)
  const p = pool(t, { maxConcurrent: 1, origins: [{ url: o.url, name: 'o' }], breaker: { ...BREAKER, failureThreshold: 1 } })
  o.setFault('/synthetic/cut-188000.ts', { truncateAtBytes: 1000 })
  const cut = await p.request({ method: 'GET', path: '/synthetic/cut-188000.ts', headers: {} })
  const { error } = await readBody(cut.body)
  t.ok(error !== undefined, 'the truncated body fails')
  t.equal(p.health()[0]?.active, 0, 'slot released on body error')
  t.equal(p.health()[0]?.state, 'open', 'a broken body counts against the origin')

  const q = pool(t, { maxConcurrent: 1, origins: [{ url: o.url, name: 'o2' }], breaker: { ...BREAKER, failureThreshold: 1 } })
  const dropped = await q.request({ method: 'GET', path: '/synthetic/drop-4000000.bin', headers: {} })
  dropped.body.destroy()
  await waitFor(() => q.health()[0]?.active === 0, 'slot released on drop')
  t.equal(q.health()[0]?.state, 'closed', 'a dropped body is no verdict')
  t.equal((await upstreamGet(q, '/synthetic/next-1880.ts')).status, 200)
})

t.test('a queued request whose client leaves never reaches the origin', async (t) => {
  const o = await startTestOrigin(t)
  o.setFault('/synthetic/slow-1880.ts', { delayMs: 300 })
  const p = pool(t, { maxConcurrent: 1, origins: [{ url: o.url, name: 'o' }] })
  const first = upstreamGet(p, '/synthetic/slow-1880.ts')
  const controller = new AbortController()
  const gone = p.request({ method: 'GET', path: '/synthetic/gone-1880.ts', headers: {}, signal: controller.signal })
  controller.abort()
  await t.rejects(gone, { code: 'CDN_ERR_CLIENT_ABORTED' })
  await first
  t.equal(o.count('/synthetic/gone-1880.ts'), 0)
  t.equal(p.health()[0]?.state, 'closed')
})

t.test('active probes per origin move traffic to the secondary and back', async (t) => {
  const primary = await startTestOrigin(t)
  const secondary = await startTestOrigin(t)
  const probePath = '/vod/bars/master.m3u8'
  const p = pool(t, {
    origins: [{ url: primary.url, name: 'primary' }, { url: secondary.url, name: 'secondary', priority: 1 }],
    probe: { intervalMs: 10, timeoutMs: 1000, path: probePath, failuresToDown: 2, successesToUp: 2 },
  })
  primary.setFault(probePath, { status: 503 })
  await waitFor(() => p.health()[0]?.probeDown === true, 'primary probed down')
  t.equal((await upstreamGet(p, '/synthetic/probe-1-1880.ts')).upstream, 'secondary')
  t.equal(primary.count('/synthetic/probe-1-1880.ts'), 0)
  primary.clearFaults()
  await waitFor(() => p.health()[0]?.state === 'closed', 'primary probed up')
  t.equal((await upstreamGet(p, '/synthetic/probe-2-1880.ts')).upstream, 'primary')
})

t.test('probes have their own connection: a saturated origin is busy, not down', async (t) => {
  const o = await startTestOrigin(t)
  const probePath = '/vod/bars/master.m3u8'
  const p = pool(t, {
    maxConcurrent: 1,
    origins: [{ url: o.url, name: 'o' }],
    probe: { intervalMs: 10, timeoutMs: 100, path: probePath, failuresToDown: 2, successesToUp: 1 },
  })
  const held = await p.request({ method: 'GET', path: '/synthetic/hold-8000000.bin', headers: {} }) // its only traffic connection, body unread
  try {
    const before = o.count(probePath)
    await waitFor(() => o.count(probePath) >= before + 10 || p.health()[0]?.probeDown === true, 'ten more probes')
    t.equal(p.health()[0]?.state, 'closed', 'probes kept succeeding beside the busy traffic connection')
    t.equal(p.health()[0]?.probeDown, false)
  } finally {
    held.body.destroy()
  }
})

t.test('one URL under several prefixes shares one cap', async (t) => {
  const o = await startTestOrigin(t)
  o.setFault('/*', { delayMs: 30 })
  const p = pool(t, { maxConcurrent: 2, origins: [{ url: o.url, prefix: '/vod/' }, { url: o.url, prefix: '/synthetic/' }] })
  await Promise.all([
    ...Array.from({ length: 4 }, (_, i) => upstreamGet(p, `/synthetic/share-${i}-1880.ts`)),
    upstreamGet(p, '/vod/bars/master.m3u8'), upstreamGet(p, '/vod/bars/360p/index.m3u8'),
  ])
  t.equal(o.maxInFlight(), 2)
  t.equal(p.health().length, 1)
})

t.test('close() cuts bodies nobody is reading instead of waiting on them', async (t) => {
  const o = await startTestOrigin(t)
  const p = pool(t, { origins: [{ url: o.url, name: 'o' }] })
  const unread = await p.request({ method: 'GET', path: '/synthetic/unread-8000000.bin', headers: {} })
  const failed = new Promise<Error | undefined>((resolve) => {
    unread.body.once('error', resolve)
    unread.body.once('close', () => resolve(undefined))
  })
  await p.close()
  await failed
  t.ok(unread.body.destroyed, 'the body was cut')
  t.equal(p.health()[0]?.active, 0, 'its slot was released')
  await p.close()
  t.pass('close() twice is fine')
})

t.test('bad options are refused with a TypeError naming the field', async (t) => {
  const base = { timeouts: TIMEOUTS, maxConcurrent: 1, maxQueue: 0, queueTimeoutMs: 1, retries: 0, breaker: BREAKER }
  t.throws(() => new OriginPool({ ...base, origins: [] }), { name: 'TypeError', message: /options\.origins to be a non-empty array/ })
  t.throws(() => new OriginPool({ ...base, origins: [{ url: 'ftp://x' }] }), { name: 'TypeError', message: 'Expected options.origins[0].url to be an http(s) URL, got "ftp://x"' })
  t.throws(() => new OriginPool({ ...base, origins: [{ url: 'http://x', prefix: 'vod' }] }), { name: 'TypeError', message: /origins\[0\]\.prefix/ })
  t.throws(() => new OriginPool({ ...base, origins: [{ url: 'http://x', weight: 0 }] }), { name: 'TypeError', message: /origins\[0\]\.weight/ })
  t.throws(() => new OriginPool({ ...base, origins: [{ url: 'http://x', priority: -1 }] }), { name: 'TypeError', message: /origins\[0\]\.priority/ })
  t.throws(() => new OriginPool({ ...base, origins: [{ url: 'http://x', name: 'o' }, { url: 'http://y', name: 'o' }] }), { name: 'TypeError', message: /origins\[1\]\.name to be unique/ })
  t.throws(() => new OriginPool({ ...base, maxConcurrent: 0, origins: [{ url: 'http://x' }] }), { name: 'TypeError', message: /options\.maxConcurrent/ })
  t.throws(() => new OriginPool({ ...base, timeouts: { ...TIMEOUTS, idleTimeoutMs: 0 }, origins: [{ url: 'http://x' }] }), { name: 'TypeError', message: /options\.timeouts\.idleTimeoutMs/ })
})
