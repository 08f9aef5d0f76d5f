/**
 * Content-aware steering: a control plane in front of two real edges (HLS runtime on) in
 * one cache group. Without inventories the title goes to its rendezvous choice; once the
 * other edge holds the title (prefilled through the control plane's fan-out) and the
 * inventories are polled, steering prefers it, as long as it is healthy.
 */
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { stringify as toYaml } from 'yaml'
import { startOrigin } from '../../bench/origin/origin-server.ts'
import { CONTROL_PLANE_DEFAULTS, startControlPlaneNode } from '../../control-plane/control-plane.ts'
import { silentLogger } from '../../lib/log.ts'
import { TokenKey } from '../../lib/protocol/token.ts'
import { tempDir } from '../helpers/cache-node.ts'
import { startHlsNode, until } from '../helpers/hls.ts'

const NODE_TOKEN = 'edge-admin-token'
const CP_TOKEN = 'cp-admin-token'

t.test('steering prefers the healthy edge that already holds the title', async (t) => {
  const origin = await startOrigin()
  t.teardown(() => origin.close())
  const edges = [
    await startHlsNode(t, { origin: origin.url, id: 'edge-a', adminToken: NODE_TOKEN }),
    await startHlsNode(t, { origin: origin.url, id: 'edge-b', adminToken: NODE_TOKEN }),
  ]
  const dir = await tempDir(t)
  const nodesFile = join(dir, 'nodes.yaml')
  const writeNodes = async (offline?: string): Promise<void> => {
    await writeFile(nodesFile, toYaml({
      nodes: edges.map((e, i) => ({
        id: `edge-${'ab'[i]}`,
        role: 'edge',
        url: e.node.url,
        group: 'eu',
        lat: 50,
        lon: 8,
        capacity: { connections: 1000, mbps: 1000 },
        state: offline === `edge-${'ab'[i]}` ? 'offline' : 'active',
      })),
    }))
  }
  await writeNodes()
  const cp = await startControlPlaneNode({
    ...CONTROL_PLANE_DEFAULTS,
    id: 'cp',
    listen: { host: '127.0.0.1', port: 0 },
    nodesFile,
    geoipFiles: [],
    tokenKeys: [new TokenKey('k1', 'steering-test-secret-0123456789')],
    adminToken: CP_TOKEN,
    purge: { nodeToken: NODE_TOKEN, timeoutMs: 5000 },
    inventory: { intervalMs: 0, maxAgeMs: 60_000 },
    probe: { ...CONTROL_PLANE_DEFAULTS.probe, intervalMs: 3_600_000 },
    reloadIntervalMs: 25,
    accessLog: false,
    logger: silentLogger(),
  })
  t.teardown(() => cp.close())
  await cp.probeNow()
  await cp.probeNow()
  const explain = async (path: string): Promise<{ node: string, looked: string[] }> => {
    const res = await fetch(`${cp.url}/v1/steer${path}?format=json`)
    const body = await res.json() as { node?: { id: string }, explain: { candidates: Array<{ node: string }> } }
    if (body.node === undefined) throw new Error(`no node: ${JSON.stringify(body)}`)
    return { node: body.node.id, looked: body.explain.candidates.map((c) => c.node) }
  }
  const steerTo = async (path: string): Promise<string> => (await explain(path)).node
  const title = '/vod/bars/master.m3u8'
  const before = await explain(title)
  const first = before.node
  t.equal(before.looked[0], first, 'without inventories the rendezvous choice is looked at first')
  const other = first === 'edge-a' ? 'edge-b' : 'edge-a'

  const fanout = await fetch(`${cp.url}/v1/prefill`, {
    method: 'POST',
    headers: { authorization: `Bearer ${CP_TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ titles: ['/vod/bars/'], nodes: [other], renditions: 'lowest' }),
  })
  t.equal(fanout.status, 202)
  t.match(await fanout.json(), { ok: true, results: [{ node: other, ok: true, job: { id: /^pf-/ } }] })
  const holder = edges[other === 'edge-a' ? 0 : 1]!
  await until(() => holder.hls.prefiller?.list().every((j) => j.finishedAtMs !== undefined) === true, 'the prefill')

  await cp.titles.pollNow()
  t.same([...cp.titles.holders('/vod/bars/')], [other])
  const after = await explain(title)
  t.equal(after.looked[0], other, 'the holder is now looked at first')
  t.equal(after.node, other, 'and the title goes to it')
  t.equal(await steerTo('/vod/bars/360p/index.m3u8'), other, 'for any path of the title')
  t.equal(await steerTo('/vod/bbb-test/master.m3u8'), await steerTo('/vod/bbb-test/master.m3u8'), 'other titles are unaffected')

  const inventory = await fetch(`${cp.url}/v1/inventory`, { headers: { authorization: `Bearer ${CP_TOKEN}` } })
  t.equal(inventory.status, 200)
  t.match(await inventory.json(), { nodes: [{ ok: true }, { ok: true }] })
  t.equal((await fetch(`${cp.url}/v1/inventory`)).status, 401, 'the inventory needs the admin token')
  t.match(await cp.metrics.render(), /streamedge_cp_inventory_polls_total\{target="edge-a",outcome="ok"/)

  await writeNodes(other)
  await until(async () => await steerTo(title) === first, 'steering to move off the offline holder')
  t.pass('an offline holder gets no sessions: health still comes first')
})
