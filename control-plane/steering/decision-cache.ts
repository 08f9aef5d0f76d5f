/**
 * The decision cache: steering plans keyed by client prefix and title, so a burst of players
 * from one network starting one title is ranked once.
 *
 * Two levels. The L2 is cache-manager (the only cache-manager import; its store can be swapped
 * for a shared Keyv store) and stays the authority: whatever it holds for a key at the current
 * generation wins. The L1 is a plain Map in front of it that answers synchronously, so a
 * steering request is decided without a promise (the fast path, control-plane/server.ts).
 * On an L1 miss the caller builds the plan on the spot (plans are pure functions of the group
 * order, the title and the inventory) and {@link DecisionCache.fill} asks the L2 in the
 * background: an L2 entry of the same generation replaces the local build, else the build is
 * written to the L2.
 *
 * What is cached is the ranking (groups by distance, edges by rendezvous order); health and
 * load are applied to it on every request, so a cached plan can never send a player to a node
 * that went down a moment ago. Both levels are still cleared on every health, inventory, zone
 * or GeoIP change, and each entry carries the generation it was built at as a second guard.
 * L1 entries live at most `ttlMs`, like the L2's. cache-manager's default store is an
 * unbounded Map, so each level is also cleared whenever it grows past `maxEntries` (a cheap
 * generational bound; entries are rebuilt on demand).
 */
import { createCache, type Cache } from 'cache-manager'

/** Options of {@link DecisionCache}. */
export interface DecisionCacheOptions {
  readonly ttlMs: number
  readonly maxEntries: number
  /** Clock for L1 expiry (tests). */
  readonly now?: () => number
}

interface Entry<T> {
  readonly generation: number
  readonly value: T
}

interface L1Entry<T> extends Entry<T> {
  readonly expiresAtMs: number
}

/** A lookup's value and whether it came from the cache. */
export interface CacheLookup<T> {
  readonly value: T
  readonly hit: boolean
}

/**
 * Plans by (scope, name), valid for one generation: the scope is the client prefix's group
 * order, the name the title. The L2 key is `scope + NUL + name`; the L1 is a Map per scope, so
 * a lookup hashes the long, reused scope string once and the short title each time.
 */
export class DecisionCache<T> {
  readonly #cache: Cache
  readonly #o: DecisionCacheOptions
  readonly #now: () => number
  readonly #sizeOf: () => number
  readonly #l1 = new Map<string, Map<string, L1Entry<T>>>()
  #l1Size = 0
  #hits = 0
  #misses = 0

  constructor (options: DecisionCacheOptions) {
    if (!Number.isSafeInteger(options.ttlMs) || options.ttlMs < 1) throw new TypeError(`Expected options.ttlMs to be a positive integer, got ${String(options.ttlMs)}`)
    if (!Number.isSafeInteger(options.maxEntries) || options.maxEntries < 1) throw new TypeError(`Expected options.maxEntries to be a positive integer, got ${String(options.maxEntries)}`)
    this.#o = options
    this.#now = options.now ?? Date.now
    this.#cache = createCache({ ttl: options.ttlMs })
    const store = (this.#cache.stores[0] as unknown as { store?: unknown } | undefined)?.store
    this.#sizeOf = store instanceof Map ? () => store.size : () => 0
  }

  get hits (): number { return this.#hits }
  get misses (): number { return this.#misses }
  /** L2 entries held (expired ones included until touched). */
  get size (): number { return this.#sizeOf() }
  /** L1 entries held. */
  get memorySize (): number { return this.#l1Size }

  /**
   * The L1's value at `generation`, synchronously, counted as a hit; undefined (counted as a
   * miss) when the L1 has none: build the value and give it to {@link DecisionCache.fill}.
   */
  peek (scope: string, name: string, generation: number): T | undefined {
    const entry = this.#l1.get(scope)?.get(name)
    if (entry === undefined || entry.generation !== generation || entry.expiresAtMs <= this.#now()) {
      this.#misses++
      return undefined
    }
    this.#hits++
    return entry.value
  }

  /**
   * Keeps a value built after a {@link DecisionCache.peek} miss in the L1 and reconciles it with
   * the L2 in the background: an L2 entry of the same generation replaces it in the L1 (the L2
   * is the authority), else the value is stored in the L2.
   */
  fill (scope: string, name: string, generation: number, value: T): void {
    this.#remember(scope, name, generation, value)
    this.#reconcile(scope, name, generation, value).catch(() => {}) // the L1 answers meanwhile; a failing L2 only costs rebuilds
  }

  /** The value at `generation`: from the L1, else the L2, else built and stored in both. */
  async getOrBuild (scope: string, name: string, generation: number, build: () => T): Promise<CacheLookup<T>> {
    const entry = this.#l1.get(scope)?.get(name)
    if (entry !== undefined && entry.generation === generation && entry.expiresAtMs > this.#now()) {
      this.#hits++
      return { value: entry.value, hit: true }
    }
    const key = l2Key(scope, name)
    const stored = await this.#cache.get<Entry<T>>(key)
    if (stored !== undefined && stored.generation === generation) {
      this.#hits++
      this.#remember(scope, name, generation, stored.value)
      return { value: stored.value, hit: true }
    }
    this.#misses++
    const value = build()
    this.#remember(scope, name, generation, value)
    await this.#store(key, generation, value)
    return { value, hit: false }
  }

  /** Drops every entry of both levels. */
  async clear (): Promise<void> {
    this.#clearL1()
    await this.#cache.clear()
  }

  async close (): Promise<void> {
    this.#clearL1()
    await this.#cache.clear()
    await this.#cache.disconnect()
  }

  #clearL1 (): void {
    this.#l1.clear()
    this.#l1Size = 0
  }

  #remember (scope: string, name: string, generation: number, value: T): void {
    if (this.#l1Size >= this.#o.maxEntries) this.#clearL1()
    let names = this.#l1.get(scope)
    if (names === undefined) {
      names = new Map()
      this.#l1.set(scope, names)
    }
    const size = names.size
    names.set(name, { generation, value, expiresAtMs: this.#now() + this.#o.ttlMs })
    this.#l1Size += names.size - size
  }

  async #reconcile (scope: string, name: string, generation: number, built: T): Promise<void> {
    const key = l2Key(scope, name)
    const stored = await this.#cache.get<Entry<T>>(key)
    if (stored !== undefined && stored.generation === generation) {
      const names = this.#l1.get(scope)
      const current = names?.get(name)
      if (current !== undefined && current.value === built) names?.set(name, { ...current, value: stored.value })
      return
    }
    await this.#store(key, generation, built)
  }

  async #store (key: string, generation: number, value: T): Promise<void> {
    if (this.#sizeOf() >= this.#o.maxEntries) await this.#cache.clear()
    await this.#cache.set<Entry<T>>(key, { generation, value })
  }
}

function l2Key (scope: string, name: string): string {
  return `${scope}\u0000${name}`
}
