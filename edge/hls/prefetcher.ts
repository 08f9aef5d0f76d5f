/**
 * Next-segment prefetch: when a client is served segment N of a rendition, segments
 * N+1..N+k of the same rendition (from the indexed media playlist, so never past what a
 * live playlist has published) are warmed into the cache in the background.
 *
 * Bounds, per node: `concurrency` warms at once, a `maxQueue` of waiting ones (the
 * oldest is dropped), an optional byte-rate cap, and `maxUnusedBytes` of prefetched bytes
 * nobody has asked for yet (prefetch pauses at the limit). Warming goes through the
 * pipeline's fills, so a prefetch joins a client's fill for the same segment and a client
 * joins a prefetch's fill.
 *
 * Accounting: a prefetch that fetched bytes is tracked until a client asks for the URL
 * (`hit`) or `wastedAfterMs` passes (`wasted`: evicted or never played).
 */
import type { Logger } from '../../lib/log.ts'
import type { HlsMetrics } from '../../lib/metrics.ts'
import { ByteRateLimiter } from './byte-rate-limiter.ts'
import type { RenditionIndex } from './rendition-index.ts'
import type { Warm } from './warm.ts'

/** Tunables of {@link Prefetcher}. */
export interface PrefetchSettings {
  /** Segments warmed after the one served (k); 0 turns prefetch off. */
  readonly segments: number
  /** Warms under way at once. */
  readonly concurrency: number
  /** Warms waiting for a slot; beyond it the oldest waiting one is dropped. */
  readonly maxQueue: number
  /** Prefetched bytes not yet asked for by a client; prefetch pauses above it (0: no limit). */
  readonly maxUnusedBytes: number
  /** Upstream bytes per second for prefetch (0: no cap). */
  readonly bytesPerSecond: number
  /** A prefetched segment nobody asked for within this time counts as wasted. */
  readonly wastedAfterMs: number
}

/** Defaults of {@link PrefetchSettings}. */
export const PREFETCH_DEFAULTS: PrefetchSettings = Object.freeze({
  segments: 2,
  concurrency: 8,
  maxQueue: 256,
  maxUnusedBytes: 256 * 1024 * 1024,
  bytesPerSecond: 0,
  wastedAfterMs: 120_000,
})

/** Options of {@link Prefetcher}. */
export interface PrefetcherOptions extends PrefetchSettings {
  readonly index: RenditionIndex
  readonly warm: Warm
  /**
   * Is the URL fresh in the cache right now (what `warm` would answer `cached`)? Answered
   * synchronously, it spares the queue, the warm and its promise for the segments a
   * popular rendition already holds, which is most of them (counted as `cached` all the same).
   */
  readonly isCached?: ((url: string) => boolean) | undefined
  readonly metrics: HlsMetrics
  readonly logger: Logger
  readonly now?: () => number
}

/** Most prefetched segments awaiting their client; beyond it the oldest counts as wasted. */
const MAX_TRACKED = 100_000

interface Tracked {
  readonly atMs: number
  readonly bytes: number
}

/** The prefetcher; see the file comment. */
export class Prefetcher {
  readonly #o: PrefetcherOptions
  readonly #now: () => number
  readonly #limiter: ByteRateLimiter
  readonly #queue = new Set<string>()
  readonly #inFlight = new Set<string>()
  // Insertion order is age order, so the wasted sweep pops from the front.
  readonly #tracked = new Map<string, Tracked>()
  readonly #abort = new AbortController()
  #unusedBytes = 0
  #timer: NodeJS.Timeout | undefined
  #closed = false

  constructor (options: PrefetcherOptions) {
    for (const field of ['segments', 'maxQueue', 'maxUnusedBytes', 'bytesPerSecond', 'wastedAfterMs'] as const) {
      const value = options[field]
      if (!Number.isSafeInteger(value) || value < 0) throw new TypeError(`Expected options.${field} to be a non-negative integer, got ${String(value)}`)
    }
    if (!Number.isSafeInteger(options.concurrency) || options.concurrency < 1) throw new TypeError(`Expected options.concurrency to be a positive integer, got ${String(options.concurrency)}`)
    this.#o = options
    this.#now = options.now ?? Date.now
    this.#limiter = new ByteRateLimiter({ bytesPerSecond: options.bytesPerSecond, now: this.#now })
  }

  /** Warms under way. */
  get inFlight (): number { return this.#inFlight.size }
  /** Warms waiting. */
  get queued (): number { return this.#queue.size }
  /** Prefetched bytes no client has asked for yet. */
  get unusedBytes (): number { return this.#unusedBytes }

  /** A GET for `url` was answered: count a prefetch hit, and prefetch what follows a served segment. */
  onServed (url: string, status: number): void {
    if (this.#closed) return
    const tracked = this.#tracked.get(url)
    if (tracked !== undefined) {
      this.#tracked.delete(url)
      this.#unusedBytes -= tracked.bytes
      this.#o.metrics.prefetchUse.inc({ outcome: 'hit' })
    }
    this.#sweep()
    if (this.#o.segments === 0 || (status !== 200 && status !== 206)) return
    const found = this.#o.index.locateSegment(url)
    if (found === undefined || found.position < 0) return
    const list = found.entry.info.segments
    const end = Math.min(list.length, found.position + 1 + this.#o.segments)
    for (let i = found.position + 1; i < end; i++) {
      this.#enqueue(list[i]!.url)
      this.#pump()
    }
  }

  /** Stops: aborts warms under way and forgets the queue. */
  close (): void {
    if (this.#closed) return
    this.#closed = true
    this.#abort.abort()
    this.#queue.clear()
    if (this.#timer !== undefined) clearTimeout(this.#timer)
  }

  #enqueue (url: string): void {
    if (this.#queue.has(url) || this.#inFlight.has(url) || this.#tracked.has(url)) return
    if (this.#o.isCached?.(url) === true) {
      this.#o.metrics.prefetches.inc({ outcome: 'cached' })
      return
    }
    if (this.#queue.size >= this.#o.maxQueue) {
      const oldest = this.#queue.values().next().value
      if (oldest === undefined) return
      this.#queue.delete(oldest)
      this.#o.metrics.prefetches.inc({ outcome: 'dropped' })
    }
    this.#queue.add(url)
  }

  #pump (): void {
    while (!this.#closed && this.#inFlight.size < this.#o.concurrency && this.#queue.size > 0) {
      if (this.#o.maxUnusedBytes > 0 && this.#unusedBytes >= this.#o.maxUnusedBytes) return
      const wait = this.#limiter.delayMs()
      if (wait > 0) {
        this.#schedule(wait)
        return
      }
      const url = this.#queue.values().next().value as string
      this.#queue.delete(url)
      this.#start(url)
    }
  }

  #schedule (ms: number): void {
    if (this.#timer !== undefined) return
    this.#timer = setTimeout(() => {
      this.#timer = undefined
      this.#pump()
    }, ms)
    this.#timer.unref()
  }

  #start (url: string): void {
    this.#inFlight.add(url)
    const { metrics, logger } = this.#o
    this.#o.warm(url, { signal: this.#abort.signal }).then((outcome) => {
      metrics.prefetches.inc({ outcome: outcome.result })
      if (outcome.bytes > 0) {
        metrics.prefetchBytes.inc({}, outcome.bytes)
        this.#limiter.take(outcome.bytes)
      }
      // Only a fill this prefetch caused is ours to account for; a joined fill had a client already.
      if (outcome.result === 'filled' && !this.#closed) {
        this.#tracked.set(url, { atMs: this.#now(), bytes: outcome.bytes })
        this.#unusedBytes += outcome.bytes
        if (this.#tracked.size > MAX_TRACKED) this.#expire(this.#tracked.keys().next().value!)
      }
    }, (err: unknown) => {
      metrics.prefetches.inc({ outcome: 'failed' })
      if (!this.#closed) logger.debug({ err, cacheKey: url }, 'prefetch failed')
    }).finally(() => {
      this.#inFlight.delete(url)
      this.#pump()
    })
  }

  /** Counts prefetched segments nobody asked for in time as wasted. */
  #sweep (): void {
    const cutoff = this.#now() - this.#o.wastedAfterMs
    for (const [url, tracked] of this.#tracked) {
      if (tracked.atMs > cutoff) return
      this.#expire(url)
    }
  }

  #expire (url: string): void {
    const tracked = this.#tracked.get(url)
    if (tracked === undefined) return
    this.#tracked.delete(url)
    this.#unusedBytes -= tracked.bytes
    this.#o.metrics.prefetchUse.inc({ outcome: 'wasted' })
  }
}
