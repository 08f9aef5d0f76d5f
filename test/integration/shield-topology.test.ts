/**
 * Whole topologies in-process, every hop a real socket on 127.0.0.1 port 0:
 * demo origin(s) → shields (startCacheNode + OriginPool) → edges (startCacheNode +
 * UpstreamChain) → test clients. Faults come from the demo origin (delay, throttle, status)
 * and from stopping a shield's server mid-transfer. Assertions are on request counts,
 * bytes, statuses, Cache-Status and breaker state; waits are bounded polls, not timings.
 */
import http from 'node:http'
import t, { type Test } from 'tap'
import { syntheticBody } from '../../bench/origin/synthetic-body.ts'
import type { BreakerSettings } from '../../edge/proxy/circuit-breaker.ts'
import { UpstreamChain } from '../../edge/proxy/upstream-chain.ts'
import { HttpUpstream } from '../../edge/proxy/upstream.ts'
import { OriginPool, type OriginPoolOptions, type OriginSpec } from '../../shield/origin-pool.ts'
import { fetchRaw, type Fetched } from '../helpers/http-client.ts'
import { deadOriginUrl, startTestOrigin } from '../helpers/origin-fixture.ts'
import { pathsRankedFirst } from '../helpers/upstream-client.ts'
import { startTestNode, tempDir, type TestNode } from '../helpers/cache-node.ts'

const TIMEOUTS = { connectTimeoutMs: 1000, firstByteTimeoutMs: 5000, idleTimeoutMs: 5000, keepAliveTimeoutMs: 2000 }
const BREAKER: BreakerSettings = { failureThreshold: 2, errorRatePercent: 0, minRequests: 0, windowMs: 10_000, coolDownMs: 300 }

interface ShieldOptions {
  readonly id: string
  readonly origins: readonly OriginSpec[]
  readonly pool?: Partial<OriginPoolOptions>
  readonly port?: number
  readonly cacheDir?: string
  readonly now?: () => number
}

interface Shield {
  readonly node: TestNode
  readonly pool: OriginPool
  readonly port: number
}

async function startShield (t: Test, o: ShieldOptions): Promise<Shield> {
  const pool = new OriginPool({
    origins: o.origins,
    timeouts: TIMEOUTS,
    maxConcurrent: 32,
    maxQueue: 256,
    queueTimeoutMs: 5000,
    retries: 2,
    breaker: BREAKER,
    ...o.pool,
  })
  const node = await startTestNode(t, {
    role: 'shield',
    id: o.id,
    upstream: pool,
    listen: { host: '127.0.0.1', port: o.port ?? 0 },
    shutdownGraceMs: 0,
    accessLog: false,
    ...(o.cacheDir === undefined ? {} : { cacheDir: o.cacheDir }),
    ...(o.now === undefined ? {} : { now: o.now }),
  })
  return { node, pool, port: Number(new URL(node.url).port) }
}

function http1 (url: string, name: string): HttpUpstream {
  return new HttpUpstream({ url, name, ...TIMEOUTS, connections: 64 })
}

interface Edge {
  readonly node: TestNode
  readonly chain: UpstreamChain
}

async function startEdge (t: Test, id: string, shields: readonly Shield[], direct: string, extra: { allowDirectOrigin?: boolean, now?: () => number, breaker?: BreakerSettings } = {}): Promise<Edge> {
  const chain = new UpstreamChain({
    // Ids are the shield URLs, as edge/main.ts sets them: every edge ranks keys alike.
    shields: shields.map((s) => ({ id: s.node.url, upstream: http1(s.node.url, s.node.url.slice(7)) })),
    origin: http1(direct, 'origin'),
    allowDirectOrigin: extra.allowDirectOrigin ?? true,
    breaker: extra.breaker ?? BREAKER,
  })
  const node = await startTestNode(t, { id, upstream: chain, accessLog: false, ...(extra.now === undefined ? {} : { now: extra.now }) })
  return { node, chain }
}

/** A GET whose first body byte is announced, for killing a shield mid-transfer. */
function download (url: string): { firstByte: Promise<void>, done: Promise<Fetched> } {
  let onFirst!: () => void
  let onFail!: (err: Error) => void
  const firstByte = new Promise<void>((resolve, reject) => { onFirst = resolve; onFail = reject })
  const done = new Promise<Fetched>((resolve, reject) => {
    const startedAt = performance.now()
    const req = http.get(url, { agent: false }, (res) => {
      const headersAt = performance.now()
      const chunks: Buffer[] = []
      let firstByteAt: number | undefined
      let settled = false
      const finish = (error: Error | undefined): void => {
        if (settled) return
        settled = true
        onFail(new Error('response ended before its first byte'))
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks), startedAt, headersAt, firstByteAt, endAt: performance.now(), error })
      }
      res.on('data', (chunk: Buffer) => {
        if (firstByteAt === undefined) {
          firstByteAt = performance.now()
          onFirst()
        }
        chunks.push(chunk)
      })
      res.on('end', () => finish(res.complete ? undefined : new Error('response incomplete')))
      res.on('error', (err) => finish(err))
      res.on('close', () => finish(res.complete ? undefined : new Error('response closed before it completed')))
    })
    req.on('error', (err) => {
      onFail(err)
      reject(err)
    })
  })
  firstByte.catch(() => {})
  return { firstByte, done }
}

async function eventually (what: string, attempt: () => Promise<boolean>, ms = 15_000): Promise<void> {
  const until = Date.now() + ms
  while (!(await attempt())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 25))
  }
}

/** The demo origin's bytes for `/synthetic/<name>-<bytes>.<ext>`. */
function bodyOf (path: string): Buffer {
  const m = /^\/synthetic\/(.+)-(\d+)\.(\w+)$/.exec(path)
  if (m === null) throw new Error(`not a synthetic path: ${path}`)
  return syntheticBody(m[1]!, Number(m[2]), m[3]!)
}

/** Paths whose first-choice shield is `shieldUrl`. */
function pathsOn (chain: UpstreamChain, shieldUrl: string, n: number, tag: string, bytes: number): string[] {
  return pathsRankedFirst(chain, shieldUrl.slice('http://'.length), n, tag, bytes)
}

t.test('origin → 2 shields → 2 edges: 50 clients per edge on one cold segment, exactly 1 origin request', async (t) => {
  const o = await startTestOrigin(t)
  const shields = [
    await startShield(t, { id: 'shield-a', origins: [{ url: o.url }] }),
    await startShield(t, { id: 'shield-b', origins: [{ url: o.url }] }),
  ]
  const edges = [await startEdge(t, 'edge-1', shields, o.url), await startEdge(t, 'edge-2', shields, o.url)]
  const size = 188 * 5000
  const path = `/synthetic/herd-${size}.ts`
  o.setFault(path, { bytesPerSecond: size * 2 }) // ~0.5 s, so the fills overlap
  const expected = syntheticBody('herd', size, 'ts')
  const results = await Promise.all(edges.flatMap((e) => Array.from({ length: 50 }, () => fetchRaw(e.node.url + path))))
  t.equal(o.count(path), 1, 'the origin saw one request')
  t.equal(results.filter((r) => r.status === 200 && r.error === undefined && r.body.equals(expected)).length, 100, 'all 100 clients got the whole segment')
  const owner = edges[0]!.chain.rank(path)[0]!
  t.equal(edges[1]!.chain.rank(path)[0], owner, 'both edges pick the same shield for the key')
  const ownerShield = shields.find((s) => s.node.url.endsWith(owner))!
  const other = shields.find((s) => s !== ownerShield)!
  t.ok(results.every((r) => String(r.headers['cache-status']).startsWith(`streamedge-${ownerShield.node === shields[0]!.node ? 'shield-a' : 'shield-b'};`)), 'every response came through the owning shield')
  t.equal(await other.node.metrics.requests.value(), 0, 'the other shield was not involved')
  t.equal(await ownerShield.node.metrics.requests.value(), 2, 'the owning shield saw one fill per edge')
})

t.test('a shield killed mid-transfer: its clients see an aborted response, the next requests go to the other shield, then back once it recovers', async (t) => {
  const o = await startTestOrigin(t)
  const dirs = { a: await tempDir(t), b: await tempDir(t) }
  let a = await startShield(t, { id: 'shield-a', origins: [{ url: o.url }], cacheDir: dirs.a })
  const b = await startShield(t, { id: 'shield-b', origins: [{ url: o.url }], cacheDir: dirs.b })
  const edge = await startEdge(t, 'edge-1', [a, b], o.url)
  const size = 188 * 4000
  const [victim, second, third] = pathsOn(edge.chain, a.node.url, 3, 'kill', size)
  o.setFault(victim!, { bytesPerSecond: 250_000 }) // ~3 s transfer

  const downloads = Array.from({ length: 10 }, () => download(edge.node.url + victim!))
  await Promise.all(downloads.map((d) => d.firstByte))
  const killed = a.node.close() // shutdownGraceMs 0: in-flight responses are cut at once
  const results = await Promise.all(downloads.map((d) => d.done))
  for (const r of results) {
    t.equal(r.status, 200, 'the head was already out')
    t.ok(r.error !== undefined, 'the transfer was aborted, not ended')
    t.ok(r.body.length < size, `short body (${r.body.length} of ${size}) never presented as complete`)
  }
  o.clearFaults()

  const retry = await fetchRaw(edge.node.url + victim!)
  t.equal(retry.status, 200)
  t.equal(retry.error, undefined)
  t.ok(retry.body.equals(bodyOf(victim!)), 'the next request got the whole object')
  t.match(retry.headers['cache-status'], /^streamedge-shield-b;/, 'from the other shield')
  for (const path of [second!, third!]) {
    const r = await fetchRaw(edge.node.url + path)
    t.equal(r.status, 200)
    t.match(r.headers['cache-status'], /^streamedge-shield-b;/, `${path} (ranked to shield-a) is served by shield-b`)
  }
  t.equal(edge.chain.health()[0]?.state === 'closed' ? 'closed' : 'not closed', 'not closed', 'shield-a is marked down')

  await killed
  a = await startShield(t, { id: 'shield-a', origins: [{ url: o.url }], cacheDir: dirs.a, port: a.port })
  let n = 0
  await eventually('requests ranked to shield-a to reach it again', async () => {
    const path = pathsOn(edge.chain, a.node.url, ++n, 'back', 1880)[n - 1]!
    const r = await fetchRaw(edge.node.url + path)
    return r.status === 200 && /^streamedge-shield-a;/.test(String(r.headers['cache-status']))
  })
  t.equal(edge.chain.health()[0]?.state, 'closed', 'shield-a is back in rotation')
})

t.test('primary origin down: the secondary serves through the shield', async (t) => {
  const secondary = await startTestOrigin(t)
  const shield = await startShield(t, { id: 'shield-a', origins: [{ url: await deadOriginUrl(), name: 'primary' }, { url: secondary.url, name: 'secondary', priority: 1 }] })
  const edge = await startEdge(t, 'edge-1', [shield], secondary.url, { allowDirectOrigin: false })
  for (let i = 0; i < 3; i++) {
    const path = `/synthetic/fo-${i}-1880.ts`
    const r = await fetchRaw(edge.node.url + path)
    t.equal(r.status, 200)
    t.ok(r.body.equals(bodyOf(path)))
    t.equal(secondary.count(path), 1)
  }
  t.match(shield.pool.health(), [{ name: 'primary', state: 'open' }, { name: 'secondary', state: 'closed' }])
})

t.test('primary origin answering 503: the secondary serves, and the primary stops being asked once its breaker opens', async (t) => {
  const primary = await startTestOrigin(t)
  const secondary = await startTestOrigin(t)
  primary.setFault('/synthetic/*', { status: 503 })
  const shield = await startShield(t, { id: 'shield-a', origins: [{ url: primary.url, name: 'primary' }, { url: secondary.url, name: 'secondary', priority: 1 }] })
  const edge = await startEdge(t, 'edge-1', [shield], secondary.url)
  for (let i = 0; i < 5; i++) t.equal((await fetchRaw(`${edge.node.url}/synthetic/p503-${i}-1880.ts`)).status, 200)
  t.equal(primary.totalRequests(), 2, 'two failures opened the primary\'s breaker (threshold 2)')
})

t.test('every origin down: a 502 with each tier in Cache-Status; the edge does not go to the origin itself', async (t) => {
  const edgeDirect = await startTestOrigin(t) // a live origin the edge could reach: it must not be used
  const shield = await startShield(t, { id: 'shield-a', origins: [{ url: await deadOriginUrl(), name: 'a' }, { url: await deadOriginUrl(), name: 'b', priority: 1 }] })
  const edge = await startEdge(t, 'edge-1', [shield], edgeDirect.url, { allowDirectOrigin: true })
  const r = await fetchRaw(`${edge.node.url}/synthetic/down-1880.ts`)
  t.equal(r.status, 502)
  t.match(r.headers['cache-status'], /^streamedge-shield-a; fwd=uri-miss; detail=CDN_ERR_UPSTREAM_\w+, streamedge-edge-1; fwd=uri-miss; fwd-status=502/)
  t.equal(edgeDirect.totalRequests(), 0, 'the shield already tried the origins; the edge does not pile on')
  t.equal(edge.chain.health()[0]?.state, 'closed', 'an origin outage does not mark the shield down')
})

t.test('every origin down, stale-if-error allowed: both tiers serve stale; not allowed: 502', async (t) => {
  const o = await startTestOrigin(t)
  const clock = { ms: Date.now() }
  const now = (): number => clock.ms
  const shield = await startShield(t, { id: 'shield-a', origins: [{ url: o.url }], now })
  const edge = await startEdge(t, 'edge-1', [shield], o.url, { now })
  o.setFault('/synthetic/sie-1880.ts', { headers: { 'cache-control': 'max-age=1, stale-if-error=600' } })
  o.setFault('/synthetic/strict-1880.ts', { headers: { 'cache-control': 'max-age=1' } })
  t.equal((await fetchRaw(`${edge.node.url}/synthetic/sie-1880.ts`)).status, 200)
  t.equal((await fetchRaw(`${edge.node.url}/synthetic/strict-1880.ts`)).status, 200)
  await o.close()
  clock.ms += 10_000
  const stale = await fetchRaw(`${edge.node.url}/synthetic/sie-1880.ts`)
  t.equal(stale.status, 200, 'stale served')
  t.ok(stale.body.equals(syntheticBody('sie', 1880, 'ts')))
  t.match(stale.headers['cache-status'], /stale/)
  const strict = await fetchRaw(`${edge.node.url}/synthetic/strict-1880.ts`)
  t.ok(strict.status === 502 || strict.status === 504, `no stale without permission (${strict.status})`)
})

t.test('origin protection: 500 concurrent distinct misses against a cap of 20', async (t) => {
  const o = await startTestOrigin(t)
  o.setFault('/synthetic/*', { delayMs: 200 })
  const queueTimeoutMs = 400
  const shield = await startShield(t, {
    id: 'shield-a',
    origins: [{ url: o.url, name: 'origin' }],
    pool: { maxConcurrent: 20, maxQueue: 200, queueTimeoutMs, retryAfterSeconds: 2 },
  })
  const paths = Array.from({ length: 500 }, (_, i) => `/synthetic/storm-${i}-1880.ts`)
  const results = await Promise.all(paths.map((p) => fetchRaw(shield.node.url + p)))
  t.ok(o.maxInFlight() <= 20, `the origin never saw more than 20 at once (max ${o.maxInFlight()})`)
  const ok = results.filter((r) => r.status === 200)
  const refused = results.filter((r) => r.status === 503)
  t.equal(ok.length + refused.length, 500, 'every request got an answer: 200 or 503')
  t.ok(ok.length >= 20, `${ok.length} served`)
  t.ok(refused.length >= 1, `${refused.length} refused`)
  t.ok(refused.every((r) => /detail=CDN_ERR_UPSTREAM_OVERLOADED/.test(String(r.headers['cache-status']))), 'refusals say why')
  t.equal(o.totalRequests(), ok.length, 'refused requests never reached the origin')
  const stats = shield.pool.health()[0]!
  t.equal(stats.rejectedQueueFull + stats.rejectedQueueTimeout, refused.length)
  t.comment(`refused: ${stats.rejectedQueueFull} with the queue full, ${stats.rejectedQueueTimeout} at the queue deadline`)
  t.equal(stats.state, 'closed', 'overload is not an origin failure')
  t.ok(results.every((r) => r.error === undefined), 'no aborted responses')
  // Generous bound: a hung request would sit until the test's timeout instead.
  const slowest = Math.max(...results.map((r) => r.endAt - r.startedAt))
  t.ok(slowest < queueTimeoutMs + TIMEOUTS.firstByteTimeoutMs + 10_000, `slowest request ${Math.round(slowest)} ms`)
})

t.test('overload 503s carry Retry-After to the client', async (t) => {
  const o = await startTestOrigin(t)
  o.setFault('/synthetic/*', { delayMs: 200 })
  const shield = await startShield(t, { id: 'shield-a', origins: [{ url: o.url }], pool: { maxConcurrent: 1, maxQueue: 0, retryAfterSeconds: 2 } })
  // Either request may reach the shield first: the one that finds the single slot taken is refused.
  const answers = await Promise.all([fetchRaw(`${shield.node.url}/synthetic/ra-1-1880.ts`), fetchRaw(`${shield.node.url}/synthetic/ra-2-1880.ts`)])
  t.same(answers.map((a) => a.status).sort(), [200, 503])
  t.equal(answers.find((a) => a.status === 503)?.headers['retry-after'], '2')
})
