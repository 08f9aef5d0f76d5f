/**
 * Steering manifests: VERSION 1, TTL, RELOAD-URI, PATHWAY-PRIORITY in ranking order, and one
 * HOST clone per edge other than the playlist's pathway.
 */
import t from 'tap'
import { parseInventory } from '../../../control-plane/health/node-inventory.ts'
import { buildSteeringManifest } from '../../../control-plane/steering/steering-manifest.ts'

const inv = parseInventory({
  nodes: ['a', 'b', 'c'].map((id, i) => ({ id: `edge-${id}`, url: `http://127.0.0.1:${8001 + i}`, group: 'g', lat: 0, lon: 0, capacity: { connections: 1, mbps: 1 } })),
})
const nodes = inv.nodes

t.test('priority in ranking order, a clone for every other edge', async (t) => {
  const manifest = buildSteeringManifest({ ttlSeconds: 30, reloadUri: 'http://cp/v1/steering/manifest?se_token=x&pathway=edge-a', basePathway: 'edge-a', pathways: [nodes[1]!, nodes[0]!, nodes[2]!] })
  t.same(manifest, {
    VERSION: 1,
    TTL: 30,
    'RELOAD-URI': 'http://cp/v1/steering/manifest?se_token=x&pathway=edge-a',
    'PATHWAY-PRIORITY': ['edge-b', 'edge-a', 'edge-c'],
    'PATHWAY-CLONES': [
      { 'BASE-ID': 'edge-a', ID: 'edge-b', 'URI-REPLACEMENT': { HOST: '127.0.0.1:8002' } },
      { 'BASE-ID': 'edge-a', ID: 'edge-c', 'URI-REPLACEMENT': { HOST: '127.0.0.1:8003' } },
    ],
  })
})

t.test('a base pathway that is down is left out of the priority but stays the clones\' base', async (t) => {
  const manifest = buildSteeringManifest({ ttlSeconds: 10, reloadUri: 'http://cp/x', basePathway: 'edge-a', pathways: [nodes[2]!] })
  t.same(manifest['PATHWAY-PRIORITY'], ['edge-c'])
  t.same(manifest['PATHWAY-CLONES']?.map((c) => c['BASE-ID']), ['edge-a'])
  const empty = buildSteeringManifest({ ttlSeconds: 10, reloadUri: 'http://cp/x', basePathway: 'edge-a', pathways: [] })
  t.same(empty['PATHWAY-PRIORITY'], ['edge-a'], 'never an empty priority')
  t.equal(empty['PATHWAY-CLONES'], undefined)
})
