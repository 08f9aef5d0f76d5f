/**
 * Choosing a node: nearest group by great-circle distance, coverage-zone precedence,
 * configured fallbacks before distance, unavailable nodes skipped with their reason,
 * overload spilling to the next group, and bounded loads keeping every node near its share.
 */
import t from 'tap'
import type { NodeStatus } from '../../../control-plane/health/health-tracker.ts'
import { parseInventory } from '../../../control-plane/health/node-inventory.ts'
import { orderGroups, pickNode, planSteering, rankPathways, withDistances, type HealthLookup } from '../../../control-plane/steering/selector.ts'

// Frankfurt, Amsterdam, Ashburn, Tokyo; eu-central falls back to us-east before eu-west.
const inventory = parseInventory({
  groups: { 'eu-central': { fallbacks: ['us-east'] }, 'isp-berlin': { zoneOnly: true, fallbacks: ['eu-west'] } },
  nodes: [
    { id: 'fra-1', url: 'http://fra-1', group: 'eu-central', lat: 50.11, lon: 8.68, capacity: { connections: 100, mbps: 1000 } },
    { id: 'fra-2', url: 'http://fra-2', group: 'eu-central', lat: 50.11, lon: 8.68, capacity: { connections: 100, mbps: 1000 } },
    { id: 'fra-3', url: 'http://fra-3', group: 'eu-central', lat: 50.11, lon: 8.68, capacity: { connections: 200, mbps: 1000 } },
    { id: 'ams-1', url: 'http://ams-1', group: 'eu-west', lat: 52.37, lon: 4.9, capacity: { connections: 100, mbps: 1000 } },
    { id: 'iad-1', url: 'http://iad-1', group: 'us-east', lat: 39.04, lon: -77.49, capacity: { connections: 100, mbps: 1000 } },
    { id: 'nrt-1', url: 'http://nrt-1', group: 'ap-northeast', lat: 35.68, lon: 139.77, capacity: { connections: 100, mbps: 1000 } },
    { id: 'ber-isp', url: 'http://ber-isp', group: 'isp-berlin', lat: 52.52, lon: 13.4, capacity: { connections: 100, mbps: 1000 } },
    { id: 'shield', role: 'shield', url: 'http://shield', group: 'eu-central', lat: 50.11, lon: 8.68, capacity: { connections: 100, mbps: 1000 } },
  ],
})

class FakeHealth implements HealthLookup {
  readonly status = new Map<string, NodeStatus>()
  readonly load = new Map<string, number>()
  statusOf (id: string): NodeStatus { return this.status.get(id) ?? 'available' }
  loadOf (id: string): number { return this.load.get(id) ?? 0 }
}

const PARIS = { lat: 48.86, lon: 2.35 }
const WASHINGTON = { lat: 38.9, lon: -77.04 }
const OSAKA = { lat: 34.69, lon: 135.5 }

t.test('the nearest group by great-circle distance, then fallbacks, then distance', async (t) => {
  const plan = planSteering({ point: PARIS }, '/vod/a/', inventory)
  t.same(plan.groups.map((g) => [g.id, g.via]), [['eu-west', 'nearest'], ['eu-central', 'distance'], ['us-east', 'distance'], ['ap-northeast', 'distance']], 'the zone-only ISP group is never chosen for being near')
  t.equal(planSteering({ point: { lat: 52.5, lon: 13.4 } }, '/vod/a/', inventory).groups[0]?.id, 'eu-central', 'not even from next door')
  const picked = pickNode(plan, new FakeHealth(), 0.25)
  t.equal(withDistances(picked.candidates, PARIS, inventory)[0]?.distanceKm, 430, 'Paris–Amsterdam, for the explanation')
  t.equal(planSteering({ point: WASHINGTON }, '/vod/a/', inventory).groups[0]?.id, 'us-east')
  t.equal(planSteering({ point: OSAKA }, '/vod/a/', inventory).groups[0]?.id, 'ap-northeast')
  const fromFrankfurt = planSteering({ point: { lat: 50, lon: 8.5 } }, '/vod/a/', inventory)
  t.same(fromFrankfurt.groups.slice(0, 3).map((g) => [g.id, g.via]), [['eu-central', 'nearest'], ['us-east', 'fallback'], ['eu-west', 'distance']], 'configured fallbacks come before nearer groups')
  t.notOk(plan.groups.some((g) => g.nodes.some((n) => n.role === 'shield')), 'shields are never steering targets')
  t.equal(orderGroups({ point: PARIS }, inventory).key, orderGroups({ point: { lat: 49.5, lon: 3 } }, inventory).key, 'nearby clients share one group order (and so cached plans)')
  t.not(orderGroups({ point: PARIS }, inventory).key, orderGroups({ point: WASHINGTON }, inventory).key)
})

t.test('a coverage zone group comes first even when another group is nearer', async (t) => {
  const plan = planSteering({ group: 'isp-berlin', point: { lat: 52.52, lon: 13.4 } }, '/vod/a/', inventory)
  t.same(plan.groups.slice(0, 3).map((g) => [g.id, g.via]), [['isp-berlin', 'zone'], ['eu-west', 'fallback'], ['eu-central', 'distance']])
  const noPoint = planSteering({ group: 'isp-berlin' }, '/vod/a/', inventory)
  t.equal(noPoint.groups[2]?.id, 'eu-central', 'without a point, distance is measured from the group')
})

t.test('unavailable nodes are skipped with their reason; the title stays on one node otherwise', async (t) => {
  const health = new FakeHealth()
  const plan = planSteering({ point: { lat: 50, lon: 8.5 } }, '/vod/title-7/', inventory)
  const first = pickNode(plan, health, 0.25)
  t.equal(first.group, 'eu-central')
  const owner = first.chosen!.id
  t.equal(pickNode(plan, health, 0.25).chosen?.id, owner, 'same title, same node')
  health.status.set(owner, 'down')
  const second = pickNode(plan, health, 0.25)
  t.not(second.chosen?.id, owner)
  t.equal(second.group, 'eu-central')
  t.match(second.candidates.find((c) => c.node === owner), { verdict: 'down', status: 'down' })
  for (const id of ['fra-1', 'fra-2', 'fra-3']) health.status.set(id, id === 'fra-1' ? 'draining' : id === 'fra-2' ? 'overloaded' : 'heartbeat-stale')
  const spilled = pickNode(plan, health, 0.25)
  t.equal(spilled.chosen?.id, 'iad-1', 'the whole group unavailable: its fallback')
  t.same(spilled.candidates.map((c) => c.verdict).sort(), ['chosen', 'draining', 'heartbeat-stale', 'overloaded'])
  for (const id of ['iad-1', 'ams-1', 'nrt-1', 'ber-isp']) health.status.set(id, 'down')
  const none = pickNode(plan, health, 0.25)
  t.equal(none.chosen, undefined)
  t.equal(none.candidates.length, 6, 'every edge was considered (not the zone-only one)')
})

t.test('bounded loads: one hot title spreads only when its node is past its share', async (t) => {
  const health = new FakeHealth()
  const plan = planSteering({ point: { lat: 50, lon: 8.5 } }, '/vod/hot/', inventory)
  const assigned = new Map<string, number>()
  const groups = new Set<string | undefined>()
  for (let i = 0; i < 400; i++) {
    const picked = pickNode(plan, health, 0.25)
    const id = picked.chosen!.id
    assigned.set(id, (assigned.get(id) ?? 0) + 1)
    health.load.set(id, (health.load.get(id) ?? 0) + 1)
    groups.add(picked.group)
  }
  t.same([...groups], ['eu-central'], 'balancing stays inside the group')
  t.ok((assigned.get(pickNode(plan, new FakeHealth(), 0.25).chosen!.id) ?? 0) > 100, 'the title\'s own node took the most')
  const total = 400
  const weights = { 'fra-1': 100, 'fra-2': 100, 'fra-3': 200 } as Record<string, number>
  for (const [id, weight] of Object.entries(weights)) {
    const share = total * weight / 400
    t.ok((assigned.get(id) ?? 0) <= Math.ceil(1.25 * (total + 1) * weight / 400), `${id} stays within its bound (${assigned.get(id)} of ~${share})`)
  }
  const first = pickNode(planSteering({ point: { lat: 50, lon: 8.5 } }, '/vod/cold/', inventory), new FakeHealth(), 0.25)
  t.ok(first.chosen, 'an idle group takes a cold title at once')
})

t.test('many titles under bounded loads: no node exceeds (1 + ε) of its weighted share', async (t) => {
  const health = new FakeHealth()
  const counts = new Map<string, number>()
  let total = 0
  for (let i = 0; i < 4000; i++) {
    const plan = planSteering({ point: { lat: 50, lon: 8.5 } }, `/vod/title-${i % 300}/`, inventory)
    const id = pickNode(plan, health, 0.1).chosen!.id
    counts.set(id, (counts.get(id) ?? 0) + 1)
    health.load.set(id, (health.load.get(id) ?? 0) + 1)
    total++
  }
  const weights: Record<string, number> = { 'fra-1': 100, 'fra-2': 100, 'fra-3': 200 }
  for (const [id, weight] of Object.entries(weights)) {
    const limit = Math.ceil(1.1 * (total + 1) * weight / 400)
    t.ok((counts.get(id) ?? 0) <= limit, `${id}: ${counts.get(id)} ≤ ${limit}`)
  }
})

t.test('pathway ranking: the pick first, available next, overloaded last, the rest left out', async (t) => {
  const health = new FakeHealth()
  const plan = planSteering({ point: { lat: 50, lon: 8.5 } }, '/vod/a/', inventory)
  health.status.set('ams-1', 'overloaded')
  health.status.set('nrt-1', 'down')
  health.status.set('ber-isp', 'draining')
  const picked = pickNode(plan, health, 0.25).chosen
  const ranked = rankPathways(plan, health, picked, 10).map((n) => n.id)
  t.equal(ranked[0], picked?.id)
  t.same(new Set(ranked.slice(0, 4)), new Set(['fra-1', 'fra-2', 'fra-3', 'iad-1']))
  t.equal(ranked.at(-1), 'ams-1')
  t.notOk(ranked.includes('nrt-1') || ranked.includes('ber-isp'))
  t.equal(rankPathways(plan, health, picked, 2).length, 2)
})

t.test('an unexplained pick chooses the same node and counts what the explained one lists', async (t) => {
  const health = new FakeHealth()
  const plan = planSteering({ point: { lat: 50, lon: 8.5 } }, '/vod/title-7/', inventory)
  let fallbacks = 0
  const compare = (label: string): void => {
    const explained = pickNode(plan, health, 0.25)
    const chosen = explained.candidates.find((c) => c.verdict === 'chosen')
    if (chosen?.bound !== undefined && chosen.load + 1 > chosen.bound) fallbacks++
    const counted = pickNode(plan, health, 0.25, false)
    t.equal(counted.chosen, explained.chosen, `${label}: same node`)
    t.equal(counted.group, explained.group, `${label}: same group`)
    t.equal(counted.skipped, explained.candidates.filter((c) => c.verdict !== 'chosen').length, `${label}: skipped counts the passed-over candidates`)
    t.equal(explained.skipped, counted.skipped, `${label}: both count alike`)
    t.same(counted.candidates, [], `${label}: none listed`)
  }
  compare('all available')
  health.status.set('fra-1', 'down')
  health.status.set('fra-2', 'draining')
  compare('two down in the first group')
  // a fresh group (each edge carrying a fraction of a decaying assignment): every edge is past
  // its share, and the one with the most room per capacity is chosen within the group
  health.status.clear()
  for (const id of ['fra-1', 'fra-2', 'fra-3']) health.load.set(id, 0.1)
  compare('every edge past its share')
  t.equal(pickNode(plan, health, 0.25, false).chosen?.id, 'fra-3', 'the largest edge of the group')
  t.equal(pickNode(plan, health, 0.25, false).skipped, 2, 'the chosen edge is not counted as skipped')
  // uneven loads and states
  const statuses: NodeStatus[] = ['available', 'available', 'available', 'down', 'draining', 'overloaded']
  let seed = 7
  const random = (n: number): number => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed % n }
  for (let round = 0; round < 200; round++) {
    health.status.clear()
    for (const id of ['fra-1', 'fra-2', 'fra-3', 'iad-1', 'ams-1', 'nrt-1']) {
      health.status.set(id, statuses[random(statuses.length)]!)
      health.load.set(id, random(4) === 0 ? random(2000) : random(800) / 100)
    }
    compare(`random state ${round}`)
  }
  health.load.clear()
  t.ok(fallbacks > 0, `${fallbacks} picks had every available edge of the group past its share (the in-group fallback)`)
  for (const id of ['fra-1', 'fra-2', 'fra-3', 'iad-1', 'ams-1', 'nrt-1']) health.status.set(id, 'down')
  compare('nothing available')
  t.equal(pickNode(plan, health, 0.25, false).skipped, 6)
})
