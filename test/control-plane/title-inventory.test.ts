/**
 * Title inventories on the control plane: polling nodes' /admin/inventory (real HTTP
 * servers on port 0), who "holds" a title (half of the best count, titles above the
 * steering title, freshness), prefill fan-out, and the plan reordering steering applies.
 */
import { once } from 'node:events'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import type { NodeSpec } from '../../control-plane/health/node-inventory.ts'
import type { SteeringPlan } from '../../control-plane/steering/selector.ts'
import { parsePrefillFanout, preferHolders, TitleInventory } from '../../control-plane/title-inventory.ts'
import { silentLogger } from '../../lib/log.ts'

interface Fake {
  readonly spec: NodeSpec
  titles: Array<{ title: string, segments: number }>
  status: number
  readonly prefills: Array<{ auth: string | undefined, body: unknown }>
}

async function fakeNode (t: Tap, id: string): Promise<Fake> {
  const fake: Fake = { spec: undefined as unknown as NodeSpec, titles: [], status: 200, prefills: [] }
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      res.setHeader('content-type', 'application/json')
      if (req.headers.authorization !== 'Bearer node-token') {
        res.writeHead(401).end(JSON.stringify({ error: 'token' }))
        return
      }
      if (req.url === '/admin/inventory') {
        res.writeHead(fake.status).end(JSON.stringify(fake.status === 200 ? { v: 1, node: id, generatedAtMs: 1, titles: fake.titles } : { error: 'down' }))
        return
      }
      if (req.url === '/admin/prefill' && req.method === 'POST') {
        const body = JSON.parse(Buffer.concat(chunks).toString()) as unknown
        fake.prefills.push({ auth: req.headers.authorization, body })
        res.writeHead(202).end(JSON.stringify({ id: `pf-${id}`, state: 'waiting', titles: (body as { titles: string[] }).titles, createdAtMs: 1, updatedAtMs: 1, playlists: 0, segmentsTotal: 0, segmentsDone: 0, segmentsFilled: 0, segmentsCached: 0, segmentsFailed: 0, bytes: 0, bytesPerSecond: 0, errors: [] }))
        return
      }
      res.writeHead(404).end('{}')
    })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()) }))
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  ;(fake as { spec: NodeSpec }).spec = { id, role: 'edge', url, host: url.slice(7), group: 'g', lat: 0, lon: 0, capacity: { connections: 100, mbps: 100 }, state: 'active' }
  return fake
}
type Tap = { teardown (fn: () => unknown): void }

t.test('polls nodes and names holders: at least half the best count, fresh reports only', async (t) => {
  const a = await fakeNode(t, 'a')
  const b = await fakeNode(t, 'b')
  const c = await fakeNode(t, 'c')
  a.titles = [{ title: '/vod/t1/', segments: 100 }, { title: '/vod/t2/', segments: 3 }]
  b.titles = [{ title: '/vod/t1/', segments: 60 }]
  c.titles = [{ title: '/vod/t1/', segments: 10 }, { title: '/vod/t2/', segments: 40 }]
  let now = 1_000_000
  const polls: string[] = []
  const inventory = new TitleInventory({
    nodes: () => [a.spec, b.spec, c.spec],
    tokenFor: () => 'node-token',
    intervalMs: 0,
    timeoutMs: 2000,
    maxAgeMs: 60_000,
    logger: silentLogger(),
    onPoll: (node, ok) => polls.push(`${node}:${ok}`),
    now: () => now,
  })
  await inventory.pollNow()
  t.same([...inventory.holders('/vod/t1/')].sort(), ['a', 'b'], 'c holds too little of t1')
  t.same([...inventory.holders('/vod/t2/')], ['c'])
  t.same([...inventory.holders('/vod/t1/360p/')].sort(), ['a', 'b'], 'a rendition directory belongs to its title')
  t.same([...inventory.holders('/vod/t3/')], [])
  t.same(polls.sort(), ['a:true', 'b:true', 'c:true'])

  a.status = 503
  now += 30_000
  await inventory.pollNow()
  t.same([...inventory.holders('/vod/t1/')].sort(), ['a', 'b'], 'a failed poll keeps the last report while it is fresh')
  t.match(inventory.snapshot().find((r) => r.node === 'a'), { ok: false, error: /HTTP 503/ })
  now += 31_000
  t.same([...inventory.holders('/vod/t1/')], ['b'], 'then it ages out')
  t.same([...inventory.holders('/vod/t2/')], ['c'])
})

t.test('prefill fan-out: every node or the named ones, with their tokens', async (t) => {
  const a = await fakeNode(t, 'a')
  const b = await fakeNode(t, 'b')
  const inventory = new TitleInventory({
    nodes: () => [a.spec, b.spec, { ...b.spec, id: 'no-token' }],
    tokenFor: (node) => node.id === 'no-token' ? undefined : 'node-token',
    intervalMs: 0,
    timeoutMs: 2000,
    maxAgeMs: 1000,
    logger: silentLogger(),
  })
  const all = await inventory.prefill({ titles: ['/vod/t1/'], bytesPerSecond: 1000 })
  t.match(all, [{ node: 'a', ok: true, job: { id: 'pf-a' } }, { node: 'b', ok: true }, { node: 'no-token', ok: false, error: /no admin token/ }])
  t.same(a.prefills, [{ auth: 'Bearer node-token', body: { titles: ['/vod/t1/'], bytesPerSecond: 1000 } }])
  const one = await inventory.prefill({ titles: ['/vod/t2/'] }, ['b'])
  t.same(one.map((r) => r.node), ['b'])
  t.equal(a.prefills.length, 1)
  t.throws(() => new TitleInventory({ nodes: () => [], tokenFor: () => undefined, intervalMs: -1, timeoutMs: 1, maxAgeMs: 1, logger: silentLogger() }), /options\.intervalMs/)
})

t.test('fan-out bodies', async (t) => {
  t.match(parsePrefillFanout({ titles: ['/vod/t1/'], nodes: ['a'] }), { ok: true, request: { titles: ['/vod/t1/'] }, nodes: ['a'] })
  t.match(parsePrefillFanout({ titles: ['/vod/t1/'] }), { ok: true, nodes: undefined })
  t.match(parsePrefillFanout({ titles: ['/vod/t1/'], nodes: [] }), { ok: false, error: /nodes/ })
  t.match(parsePrefillFanout({ titles: [] }), { ok: false, error: /titles/ })
  t.match(parsePrefillFanout('x'), { ok: false })
})

t.test('preferHolders moves holders first within each group, keeping both parts in order', async (t) => {
  const node = (id: string): NodeSpec => ({ id, role: 'edge', url: `http://${id}`, host: id, group: 'g', lat: 0, lon: 0, capacity: { connections: 1, mbps: 1 }, state: 'active' })
  const plan: SteeringPlan = { groups: [
    { id: 'near', via: 'nearest', nodes: [node('a'), node('b'), node('c')] },
    { id: 'far', via: 'distance', nodes: [node('d'), node('e')] },
  ] }
  const preferred = preferHolders(plan, new Set(['c', 'b', 'e']))
  t.same(preferred.groups.map((g) => g.nodes.map((n) => n.id)), [['b', 'c', 'a'], ['e', 'd']])
  t.equal(preferHolders(plan, new Set()), plan, 'no holders: the same plan')
  t.equal(preferHolders(plan, new Set(['a', 'd'])), plan, 'holders already first: the same plan')
  t.equal(preferHolders(plan, new Set(['x'])), plan)
})
