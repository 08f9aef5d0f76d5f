/**
 * The HLS layer of one cache node, composed: rendition index, content policy, prefetcher,
 * prefill jobs, the title inventory, their metrics and their admin endpoints. A role's
 * main.ts builds one from config and hands `contentPolicyFor` to startCacheNode; once the
 * node runs, `attach` gives it the node's store (inventory, reading cached playlists).
 *
 *   const hls = new HlsRuntime({ ... })
 *   const node = await startCacheNode({ ..., contentPolicy: hls.contentPolicyFor })
 *   hls.attach(node)
 */
import type { Logger } from '../../lib/log.ts'
import { HlsMetrics, type CacheNodeMetrics } from '../../lib/metrics.ts'
import { parsePrefillRequest, type InventoryReport } from '../../lib/protocol/prefill.ts'
import { makeCacheKey } from '../cache/cache-key.ts'
import type { StoredObject } from '../cache/types.ts'
import { markerNames, variantKey } from '../cache/vary.ts'
import type { ContentPolicy } from '../proxy/content-policy.ts'
import { registerAdminRoutes, type AdminAnswer, type AdminRequest, type AdminRoute, type AdminRoutes } from '../proxy/admin.ts'
import type { CacheProxy } from '../proxy/cache-proxy.ts'
import { HLS_POLICY_DEFAULTS, HlsPolicy, type HlsPolicySettings } from './hls-policy.ts'
import { normalizePlaylistUrls, parsePlaylist, type PlaylistInfo } from './playlist.ts'
import { PREFETCH_DEFAULTS, Prefetcher, type PrefetchSettings } from './prefetcher.ts'
import { PREFILL_DEFAULTS, Prefiller, type PrefillSettings } from './prefill.ts'
import { RenditionIndex } from './rendition-index.ts'
import { buildInventory } from './title-inventory.ts'
import type { Warm } from './warm.ts'

/** Limits of the rendition index. */
export interface IndexSettings {
  readonly maxRenditions: number
  readonly maxSegments: number
}

/** Defaults of {@link IndexSettings}. */
export const INDEX_DEFAULTS: IndexSettings = Object.freeze({ maxRenditions: 4096, maxSegments: 200_000 })

/** Options of {@link HlsRuntime}. */
export interface HlsRuntimeOptions {
  readonly nodeId: string
  readonly logger: Logger
  /** Query parameters the node strips from cache keys (playlist URIs are keyed the same way). */
  readonly stripQueryParams: readonly string[]
  readonly policy?: Partial<HlsPolicySettings>
  readonly prefetch?: Partial<PrefetchSettings>
  readonly prefill?: Partial<PrefillSettings>
  readonly index?: Partial<IndexSettings>
  readonly now?: () => number
}

/** The parts of a running node the runtime reads. */
export interface HlsNodeView {
  readonly store: {
    getFromMemory (key: string): StoredObject | undefined
    getFromDisk (key: string): Promise<StoredObject | undefined>
    readonly memory: { keys (): Iterable<string> }
    readonly disk: { keys (): Iterable<string>, pendingKeys (): Iterable<string> }
  }
}

/** The composed HLS layer; see the file comment. */
export class HlsRuntime {
  readonly index: RenditionIndex
  readonly metrics = new HlsMetrics()
  readonly #o: HlsRuntimeOptions
  readonly #strip: ReadonlySet<string>
  readonly #now: () => number
  readonly #adminRoutes: AdminRoutes
  #prefetcher: Prefetcher | undefined
  #prefiller: Prefiller | undefined
  #node: HlsNodeView | undefined

  constructor (options: HlsRuntimeOptions) {
    this.#o = options
    this.#strip = new Set(options.stripQueryParams)
    this.#now = options.now ?? Date.now
    this.index = new RenditionIndex({ ...INDEX_DEFAULTS, ...options.index })
    this.#adminRoutes = new Map<string, AdminRoute>([
      ['prefill', { handle: (req) => this.#prefillRoute(req) }],
      ['inventory', { handle: (req) => this.#inventoryRoute(req) }],
    ])
    this.metrics.watch(() => {
      const prefill = this.#prefiller?.gauges()
      return {
        indexRenditions: this.index.renditions,
        indexSegments: this.index.segments,
        prefetchInFlight: this.#prefetcher?.inFlight ?? 0,
        prefetchQueued: this.#prefetcher?.queued ?? 0,
        prefillJobs: prefill?.jobs ?? {},
        prefillRemaining: prefill?.remaining ?? 0,
      }
    })
  }

  /** `/admin/prefill` and `/admin/inventory`. */
  get adminRoutes (): AdminRoutes { return this.#adminRoutes }
  /** The prefetcher, once a policy was made. */
  get prefetcher (): Prefetcher | undefined { return this.#prefetcher }
  /** The prefill jobs, once a policy was made. */
  get prefiller (): Prefiller | undefined { return this.#prefiller }

  /**
   * The CacheNodeOptions.contentPolicy factory: builds the policy, prefetcher and prefill
   * around the node's proxy (whose `warm` they fill through) and joins the node's metrics.
   */
  readonly contentPolicyFor = (proxy: CacheProxy, metrics: CacheNodeMetrics): ContentPolicy => {
    this.metrics.registerOn(metrics.registry)
    registerAdminRoutes(proxy, this.#adminRoutes)
    // Bound, not wrapped: a warm that takes an abort signal gets it.
    const warm: Warm = proxy.warm.bind(proxy)
    return this.policyFor(warm, (url) => proxy.isFreshInMemory(url))
  }

  /**
   * The policy, with prefetch and prefill warming through `warm` (tests give their own);
   * `isCached` lets the prefetcher skip segments fresh in memory without a warm.
   */
  policyFor (warm: Warm, isCached?: (url: string) => boolean): ContentPolicy {
    const { logger } = this.#o
    const prefetch = { ...PREFETCH_DEFAULTS, ...this.#o.prefetch }
    this.#prefetcher?.close()
    this.#prefetcher = new Prefetcher({ ...prefetch, index: this.index, warm, isCached, metrics: this.metrics, logger, now: this.#now })
    void this.#prefiller?.close()
    this.#prefiller = new Prefiller({
      ...PREFILL_DEFAULTS,
      ...this.#o.prefill,
      warm,
      readPlaylist: (url) => this.#readPlaylist(url),
      metrics: this.metrics,
      logger,
      now: this.#now,
    })
    return new HlsPolicy({
      ...HLS_POLICY_DEFAULTS,
      ...this.#o.policy,
      index: this.index,
      metrics: this.metrics,
      logger,
      normalize: (url) => this.normalize(url),
      served: this.#prefetcher,
      now: this.#now,
    })
  }

  /** Gives the runtime the running node (its store). */
  attach (node: HlsNodeView): void {
    this.#node = node
  }

  /** A URL in cache-key form. */
  normalize (url: string): string {
    return makeCacheKey(url, { stripQueryParams: this.#strip })
  }

  /** The titles this node holds. */
  inventory (): InventoryReport {
    const store = this.#node?.store
    const keys = store === undefined ? [] : chain(store.memory.keys(), store.disk.keys(), store.disk.pendingKeys())
    return { v: 1, node: this.#o.nodeId, generatedAtMs: this.#now(), titles: buildInventory(keys, (url) => this.index.titleOf(url)) }
  }

  /** Stops prefetch and prefill (before the node closes). */
  async close (): Promise<void> {
    this.#prefetcher?.close()
    await this.#prefiller?.close()
  }

  /** A playlist just warmed: from the index when the policy recorded it, else from the store. */
  async #readPlaylist (url: string): Promise<PlaylistInfo | undefined> {
    const key = this.normalize(url)
    const master = this.index.master(key)
    if (master !== undefined) return { kind: 'master', variants: master.variants }
    const rendition = this.index.rendition(key)
    if (rendition !== undefined && !rendition.info.live) return rendition.info
    const body = await this.#readStored(key)
    const parsed = body === undefined ? undefined : parsePlaylist(body.toString('utf8'), key)
    if (parsed === undefined) return undefined
    const info = normalizePlaylistUrls(parsed, (u) => this.normalize(u))
    if (info.kind === 'master') this.index.recordMaster(key, info, this.#now())
    else if (!info.live) this.index.recordMedia(key, info, this.#now())
    return info
  }

  async #readStored (key: string): Promise<Buffer | undefined> {
    const store = this.#node?.store
    if (store === undefined) return undefined
    let found = store.getFromMemory(key) ?? await store.getFromDisk(key)
    const names = markerNames(found)
    if (names !== undefined) {
      const variant = variantKey(key, names, {})
      found = store.getFromMemory(variant) ?? await store.getFromDisk(variant)
    }
    if (found === undefined || found.meta.status !== 200) return undefined
    if (found.body !== null) return found.body
    if (found.meta.bodyBytes > (this.#o.policy?.maxPlaylistBytes ?? HLS_POLICY_DEFAULTS.maxPlaylistBytes)) return undefined
    const chunks: Buffer[] = []
    try {
      for await (const chunk of found.createReadStream(0, found.meta.bodyBytes - 1)) chunks.push(chunk as Buffer)
    } catch {
      // A damaged file (the store drops and reports it) or a failed read: no playlist, and the job goes on.
      return undefined
    }
    return Buffer.concat(chunks)
  }

  #prefillRoute (req: AdminRequest): AdminAnswer {
    const prefiller = this.#prefiller
    if (prefiller === undefined) return { status: 503, body: { error: 'prefill is not ready' } }
    const id = req.rest.startsWith('/') ? decodeId(req.rest.slice(1)) : ''
    if (id === '') {
      if (req.method === 'GET') return { status: 200, body: { jobs: prefiller.list() } }
      if (req.method !== 'POST') return { status: 405, body: { error: 'use GET or POST' }, allow: 'GET, POST' }
      const parsed = parsePrefillRequest(req.body)
      if (!parsed.ok) return { status: 400, body: { error: parsed.error } }
      return { status: 202, body: prefiller.start(parsed.value) }
    }
    if (req.method !== 'GET' && req.method !== 'DELETE') return { status: 405, body: { error: 'use GET or DELETE' }, allow: 'GET, DELETE' }
    const status = req.method === 'GET' ? prefiller.get(id) : prefiller.cancel(id)
    return status === undefined ? { status: 404, body: { error: `no prefill job ${id}` } } : { status: 200, body: status }
  }

  #inventoryRoute (req: AdminRequest): AdminAnswer {
    if (req.method !== 'GET') return { status: 405, body: { error: 'use GET' }, allow: 'GET' }
    return { status: 200, body: this.inventory() }
  }
}

// A malformed escape cannot name a job (ids are `pf-…`): it is looked up as is and not found, not a 500.
function decodeId (text: string): string {
  try {
    return decodeURIComponent(text)
  } catch {
    return text
  }
}

function * chain (...iterables: Array<Iterable<string>>): Generator<string> {
  for (const iterable of iterables) yield * iterable
}
