/**
 * Fixed-size read buffers for disk hits, reused instead of allocated per read: a
 * fresh ArrayBuffer per chunk costs a malloc, page faults, and (at hundreds of MB/s)
 * the major GCs V8 runs to keep external memory in check. The pool is bounded; when
 * every pooled buffer is lent out, `take` hands out an unpooled one that the GC frees.
 *
 * A buffer must be given back only when nothing references it any more (for a socket
 * write: in the write's callback). A buffer that is never given back is not lost to the
 * pool: once the GC collects it, the pool may allocate a replacement.
 */

/** Options of {@link BufferPool}. */
export interface BufferPoolOptions {
  /** Size of every buffer. */
  readonly chunkBytes: number
  /** Upper bound on pooled bytes (free and lent); 0 disables pooling. */
  readonly maxBytes: number
}

/** A bounded free list of equally sized Buffers. */
export class BufferPool {
  readonly chunkBytes: number
  #maxBuffers: number
  readonly #free: Buffer[] = []
  // Lent pooled buffers: a WeakSet, so a buffer its borrower drops can still be collected.
  readonly #lent = new WeakSet<Buffer>()
  #pooled = 0
  #lentCount = 0
  #onResize: ((sizeBytes: number) => void) | undefined
  // Free buffers are held by #free, so a pooled buffer the GC collects was lent and never
  // given back: its place in the pool is free again.
  readonly #lost = new FinalizationRegistry<undefined>(() => {
    this.#pooled--
    this.#lentCount--
    this.#onResize?.(this.sizeBytes)
  })

  constructor (options: BufferPoolOptions) {
    const { chunkBytes, maxBytes } = options
    if (!Number.isSafeInteger(chunkBytes) || chunkBytes < 1) {
      throw new TypeError(`Expected options.chunkBytes to be a positive integer, got ${String(chunkBytes)}`)
    }
    if (!Number.isSafeInteger(maxBytes) || maxBytes < 0) {
      throw new TypeError(`Expected options.maxBytes to be a non-negative integer, got ${String(maxBytes)}`)
    }
    this.chunkBytes = chunkBytes
    this.#maxBuffers = Math.floor(maxBytes / chunkBytes)
  }

  /** Bytes of pooled buffers, free and lent: the pool's share of resident memory. */
  get sizeBytes (): number { return this.#pooled * this.chunkBytes }

  /** The bound on pooled bytes (a whole number of buffers). */
  get maxBytes (): number { return this.#maxBuffers * this.chunkBytes }

  /** Bytes of pooled buffers lent out now. */
  get lentBytes (): number { return this.#lentCount * this.chunkBytes }

  /** Lowers (or raises) the bound; buffers over a lowered bound are dropped as they come back. */
  limit (maxBytes: number): void {
    if (!Number.isSafeInteger(maxBytes) || maxBytes < 0) throw new TypeError(`Expected maxBytes to be a non-negative integer, got ${String(maxBytes)}`)
    this.#maxBuffers = Math.floor(maxBytes / this.chunkBytes)
    while (this.#pooled > this.#maxBuffers && this.#free.length > 0) this.#drop(this.#free.pop()!)
  }

  /** Called with sizeBytes whenever it changes (the tiered store charges it to the memory tier). */
  onResize (listener: ((sizeBytes: number) => void) | undefined): void {
    this.#onResize = listener
  }

  /** A buffer of chunkBytes with unspecified contents: pooled when one is free or the pool may grow. */
  take (): Buffer {
    let buf = this.#free.pop()
    if (buf === undefined) {
      if (this.#pooled >= this.#maxBuffers) return Buffer.allocUnsafeSlow(this.chunkBytes)
      buf = Buffer.allocUnsafeSlow(this.chunkBytes)
      this.#pooled++
      this.#lost.register(buf, undefined, buf)
      this.#onResize?.(this.sizeBytes)
    }
    this.#lent.add(buf)
    this.#lentCount++
    return buf
  }

  /** Gives back a buffer from take (unpooled ones and repeated calls are ignored). */
  give (buf: Buffer): void {
    if (!this.#lent.delete(buf)) return
    this.#lentCount--
    if (this.#pooled > this.#maxBuffers) this.#drop(buf)
    else this.#free.push(buf)
  }

  #drop (buf: Buffer): void {
    this.#lost.unregister(buf)
    this.#pooled--
    this.#onResize?.(this.sizeBytes)
  }
}
