/**
 * Choosing an edge, in two steps.
 *
 * 1. {@link orderGroups} (pure; depends only on where the client is): the cache groups in
 *    the order to try them. A coverage zone's group comes first; otherwise the group nearest
 *    the client by great-circle distance. Then that group's configured fallbacks, then every
 *    other group by distance (Traffic Router's CZF → fallbacks → closest chain, one list).
 *    {@link planFor} (pure; depends only on that order and the title) ranks each group's
 *    edges in rendezvous order for the title. Many client prefixes share one group order, so
 *    plans keyed by (order, title) are reused across clients.
 * 2. {@link pickNode} (per request, reads live health and load): the first available edge in
 *    plan order that is within its bounded-load share. A group whose edges are all down,
 *    draining, offline or overloaded is skipped, so overload spills to the next group. Every
 *    edge looked at is recorded with the reason it was passed over (the explain output).
 *
 * {@link rankPathways} orders the same plan for an HLS steering manifest.
 */
import { greatCircleKm, type LatLon } from '../geo/great-circle.ts'
import type { NodeStatus } from '../health/health-tracker.ts'
import type { Inventory, NodeSpec } from '../health/node-inventory.ts'
import type { HashRing } from '../../lib/hash-ring.ts'
import { loadBound, rendezvousRing } from './rendezvous.ts'

/** Where steering starts: a group (coverage zone, default group), a point (GeoIP), or both. */
export interface SteeringStart {
  readonly group?: string | undefined
  readonly point?: LatLon | undefined
}

/** Why a group is in the plan. */
export type GroupVia = 'zone' | 'nearest' | 'fallback' | 'distance'

/** The groups to try for a location, and a key naming that order (plans are cached by it). */
export interface GroupOrder {
  readonly key: string
  readonly groups: ReadonlyArray<{ readonly id: string, readonly via: GroupVia }>
}

/** One group of a plan. */
export interface PlannedGroup {
  readonly id: string
  readonly via: GroupVia
  /** The group's edges, best first for this title. */
  readonly nodes: readonly NodeSpec[]
}

/** The groups to try, in order. */
export interface SteeringPlan {
  readonly groups: readonly PlannedGroup[]
}

/** Live node state the pick reads. */
export interface HealthLookup {
  statusOf (id: string): NodeStatus
  loadOf (id: string): number
}

/** Why a candidate was or was not chosen. */
export type CandidateVerdict = 'chosen' | 'over-share' | Exclude<NodeStatus, 'available'>

/** One edge as the pick saw it. */
export interface CandidateExplain {
  readonly node: string
  readonly group: string
  readonly via: GroupVia
  /** From the client's position to the group, when the client has one (added by the caller). */
  readonly distanceKm?: number
  readonly status: NodeStatus
  readonly load: number
  /** The bounded-load limit it was held to (available edges only). */
  readonly bound?: number
  readonly verdict: CandidateVerdict
}

/** The pick. */
export interface Selection {
  readonly chosen: NodeSpec | undefined
  readonly group: string | undefined
  /** Edges looked at and passed over. */
  readonly skipped: number
  /** Every edge looked at, with why, in the order looked at (empty unless the pick was explained). */
  readonly candidates: readonly CandidateExplain[]
}

const NO_CANDIDATES: readonly CandidateExplain[] = Object.freeze([])

/** Builds the plan for a start and a title (the rendezvous key). */
export function planSteering (start: SteeringStart, title: string, inventory: Inventory): SteeringPlan {
  return planFor(orderGroups(start, inventory), title, inventory)
}

/** The groups to try, in order, for a starting point (only groups with edges). */
export function orderGroups (start: SteeringStart, inventory: Inventory): GroupOrder {
  const order: Array<{ id: string, via: GroupVia }> = []
  const seen = new Set<string>()
  const push = (id: string, via: GroupVia): void => {
    if (seen.has(id) || !inventory.groups.has(id)) return
    seen.add(id)
    order.push({ id, via })
  }
  const from = start.point ?? (start.group === undefined ? undefined : inventory.groups.get(start.group))
  // zone-only groups (ISP appliances) are never chosen for being near
  const open = [...inventory.groups.values()].filter((g) => !g.zoneOnly)
  const byDistance = from === undefined
    ? open.map((g) => g.id)
    : open.map((g) => ({ id: g.id, d: greatCircleKm(from, g) })).sort((a, b) => a.d - b.d || (a.id < b.id ? -1 : 1)).map((g) => g.id)
  const first = start.group !== undefined && inventory.groups.has(start.group)
    ? { id: start.group, via: 'zone' as const }
    : byDistance.map((id) => ({ id, via: 'nearest' as const })).find((g) => (inventory.edgesByGroup.get(g.id)?.length ?? 0) > 0)
  if (first !== undefined) {
    push(first.id, first.via)
    for (const fallback of inventory.groups.get(first.id)?.fallbacks ?? []) push(fallback, 'fallback')
  }
  for (const id of byDistance) push(id, 'distance')
  const groups = order.filter((g) => (inventory.edgesByGroup.get(g.id)?.length ?? 0) > 0)
  return { key: groups.map((g) => `${g.id}:${g.via}`).join(','), groups }
}

/** Ranks every group's edges for the title. */
export function planFor (order: GroupOrder, title: string, inventory: Inventory): SteeringPlan {
  const rings = ringsOf(inventory)
  const groups: PlannedGroup[] = []
  for (const { id, via } of order.groups) {
    groups.push({ id, via, nodes: rings.get(id)?.rank(title) ?? [] })
  }
  return { groups }
}

// One rendezvous ring per group, built once per inventory (an inventory is immutable; a reload
// makes a new one): ranking a title is then a score per edge and a sort, with no set-up.
const RINGS = new WeakMap<Inventory, ReadonlyMap<string, HashRing<NodeSpec>>>()

function ringsOf (inventory: Inventory): ReadonlyMap<string, HashRing<NodeSpec>> {
  let rings = RINGS.get(inventory)
  if (rings === undefined) {
    const built = new Map<string, HashRing<NodeSpec>>()
    for (const [id, edges] of inventory.edgesByGroup) built.set(id, rendezvousRing(edges.map((node) => ({ id: node.id, weight: node.capacity.connections, value: node }))))
    rings = built
    RINGS.set(inventory, rings)
  }
  return rings
}

/** Adds each candidate's distance from `point` to its group (for explanations). */
export function withDistances (candidates: readonly CandidateExplain[], point: LatLon | undefined, inventory: Inventory): CandidateExplain[] {
  const out = new Array<CandidateExplain>(candidates.length)
  for (let i = 0; i < candidates.length; i++) {
    const c = candidates[i]!
    const group = point === undefined ? undefined : inventory.groups.get(c.group)
    if (group === undefined || point === undefined) {
      out[i] = c
      continue
    }
    // spelt out rather than spread: candidates come in several shapes, and this runs per request
    const distanceKm = Math.round(greatCircleKm(point, group))
    out[i] = c.bound === undefined
      ? { node: c.node, group: c.group, via: c.via, status: c.status, load: c.load, verdict: c.verdict, distanceKm }
      : { node: c.node, group: c.group, via: c.via, status: c.status, load: c.load, bound: c.bound, verdict: c.verdict, distanceKm }
  }
  return out
}

/**
 * The edge for one new session. `slack` is the bounded-load ε (0.25 lets a node carry 25 %
 * over its weighted share of the group's load before the title moves to its next choice).
 * With `explain`, every edge looked at is recorded with its verdict (the `?format=json`
 * answer); without, only counted: a 302 needs the pick alone.
 */
export function pickNode (plan: SteeringPlan, health: HealthLookup, slack: number, explain = true): Selection {
  const candidates: CandidateExplain[] | undefined = explain ? [] : undefined
  let skipped = 0
  for (const group of plan.groups) {
    const nodes = group.nodes
    // one status and load read per node, so the share and the checks see the same loads
    // (written by index: `length = 0` would drop the arrays' storage, and a push regrow it)
    const statuses = STATUSES
    const loads = LOADS
    let groupLoad = 0
    let groupWeight = 0
    for (let i = 0; i < nodes.length; i++) {
      const node = nodes[i]!
      const status = health.statusOf(node.id)
      const load = health.loadOf(node.id)
      statuses[i] = status
      loads[i] = load
      if (status !== 'available') continue
      groupLoad += load
      groupWeight += node.capacity.connections
    }
    let fallback: NodeSpec | undefined
    let fallbackRatio = Infinity
    let fallbackIndex = -1
    for (let i = 0; i < nodes.length; i++) {
      const node = nodes[i]!
      const status = statuses[i]!
      const load = loads[i]!
      if (status !== 'available') {
        skipped++
        candidates?.push({ node: node.id, group: group.id, via: group.via, status, load, verdict: status })
        continue
      }
      const bound = loadBound(groupLoad, groupWeight, node.capacity.connections, slack)
      if (load + 1 <= bound) {
        candidates?.push({ node: node.id, group: group.id, via: group.via, status, load, bound, verdict: 'chosen' })
        return { chosen: node, group: group.id, skipped, candidates: candidates ?? NO_CANDIDATES }
      }
      skipped++
      candidates?.push({ node: node.id, group: group.id, via: group.via, status, load, bound, verdict: 'over-share' })
      const ratio = (load + 1) / node.capacity.connections
      if (ratio < fallbackRatio) {
        fallback = node
        fallbackRatio = ratio
        fallbackIndex = (candidates?.length ?? 0) - 1
      }
    }
    if (fallback !== undefined) {
      // Every available edge is past its share. With whole loads some edge always fits (the
      // bounds add up to more than the group's load); loads carry fractions of decaying
      // assignments, so it can happen. Balance within the group rather than spill a group
      // that still has room.
      const picked = candidates?.[fallbackIndex]
      if (candidates !== undefined && picked !== undefined) candidates[fallbackIndex] = { ...picked, verdict: 'chosen' }
      return { chosen: fallback, group: group.id, skipped: skipped - 1, candidates: candidates ?? NO_CANDIDATES }
    }
  }
  return { chosen: undefined, group: undefined, skipped, candidates: candidates ?? NO_CANDIDATES }
}

// pickNode's per-group scratch, entries 0..nodes-1 valid (it runs synchronously and does not re-enter): no arrays per request
const STATUSES: NodeStatus[] = []
const LOADS: number[] = []

/**
 * Steering-manifest order: the pick first, then the other available edges in plan order,
 * then overloaded ones (still better than nothing). Down, unknown, not-ready, stale, draining
 * and offline edges are left out, so players move off them at the next reload.
 */
export function rankPathways (plan: SteeringPlan, health: HealthLookup, first: NodeSpec | undefined, max: number): NodeSpec[] {
  const out: NodeSpec[] = first === undefined ? [] : [first]
  const overloaded: NodeSpec[] = []
  for (const group of plan.groups) {
    for (const node of group.nodes) {
      if (node === first) continue
      const status = health.statusOf(node.id)
      if (status === 'available') out.push(node)
      else if (status === 'overloaded') overloaded.push(node)
    }
  }
  return [...out, ...overloaded].slice(0, max)
}
