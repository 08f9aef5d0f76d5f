/**
 * Memory over disk. Writes go through to disk (so a restart keeps every complete
 * object) and into memory when the object is small enough; memory evictions demote
 * to disk when the disk copy is missing (its write failed or disk evicted it).
 * A disk hit is promoted to memory only when it is more popular than what it would
 * evict (TinyLFU admission over a frequency sketch of every lookup): with a working
 * set larger than memory, promoting every disk hit would only churn the memory tier,
 * copying whole bodies, and push out the hot part. Disk hits that stay on disk are
 * streamed from the open file instead of read whole into a new Buffer.
 *
 * Promotions that evict narrow winners are also bounded in bytes per second (by default the
 * memory budget every {@link PROMOTION_TURNOVER_S} seconds). Each one reads a whole body into a
 * fresh Buffer and retires another to the old generation's garbage, and under an access
 * pattern with no clear favourites (random access over a set larger than memory) the
 * sketch's noise alone admits a steady stream of them, for no gain in hit ratio: in
 * `npm run bench -- --only working-set --peers nginx` the edge ran 23-24 mark-compacts per
 * measured window without the bound and 4 with it. A clear winner (looked up at least twice as often as each object
 * it would evict, plus two) is promoted at once: a real popularity difference is not noise.
 */
import { sameVersion, type DiskReadMode, type DiskStore } from './disk-store.ts'
import { FrequencySketch } from './frequency-sketch.ts'
import { memoryCostBytes, type MemoryStore } from './memory-store.ts'
import type { Readable } from 'node:stream'
import type { MemoryObject, ObjectMeta, Store, StoredObject, StoreObserver } from './types.ts'

/** Disk hits of bodies up to this size are read whole by default (one read beats a stream). */
export const DEFAULT_STREAM_MIN_BYTES = 128 * 1024

// A candidate that would evict more objects than this is not promoted (a large segment over many playlists).
const MAX_ADMISSION_VICTIMS = 16
// The sketch is sized for about one key per this many bytes of memory budget (segments, not
// playlists, decide what memory holds); it ages every 10 × width lookups.
const SKETCH_BYTES_PER_KEY = 256 * 1024
const SKETCH_MIN_WIDTH = 256
const SKETCH_MAX_WIDTH = 1 << 20
/** By default promotions may replace the whole memory tier once per this many seconds. */
export const PROMOTION_TURNOVER_S = 10

const TEXT_TYPES = /^(?:text\/|application\/(?:vnd\.apple\.mpegurl|x-mpegurl|json|xml|dash\+xml)|audio\/(?:x-)?mpegurl)/i
const PLAYLIST_PATH = /\.m3u8?(?:$|\?)/i

/** Options of {@link TieredStore}. */
export interface TieredStoreOptions {
  readonly memory: MemoryStore
  readonly disk: DiskStore
  readonly observer?: StoreObserver
  /**
   * Which disk hits are promoted to memory: `frequency` (default) only when the object is
   * looked up more often than the objects it would evict, `always` on every disk hit.
   */
  readonly promotion?: 'frequency' | 'always'
  /** Disk hits of bodies larger than this are streamed from disk unless `wholeBody` says otherwise (default 128 KiB). */
  readonly streamMinBytes?: number
  /**
   * Objects a disk hit always reads whole, whatever their size, because callers need the
   * body in memory (playlist rewriting and parsing). Default: playlists and text types.
   */
  readonly wholeBody?: (meta: ObjectMeta) => boolean
  /**
   * Bytes of disk hits promoted per second, at most, when they evict objects nearly as
   * popular (`frequency` promotion only; clear winners and promotions into free room are not
   * bounded); up to one second's worth may go at once after a quiet spell. Default: the memory budget over
   * {@link PROMOTION_TURNOVER_S}; Infinity for no bound.
   */
  readonly promotionBytesPerSecond?: number
  /** Clock in milliseconds for the promotion bound (default performance.now). */
  readonly now?: () => number
}

/** Memory tier over disk tier; see the module comment for the rules. */
export class TieredStore implements Store {
  readonly name = 'tiered' as const
  readonly memory: MemoryStore
  readonly disk: DiskStore
  readonly #observer: StoreObserver | undefined
  readonly #sketch: FrequencySketch
  readonly #alwaysPromote: boolean
  readonly #streamMinBytes: number
  readonly #wholeBody: (meta: ObjectMeta) => boolean
  readonly #promotionRate: number
  readonly #now: () => number
  // Bytes that may be promoted now; a promotion may take it below zero (one object is never split).
  #promotionCredit: number
  #creditAtMs: number

  constructor (options: TieredStoreOptions) {
    const {
      promotion = 'frequency', streamMinBytes = DEFAULT_STREAM_MIN_BYTES, wholeBody = isTextual,
      promotionBytesPerSecond = options.memory.maxBytes / PROMOTION_TURNOVER_S, now = performance.now.bind(performance),
    } = options
    if (promotion !== 'frequency' && promotion !== 'always') {
      throw new TypeError(`Expected options.promotion to be 'frequency' or 'always', got ${String(promotion)}`)
    }
    if (!Number.isSafeInteger(streamMinBytes) || streamMinBytes < 0) {
      throw new TypeError(`Expected options.streamMinBytes to be a non-negative integer, got ${String(streamMinBytes)}`)
    }
    if (typeof wholeBody !== 'function') throw new TypeError(`Expected options.wholeBody to be a function, got ${String(wholeBody)}`)
    if (typeof promotionBytesPerSecond !== 'number' || !(promotionBytesPerSecond > 0)) {
      throw new TypeError(`Expected options.promotionBytesPerSecond to be a positive number, got ${String(promotionBytesPerSecond)}`)
    }
    this.memory = options.memory
    this.disk = options.disk
    this.#observer = options.observer
    this.#alwaysPromote = promotion === 'always'
    this.#streamMinBytes = streamMinBytes
    this.#wholeBody = wholeBody
    this.#promotionRate = promotionBytesPerSecond
    this.#now = now
    this.#promotionCredit = promotionBytesPerSecond
    this.#creditAtMs = now()
    const width = Math.min(SKETCH_MAX_WIDTH, Math.max(SKETCH_MIN_WIDTH, Math.ceil(this.memory.maxBytes / SKETCH_BYTES_PER_KEY)))
    this.#sketch = new FrequencySketch({ width })
    // Buffers lent to disk readers come out of the memory tier's budget (issue 7: RSS within
    // budget + headroom), and may take at most half of it; readers beyond that get unpooled buffers.
    const pool = this.disk.readBuffers
    pool.limit(Math.min(pool.maxBytes, Math.floor(this.memory.maxBytes / 2)))
    pool.onResize((bytes) => { this.memory.reserve(bytes) })
    this.memory.reserve(pool.sizeBytes)
  }

  /** Memory first (synchronously), then disk. */
  get (key: string): StoredObject | undefined | Promise<StoredObject | undefined> {
    return this.getFromMemory(key) ?? this.getFromDisk(key)
  }

  /** The synchronous half of a lookup (the hot path); a hit also refreshes the disk copy's recency. */
  getFromMemory (key: string): MemoryObject | undefined {
    const hit = this.memory.get(key)
    if (hit === undefined) return undefined
    this.#sketch.increment(key)
    this.disk.touch(key)
    return hit
  }

  /**
   * The disk half of a lookup. An object admitted to memory is read whole and promoted;
   * others come back streamed, except small and text bodies, which are read whole.
   */
  async getFromDisk (key: string): Promise<StoredObject | undefined> {
    this.#sketch.increment(key)
    const meta = this.disk.peekMeta(key)
    // Unindexed (the index is still being rebuilt): the disk store decides by size.
    if (meta === undefined) {
      const found = await this.disk.get(key, 'auto')
      if (found?.body != null && this.#admits(key, found.meta)) this.#promote(found)
      return found
    }
    const promote = this.#admits(key, meta)
    const mode: DiskReadMode = promote || meta.bodyBytes <= this.#streamMinBytes || this.#wholeBody(meta) ? 'whole' : 'stream'
    const found = await this.disk.get(key, mode)
    if (promote && found?.body != null) this.#promote(found)
    return found
  }

  /**
   * Copies a disk hit into memory, unless a delete (a purge) or a newer put landed while the
   * disk read ran: the read may still answer its caller, but must not outlive the purge in
   * memory or replace the newer object there.
   */
  #promote (found: MemoryObject): void {
    const { key } = found.meta
    const current = this.disk.peekMeta(key)
    if (current === undefined || !sameVersion(current, found.meta) || this.memory.peek(key) !== undefined) return
    this.memory.put(found)
  }

  /**
   * Stores in memory now (when it fits) and on disk in the background. The promise
   * settles when the disk write does; a failed disk write is reported to the observer
   * by the disk store and does not reject here.
   */
  put (object: MemoryObject): Promise<void> {
    this.memory.put(object)
    return this.disk.put(object).catch(() => {})
  }

  /**
   * Replaces a stored object's metadata, keeping its body (a 304 or HEAD response
   * freshened it, RFC 9111 §4.3.4), and returns the object as now stored. A body in memory
   * is stored again under the new metadata there at once, its disk copy rewritten in the
   * background. A body streamed from disk stays there: the disk file gets the new header
   * with the body copied file to file (never read into memory), and the answer streams
   * from the new file; only when that rewrite cannot happen is the body read back and
   * stored like a fill.
   */
  async freshen (object: StoredObject, meta: ObjectMeta): Promise<StoredObject> {
    if (object.body === null && !this.#wholeBody(meta)) {
      const onDisk = await this.#freshenOnDisk(object.meta, meta)
      if (onDisk !== undefined) return onDisk
    }
    const body = object.body ?? await collect(object.createReadStream(0, Math.max(0, object.meta.bodyBytes - 1)), object.meta.bodyBytes)
    const updated: MemoryObject = { meta, body }
    // The memory copy is updated now; readers waiting on the revalidation need not wait for the disk.
    void this.put(updated)
    return updated
  }

  /** The disk half of freshen: header rewritten in place of the file, or undefined when that did not happen. */
  async #freshenOnDisk (stale: ObjectMeta, meta: ObjectMeta): Promise<StoredObject | undefined> {
    const rewritten = await this.disk.replaceMeta(stale.key, meta).catch(() => false)
    if (!rewritten) return undefined
    // A promotion that raced the rewrite holds the old metadata: keep its body, take the new metadata.
    const cached = this.memory.peek(stale.key)
    if (cached !== undefined && cached.meta.responseTimeMs === stale.responseTimeMs) this.memory.put({ meta, body: cached.body })
    return await this.disk.get(stale.key, 'stream')
  }

  /** Called by the memory store for each evicted object. */
  demote (object: MemoryObject): void {
    if (this.disk.has(object.meta.key)) return
    this.disk.put(object).catch(() => {})
  }

  async delete (key: string): Promise<void> {
    this.memory.delete(key)
    await this.disk.delete(key)
  }

  /** Every stored object has its full copy on disk; memory holds copies of the hot ones. */
  get sizeBytes (): number { return this.disk.sizeBytes }
  get count (): number { return this.disk.count }
  get observer (): StoreObserver | undefined { return this.#observer }

  async close (): Promise<void> {
    await this.memory.close()
    await this.disk.close()
  }

  /**
   * TinyLFU's admission test: into memory if it fits as is, or if it was looked up more
   * often than every object it would evict (ties stay out, so equally popular objects
   * do not take turns evicting each other).
   */
  #admits (key: string, meta: ObjectMeta): boolean {
    if (!this.memory.accepts(meta.bodyBytes)) return false
    if (this.#alwaysPromote) return true
    const cost = memoryCostBytes(meta)
    const victims = this.memory.victimsFor(cost, MAX_ADMISSION_VICTIMS)
    if (victims === undefined) return false
    if (victims.length === 0) return true
    const frequency = this.#sketch.frequency(key)
    // A clear winner: looked up at least twice as often as each victim, plus two (so 1 or 2
    // lookups against 0 are not enough; the sketch's counts are small and noisy).
    let clearWinner = true
    for (const victim of victims) {
      const victimFrequency = this.#sketch.frequency(victim)
      if (victimFrequency >= frequency) return false
      if (frequency < 2 * victimFrequency + 2) clearWinner = false
    }
    return clearWinner || this.#takePromotionCredit(cost)
  }

  /** The promotion bound for narrow winners (see the module comment): true and `bytes` spent when there is credit left. */
  #takePromotionCredit (bytes: number): boolean {
    const rate = this.#promotionRate
    if (rate === Infinity) return true
    const now = this.#now()
    this.#promotionCredit = Math.min(rate, this.#promotionCredit + (now - this.#creditAtMs) * rate / 1000)
    this.#creditAtMs = now
    if (this.#promotionCredit <= 0) return false
    this.#promotionCredit -= bytes
    return true
  }
}

/** Playlists and other text: what body transforms and playlist parsing need in memory. */
function isTextual (meta: ObjectMeta): boolean {
  const type = meta.headers['content-type']
  if (typeof type === 'string' && TEXT_TYPES.test(type)) return true
  return PLAYLIST_PATH.test(meta.key)
}

async function collect (stream: Readable, bytes: number): Promise<Buffer> {
  if (bytes === 0) return Buffer.alloc(0)
  const chunks: Buffer[] = []
  for await (const chunk of stream) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks)
}
