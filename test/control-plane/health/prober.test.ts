/**
 * Active probes against real sockets: 2xx is up, other statuses, refused connections and
 * timeouts are failures with a reason; offline nodes are not probed; rounds never overlap.
 */
import { once } from 'node:events'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import { parseInventory } from '../../../control-plane/health/node-inventory.ts'
import { Prober } from '../../../control-plane/health/prober.ts'

async function server (t: { teardown (fn: () => unknown): void }, handler: http.RequestListener): Promise<string> {
  const s = http.createServer(handler)
  s.listen(0, '127.0.0.1')
  await once(s, 'listening')
  t.teardown(() => new Promise<void>((resolve) => { s.closeAllConnections(); s.close(() => resolve()) }))
  return `http://127.0.0.1:${(s.address() as AddressInfo).port}`
}

t.test('each node gets one verdict per round, with a reason for failures', async (t) => {
  const paths: string[] = []
  const ok = await server(t, (req, res) => { paths.push(req.url ?? ''); res.end('ready') })
  const unready = await server(t, (_req, res) => { res.writeHead(503); res.end() })
  const slow = await server(t, () => { /* never answers */ })
  const gone = await server(t, (_req, res) => res.end())
  const closed = http.createServer()
  closed.listen(0, '127.0.0.1')
  await once(closed, 'listening')
  const closedUrl = `http://127.0.0.1:${(closed.address() as AddressInfo).port}`
  await new Promise<void>((resolve) => closed.close(() => resolve()))
  const inv = parseInventory({
    nodes: [['ok', ok], ['unready', unready], ['slow', slow], ['refused', closedUrl], ['offline', gone]].map(([id, url]) => ({
      id, url, group: 'g', lat: 0, lon: 0, capacity: { connections: 1, mbps: 1 }, state: id === 'offline' ? 'offline' : 'active',
    })),
  })
  const results = new Map<string, [boolean, string | undefined]>()
  const prober = new Prober({ nodes: () => inv.nodes, path: '/readyz', intervalMs: 60_000, timeoutMs: 300, onResult: (id, up, detail) => results.set(id, [up, detail]) })
  t.teardown(() => prober.stop())
  const round = prober.probeAll()
  t.equal(prober.probeAll(), round, 'a round in flight is shared, never doubled')
  await round
  t.same(results.get('ok'), [true, undefined])
  t.same(results.get('unready'), [false, 'HTTP 503'])
  t.same(results.get('slow'), [false, 'timeout'])
  t.same(results.get('refused'), [false, 'ECONNREFUSED'])
  t.notOk(results.has('offline'), 'offline nodes are not probed')
  t.same(paths, ['/readyz'])
})

t.test('the timer keeps probing until stopped', async (t) => {
  let hits = 0
  const url = await server(t, (_req, res) => { hits++; res.end() })
  const inv = parseInventory({ nodes: [{ id: 'a', url, group: 'g', lat: 0, lon: 0, capacity: { connections: 1, mbps: 1 } }] })
  const prober = new Prober({ nodes: () => inv.nodes, path: '/readyz', intervalMs: 20, timeoutMs: 1000, onResult: () => {} })
  prober.start()
  const deadline = Date.now() + 5000
  while (hits < 3 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10))
  await prober.stop()
  t.ok(hits >= 3, `probed repeatedly (${hits})`)
  const after = hits
  await new Promise((resolve) => setTimeout(resolve, 60))
  t.equal(hits, after, 'no probe after stop')
  t.throws(() => new Prober({ nodes: () => [], path: 'readyz', intervalMs: 1, timeoutMs: 1, onResult: () => {} }), /options\.path/)
})
