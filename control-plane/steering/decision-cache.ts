/**
 * The decision cache (the only cache-manager import): steering plans keyed by client prefix
 * and title, so a burst of players from one network starting one title is ranked once.
 *
 * What is cached is the ranking (groups by distance, edges by rendezvous order); health and
 * load are applied to it on every request, so a cached plan can never send a player to a node
 * that went down a moment ago. The cache is still cleared on every health, inventory, zone or
 * GeoIP change, and each entry carries the generation it was built at as a second guard.
 * cache-manager's default store is an unbounded Map, so the cache is also cleared whenever it
 * grows past `maxEntries` (a cheap generational bound; entries are rebuilt on demand).
 */
import { createCache, type Cache } from 'cache-manager'

/** Options of {@link DecisionCache}. */
export interface DecisionCacheOptions {
  readonly ttlMs: number
  readonly maxEntries: number
}

interface Entry<T> {
  readonly generation: number
  readonly value: T
}

/** Plans by `prefixKey + title`, valid for one generation. */
export class DecisionCache<T> {
  readonly #cache: Cache
  readonly #o: DecisionCacheOptions
  readonly #sizeOf: () => number
  #hits = 0
  #misses = 0

  constructor (options: DecisionCacheOptions) {
    if (!Number.isSafeInteger(options.ttlMs) || options.ttlMs < 1) throw new TypeError(`Expected options.ttlMs to be a positive integer, got ${String(options.ttlMs)}`)
    if (!Number.isSafeInteger(options.maxEntries) || options.maxEntries < 1) throw new TypeError(`Expected options.maxEntries to be a positive integer, got ${String(options.maxEntries)}`)
    this.#o = options
    this.#cache = createCache({ ttl: options.ttlMs })
    const store = (this.#cache.stores[0] as unknown as { store?: unknown } | undefined)?.store
    this.#sizeOf = store instanceof Map ? () => store.size : () => 0
  }

  get hits (): number { return this.#hits }
  get misses (): number { return this.#misses }
  /** Entries held (expired ones included until touched). */
  get size (): number { return this.#sizeOf() }

  /** The cached value for `key` if it was built at `generation`, else builds, stores and returns a new one. */
  async getOrBuild (key: string, generation: number, build: () => T): Promise<{ value: T, hit: boolean }> {
    const entry = await this.#cache.get<Entry<T>>(key)
    if (entry !== undefined && entry.generation === generation) {
      this.#hits++
      return { value: entry.value, hit: true }
    }
    this.#misses++
    const value = build()
    if (this.#sizeOf() >= this.#o.maxEntries) await this.#cache.clear()
    await this.#cache.set<Entry<T>>(key, { generation, value })
    return { value, hit: false }
  }

  /** Drops every entry. */
  async clear (): Promise<void> {
    await this.#cache.clear()
  }

  async close (): Promise<void> {
    await this.#cache.clear()
    await this.#cache.disconnect()
  }
}
