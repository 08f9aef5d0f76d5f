/**
 * Content-aware steering and pre-positioning from the control plane's side:
 * - polls every node's `GET /admin/inventory` (the titles it holds, with segment counts);
 * - {@link preferHolders}: within each cache group of a steering plan, nodes that hold the
 *   title go first (in their rendezvous order), so a session lands where the title is
 *   already cached. Health, bounded load and licensing still decide: a holder that is down
 *   or over its share is passed over exactly as before;
 * - fans a prefill request out to nodes (`POST /admin/prefill`).
 *
 * A node "holds" a title when its newest report (no older than `maxAgeMs`) counts at least
 * half as many of the title's segments as the node holding the most: a node that served a
 * few segments of a title once does not attract all its viewers.
 */
import type { Logger } from '../lib/log.ts'
import { getInventory, startPrefill, type NodeAdmin } from '../lib/protocol/prefill-client.ts'
import { parsePrefillRequest, type InventoryTitle, type PrefillJobStatus, type PrefillRequest } from '../lib/protocol/prefill.ts'
import type { NodeSpec } from './health/node-inventory.ts'
import type { SteeringPlan } from './steering/selector.ts'

/** Options of {@link TitleInventory}. */
export interface TitleInventoryOptions {
  /** The nodes to poll (edges and shields). */
  readonly nodes: () => readonly NodeSpec[]
  /** Bearer token for a node's admin endpoints (its own, or the shared one). */
  readonly tokenFor: (node: NodeSpec) => string | undefined
  /** Time between polls of every node; 0 polls only on {@link TitleInventory.pollNow}. */
  readonly intervalMs: number
  readonly timeoutMs: number
  /** Reports older than this are ignored by steering. */
  readonly maxAgeMs: number
  readonly logger: Logger
  /** Counts each node's poll outcome. */
  readonly onPoll?: (node: string, ok: boolean) => void
  readonly now?: () => number
}

/** One node's last report as the control plane holds it. */
export interface NodeTitles {
  readonly node: string
  readonly ok: boolean
  readonly error?: string
  /** When the control plane received it (its clock). */
  readonly polledAtMs: number
  readonly titles: readonly InventoryTitle[]
}

/** What one node answered to a prefill fan-out. */
export interface PrefillNodeResult {
  readonly node: string
  readonly ok: boolean
  readonly job?: PrefillJobStatus
  readonly error?: string
}

/** The fleet's view; see the file comment. */
export class TitleInventory {
  readonly #o: TitleInventoryOptions
  readonly #now: () => number
  readonly #reports = new Map<string, NodeTitles>()
  // title → node → segments, rebuilt after each poll round.
  #byTitle = new Map<string, Map<string, number>>()
  #timer: NodeJS.Timeout | undefined
  #polling: Promise<void> | undefined

  constructor (options: TitleInventoryOptions) {
    for (const field of ['intervalMs', 'timeoutMs', 'maxAgeMs'] as const) {
      const value = options[field]
      if (!Number.isSafeInteger(value) || value < 0) throw new TypeError(`Expected options.${field} to be a non-negative integer, got ${String(value)}`)
    }
    this.#o = options
    this.#now = options.now ?? Date.now
  }

  /** Polls every `intervalMs` (the first round right away). */
  start (): void {
    if (this.#o.intervalMs === 0 || this.#timer !== undefined) return
    const tick = (): void => {
      void this.pollNow().finally(() => {
        if (this.#timer !== undefined) this.#timer = setTimeout(tick, this.#o.intervalMs).unref()
      })
    }
    this.#timer = setTimeout(tick, 0).unref()
  }

  /** Stops polling and waits for a round under way. */
  async stop (): Promise<void> {
    if (this.#timer !== undefined) clearTimeout(this.#timer)
    this.#timer = undefined
    await this.#polling
  }

  /** Polls every node once (rounds never overlap). */
  async pollNow (): Promise<void> {
    if (this.#polling !== undefined) return await this.#polling
    this.#polling = this.#poll().finally(() => { this.#polling = undefined })
    return await this.#polling
  }

  /** Node ids that hold `title` (or a title it lies under), per the fresh reports. */
  holders (title: string): ReadonlySet<string> {
    const counts = this.#countsFor(title)
    if (counts === undefined) return EMPTY
    const cutoff = this.#now() - this.#o.maxAgeMs
    let most = 0
    for (const [node, n] of counts) if (this.#fresh(node, cutoff)) most = Math.max(most, n)
    const out = new Set<string>()
    for (const [node, n] of counts) if (this.#fresh(node, cutoff) && n * 2 >= most && n > 0) out.add(node)
    return out
  }

  /** Every node's last report. */
  snapshot (): NodeTitles[] {
    return [...this.#reports.values()]
  }

  /** Asks `nodes` (default: every node) to prefill; one result per node. */
  async prefill (request: PrefillRequest, nodes?: readonly string[]): Promise<PrefillNodeResult[]> {
    const targets = this.#o.nodes().filter((n) => nodes === undefined || nodes.includes(n.id))
    return await Promise.all(targets.map(async (node): Promise<PrefillNodeResult> => {
      const admin = this.#admin(node)
      if (admin === undefined) return { node: node.id, ok: false, error: 'no admin token for this node' }
      const answer = await startPrefill(admin, request)
      return answer.ok ? { node: node.id, ok: true, job: answer.value } : { node: node.id, ok: false, error: answer.error }
    }))
  }

  async #poll (): Promise<void> {
    const nodes = this.#o.nodes()
    await Promise.all(nodes.map(async (node) => {
      const admin = this.#admin(node)
      const answer = admin === undefined ? { ok: false as const, error: 'no admin token for this node' } : await getInventory(admin)
      const polledAtMs = this.#now()
      this.#o.onPoll?.(node.id, answer.ok)
      if (answer.ok) {
        this.#reports.set(node.id, { node: node.id, ok: true, polledAtMs, titles: answer.value.titles })
        return
      }
      // Keep the titles of the last good report: they age out through maxAgeMs.
      const previous = this.#reports.get(node.id)
      this.#reports.set(node.id, { node: node.id, ok: false, error: answer.error, polledAtMs: previous?.polledAtMs ?? 0, titles: previous?.titles ?? [] })
      this.#o.logger.debug({ target: node.id, error: answer.error }, 'inventory poll failed')
    }))
    const known = new Set(nodes.map((n) => n.id))
    for (const id of this.#reports.keys()) if (!known.has(id)) this.#reports.delete(id)
    this.#rebuild()
  }

  #rebuild (): void {
    const byTitle = new Map<string, Map<string, number>>()
    for (const report of this.#reports.values()) {
      for (const { title, segments } of report.titles) {
        let nodes = byTitle.get(title)
        if (nodes === undefined) {
          nodes = new Map()
          byTitle.set(title, nodes)
        }
        nodes.set(report.node, segments)
      }
    }
    this.#byTitle = byTitle
  }

  /** Counts for the title itself or the nearest title above it (`/vod/t1/360p/` → `/vod/t1/`). */
  #countsFor (title: string): Map<string, number> | undefined {
    if (this.#byTitle.size === 0) return undefined // no inventories (yet): every steering decision asks
    let prefix = title.endsWith('/') ? title : title.slice(0, title.lastIndexOf('/') + 1)
    while (prefix.length > 1) {
      const counts = this.#byTitle.get(prefix)
      if (counts !== undefined) return counts
      prefix = prefix.slice(0, prefix.lastIndexOf('/', prefix.length - 2) + 1)
    }
    return undefined
  }

  #fresh (node: string, cutoffMs: number): boolean {
    return (this.#reports.get(node)?.polledAtMs ?? 0) >= cutoffMs
  }

  #admin (node: NodeSpec): NodeAdmin | undefined {
    const token = this.#o.tokenFor(node)
    return token === undefined ? undefined : { url: node.url, token, timeoutMs: this.#o.timeoutMs }
  }
}

const EMPTY: ReadonlySet<string> = new Set()

/** A `POST /v1/prefill` body: a node prefill request plus, optionally, which nodes (ids) to ask. */
export function parsePrefillFanout (value: unknown): { ok: true, request: PrefillRequest, nodes: readonly string[] | undefined } | { ok: false, error: string } {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return { ok: false, error: 'body must be a JSON object' }
  const { nodes, ...rest } = value as Record<string, unknown>
  if (nodes !== undefined && (!Array.isArray(nodes) || nodes.length === 0 || !nodes.every((n) => typeof n === 'string'))) {
    return { ok: false, error: 'nodes must be a non-empty list of node ids' }
  }
  const parsed = parsePrefillRequest(rest)
  if (!parsed.ok) return parsed
  return { ok: true, request: parsed.value, nodes: nodes as string[] | undefined }
}

/**
 * The plan with, in each group, the nodes in `holders` moved to the front (each part
 * keeps its rendezvous order). The same plan object when no group changes.
 */
export function preferHolders (plan: SteeringPlan, holders: ReadonlySet<string>): SteeringPlan {
  if (holders.size === 0) return plan
  let changed = false
  const groups = plan.groups.map((group) => {
    const first = group.nodes.filter((n) => holders.has(n.id))
    if (first.length === 0 || first.length === group.nodes.length) return group
    const reordered = [...first, ...group.nodes.filter((n) => !holders.has(n.id))]
    if (reordered.every((n, i) => n === group.nodes[i])) return group
    changed = true
    return { ...group, nodes: reordered }
  })
  return changed ? { groups } : plan
}
