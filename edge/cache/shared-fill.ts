/**
 * Shared fill: one upstream fetch feeding any number of readers as bytes arrive.
 *
 * Lifecycle (one writer, many readers):
 *   waiting-head → streaming → complete
 *                ↘︎            ↘︎ failed
 * The writer (the pipeline's fetch) calls setHead once, append for each body chunk,
 * then complete or fail. Readers wait for the head (bounded by their own timeout, after
 * which they fetch on their own), then read from any offset. The fill never waits for a
 * reader: every chunk is kept until the fill is dropped, so a slow reader only slows
 * itself, and a reader that leaves cancels nothing. A failed fill wakes every reader
 * with the error so each can abort its response instead of ending it short.
 *
 * Chunks are kept as received and readers get `subarray` views: a body byte is
 * copied once into the store at completion, never per reader.
 */
import { CdnError } from '../../lib/errors.ts'
import type { StoredHeaders, StoredObject } from './types.ts'

export type FillState = 'waiting-head' | 'streaming' | 'complete' | 'failed'

/** The upstream response head as the fill shares it. */
export interface FillHead {
  readonly status: number
  readonly headers: StoredHeaders
  /** Declared body length (Content-Length), when known. */
  readonly declaredBytes: number | undefined
  /** May other requests than the one that started the fill be answered from it? (not private, no Set-Cookie, ...) */
  readonly shareable: boolean
  /** Passed the storability checks at head time (the body may still fail admission). */
  readonly storable: boolean
  /** Why not, when not storable (for logs). */
  readonly noStoreReason?: string
  /** Wall clock (ms) when the upstream request was sent and when its head arrived. */
  readonly requestTimeMs: number
  readonly responseTimeMs: number
  /** Upstream that answered, for logs and Cache-Status. */
  readonly upstream: string
  /**
   * Set when the fill ended up answering from storage instead of streaming a new body:
   * the stale object revalidated by a 304, or served because upstream failed. Readers
   * deliver this object; the fill has no body of its own.
   */
  readonly stored?: StoredFillOutcome
}

/** A fill that ended in a stored object (see FillHead.stored). */
export interface StoredFillOutcome {
  readonly object: StoredObject
  /** revalidated: a 304 freshened it; stale-if-error: upstream failed; kept: the content policy refused the new response. */
  readonly kind: 'revalidated' | 'stale-if-error' | 'kept'
}

type Wake = () => void

export class SharedFill {
  readonly key: string
  /** Wall clock (ms) when the fill started. */
  readonly startedAtMs: number
  #state: FillState = 'waiting-head'
  #head: FillHead | undefined
  #error: Error | undefined
  readonly #chunks: Buffer[] = []
  /** Offset of the first byte of each chunk, for readers that start mid-body. */
  readonly #starts: number[] = []
  #length = 0
  #body: Buffer | undefined
  #readers = 0
  #wakeups: Wake[] = []
  #headWaiters: Array<{ resolve: (head: FillHead) => void, reject: (err: Error) => void }> = []

  constructor (key: string, startedAtMs: number) {
    this.key = key
    this.startedAtMs = startedAtMs
  }

  get state (): FillState { return this.#state }
  get head (): FillHead | undefined { return this.#head }
  get error (): Error | undefined { return this.#error }
  /** Body bytes received so far. */
  get length (): number { return this.#length }
  /** Readers attached so far (the request that started the fill counts as one). */
  get readers (): number { return this.#readers }
  /** Total body length once known: declared up front, or the final length at completion. */
  get totalBytes (): number | undefined {
    return this.#state === 'complete' ? this.#length : this.#head?.declaredBytes
  }

  // ---- writer side -------------------------------------------------------

  setHead (head: FillHead): void {
    if (this.#state !== 'waiting-head') throw new Error(`setHead in state ${this.#state}`)
    this.#head = head
    this.#state = 'streaming'
    const waiters = this.#headWaiters
    this.#headWaiters = []
    for (const w of waiters) w.resolve(head)
  }

  append (chunk: Buffer): void {
    if (this.#state !== 'streaming') throw new Error(`append in state ${this.#state}`)
    if (chunk.length === 0) return
    this.#starts.push(this.#length)
    this.#chunks.push(chunk)
    this.#length += chunk.length
    this.#wake()
  }

  /** Ends the fill with an answer from storage (see FillHead.stored): head and completion at once. */
  settleStored (head: FillHead & { readonly stored: StoredFillOutcome }): void {
    this.setHead(head)
    this.#state = 'complete'
    this.#wake()
  }

  /** Marks the body complete and returns it as one Buffer (the copy the store keeps). */
  complete (): Buffer {
    if (this.#state !== 'streaming') throw new Error(`complete in state ${this.#state}`)
    this.#state = 'complete'
    this.#wake()
    return this.body()
  }

  /** The whole body of a complete fill, assembled once. */
  body (): Buffer {
    if (this.#state !== 'complete') throw new Error(`body in state ${this.#state}`)
    if (this.#body === undefined) {
      this.#body = this.#chunks.length === 1 ? this.#chunks[0]! : Buffer.concat(this.#chunks, this.#length)
    }
    return this.#body
  }

  fail (err: Error): void {
    if (this.#state === 'complete' || this.#state === 'failed') return
    this.#state = 'failed'
    this.#error = err
    const waiters = this.#headWaiters
    this.#headWaiters = []
    for (const w of waiters) w.reject(err)
    this.#wake()
  }

  // ---- reader side -------------------------------------------------------

  /** Registers a reader (for counting; readers never hold the fill up). */
  attach (): void {
    this.#readers++
  }

  /**
   * Resolves with the head once it exists. Rejects with the fill's error if it fails,
   * or with CDN_ERR_LOCK_TIMEOUT after `timeoutMs` (the caller then fetches alone).
   * Without a timeout it waits as long as the fill does (the fill's own upstream
   * timeouts bound that).
   */
  waitHead (timeoutMs?: number): Promise<FillHead> {
    if (this.#head !== undefined) return Promise.resolve(this.#head)
    if (this.#state === 'failed') return Promise.reject(this.#error)
    return new Promise((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined
      const waiter = {
        resolve: (head: FillHead) => { clearTimeout(timer); resolve(head) },
        reject: (err: Error) => { clearTimeout(timer); reject(err) },
      }
      if (timeoutMs !== undefined) {
        timer = setTimeout(() => {
          this.#headWaiters = this.#headWaiters.filter((w) => w !== waiter)
          reject(new CdnError('CDN_ERR_LOCK_TIMEOUT', `Waited ${timeoutMs} ms for the fill of ${this.key}`))
        }, timeoutMs)
        timer.unref()
      }
      this.#headWaiters.push(waiter)
    })
  }

  /** Resolves when the fill is complete or failed (for range requests on bodies of unknown length). */
  settled (): Promise<void> {
    if (this.#state === 'complete' || this.#state === 'failed') return Promise.resolve()
    return new Promise((resolve) => {
      const check = (): void => {
        if (this.#state === 'complete' || this.#state === 'failed') resolve()
        else this.onProgress(check)
      }
      this.onProgress(check)
    })
  }

  /** Calls `wake` once, on the next appended chunk, completion or failure. */
  onProgress (wake: Wake): void {
    this.#wakeups.push(wake)
  }

  /** Index of the chunk holding byte `offset` (offset < length). */
  chunkIndexAt (offset: number): number {
    const starts = this.#starts
    let lo = 0
    let hi = starts.length - 1
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1
      if (starts[mid]! <= offset) lo = mid
      else hi = mid - 1
    }
    return lo
  }

  chunk (index: number): Buffer | undefined { return this.#chunks[index] }
  chunkStart (index: number): number { return this.#starts[index] ?? this.#length }

  #wake (): void {
    if (this.#wakeups.length === 0) return
    const wakeups = this.#wakeups
    this.#wakeups = []
    for (const wake of wakeups) wake()
  }
}

/**
 * A cursor that copies nothing: yields views of the fill's chunks from `start` to
 * `endInclusive`, as far as the fill has bytes. Used by the response pump.
 */
export class FillCursor {
  readonly #fill: SharedFill
  #pos: number
  readonly #end: number
  #chunk = -1

  constructor (fill: SharedFill, start: number, endInclusive: number) {
    this.#fill = fill
    this.#pos = start
    this.#end = endInclusive
  }

  /** Next byte position to send. */
  get position (): number { return this.#pos }
  /** All requested bytes have been handed out. */
  get done (): boolean { return this.#pos > this.#end }

  /** The next available slice, or undefined when the fill has no more bytes yet. */
  next (): Buffer | undefined {
    const fill = this.#fill
    if (this.#pos > this.#end || this.#pos >= fill.length) return undefined
    if (this.#chunk < 0) this.#chunk = fill.chunkIndexAt(this.#pos)
    let chunk = fill.chunk(this.#chunk)
    let start = fill.chunkStart(this.#chunk)
    while (chunk !== undefined && this.#pos >= start + chunk.length) {
      this.#chunk++
      chunk = fill.chunk(this.#chunk)
      start = fill.chunkStart(this.#chunk)
    }
    if (chunk === undefined) return undefined
    const from = this.#pos - start
    const to = Math.min(chunk.length, this.#end + 1 - start)
    this.#pos = start + to
    return from === 0 && to === chunk.length ? chunk : chunk.subarray(from, to)
  }
}
