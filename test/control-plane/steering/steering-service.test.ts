/**
 * The title a path belongs to (the token ACL and the rendezvous key), and locations
 * remembered per client address until the data behind them changes.
 */
import t from 'tap'
import type { ClientAddress } from '../../../control-plane/geo/client-ip.ts'
import { parseCoverageZones } from '../../../control-plane/geo/coverage-zones.ts'
import { Locator } from '../../../control-plane/geo/locator.ts'
import { HealthTracker } from '../../../control-plane/health/health-tracker.ts'
import { parseInventory } from '../../../control-plane/health/node-inventory.ts'
import { LicensingRules } from '../../../control-plane/licensing/licensing-rules.ts'
import { DecisionCache } from '../../../control-plane/steering/decision-cache.ts'
import type { SteeringPlan } from '../../../control-plane/steering/selector.ts'
import { SteeringService, titleOf, type SteerDecision } from '../../../control-plane/steering/steering-service.ts'
import { parseIp } from '../../../lib/net/ip-address.ts'
import { TokenKey, TokenSigner, TokenVerifier } from '../../../lib/protocol/token.ts'

t.test('the directory of the requested file, never the whole site', async (t) => {
  t.equal(titleOf('/vod/bbb/master.m3u8'), '/vod/bbb/')
  t.equal(titleOf('/live/ch1/index.m3u8'), '/live/ch1/')
  t.equal(titleOf('/vod/a/b/c/master.m3u8'), '/vod/a/b/c/')
  t.equal(titleOf('/master.m3u8'), '/master.m3u8', 'a file at the root gets a token for itself alone')
  t.equal(titleOf('/vod/bbb/'), '/vod/bbb/')
})

t.test('a client address is located once until invalidate(), and a reload moves it', async (t) => {
  const nodes = [
    { id: 'a-1', url: 'http://127.0.0.1:9001', group: 'a', lat: 50, lon: 8, capacity: { connections: 100, mbps: 1000 } },
    { id: 'b-1', url: 'http://127.0.0.1:9002', group: 'b', lat: 40, lon: -77, capacity: { connections: 100, mbps: 1000 } },
  ]
  const inventory = parseInventory({ nodes })
  const health = new HealthTracker({ inventory, failThreshold: 1, riseThreshold: 1, heartbeatTimeoutMs: 15_000, overloadRatio: 0.9, assignWindowMs: 15_000 })
  for (const n of nodes) health.recordProbe(n.id, true)
  let zones = parseCoverageZones({ coverageZones: { a: { network: ['198.51.100.0/24'] } } })
  let zoneLookups = 0
  const locator = new Locator({ zones: () => { zoneLookups++; return zones }, geoip: undefined, unknown: { kind: 'default-group', group: 'a' } })
  const keys = [new TokenKey('k1', 'a-secret-of-16-bytes-or-more')]
  const cache = new DecisionCache<SteeringPlan>({ ttlMs: 10_000, maxEntries: 1000 })
  t.teardown(() => cache.close())
  const steering = new SteeringService({
    inventory: () => inventory, licensing: () => LicensingRules.empty(), health, locator, cache,
    signer: new TokenSigner(keys), verifier: new TokenVerifier(keys), tokenTtlSeconds: 600, bindIp: false, slack: 0.25, manifestTtlSeconds: 30, maxPathways: 4,
  })
  const client = (text: string): ClientAddress => ({ ip: parseIp(text)!, source: 'x-forwarded-for' })
  const groupOf = (d: SteerDecision): string => d.kind === 'redirect' ? d.group : d.kind
  t.equal(groupOf(steering.steerNow('/vod/x/master.m3u8', client('198.51.100.7'))), 'a')
  t.equal(groupOf(steering.steerNow('/vod/y/master.m3u8', client('198.51.100.7'))), 'a')
  t.equal(zoneLookups, 1, 'the second request from the address reused its location')
  t.equal(groupOf(steering.steerNow('/vod/x/master.m3u8', client('198.51.100.8'))), 'a')
  t.equal(zoneLookups, 2, 'another address is located on its own')
  zones = parseCoverageZones({ coverageZones: { b: { network: ['198.51.100.0/24'] } } })
  t.equal(groupOf(steering.steerNow('/vod/x/master.m3u8', client('198.51.100.7'))), 'a', 'until invalidated, the remembered location stands')
  steering.invalidate()
  t.equal(groupOf(steering.steerNow('/vod/x/master.m3u8', client('198.51.100.7'))), 'b', 'after a reload the address locates anew')
  t.equal(zoneLookups, 3)
  t.equal(groupOf(steering.steerNow('/vod/x/master.m3u8', undefined)), 'a', 'an unusable peer gets the unknown policy')
})

t.test('a remembered client follows an inventory change without invalidate(); IPv6 clients are remembered too', async (t) => {
  const nodes = [
    { id: 'a-1', url: 'http://127.0.0.1:9001', group: 'a', lat: 50, lon: 8, capacity: { connections: 100, mbps: 1000 } },
    { id: 'b-1', url: 'http://127.0.0.1:9002', group: 'b', lat: 40, lon: -77, capacity: { connections: 100, mbps: 1000 } },
  ]
  let inventory = parseInventory({ nodes })
  const health = new HealthTracker({ inventory, failThreshold: 1, riseThreshold: 1, heartbeatTimeoutMs: 15_000, overloadRatio: 0.9, assignWindowMs: 15_000 })
  for (const n of nodes) health.recordProbe(n.id, true)
  const zones = parseCoverageZones({ coverageZones: { a: { network: ['198.51.100.0/24'], network6: ['2001:db8::/32'] } } })
  let zoneLookups = 0
  const locator = new Locator({ zones: () => { zoneLookups++; return zones }, geoip: undefined, unknown: { kind: 'default-group', group: 'b' } })
  const keys = [new TokenKey('k1', 'a-secret-of-16-bytes-or-more')]
  const cache = new DecisionCache<SteeringPlan>({ ttlMs: 10_000, maxEntries: 1000 })
  t.teardown(() => cache.close())
  const steering = new SteeringService({
    inventory: () => inventory, licensing: () => LicensingRules.empty(), health, locator, cache,
    signer: new TokenSigner(keys), verifier: new TokenVerifier(keys), tokenTtlSeconds: 600, bindIp: false, slack: 0.25, manifestTtlSeconds: 30, maxPathways: 4,
  })
  const client = (text: string): ClientAddress => ({ ip: parseIp(text)!, source: 'x-forwarded-for' })
  const groupOf = (d: SteerDecision): string => d.kind === 'redirect' ? d.group : d.kind
  t.equal(groupOf(steering.steerNow('/vod/x/master.m3u8', client('198.51.100.7'))), 'a')
  t.equal(groupOf(steering.steerNow('/vod/x/master.m3u8', client('2001:db8::7'))), 'a')
  t.equal(groupOf(steering.steerNow('/vod/y/master.m3u8', client('2001:DB8:0::7'))), 'a', 'the same IPv6 address written another way')
  t.equal(zoneLookups, 2, 'each address located once')
  // group a's only edge moves to a new group: the remembered location stands, its group order does not
  inventory = parseInventory({ nodes: [{ ...nodes[0]!, group: 'c' }, nodes[1]!] })
  health.setInventory(inventory)
  for (const n of nodes) health.recordProbe(n.id, true)
  const moved = steering.steerNow('/vod/x/master.m3u8', client('198.51.100.7'))
  t.equal(groupOf(moved), 'c', 'group a is gone: the order is rebuilt (a stale one would skip the empty a for b)')
  t.equal(zoneLookups, 2, 'the location was still remembered')
  const same = steering.steerNow('/vod/x/master.m3u8', client('198.51.100.7'))
  t.equal(groupOf(same), groupOf(moved), 'and the new order is remembered in turn')
})
