/**
 * Health: probe hysteresis (N failures down, M successes up), heartbeat staleness and the
 * self-drain signal, admin states, overload from reported load, bounded-load accounting,
 * and one change event per status change. The clock is injected.
 */
import t from 'tap'
import { HealthTracker, type HealthChange } from '../../../control-plane/health/health-tracker.ts'
import { parseInventory } from '../../../control-plane/health/node-inventory.ts'
import type { NodeReport } from '../../../lib/protocol/node-report.ts'

const inventory = (states: Record<string, string> = {}): ReturnType<typeof parseInventory> => parseInventory({
  nodes: ['a', 'b', 'c'].map((id) => ({ id, url: `http://${id}.example`, group: 'g', lat: 0, lon: 0, capacity: { connections: 100, mbps: 1000 }, state: states[id] ?? 'active' })),
})

function tracker (options: { states?: Record<string, string> } = {}): { h: HealthTracker, changes: HealthChange[], clock: { now: number } } {
  const clock = { now: 1_000_000 }
  const changes: HealthChange[] = []
  const h = new HealthTracker({
    inventory: inventory(options.states),
    failThreshold: 2,
    riseThreshold: 3,
    heartbeatTimeoutMs: 10_000,
    overloadRatio: 0.9,
    assignWindowMs: 5000,
    now: () => clock.now,
    onChange: (c) => changes.push(c),
  })
  return { h, changes, clock }
}

const report = (id: string, extra: Partial<NodeReport> = {}): NodeReport => ({ v: 1, id, role: 'edge', ready: true, connections: 10, egressMbps: 100, sentAtMs: 0, ...extra })

t.test('probe hysteresis: the first verdict counts at once, then N failures down and M successes up', async (t) => {
  const { h, changes } = tracker()
  t.equal(h.statusOf('a'), 'unknown', 'never probed')
  h.recordProbe('a', true)
  t.equal(h.statusOf('a'), 'available', 'seen healthy once at start')
  h.recordProbe('a', false, 'ECONNREFUSED')
  t.equal(h.statusOf('a'), 'available', 'one failure is not enough')
  h.recordProbe('a', true)
  h.recordProbe('a', false, 'ECONNREFUSED')
  t.equal(h.statusOf('a'), 'available', 'the failure streak was broken')
  h.recordProbe('a', false, 'timeout')
  t.equal(h.statusOf('a'), 'down', 'two consecutive failures')
  t.equal(h.view('a')?.lastProbeError, 'timeout')
  h.recordProbe('a', true)
  h.recordProbe('a', true)
  t.equal(h.statusOf('a'), 'down', 'two successes are not three')
  h.recordProbe('a', true)
  t.equal(h.statusOf('a'), 'available', 'three consecutive successes')
  t.same(changes.filter((c) => c.id === 'a').map((c) => [c.from, c.to]), [['unknown', 'available'], ['available', 'down'], ['down', 'available']], 'one event per change')
  t.equal(changes[1]?.detail, 'timeout')
  h.recordProbe('b', false, 'ECONNREFUSED')
  t.equal(h.statusOf('b'), 'down', 'a node failing its very first probe is down at once')
})

t.test('heartbeats: fresh reports keep a node known, silence past the timeout is down, ready:false drains', async (t) => {
  const { h, clock } = tracker()
  t.ok(h.recordHeartbeat(report('a')))
  t.equal(h.statusOf('a'), 'available', 'a heartbeat alone makes a node known')
  t.notOk(h.recordHeartbeat(report('zz')), 'unknown node')
  t.notOk(h.recordHeartbeat(report('a', { role: 'shield' })), 'wrong role')
  clock.now += 10_001
  h.evaluate()
  t.equal(h.statusOf('a'), 'heartbeat-stale')
  h.recordHeartbeat(report('a'))
  t.equal(h.statusOf('a'), 'available')
  h.recordHeartbeat(report('a', { ready: false }))
  t.equal(h.statusOf('a'), 'not-ready', 'self-drain signal')
  h.recordProbe('a', false)
  h.recordProbe('a', false)
  t.equal(h.statusOf('a'), 'down', 'probes failing outrank heartbeats')
})

t.test('admin states and overload', async (t) => {
  const { h } = tracker({ states: { b: 'draining', c: 'offline' } })
  for (const id of ['a', 'b', 'c']) h.recordProbe(id, true)
  t.equal(h.statusOf('b'), 'draining')
  t.equal(h.statusOf('c'), 'offline')
  h.recordHeartbeat(report('a', { connections: 90 }))
  t.equal(h.statusOf('a'), 'overloaded', 'connections at 90 % of capacity')
  h.recordHeartbeat(report('a', { connections: 10, egressMbps: 950 }))
  t.equal(h.statusOf('a'), 'overloaded', 'Mbps at 95 % of capacity')
  h.recordHeartbeat(report('a', { connections: 10, egressMbps: 10 }))
  t.equal(h.statusOf('a'), 'available')
  h.setInventory(inventory({ a: 'offline' }))
  t.equal(h.statusOf('a'), 'offline', 'an inventory reload applies admin states')
  t.equal(h.statusOf('b'), 'available', 'and lifts them')
  t.equal(h.statusOf('nope'), 'offline')
})

t.test('load: reported connections plus sessions steered since, decaying over the window', async (t) => {
  const { h, clock } = tracker()
  h.recordHeartbeat(report('a', { connections: 20 }))
  for (let i = 0; i < 10; i++) h.noteAssigned('a')
  t.equal(h.loadOf('a'), 30)
  clock.now += 5000
  t.equal(h.loadOf('a'), 30, 'the previous window counts fully at its end')
  clock.now += 2500
  t.equal(h.loadOf('a'), 25, 'and half at the middle of the next one')
  clock.now += 5000
  t.equal(h.loadOf('a'), 20, 'then not at all')
  h.noteAssigned('a')
  h.recordHeartbeat(report('a', { connections: 40 }))
  t.equal(h.loadOf('a'), 40, 'a report replaces the estimate')
  const gen = h.generation
  h.recordProbe('b', true)
  t.ok(h.generation > gen, 'a status change bumps the generation')
})

t.test('options are validated', async (t) => {
  const base = { inventory: inventory(), failThreshold: 1, riseThreshold: 1, heartbeatTimeoutMs: 1, overloadRatio: 1, assignWindowMs: 1 }
  t.throws(() => new HealthTracker({ ...base, failThreshold: 0 }), /options\.failThreshold/)
  t.throws(() => new HealthTracker({ ...base, overloadRatio: 0 }), /options\.overloadRatio/)
  t.throws(() => new HealthTracker({ ...base, heartbeatTimeoutMs: 0.5 }), /options\.heartbeatTimeoutMs/)
})

t.test('a relayed heartbeat keeps the time it arrived; an older one than the latest is ignored', async (t) => {
  const { h, clock } = tracker()
  t.ok(h.recordHeartbeat(report('a', { ready: false }), clock.now - 4000))
  t.equal(h.view('a')?.lastHeartbeatAtMs, clock.now - 4000)
  t.equal(h.statusOf('a'), 'not-ready')
  t.ok(h.recordHeartbeat(report('a', { ready: true }), clock.now - 5000), 'known node: accepted, but stale')
  t.equal(h.statusOf('a'), 'not-ready', 'the older report does not win')
  t.equal(h.view('a')?.lastHeartbeatAtMs, clock.now - 4000)
  clock.now += 6001
  h.evaluate()
  t.equal(h.statusOf('a'), 'heartbeat-stale', 'timed from when it arrived, not from when it was relayed')
  t.notOk(h.recordHeartbeat(report('zz'), clock.now))
})
