/**
 * Adversarial tests of the shield tier and the edge's upstream chain, over real sockets:
 * origins written with node:http / node:net that misbehave exactly as each case needs
 * (refuse, hang, reset, answer 503, die mid-body), shields (startCacheNode + OriginPool)
 * and edges (startCacheNode + UpstreamChain) on 127.0.0.1 port 0.
 */
import http from 'node:http'
import net from 'node:net'
import type { AddressInfo } from 'node:net'
import { Readable } from 'node:stream'
import t, { type Test } from 'tap'
import type { BreakerSettings } from '../../edge/proxy/circuit-breaker.ts'
import { UpstreamChain } from '../../edge/proxy/upstream-chain.ts'
import { HttpUpstream } from '../../edge/proxy/upstream.ts'
import { isCdnError } from '../../lib/errors.ts'
import { OriginPool, type OriginPoolOptions, type OriginSpec } from '../../shield/origin-pool.ts'
import { Forwarding } from '../../edge/proxy/forwarding.ts'
import { startTestNode, type TestNode } from '../helpers/cache-node.ts'
import { fetchRaw } from '../helpers/http-client.ts'
import { readBody, upstreamGet } from '../helpers/upstream-client.ts'

const TIMEOUTS = { connectTimeoutMs: 1000, firstByteTimeoutMs: 5000, idleTimeoutMs: 5000, keepAliveTimeoutMs: 2000 }
const BREAKER: BreakerSettings = { failureThreshold: 2, errorRatePercent: 0, minRequests: 0, windowMs: 10_000, coolDownMs: 60_000 }

interface Seen {
  readonly method: string
  readonly url: string
  readonly headers: http.IncomingHttpHeaders
  readonly body: Buffer
}

interface TestServer {
  readonly url: string
  readonly port: number
  readonly seen: Seen[]
  /** Requests whose response has not closed yet, and the most seen at once. */
  active: number
  maxActive: number
  close (): Promise<void>
}

type Handler = (req: http.IncomingMessage, res: http.ServerResponse, body: Buffer) => void

/** A node:http origin that records each request (with its body) and counts requests in flight. */
async function startServer (t: Test, handler: Handler): Promise<TestServer> {
  const sockets = new Set<net.Socket>()
  const state: TestServer = {
    url: '',
    port: 0,
    seen: [],
    active: 0,
    maxActive: 0,
    close: async () => {
      for (const s of sockets) s.destroy()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
  const server = http.createServer((req, res) => {
    state.active++
    if (state.active > state.maxActive) state.maxActive = state.active
    let counted = true
    const done = (): void => {
      if (!counted) return
      counted = false
      state.active--
    }
    // 'close' comes when the response is done or its connection is gone, whichever is first.
    res.once('close', done)
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const body = Buffer.concat(chunks)
      state.seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body })
      handler(req, res, body)
    })
  })
  server.on('connection', (s) => {
    sockets.add(s)
    s.once('close', () => sockets.delete(s))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as AddressInfo).port
  Object.assign(state, { url: `http://127.0.0.1:${port}`, port })
  t.teardown(() => state.close())
  return state
}

/** A port that refuses connections. */
async function refusingUrl (): Promise<string> {
  const s = net.createServer()
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve))
  const port = (s.address() as AddressInfo).port
  await new Promise<void>((resolve) => s.close(() => resolve()))
  return `http://127.0.0.1:${port}`
}

function pool (t: Test, options: Partial<OriginPoolOptions> & Pick<OriginPoolOptions, 'origins'>): OriginPool {
  const p = new OriginPool({ timeouts: TIMEOUTS, maxConcurrent: 8, maxQueue: 64, queueTimeoutMs: 5000, retries: 2, breaker: BREAKER, ...options })
  t.teardown(() => p.close())
  return p
}

function http1 (url: string, name: string, timeouts: Partial<typeof TIMEOUTS> = {}): HttpUpstream {
  return new HttpUpstream({ url, name, ...TIMEOUTS, ...timeouts, connections: 16 })
}

async function startShieldNode (t: Test, id: string, origins: readonly OriginSpec[], pool?: Partial<OriginPoolOptions>): Promise<{ node: TestNode, pool: OriginPool }> {
  const p = new OriginPool({ origins, timeouts: TIMEOUTS, maxConcurrent: 8, maxQueue: 64, queueTimeoutMs: 5000, retries: 2, breaker: BREAKER, ...pool })
  const node = await startTestNode(t, { role: 'shield', id, upstream: p, shutdownGraceMs: 0, accessLog: false })
  return { node, pool: p }
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

async function waitFor (cond: () => boolean, what: string, ms = 5000): Promise<void> {
  const until = Date.now() + ms
  while (!cond()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`)
    await sleep(5)
  }
}

// ---------------------------------------------------------------------------------------------
// Origin protection

t.test('the origin cap holds under aborts: queued, before the head and mid-body (counted at a real origin)', async (t) => {
  const origin = await startServer(t, (_req, res) => {
    // Head after a little while, then a body in slices, so aborts land in every phase.
    setTimeout(() => {
      if (res.destroyed) return
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(8 * 1024) })
      let i = 0
      const tick = (): void => {
        if (res.destroyed) return
        res.write(Buffer.alloc(1024, i))
        if (++i === 8) { res.end(); return }
        setTimeout(tick, 3)
      }
      tick()
    }, 5)
  })
  const p = pool(t, { origins: [{ url: origin.url, name: 'o' }], maxConcurrent: 3, maxQueue: 200, retries: 0 })
  const jobs: Array<Promise<void>> = []
  for (let i = 0; i < 90; i++) {
    const ac = new AbortController()
    const mode = i % 3
    jobs.push((async () => {
      if (mode === 0) setTimeout(() => ac.abort(), i % 7) // aborted queued or before the head
      try {
        const res = await p.request({ method: 'GET', path: `/x/${i}`, headers: {}, signal: ac.signal })
        if (mode === 1) {
          // The consumer drops the body after its first chunk.
          res.body.once('data', () => res.body.destroy())
          res.body.on('error', () => {})
          await new Promise((resolve) => res.body.once('close', resolve))
          return
        }
        await readBody(res.body)
      } catch (err) {
        if (!isCdnError(err)) throw err
      }
    })())
  }
  await Promise.all(jobs)
  await waitFor(() => origin.active === 0, 'origin idle')
  t.ok(origin.maxActive <= 3, `origin saw at most 3 requests at once (saw ${origin.maxActive})`)
  t.equal(p.health()[0]!.active, 0, 'every slot was given back')
  t.equal(p.health()[0]!.queued, 0, 'nobody left in the queue')
  t.equal(p.health()[0]!.state, 'closed', 'client aborts are not origin failures')
})

t.test('origin failover: refused, then hanging, then 503, then a good one; each tried once and charged', async (t) => {
  const refused = await refusingUrl()
  const hanging = await startServer(t, () => {}) // never answers
  const busy = await startServer(t, (_req, res) => res.writeHead(503, { 'content-length': '4' }).end('busy'))
  const good = await startServer(t, (_req, res) => res.writeHead(200, { 'content-length': '2' }).end('ok'))
  const p = pool(t, {
    origins: [
      { url: refused, name: 'refused', priority: 0 },
      { url: hanging.url, name: 'hanging', priority: 1 },
      { url: busy.url, name: 'busy', priority: 2 },
      { url: good.url, name: 'good', priority: 3 },
    ],
    timeouts: { ...TIMEOUTS, firstByteTimeoutMs: 200 },
    retries: 3,
    breaker: { ...BREAKER, failureThreshold: 1 },
  })
  const res = await upstreamGet(p, '/seg.ts')
  t.equal(res.status, 200)
  t.equal(res.bytes.toString(), 'ok')
  t.equal(res.upstream, 'good')
  t.same([hanging.seen.length, busy.seen.length, good.seen.length], [1, 1, 1], 'each origin asked once')
  const states = Object.fromEntries(p.health().map((h) => [h.name, h.state]))
  t.same(states, { refused: 'open', hanging: 'open', busy: 'open', good: 'closed' })
  // With all three failing origins open, the next request goes straight to the good one.
  const again = await upstreamGet(p, '/seg2.ts')
  t.equal(again.upstream, 'good')
  t.equal(busy.seen.length, 1, 'an open origin is not asked again')
})

t.test('a 404 or 4xx from an origin is an answer, not a failure: the breaker stays closed', async (t) => {
  const origin = await startServer(t, (req, res) => {
    const status = req.url === '/gone' ? 410 : req.url === '/bad' ? 400 : 404
    res.writeHead(status, { 'content-length': '0' }).end()
  })
  const backup = await startServer(t, (_req, res) => res.writeHead(200, { 'content-length': '2' }).end('ok'))
  const p = pool(t, { origins: [{ url: origin.url, name: 'main' }, { url: backup.url, name: 'backup', priority: 1 }] })
  for (const path of ['/a', '/gone', '/bad', '/b', '/c', '/d']) {
    const res = await upstreamGet(p, path)
    t.ok(res.status >= 400 && res.status < 500, `${path}: ${res.status} from main`)
    t.equal(res.upstream, 'main')
  }
  t.equal(p.health().find((h) => h.name === 'main')!.state, 'closed')
  t.equal(backup.seen.length, 0, 'a 4xx never fails over')
})

t.test('an origin that resets the connection is a failure and fails over', async (t) => {
  const resetter = await startServer(t, (req) => req.socket.destroy())
  const good = await startServer(t, (_req, res) => res.writeHead(200, { 'content-length': '2' }).end('ok'))
  const p = pool(t, { origins: [{ url: resetter.url, name: 'reset' }, { url: good.url, name: 'good', priority: 1 }] })
  for (let i = 0; i < 3; i++) t.equal((await upstreamGet(p, `/r${i}`)).upstream, 'good')
  t.equal(p.health().find((h) => h.name === 'reset')!.state, 'open')
  t.equal(resetter.seen.length, 2, 'asked until the breaker opened, then skipped')
})

t.test('origin breaker: half-open trial after the cool-down, closes on success; never stuck open', async (t) => {
  let now = 0
  let down = true
  const origin = await startServer(t, (_req, res) => {
    if (down) res.writeHead(503, { 'content-length': '0' }).end()
    else res.writeHead(200, { 'content-length': '2' }).end('ok')
  })
  const p = pool(t, { origins: [{ url: origin.url, name: 'o' }], now: () => now, breaker: { ...BREAKER, coolDownMs: 1000 } })
  for (let i = 0; i < 2; i++) t.equal((await upstreamGet(p, `/a${i}`)).status, 503)
  t.equal(p.health()[0]!.state, 'open')
  await t.rejects(p.request({ method: 'GET', path: '/a3', headers: {} }), { code: 'CDN_ERR_UPSTREAM_UNAVAILABLE' }, 'open: refused without asking')
  t.equal(origin.seen.length, 2)
  down = false
  now = 1000
  t.equal(p.health()[0]!.state, 'half-open')
  t.equal((await upstreamGet(p, '/a4')).status, 200)
  t.equal(p.health()[0]!.state, 'closed')
})

// ---------------------------------------------------------------------------------------------
// Edge → shields chain

t.test('chain: a 404 from a shield is not a failure; a reset is', async (t) => {
  const notFound = await startServer(t, (_req, res) => res.writeHead(404, { 'content-length': '0' }).end())
  const resetter = await startServer(t, (req) => req.socket.destroy())
  const origin = await startServer(t, (_req, res) => res.writeHead(200, { 'content-length': '6' }).end('origin'))
  const chain = new UpstreamChain({
    shields: [{ upstream: http1(notFound.url, 'nf') }, { upstream: http1(resetter.url, 'rs') }],
    origin: http1(origin.url, 'origin'),
    breaker: BREAKER,
  })
  t.teardown(() => chain.close())
  let nf = 0
  let rs = 0
  for (let i = 0; i < 40; i++) {
    const path = `/k${i}`
    const res = await upstreamGet(chain, path)
    if (chain.rank(path)[0] === 'nf') {
      nf++
      t.equal(res.status, 404)
    } else {
      rs++
      t.ok(res.upstream === 'nf' || res.upstream === 'origin', 'reset shield failed over')
    }
  }
  t.ok(nf > 0 && rs > 0, 'both shields ranked first for some keys')
  const health = Object.fromEntries(chain.health().map((h) => [h.name, h.state]))
  t.same(health, { nf: 'closed', rs: 'open' })
})

t.test('chain: a shield that dies mid-body is not retried; the caller sees an error, never two bodies spliced', async (t) => {
  const body = Buffer.alloc(64 * 1024, 'a')
  const dying = await startServer(t, (req, res) => {
    res.writeHead(200, { 'content-length': String(body.length) })
    res.write(body.subarray(0, 1000), () => setTimeout(() => req.socket.destroy(), 20))
  })
  const other = await startServer(t, (_req, res) => res.writeHead(200, { 'content-length': String(body.length) }).end(Buffer.alloc(body.length, 'b')))
  const origin = await startServer(t, (_req, res) => res.writeHead(200, { 'content-length': String(body.length) }).end(Buffer.alloc(body.length, 'c')))
  const chain = new UpstreamChain({
    shields: [{ upstream: http1(dying.url, 'dying') }, { upstream: http1(other.url, 'other') }],
    origin: http1(origin.url, 'origin'),
    breaker: BREAKER,
  })
  t.teardown(() => chain.close())
  let path = ''
  for (let i = 0; path === ''; i++) if (chain.rank(`/p${i}`)[0] === 'dying') path = `/p${i}`
  const res = await chain.request({ method: 'GET', path, headers: {} })
  const { bytes, error } = await readBody(res.body)
  t.ok(error, 'the body fails')
  t.ok(bytes.length < body.length, 'short')
  t.ok(bytes.every((b) => b === 0x61), 'only the first shield\'s bytes')
  t.equal(other.seen.length + origin.seen.length, 0, 'nobody else asked')
})

t.test('chain: POST goes to one shield once with its body, and skips an open shield without losing the body', async (t) => {
  const bodies: string[] = []
  const a = await startServer(t, (_req, res, body) => { bodies.push(`a:${body.toString()}`); res.writeHead(503, { 'content-length': '0' }).end() })
  const b = await startServer(t, (_req, res, body) => { bodies.push(`b:${body.toString()}`); res.writeHead(201, { 'content-length': '0' }).end() })
  const origin = await startServer(t, (_req, res) => res.writeHead(200, { 'content-length': '0' }).end())
  const chain = new UpstreamChain({
    shields: [{ upstream: http1(a.url, 'a') }, { upstream: http1(b.url, 'b') }],
    origin: http1(origin.url, 'origin'),
    breaker: { ...BREAKER, failureThreshold: 1 },
  })
  t.teardown(() => chain.close())
  let path = ''
  for (let i = 0; path === ''; i++) if (chain.rank(`/post${i}`)[0] === 'a') path = `/post${i}`
  const first = await chain.request({ method: 'POST', path, headers: { 'content-type': 'text/plain' }, body: Readable.from([Buffer.from('one')]) })
  await readBody(first.body)
  t.equal(first.status, 503, 'a POST is not failed over')
  t.same(bodies, ['a:one'])
  t.equal(chain.health().find((h) => h.name === 'a')!.state, 'open')
  const second = await chain.request({ method: 'POST', path, headers: { 'content-type': 'text/plain' }, body: Readable.from([Buffer.from('two')]) })
  await readBody(second.body)
  t.equal(second.status, 201)
  t.same(bodies, ['a:one', 'b:two'], 'the open shield is skipped and the body reaches the next one whole')
  t.equal(origin.seen.length, 0)
})

// ---------------------------------------------------------------------------------------------
// Whole topologies: client → edge → shield → origin

async function startEdgeNode (t: Test, id: string, shields: readonly TestNode[], origin: string, extra: { trustedProxies?: string[], allowDirectOrigin?: boolean } = {}): Promise<{ node: TestNode, chain: UpstreamChain }> {
  const chain = new UpstreamChain({
    shields: shields.map((s) => ({ id: s.url, upstream: http1(s.url, s.url.slice(7)) })),
    origin: http1(origin, 'origin'),
    allowDirectOrigin: extra.allowDirectOrigin ?? true,
    breaker: BREAKER,
  })
  const node = await startTestNode(t, { id, upstream: chain, shutdownGraceMs: 0, accessLog: false, ...(extra.trustedProxies === undefined ? {} : { trustedProxies: extra.trustedProxies }) })
  return { node, chain }
}

t.test('hop-by-hop fields are stripped at every hop; Via, CDN-Loop and X-Forwarded-For grow; Host is the origin\'s; POST bodies pass through uncached', async (t) => {
  const origin = await startServer(t, (_req, res, body) => res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'max-age=600', 'content-length': String(body.length) }).end(body))
  // The shield trusts the edge (everything here is 127.0.0.1), so the client's address survives.
  const shieldNode = await startTestNode(t, { role: 'shield', id: 'shield-b', upstream: new OriginPool({ origins: [{ url: origin.url, name: 'o' }], timeouts: TIMEOUTS, maxConcurrent: 8, maxQueue: 8, queueTimeoutMs: 5000, retries: 0, breaker: BREAKER }), trustedProxies: ['127.0.0.1'], shutdownGraceMs: 0, accessLog: false })
  const { node: edge } = await startEdgeNode(t, 'edge-a', [shieldNode], origin.url)
  const hopHeaders = {
    connection: 'x-foo, x-bar',
    'x-foo': 'secret-hop',
    'x-bar': 'another',
    'keep-alive': 'timeout=5',
    te: 'trailers',
    upgrade: 'h2c',
    'proxy-authorization': 'Basic Zm9vOmJhcg==',
    'proxy-connection': 'keep-alive',
    'x-forwarded-for': '203.0.113.9',
    'x-end-to-end': 'kept',
  }
  for (const method of ['POST', 'POST', 'GET']) {
    const before = origin.seen.length
    const body = method === 'POST' ? `payload-${before}` : undefined
    const res = await fetchRaw(`${edge.url}/api/thing`, { method, headers: { ...hopHeaders, 'content-type': 'text/plain' }, ...(body === undefined ? {} : { body }) })
    t.equal(res.status, 200, `${method} answered`)
    t.equal(origin.seen.length, before + 1, `${method} reached the origin`)
    const seen = origin.seen.at(-1)!
    t.equal(seen.method, method)
    if (body !== undefined) t.equal(seen.body.toString(), body, 'the request body arrived whole')
    for (const name of ['x-foo', 'x-bar', 'keep-alive', 'te', 'upgrade', 'proxy-authorization', 'proxy-connection']) {
      t.equal(seen.headers[name], undefined, `${method}: ${name} stripped`)
    }
    t.equal(seen.headers['x-end-to-end'], 'kept', 'end-to-end fields pass')
    t.equal(seen.headers.host, `127.0.0.1:${origin.port}`, 'Host is the origin\'s')
    t.match(seen.headers.via, /^1\.1 streamedge-edge-a, 1\.1 streamedge-shield-b$/, 'Via grows per hop')
    t.equal(seen.headers['cdn-loop'], 'streamedge-edge-a, streamedge-shield-b', 'CDN-Loop grows per hop')
    // The edge does not trust the client's own X-Forwarded-For; the shield trusts the edge and appends it.
    t.equal(seen.headers['x-forwarded-for'], '127.0.0.1, 127.0.0.1', 'client, then edge')
  }
})

t.test('a shield whose origin is an edge that goes back to the shield: 508, not a loop', async (t) => {
  // Reserve a port for the edge so the shield can point at it before it exists.
  const probe = net.createServer()
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve))
  const edgePort = (probe.address() as AddressInfo).port
  await new Promise<void>((resolve) => probe.close(() => resolve()))
  const shield = await startShieldNode(t, 'loop-shield', [{ url: `http://127.0.0.1:${edgePort}`, name: 'edge-as-origin' }])
  const chain = new UpstreamChain({
    shields: [{ upstream: http1(shield.node.url, 'shield') }],
    origin: http1(shield.node.url, 'origin-is-shield'),
    breaker: BREAKER,
  })
  const edge = await startTestNode(t, { id: 'loop-edge', upstream: chain, listen: { host: '127.0.0.1', port: edgePort }, shutdownGraceMs: 0, accessLog: false })
  const res = await fetchRaw(`${edge.url}/vod/seg.ts`)
  t.equal(res.status, 508, 'loop detected')
  t.equal(shield.pool.health()[0]!.state, 'closed', 'a 508 is not charged to the origin')
  t.equal(chain.health()[0]!.state, 'closed', 'nor to the shield')
})

t.test('error-rate breaker: outcomes from before it opened do not count again after it closed', async (t) => {
  // A node starts with its upstream not up yet (the usual compose start): requests fail,
  // the error rate opens the breaker, a trial closes it. The window restarts empty there;
  // two requests later (one of them failing) are far below minRequests and must not re-open it.
  let now = 0
  let status = 503
  const origin = await startServer(t, (_req, res) => res.writeHead(status, { 'content-length': '0' }).end())
  const p = pool(t, {
    origins: [{ url: origin.url, name: 'o' }],
    now: () => now,
    retries: 0,
    breaker: { failureThreshold: 0, errorRatePercent: 50, minRequests: 4, windowMs: 10_000, coolDownMs: 1000 },
  })
  for (let i = 0; i < 4; i++) t.equal((await upstreamGet(p, `/boot${i}`)).status, 503)
  t.equal(p.health()[0]!.state, 'open', '4 of 4 failed: open')
  now = 1000
  status = 200
  t.equal((await upstreamGet(p, '/trial')).status, 200)
  t.equal(p.health()[0]!.state, 'closed', 'the trial closed it')
  t.equal((await upstreamGet(p, '/after-ok')).status, 200)
  status = 503
  t.equal((await upstreamGet(p, '/after-fail')).status, 503)
  t.equal(p.health()[0]!.state, 'closed', '1 failure of 2 requests is below minRequests: still closed')
})

t.test('every origin failing (503 or hanging, the backup refusing): the shield serves stale-if-error', async (t) => {
  let clock = Date.now()
  let mode: 'ok' | '503' | 'hang' = 'ok'
  const body = Buffer.alloc(1880, 0x47)
  const origin = await startServer(t, (_req, res) => {
    if (mode === 'ok') res.writeHead(200, { 'content-type': 'video/mp2t', 'cache-control': 'max-age=1, stale-if-error=600', 'content-length': String(body.length) }).end(body)
    else if (mode === '503') res.writeHead(503, { 'content-length': '0' }).end()
  })
  const refused = await refusingUrl()
  const p = new OriginPool({
    origins: [{ url: origin.url, name: 'o', priority: 0 }, { url: refused, name: 'dead', priority: 1 }],
    timeouts: { ...TIMEOUTS, firstByteTimeoutMs: 300 },
    maxConcurrent: 4,
    maxQueue: 8,
    queueTimeoutMs: 5000,
    retries: 2,
    breaker: { ...BREAKER, failureThreshold: 100 },
  })
  const shield = await startTestNode(t, { role: 'shield', id: 'stale-shield', upstream: p, now: () => clock, shutdownGraceMs: 0, accessLog: false })
  const { node: edge } = await startEdgeNode(t, 'stale-edge', [shield], origin.url)
  const first = await fetchRaw(`${edge.url}/vod/a.ts`)
  t.equal(first.status, 200)
  for (const m of ['503', 'hang'] as const) {
    mode = m
    clock += 5000
    const viaShield = await fetchRaw(`${shield.url}/vod/a.ts`)
    t.equal(viaShield.status, 200, `${m}: the shield serves stale`)
    t.ok(viaShield.body.equals(body), `${m}: the stored bytes`)
  }
})

t.test('hop-by-hop response fields from the origin never reach the client, cached or passed through', async (t) => {
  const origin = await startServer(t, (req, res) => {
    res.setHeader('connection', 'x-secret, keep-alive')
    res.setHeader('x-secret', 'hop-only')
    res.setHeader('proxy-authenticate', 'Basic realm="origin"')
    res.setHeader('upgrade', 'h2c')
    res.setHeader('x-end', 'kept')
    res.setHeader('cache-control', req.url === '/nostore' ? 'no-store' : 'max-age=60')
    res.writeHead(200, { 'content-length': '2', 'content-type': 'text/plain' }).end('ok')
  })
  const shield = await startShieldNode(t, 'hop-shield', [{ url: origin.url, name: 'o' }])
  const { node: edge } = await startEdgeNode(t, 'hop-edge', [shield.node], origin.url)
  for (const [method, path] of [['GET', '/cached'], ['GET', '/cached'], ['GET', '/nostore'], ['POST', '/post']] as const) {
    const res = await fetchRaw(`${edge.url}${path}`, { method, ...(method === 'POST' ? { body: 'x' } : {}) })
    t.equal(res.status, 200, `${method} ${path}`)
    t.equal(res.body.toString(), 'ok')
    t.equal(res.headers['x-end'], 'kept')
    for (const name of ['x-secret', 'proxy-authenticate', 'upgrade']) t.equal(res.headers[name], undefined, `${method} ${path}: ${name} stripped`)
  }
})

t.test('client aborts through edge and shield: the origin cap holds, slots and queue drain, no breaker is charged', async (t) => {
  const origin = await startServer(t, (_req, res) => {
    setTimeout(() => {
      if (res.destroyed) return
      res.writeHead(200, { 'content-length': String(4096), 'cache-control': 'no-store' })
      res.write(Buffer.alloc(2048, 1))
      setTimeout(() => { if (!res.destroyed) res.end(Buffer.alloc(2048, 2)) }, 30)
    }, 20)
  })
  const shield = await startShieldNode(t, 'abort-shield', [{ url: origin.url, name: 'o' }], { maxConcurrent: 2, maxQueue: 100 })
  const { node: edge, chain } = await startEdgeNode(t, 'abort-edge', [shield.node], origin.url)
  const jobs: Array<Promise<unknown>> = []
  for (let i = 0; i < 30; i++) {
    const method = i % 2 === 0 ? 'POST' : 'GET'
    jobs.push(new Promise<void>((resolve) => {
      const req = http.request(`${edge.url}/api/${i}`, { method, agent: false }, (res) => {
        res.on('data', () => { if (i % 3 === 0) req.destroy() })
        res.on('error', () => {})
        res.on('close', () => resolve())
      })
      req.on('error', () => resolve())
      if (i % 3 === 1) setTimeout(() => req.destroy(), i % 11)
      req.end(method === 'POST' ? 'body' : undefined)
    }))
  }
  await Promise.all(jobs)
  await waitFor(() => origin.active === 0 && shield.pool.health()[0]!.active === 0 && shield.pool.health()[0]!.queued === 0, 'everything idle', 10_000)
  t.ok(origin.maxActive <= 2, `origin saw at most 2 at once (saw ${origin.maxActive})`)
  t.equal(shield.pool.health()[0]!.state, 'closed', 'origin breaker closed')
  t.equal(chain.health()[0]!.state, 'closed', 'shield breaker closed')
  // And the tier still works.
  const after = await fetchRaw(`${edge.url}/api/after`)
  t.equal(after.status, 200)
  t.equal(after.body.length, 4096)
})

t.test('a loop through a proxy that drops CDN-Loop but keeps Via is still refused (RFC 9110 §7.6.3)', async (t) => {
  // P forwards everything it gets back to the edge, Via kept, CDN-Loop dropped.
  let edgeUrl = ''
  let relayed = 0
  const proxy = await startServer(t, (req, res, body) => {
    relayed++
    const headers = { ...req.headers }
    delete headers['cdn-loop']
    delete headers.host
    const out = http.request(`${edgeUrl}${req.url ?? '/'}`, { method: req.method, headers, agent: false }, (up) => {
      res.writeHead(up.statusCode ?? 502, up.headers)
      up.pipe(res)
    })
    out.on('error', () => { if (!res.headersSent) res.writeHead(502).end(); else res.destroy() })
    out.end(body)
  })
  const edge = await startTestNode(t, { id: 'via-edge', origin: proxy.url, lockTimeoutMs: 300, shutdownGraceMs: 0, accessLog: false })
  edgeUrl = edge.url
  const res = await fetchRaw(`${edge.url}/vod/loop.ts`)
  t.equal(res.status, 508, 'the looped request is refused')
  t.equal(relayed, 1, 'the proxy relayed it once')
})

t.test('an origin that stalls mid-body: the client gets a clean error through both tiers, nothing is stored, the next request refetches', async (t) => {
  let stall = true
  const body = Buffer.alloc(4 * 1880, 0x47)
  const origin = await startServer(t, (_req, res) => {
    res.writeHead(200, { 'content-type': 'video/mp2t', 'cache-control': 'max-age=600', 'content-length': String(body.length) })
    if (stall) res.write(body.subarray(0, 1880))
    else res.end(body)
  })
  const shield = await startShieldNode(t, 'stall-shield', [{ url: origin.url, name: 'o' }], { timeouts: { ...TIMEOUTS, idleTimeoutMs: 300 } })
  const { node: edge } = await startEdgeNode(t, 'stall-edge', [shield.node], origin.url)
  const first = await fetchRaw(`${edge.url}/vod/stall.ts`)
  t.ok(first.error, 'the client sees an aborted response, not a short success')
  t.ok(first.body.length < body.length)
  t.ok(first.body.equals(body.subarray(0, first.body.length)), 'what arrived is a prefix of the real body (no splice)')
  t.equal(shield.pool.health()[0]!.active, 0, 'the origin slot was given back')
  stall = false
  const second = await fetchRaw(`${edge.url}/vod/stall.ts`)
  t.equal(second.status, 200)
  t.ok(second.body.equals(body), 'the whole body')
  t.equal(origin.seen.length, 2, 'refetched once')
})

t.test('Forwarding.viaLoops: our name as a Via recipient, whatever the protocol or comment; nothing else', async (t) => {
  const f = new Forwarding({ name: 'streamedge-e1', trustedProxies: [] })
  t.ok(f.viaLoops('1.1 streamedge-e1'))
  t.ok(f.viaLoops('1.1 lb, HTTP/1.1 streamedge-e1 (streamedge)'))
  t.ok(f.viaLoops(['1.0 fred', '1.1\tstreamedge-e1']))
  t.notOk(f.viaLoops('1.1 streamedge-e10, 1.1 streamedge-e2'))
  t.notOk(f.viaLoops('1.1 lb (via streamedge-e1)'), 'a comment naming us is not us')
  t.notOk(f.viaLoops(''))
})

t.test('a dual-stack edge forwards its IPv4 client as a.b.c.d, not ::ffff:a.b.c.d, the address it logs itself', async (t) => {
  const origin = await startServer(t, (_req, res) => res.writeHead(200, { 'content-length': '2', 'cache-control': 'no-store' }).end('ok'))
  let edge: TestNode
  try {
    edge = await startTestNode(t, { id: 'dual-edge', origin: origin.url, listen: { host: '::', port: 0 }, shutdownGraceMs: 0, accessLog: false })
  } catch (err) {
    t.pass(`skipped, no IPv6 here: ${(err as Error).message}`)
    return
  }
  const port = new URL(edge.url).port
  const res = await fetchRaw(`http://127.0.0.1:${port}/who`, { headers: { 'x-forwarded-for': '203.0.113.9' } })
  t.equal(res.status, 200)
  t.equal(origin.seen.at(-1)!.headers['x-forwarded-for'], '127.0.0.1', 'the IPv4 address; the client\'s own claim dropped')
})
