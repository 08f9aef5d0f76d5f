/**
 * The node inventory: defaults, group positions from their nodes, fallbacks, and files with
 * mistakes refused with every mistake named (and admin tokens never echoed).
 */
import t from 'tap'
import { loadInventory, parseInventory } from '../../../control-plane/health/node-inventory.ts'

const node = (id: string, group: string, extra: Record<string, unknown> = {}): Record<string, unknown> =>
  ({ id, url: `http://${id}.example:8080/`, group, lat: 50, lon: 8, capacity: { connections: 100, mbps: 1000 }, ...extra })

t.test('a valid inventory with defaults and derived group positions', async (t) => {
  const inv = parseInventory({
    groups: { eu: { fallbacks: ['us'] }, us: { lat: 39, lon: -77 }, empty: { lat: 0, lon: 0 } },
    nodes: [node('e1', 'eu', { lat: 50, lon: 8 }), node('e2', 'eu', { lat: 52, lon: 4, state: 'draining' }), node('u1', 'us', { role: 'edge' }), node('s1', 'eu', { role: 'shield', adminToken: 'x' })],
  })
  t.equal(inv.nodes.length, 4)
  t.same(inv.byId.get('e1'), { id: 'e1', role: 'edge', url: 'http://e1.example:8080', host: 'e1.example:8080', group: 'eu', lat: 50, lon: 8, capacity: { connections: 100, mbps: 1000 }, state: 'active' })
  t.equal(inv.byId.get('e2')?.state, 'draining')
  t.same(inv.groups.get('eu'), { id: 'eu', lat: (50 + 52 + 50) / 3, lon: (8 + 4 + 8) / 3, fallbacks: ['us'], zoneOnly: false }, 'the mean of its nodes, shields included')
  t.same(inv.groups.get('us'), { id: 'us', lat: 39, lon: -77, fallbacks: [], zoneOnly: false }, 'declared coordinates win')
  t.same(inv.edgesByGroup.get('eu')?.map((n) => n.id), ['e1', 'e2'], 'shields are not steering targets')
  t.equal(inv.edgesByGroup.get('empty'), undefined)
})

t.test('mistakes are refused together', async (t) => {
  try {
    parseInventory({
      groups: { eu: { fallbacks: ['nowhere', 'eu'], zoneOnly: 'yes' }, lonely: {} },
      nodes: [node('bad id', 'eu'), node('a', 'eu', { url: 'ftp://x' }), node('a', 'eu'), node('b', 'eu', { lat: 91, capacity: { connections: 0, mbps: 1 }, state: 'maybe', role: 'origin', colour: 'red', adminToken: '' })],
    })
    t.fail('should throw')
  } catch (err) {
    const message = (err as Error).message
    for (const fragment of ['nodes[0].id', 'nodes[1].url', 'nodes[2].id a is used twice', 'nodes[3].lat', 'nodes[3].capacity', 'nodes[3].state', 'nodes[3].role', 'nodes[3].colour is not a node field', 'nodes[3].adminToken must be a non-empty string, got "(hidden)"', 'groups.eu.fallbacks must be a list of known groups', 'groups.eu.fallbacks lists the group itself', 'groups.lonely must be given lat and lon', 'groups.eu.zoneOnly must be true or false']) {
      t.match(message, fragment)
    }
  }
  t.throws(() => parseInventory({ nodes: [] }), /nodes must be a non-empty list/)
  t.throws(() => parseInventory('x'), /nodes must be a non-empty list/)
})

t.test('the example nodes file loads', async (t) => {
  const inv = loadInventory(new URL('../../../config/examples/control-plane/nodes.yaml', import.meta.url).pathname)
  t.ok(inv.nodes.length >= 5)
  t.ok(inv.nodes.some((n) => n.role === 'shield'))
})
