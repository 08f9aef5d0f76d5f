/**
 * Purge fan-out against real HTTP servers standing in for nodes: what each node is sent, one
 * result per node in inventory order whatever it did (purged, refused, failed, reset, hung,
 * redirected, unreachable, no token), all in parallel, each under its own timeout.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import t, { type Test } from 'tap'
import { fanOutPurge } from '../../control-plane/purge-fanout.ts'
import type { NodeSpec } from '../../control-plane/health/node-inventory.ts'
import type { PurgeNodeResult } from '../../lib/protocol/purge.ts'

interface Received {
  readonly method: string
  readonly path: string
  readonly authorization: string | undefined
  readonly contentType: string | undefined
  readonly body: unknown
}

interface FakeNode {
  readonly url: string
  readonly received: Received[]
}

type Handler = (req: IncomingMessage, res: ServerResponse, body: string) => void

/** A node on 127.0.0.1:0 that records every request and answers with `handler`. */
async function fakeNode (t: Test, handler: Handler): Promise<FakeNode> {
  const received: Received[] = []
  const server: Server = createServer((req, res) => {
    let body = ''
    req.setEncoding('utf8')
    req.on('data', (chunk: string) => { body += chunk })
    req.on('end', () => {
      let parsed: unknown = body
      try {
        parsed = JSON.parse(body)
      } catch {}
      received.push({ method: req.method ?? '', path: req.url ?? '', authorization: req.headers.authorization, contentType: req.headers['content-type'], body: parsed })
      handler(req, res, body)
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(async () => {
    server.closeAllConnections()
    await new Promise((resolve) => server.close(resolve))
  })
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, received }
}

/** A port nothing listens on. */
async function closedPort (): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as AddressInfo).port
  await new Promise((resolve) => server.close(resolve))
  return port
}

function node (id: string, url: string, extra: Partial<NodeSpec> = {}): NodeSpec {
  return {
    id, url, role: 'edge', host: new URL(url).host, group: 'g1', lat: 0, lon: 0,
    capacity: { connections: 100, mbps: 1000 }, state: 'active', ...extra,
  }
}

const json = (status: number, body: unknown): Handler => (_req, res) => {
  res.writeHead(status, { 'content-type': 'application/json' })
  res.end(JSON.stringify(body))
}

const SHARED = 'shared-admin-token'
const tokenFor = (n: NodeSpec): string => n.adminToken ?? SHARED

/** The fields of a result that do not depend on timing. */
function shape (r: PurgeNodeResult | undefined): Omit<PurgeNodeResult, 'durationMs'> | undefined {
  if (r === undefined) return undefined
  const { durationMs: _ignored, ...rest } = r
  return rest
}

t.test('every node is sent POST /admin/purge with its bearer token and the request as JSON', async (t) => {
  const edge = await fakeNode(t, json(200, { purged: 3 }))
  const shield = await fakeNode(t, json(200, { purged: 0 }))
  const nodes = [node('edge-1', edge.url), node('shield-1', shield.url, { role: 'shield', adminToken: 'shield-own-token' })]
  const result = await fanOutPurge(nodes, { prefix: '/vod/t1/' }, { tokenFor, timeoutMs: 5000 })

  t.same(edge.received, [{ method: 'POST', path: '/admin/purge', authorization: `Bearer ${SHARED}`, contentType: 'application/json', body: { prefix: '/vod/t1/' } }])
  t.same(shield.received, [{ method: 'POST', path: '/admin/purge', authorization: 'Bearer shield-own-token', contentType: 'application/json', body: { prefix: '/vod/t1/' } }])
  t.equal(result.ok, true)
  t.same(result.request, { prefix: '/vod/t1/' })
  t.same(result.results.map(shape), [
    { node: 'edge-1', ok: true, status: 200, purged: 3 },
    { node: 'shield-1', ok: true, status: 200, purged: 0 },
  ])
  for (const r of result.results) t.ok(Number.isInteger(r.durationMs) && r.durationMs >= 0, `${r.node} durationMs is a whole number of ms`)

  const one = await fanOutPurge([nodes[0]!], { url: '/vod/t1/master.m3u8' }, { tokenFor, timeoutMs: 5000 })
  t.same(edge.received[1]?.body, { url: '/vod/t1/master.m3u8' }, 'a single-URL purge is passed on as it came')
  t.equal(one.ok, true)
})

t.test('a 2xx without a count is a success without `purged`', async (t) => {
  const noContent = await fakeNode(t, (_req, res) => { res.writeHead(204); res.end() })
  const text = await fakeNode(t, (_req, res) => { res.writeHead(200, { 'content-type': 'text/plain' }); res.end('purged\n') })
  const stringCount = await fakeNode(t, json(202, { purged: '7' }))
  const result = await fanOutPurge([node('a', noContent.url), node('b', text.url), node('c', stringCount.url)], { prefix: '/' }, { tokenFor, timeoutMs: 5000 })
  t.equal(result.ok, true)
  t.same(result.results.map(shape), [
    { node: 'a', ok: true, status: 204 },
    { node: 'b', ok: true, status: 200 },
    { node: 'c', ok: true, status: 202 },
  ])
})

t.test('some nodes purge, some fail, one hangs: every node reported, in inventory order', async (t) => {
  const good1 = await fakeNode(t, json(200, { purged: 12 }))
  const broken = await fakeNode(t, json(500, { error: 'disk full', purged: 1 }))
  const good2 = await fakeNode(t, json(200, { purged: 4 }))
  const wrongToken = await fakeNode(t, json(401, { error: 'bad token' }))
  const hanging = await fakeNode(t, () => {}) // reads the request, never answers
  const stalled = await fakeNode(t, (_req, res) => { res.writeHead(200, { 'content-type': 'application/json' }); res.write('{"purged":') })
  const reset = await fakeNode(t, (req) => { req.socket.destroy() })
  const refusedUrl = `http://127.0.0.1:${await closedPort()}`
  const nodes = [
    node('good-1', good1.url),
    node('broken', broken.url),
    node('hanging', hanging.url),
    node('wrong-token', wrongToken.url),
    node('refused', refusedUrl),
    node('stalled', stalled.url),
    node('reset', reset.url),
    node('good-2', good2.url),
  ]
  const result = await fanOutPurge(nodes, { prefix: '/live/ch1/' }, { tokenFor, timeoutMs: 300 })

  t.equal(result.ok, false, 'not ok when any node did not purge')
  t.same(result.results.map((r) => r.node), nodes.map((n) => n.id), 'one result per node, in the order given')
  const byNode = new Map(result.results.map((r) => [r.node, shape(r)]))
  t.same(byNode.get('good-1'), { node: 'good-1', ok: true, status: 200, purged: 12 })
  t.same(byNode.get('good-2'), { node: 'good-2', ok: true, status: 200, purged: 4 })
  t.same(byNode.get('broken'), { node: 'broken', ok: false, status: 500, error: 'HTTP 500' }, 'a failed node\'s count is not reported as purged')
  t.same(byNode.get('wrong-token'), { node: 'wrong-token', ok: false, status: 401, error: 'HTTP 401' })
  t.same(byNode.get('hanging'), { node: 'hanging', ok: false, error: 'no answer within 300 ms' })
  t.same(byNode.get('stalled'), { node: 'stalled', ok: false, error: 'no answer within 300 ms' }, 'a body that never ends times out too')
  t.same(byNode.get('refused'), { node: 'refused', ok: false, error: 'ECONNREFUSED' })
  const resetResult = byNode.get('reset')
  t.equal(resetResult?.ok, false)
  t.equal(resetResult?.status, undefined, 'no status: the node never answered')
  t.match(resetResult?.error, /^UND_ERR_SOCKET$|^ECONNRESET$/, `a reset connection says so (${resetResult?.error})`)

  t.equal(hanging.received.length, 1, 'the hanging node did get the request')
  t.equal(broken.received.length, 1)
})

t.test('a node without a token is reported and not contacted', async (t) => {
  const withToken = await fakeNode(t, json(200, { purged: 1 }))
  const withoutToken = await fakeNode(t, json(200, { purged: 1 }))
  const result = await fanOutPurge([node('tokenless', withoutToken.url), node('ok', withToken.url, { adminToken: 'own' })], { prefix: '/' }, {
    tokenFor: (n) => n.adminToken,
    timeoutMs: 5000,
  })
  t.equal(result.ok, false)
  t.same(result.results[0], { node: 'tokenless', ok: false, error: 'no admin token for this node', durationMs: 0 })
  t.same(shape(result.results[1]), { node: 'ok', ok: true, status: 200, purged: 1 })
  t.same(withoutToken.received, [], 'no request without a token')
  t.equal(withToken.received[0]?.authorization, 'Bearer own')
})

t.test('nodes are purged in parallel: each waits for the others to be asked', async (t) => {
  // every node holds its answer until all three requests have arrived: one at a time, the
  // first would never answer and every node would time out
  const waiting: Array<() => void> = []
  const barrier: Handler = (_req, res) => {
    waiting.push(() => json(200, { purged: 1 })(_req, res, ''))
    if (waiting.length === 3) for (const release of waiting) release()
  }
  const a = await fakeNode(t, barrier)
  const b = await fakeNode(t, barrier)
  const c = await fakeNode(t, barrier)
  const result = await fanOutPurge([node('a', a.url), node('b', b.url), node('c', c.url)], { prefix: '/' }, { tokenFor, timeoutMs: 5000 })
  t.equal(result.ok, true, JSON.stringify(result.results))
  t.same(result.results.map((r) => r.purged), [1, 1, 1])
})

t.test('a redirect is not a purge', async (t) => {
  // a node behind a proxy that sends unauthenticated requests to a login page: following the
  // 302 would GET the page, take its 200 for a purge, and leave the node serving stale objects
  const login = await fakeNode(t, (req, res) => {
    if (req.url === '/login') {
      res.writeHead(200, { 'content-type': 'text/html' })
      res.end('<html>sign in</html>')
      return
    }
    res.writeHead(302, { location: '/login' })
    res.end()
  })
  const moved = await fakeNode(t, (_req, res) => { res.writeHead(308, { location: `${login.url}/admin/purge` }); res.end() })
  const result = await fanOutPurge([node('login', login.url), node('moved', moved.url)], { prefix: '/vod/' }, { tokenFor, timeoutMs: 5000 })
  t.equal(result.ok, false)
  t.same(result.results.map(shape), [
    { node: 'login', ok: false, status: 302, error: 'HTTP 302' },
    { node: 'moved', ok: false, status: 308, error: 'HTTP 308' },
  ])
  t.same(login.received.map((r) => `${r.method} ${r.path}`), ['POST /admin/purge'], 'the login page was not fetched, and the purge not re-sent elsewhere')
})

t.test('never rejects, even for a node URL fetch cannot use', async (t) => {
  const good = await fakeNode(t, json(200, { purged: 2 }))
  const bad = { ...node('bad-url', good.url), url: 'not a url' }
  const result = await fanOutPurge([bad, node('good', good.url)], { prefix: '/' }, { tokenFor, timeoutMs: 5000 })
  t.equal(result.ok, false)
  t.equal(result.results[0]?.ok, false)
  t.type(result.results[0]?.error, 'string')
  t.not(result.results[0]?.error, '')
  t.same(shape(result.results[1]), { node: 'good', ok: true, status: 200, purged: 2 })
})
