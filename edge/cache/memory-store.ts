/**
 * The memory tier: an LRU bounded in bytes (the only lru-cache import).
 * Bodies are single Buffers shared by every reader: a hit writes the same Buffer to
 * each client, never a copy.
 */
import { LRUCache } from 'lru-cache'
import type { MemoryObject, ObjectMeta, Store, StoreObserver } from './types.ts'

/** Rough per-object overhead (index entry, meta object) counted against the budget. */
const OBJECT_OVERHEAD_BYTES = 256

export interface MemoryStoreOptions {
  /** Budget for bodies plus metadata, in bytes. */
  readonly maxBytes: number
  /** Objects whose body is larger than this are not kept (default: maxBytes). */
  readonly maxObjectBytes?: number
  readonly observer?: StoreObserver
  /** Called with each object evicted for room (not on delete or replace): the tiered store demotes it. */
  readonly onEvict?: (object: MemoryObject) => void
}

/** Bytes an object costs in the memory tier: body, header text, fixed overhead. */
export function memoryCostBytes (meta: ObjectMeta): number {
  let bytes = OBJECT_OVERHEAD_BYTES + meta.bodyBytes + meta.key.length
  for (const name in meta.headers) {
    const value = meta.headers[name]
    bytes += name.length + (typeof value === 'string' ? value.length : (value ?? []).join('').length)
  }
  return bytes
}

export class MemoryStore implements Store {
  readonly name = 'memory' as const
  readonly #lru: LRUCache<string, MemoryObject>
  readonly #maxObjectBytes: number
  // Part of the budget held by buffers outside the LRU (the disk tier's read buffers).
  #reservedBytes = 0

  constructor (options: MemoryStoreOptions) {
    const { maxBytes, maxObjectBytes = maxBytes, observer, onEvict } = options
    if (!Number.isSafeInteger(maxBytes) || maxBytes < 1) {
      throw new TypeError(`Expected options.maxBytes to be a positive integer, got ${String(maxBytes)}`)
    }
    if (!Number.isSafeInteger(maxObjectBytes) || maxObjectBytes < 0) {
      throw new TypeError(`Expected options.maxObjectBytes to be a non-negative integer, got ${String(maxObjectBytes)}`)
    }
    this.#maxObjectBytes = maxObjectBytes
    this.#lru = new LRUCache<string, MemoryObject>({
      maxSize: maxBytes,
      sizeCalculation: (object) => memoryCostBytes(object.meta),
      dispose: (object, _key, reason) => {
        if (reason !== 'evict') return
        observer?.onEvict?.(object.meta, 'memory')
        onEvict?.(object)
      },
    })
  }

  /** Whether an object of this many body bytes may enter the memory tier at all. */
  accepts (bodyBytes: number): boolean {
    return bodyBytes <= this.#maxObjectBytes
  }

  /** The byte budget (bodies plus metadata). */
  get maxBytes (): number {
    return this.#lru.maxSize
  }

  /**
   * Keys that would be evicted, least recently used first, to make room for an object
   * costing `costBytes` (see memoryCostBytes): empty when it fits as is, undefined when
   * more than `maxVictims` would have to go. Does not touch recency.
   */
  victimsFor (costBytes: number, maxVictims: number): string[] | undefined {
    let missing = costBytes - (this.#capacity() - this.#lru.calculatedSize)
    const victims: string[] = []
    if (missing <= 0) return victims
    for (const key of this.#lru.rkeys()) {
      if (victims.length === maxVictims) return undefined
      const object = this.#lru.peek(key)
      if (object === undefined) continue
      victims.push(key)
      missing -= memoryCostBytes(object.meta)
      if (missing <= 0) return victims
    }
    return undefined
  }

  get (key: string): MemoryObject | undefined {
    return this.#lru.get(key)
  }

  /** Reads without refreshing recency (for tests and inventory listings). */
  peek (key: string): MemoryObject | undefined {
    return this.#lru.peek(key)
  }

  put (object: MemoryObject): void {
    if (!this.accepts(object.meta.bodyBytes) || memoryCostBytes(object.meta) > this.#capacity()) {
      this.#lru.delete(object.meta.key)
      return
    }
    this.#lru.set(object.meta.key, object)
    this.#fit()
  }

  /**
   * Sets aside `bytes` of the budget for memory held outside the LRU (the disk tier's
   * pooled read buffers), evicting least recently used objects until the rest fits, so
   * objects plus those buffers stay within maxBytes.
   */
  reserve (bytes: number): void {
    if (!Number.isSafeInteger(bytes) || bytes < 0) throw new TypeError(`Expected bytes to be a non-negative integer, got ${String(bytes)}`)
    this.#reservedBytes = Math.min(bytes, this.#lru.maxSize)
    this.#fit()
  }

  /** Bytes set aside by reserve. */
  get reservedBytes (): number {
    return this.#reservedBytes
  }

  #capacity (): number {
    return this.#lru.maxSize - this.#reservedBytes
  }

  #fit (): void {
    while (this.#lru.size > 0 && this.#lru.calculatedSize > this.#capacity()) this.#lru.pop()
  }

  delete (key: string): void {
    this.#lru.delete(key)
  }

  /** Keys from most to least recently used. */
  * keys (): IterableIterator<string> {
    yield * this.#lru.keys()
  }

  get sizeBytes (): number {
    return this.#lru.calculatedSize
  }

  get count (): number {
    return this.#lru.size
  }

  async close (): Promise<void> {
    this.#lru.clear()
  }
}
