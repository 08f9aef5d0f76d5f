/**
 * One health view per node, fused from three inputs:
 * - active probes of `/readyz`, with hysteresis (N consecutive failures mark a node down,
 *   M consecutive successes mark it up again: pingora's `health_threshold`, tc-health-client's
 *   markdown/markup thresholds), so one lost probe does not flap a node;
 * - heartbeats pushed by the node (its load, and `ready: false` as a self-drain signal); a
 *   node that has reported and then stays silent past the timeout is down;
 * - the operator's admin state (active, draining, offline).
 *
 * Every change of a node's status is reported once through `onChange` (logged, counted, and
 * it clears the decision cache). Time is injected.
 */
import type { NodeReport } from '../../lib/protocol/node-report.ts'
import type { Inventory, NodeSpec } from './node-inventory.ts'

/** A node's status; only `available` receives new sessions. */
export type NodeStatus =
  | 'available' | 'overloaded' | 'draining' | 'unknown' | 'not-ready' | 'heartbeat-stale' | 'down' | 'offline'

/** What the tracker knows about one node. */
export interface NodeHealth {
  readonly id: string
  readonly status: NodeStatus
  /** Probe verdict after hysteresis; undefined until the first probe. */
  readonly probeUp: boolean | undefined
  readonly consecutiveFailures: number
  readonly consecutiveSuccesses: number
  readonly lastProbeError: string | undefined
  readonly lastHeartbeatAtMs: number | undefined
  readonly report: NodeReport | undefined
  /** Reported connections plus recent sessions steered here since (the bounded-load estimate). */
  readonly load: number
  /** When the status last changed (ms). */
  readonly sinceMs: number
}

/** A status change. */
export interface HealthChange {
  readonly id: string
  readonly from: NodeStatus
  readonly to: NodeStatus
  /** Probe error or other detail, for the log line. */
  readonly detail?: string
}

/** Options of {@link HealthTracker}. */
export interface HealthTrackerOptions {
  readonly inventory: Inventory
  /** Consecutive probe failures that mark a node down. */
  readonly failThreshold: number
  /** Consecutive probe successes that mark a down node up. */
  readonly riseThreshold: number
  /** A node that reported once and then stays silent this long is down. */
  readonly heartbeatTimeoutMs: number
  /** Reported load (connections or Mbps) at or above this share of capacity is overload (0..1]. */
  readonly overloadRatio: number
  /** Sessions steered to a node count towards its load for about this long (ms). */
  readonly assignWindowMs: number
  readonly now?: () => number
  readonly onChange?: (change: HealthChange) => void
}

interface State {
  spec: NodeSpec
  status: NodeStatus
  sinceMs: number
  probeUp: boolean | undefined
  fails: number
  successes: number
  lastError: string | undefined
  heartbeatAtMs: number | undefined
  report: NodeReport | undefined
  // Sessions steered here, in two time buckets (a sliding window without a timer).
  assignedNow: number
  assignedPrev: number
  bucketStartMs: number
}

/** Fuses probes, heartbeats and admin state into node statuses. */
export class HealthTracker {
  readonly #o: HealthTrackerOptions
  readonly #now: () => number
  readonly #states = new Map<string, State>()
  #generation = 0

  constructor (options: HealthTrackerOptions) {
    for (const name of ['failThreshold', 'riseThreshold'] as const) {
      if (!Number.isSafeInteger(options[name]) || options[name] < 1) throw new TypeError(`Expected options.${name} to be a positive integer, got ${String(options[name])}`)
    }
    for (const name of ['heartbeatTimeoutMs', 'assignWindowMs'] as const) {
      if (!Number.isSafeInteger(options[name]) || options[name] < 1) throw new TypeError(`Expected options.${name} to be a positive integer, got ${String(options[name])}`)
    }
    if (!(options.overloadRatio > 0 && options.overloadRatio <= 1)) throw new TypeError(`Expected options.overloadRatio to be in (0, 1], got ${String(options.overloadRatio)}`)
    this.#o = options
    this.#now = options.now ?? Date.now
    this.setInventory(options.inventory)
  }

  /** Bumped on every status change and inventory change: cached decisions older than it are stale. */
  get generation (): number {
    return this.#generation
  }

  /** Takes a new inventory: keeps the state of nodes that remain, re-evaluates admin states. */
  setInventory (inventory: Inventory): void {
    const now = this.#now()
    for (const id of [...this.#states.keys()]) if (!inventory.byId.has(id)) this.#states.delete(id)
    for (const spec of inventory.nodes) {
      const state = this.#states.get(spec.id)
      if (state === undefined) {
        this.#states.set(spec.id, {
          spec,
          status: 'unknown',
          sinceMs: now,
          probeUp: undefined,
          fails: 0,
          successes: 0,
          lastError: undefined,
          heartbeatAtMs: undefined,
          report: undefined,
          assignedNow: 0,
          assignedPrev: 0,
          bucketStartMs: now,
        })
      } else {
        state.spec = spec
      }
    }
    this.#generation++
    this.evaluate()
  }

  /** Records one probe result (`detail` says why it failed). */
  recordProbe (id: string, ok: boolean, detail?: string): void {
    const state = this.#states.get(id)
    if (state === undefined) return
    if (ok) {
      state.successes++
      state.fails = 0
      state.lastError = undefined
      // the first verdict needs no streak: a node seen healthy once at start is up
      if (state.probeUp === undefined || (!state.probeUp && state.successes >= this.#o.riseThreshold)) state.probeUp = true
    } else {
      state.fails++
      state.successes = 0
      state.lastError = detail
      if (state.probeUp === undefined || (state.probeUp && state.fails >= this.#o.failThreshold)) state.probeUp = false
    }
    this.#update(state, detail)
  }

  /**
   * Records a heartbeat; false for a node not in the inventory (or of another role).
   * `receivedAtMs` (now by default) is when it arrived: a report relayed by another worker of
   * a cluster keeps its own time, and one older than the node's latest is ignored.
   */
  recordHeartbeat (report: NodeReport, receivedAtMs?: number): boolean {
    const state = this.#states.get(report.id)
    if (state === undefined || state.spec.role !== report.role) return false
    if (receivedAtMs !== undefined && state.heartbeatAtMs !== undefined && receivedAtMs < state.heartbeatAtMs) return true
    state.heartbeatAtMs = receivedAtMs ?? this.#now()
    state.report = report
    // the report's connections include the sessions steered here before it
    state.assignedNow = 0
    state.assignedPrev = 0
    state.bucketStartMs = state.heartbeatAtMs
    this.#update(state, report.ready ? undefined : 'node reported not ready')
    return true
  }

  /** Counts one new session steered to `id` (bounded-load accounting). */
  noteAssigned (id: string): void {
    const state = this.#states.get(id)
    if (state === undefined) return
    this.#roll(state, this.#now())
    state.assignedNow++
  }

  /** The bounded-load estimate of a node. */
  loadOf (id: string): number {
    const state = this.#states.get(id)
    return state === undefined ? 0 : this.#load(state, this.#now())
  }

  /** The status of a node (`offline` for an unknown id). */
  statusOf (id: string): NodeStatus {
    return this.#states.get(id)?.status ?? 'offline'
  }

  /** Re-evaluates every node (heartbeat staleness); call on a timer. */
  evaluate (): void {
    for (const state of this.#states.values()) this.#update(state, undefined)
  }

  /** One node's view, or undefined for an unknown id. */
  view (id: string): NodeHealth | undefined {
    const state = this.#states.get(id)
    return state === undefined ? undefined : this.#view(state, this.#now())
  }

  /** Every node's view, in inventory order. */
  views (): NodeHealth[] {
    const now = this.#now()
    return [...this.#states.values()].map((s) => this.#view(s, now))
  }

  #view (s: State, now: number): NodeHealth {
    return {
      id: s.spec.id,
      status: s.status,
      probeUp: s.probeUp,
      consecutiveFailures: s.fails,
      consecutiveSuccesses: s.successes,
      lastProbeError: s.lastError,
      lastHeartbeatAtMs: s.heartbeatAtMs,
      report: s.report,
      load: this.#load(s, now),
      sinceMs: s.sinceMs,
    }
  }

  #update (state: State, detail: string | undefined): void {
    const now = this.#now()
    const next = this.#statusOf(state, now)
    if (next === state.status) return
    const change: HealthChange = { id: state.spec.id, from: state.status, to: next, ...(detail === undefined ? {} : { detail }) }
    state.status = next
    state.sinceMs = now
    this.#generation++
    this.#o.onChange?.(change)
  }

  #statusOf (s: State, now: number): NodeStatus {
    if (s.spec.state === 'offline') return 'offline'
    if (s.probeUp === false) return 'down'
    const heartbeatFresh = s.heartbeatAtMs !== undefined && now - s.heartbeatAtMs <= this.#o.heartbeatTimeoutMs
    if (s.heartbeatAtMs !== undefined && !heartbeatFresh) return 'heartbeat-stale'
    if (heartbeatFresh && s.report?.ready === false) return 'not-ready'
    if (s.probeUp === undefined && !heartbeatFresh) return 'unknown'
    if (s.spec.state === 'draining') return 'draining'
    if (this.#overloaded(s)) return 'overloaded'
    return 'available'
  }

  /** Hard overload comes from what the node reported, never from our own estimate. */
  #overloaded (s: State): boolean {
    const report = s.report
    if (report === undefined) return false
    const ratio = this.#o.overloadRatio
    return report.connections >= s.spec.capacity.connections * ratio || report.egressMbps >= s.spec.capacity.mbps * ratio
  }

  #load (s: State, now: number): number {
    this.#roll(s, now)
    const window = this.#o.assignWindowMs
    const carried = s.assignedPrev * Math.max(0, 1 - (now - s.bucketStartMs) / window)
    return (s.report?.connections ?? 0) + s.assignedNow + carried
  }

  #roll (s: State, now: number): void {
    const window = this.#o.assignWindowMs
    const elapsed = now - s.bucketStartMs
    if (elapsed < window) return
    s.assignedPrev = elapsed < 2 * window ? s.assignedNow : 0
    s.assignedNow = 0
    s.bucketStartMs = elapsed < 2 * window ? s.bucketStartMs + window : now
  }
}
