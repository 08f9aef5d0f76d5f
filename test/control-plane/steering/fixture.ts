/**
 * A steering service for tests: two groups of one edge each (`a` near Frankfurt, `b` near
 * Washington), every node up, coverage zones and inventory swappable at any time, and the
 * locator's zone lookups counted (one per client located, so memoization shows).
 */
import type { ClientAddress } from '../../../control-plane/geo/client-ip.ts'
import { parseCoverageZones, type CoverageZones } from '../../../control-plane/geo/coverage-zones.ts'
import { Locator } from '../../../control-plane/geo/locator.ts'
import { HealthTracker } from '../../../control-plane/health/health-tracker.ts'
import { parseInventory, type Inventory } from '../../../control-plane/health/node-inventory.ts'
import { LicensingRules } from '../../../control-plane/licensing/licensing-rules.ts'
import { DecisionCache } from '../../../control-plane/steering/decision-cache.ts'
import type { SteeringPlan } from '../../../control-plane/steering/selector.ts'
import { SteeringService, type SteerDecision } from '../../../control-plane/steering/steering-service.ts'
import { parseIp } from '../../../lib/net/ip-address.ts'
import { TokenKey, TokenSigner, TokenVerifier } from '../../../lib/protocol/token.ts'

interface Teardown { teardown (fn: () => unknown): void }

/** The fixture's nodes, as written in a nodes file. */
export const TWO_GROUPS = [
  { id: 'a-1', url: 'http://127.0.0.1:9001', group: 'a', lat: 50, lon: 8, capacity: { connections: 100, mbps: 1000 } },
  { id: 'b-1', url: 'http://127.0.0.1:9002', group: 'b', lat: 40, lon: -77, capacity: { connections: 100, mbps: 1000 } },
] as const

/** Options of {@link steeringFixture}. */
export interface SteeringFixtureOptions {
  /** Coverage zones data (`{ coverageZones: ... }`). */
  readonly zones: unknown
  /** Where the unknown-location policy sends clients. */
  readonly unknownGroup: string
  readonly licensing?: LicensingRules
}

/** A steering service and the state behind it. */
export interface SteeringFixture {
  readonly steering: SteeringService
  readonly health: HealthTracker
  /** The zones and inventory the service reads now; assign to change them. */
  zones: CoverageZones
  inventory: Inventory
  /** Zone lookups so far. */
  readonly zoneLookups: number
  /** Switches to a new inventory (health follows) with every node up again. */
  setInventory (inventory: Inventory): void
}

/** Builds the service; its decision cache closes at teardown. */
export function steeringFixture (t: Teardown, options: SteeringFixtureOptions): SteeringFixture {
  const inventory = parseInventory({ nodes: TWO_GROUPS })
  const health = new HealthTracker({ inventory, failThreshold: 1, riseThreshold: 1, heartbeatTimeoutMs: 15_000, overloadRatio: 0.9, assignWindowMs: 15_000 })
  const allUp = (nodes: Inventory): void => { for (const node of nodes.nodes) health.recordProbe(node.id, true) }
  let zoneLookups = 0
  const locator = new Locator({ zones: () => { zoneLookups++; return fixture.zones }, geoip: undefined, unknown: { kind: 'default-group', group: options.unknownGroup } })
  const keys = [new TokenKey('k1', 'a-secret-of-16-bytes-or-more')]
  const cache = new DecisionCache<SteeringPlan>({ ttlMs: 10_000, maxEntries: 1000 })
  t.teardown(() => cache.close())
  const licensing = options.licensing ?? LicensingRules.empty()
  const steering = new SteeringService({
    inventory: () => fixture.inventory, licensing: () => licensing, health, locator, cache,
    signer: new TokenSigner(keys), verifier: new TokenVerifier(keys), tokenTtlSeconds: 600, bindIp: false, slack: 0.25, manifestTtlSeconds: 30, maxPathways: 4,
  })
  const fixture: SteeringFixture = {
    steering,
    health,
    zones: parseCoverageZones(options.zones),
    inventory,
    get zoneLookups () { return zoneLookups },
    setInventory (next) {
      fixture.inventory = next
      health.setInventory(next)
      allUp(next)
    },
  }
  allUp(inventory)
  return fixture
}

/** A client at `text`, as learnt from X-Forwarded-For. */
export function client (text: string): ClientAddress {
  return { ip: parseIp(text)!, source: 'x-forwarded-for' }
}

/** The group a decision redirected to, else the decision's kind. */
export function groupOf (decision: SteerDecision): string {
  return decision.kind === 'redirect' ? decision.group : decision.kind
}
