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
 *
 * A fill whose body grows larger than the node stores (whatever else may keep it out of
 * storage) is released (`release`): the caller takes it out of its map, so nobody new joins,
 * and the bytes every reader has passed are dropped. Memory then holds the gap between the
 * slowest reader and the upstream, not the whole body, and past {@link RELEASED_WINDOW_BYTES}
 * the writer pauses the upstream until the slowest reader catches up (undici's body timeout
 * does not run while paused). A reader that attached reads through a cursor, or says it
 * never will (`detach`); until each has done one or the other, nothing is dropped and the
 * upstream is never paused (the pause would have no end).
 *
 * pipeFill sends a fill to a client: first bytes at once, the rest in bounded slices on
 * setImmediate turns, so a herd's fan-out and late joiners' catch-up never hold the event
 * loop (and with it the accept of the next client) for more than one slice budget.
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
  /**
   * The upstream body had no framing (RFC 9112 §6.3 item 8: no Content-Length, not chunked;
   * it ended when the connection closed), so its end cannot be told from a cut: never stored,
   * and relayed the same way, so the next tier cannot store it either.
   */
  readonly unframed?: boolean
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

/** Most body bytes a released fill holds before its writer pauses the upstream. */
export const RELEASED_WINDOW_BYTES = 16 * 1024 * 1024

export class SharedFill {
  readonly key: string
  /** Wall clock (ms) when the fill started. */
  readonly startedAtMs: number
  #state: FillState = 'waiting-head'
  #head: FillHead | undefined
  #error: Error | undefined
  // Entries below #kept are undefined once a released fill dropped them.
  readonly #chunks: Array<Buffer | undefined> = []
  /** Offset of the first byte of each chunk, for readers that start mid-body. */
  readonly #starts: number[] = []
  #length = 0
  #body: Buffer | undefined
  #readers = 0
  // Released fills: the readers' cursors, how many readers ever opened one or detached, bytes dropped.
  #released = false
  readonly #cursors = new Set<FillCursor>()
  #opened = 0
  #detached = 0
  #kept = 0
  #dropped = 0
  #onRoom: (() => void) | undefined
  #wakeups: Wake[] = []
  /** Told of a failure at once, whatever they are waiting for (see watchFailure). */
  readonly #failureWatchers = new Set<(err: Error) => void>()
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
  /** Streaming readers attached so far (the request that started the fill counts as one). */
  get readers (): number { return this.#readers }
  /** Body bytes held in memory (all of them, unless the fill was released). */
  get heldBytes (): number { return this.#length - this.#dropped }
  /** The body is not kept whole (see release). */
  get released (): boolean { return this.#released }
  /**
   * A released fill holds its window's worth: the writer should pause the upstream (see onRoom).
   * Never while a reader that attached has no cursor yet: nothing is dropped for it, so no room
   * would ever come.
   */
  get full (): boolean { return this.#released && !this.#awaitingCursors && this.heldBytes > RELEASED_WINDOW_BYTES }

  /** Some reader attached and has neither opened a cursor nor detached: it may still start at byte 0. */
  get #awaitingCursors (): boolean { return this.#opened + this.#detached < this.#readers }

  /** Calls `resume` once a full released fill has dropped to half its window (or ended). */
  onRoom (resume: () => void): void {
    this.#onRoom = resume
  }
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
    if (this.#released) this.#trim()
  }

  /**
   * Stops keeping the whole body: it will not be stored, and the caller has made sure nobody
   * new joins (the fill is out of its map). From now on, bytes every reader has passed are
   * dropped, once each reader that attached has opened its cursor (one that has not yet
   * might start at byte 0). `body()` is then unavailable.
   */
  release (): void {
    if (this.#released) return
    this.#released = true
    this.#trim()
    // readers waiting for the whole body (settledOrReleased) learn they will not have it
    this.#wake()
  }

  /** Ends the fill with an answer from storage (see FillHead.stored): head and completion at once. */
  settleStored (head: FillHead & { readonly stored: StoredFillOutcome }): void {
    this.setHead(head)
    this.#state = 'complete'
    this.#wake()
  }

  /** Marks the body complete (`body()` assembles it, for those who need it whole: the store, transforms). */
  complete (): void {
    if (this.#state !== 'streaming') throw new Error(`complete in state ${this.#state}`)
    this.#state = 'complete'
    this.#failureWatchers.clear()
    this.#wake()
  }

  /** The whole body of a complete fill, assembled once; a released fill no longer has it all. */
  body (): Buffer {
    if (this.#state !== 'complete') throw new Error(`body in state ${this.#state}`)
    if (this.#body === undefined) {
      if (this.#dropped > 0) throw new CdnError('CDN_ERR_INTERNAL', `The body of ${this.key} was not kept (larger than the store takes)`)
      const chunks = this.#chunks as Buffer[]
      this.#body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, this.#length)
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
    const watchers = [...this.#failureWatchers]
    this.#failureWatchers.clear()
    for (const watcher of watchers) watcher(err)
    this.#wake()
  }

  // ---- reader side -------------------------------------------------------

  /**
   * Registers a reader that will stream from the fill (readers never hold the fill up); the
   * count is pipeFill's herd signal, so a caller that only waits for the fill (a prefill or
   * prefetch warm-up) does not attach.
   */
  attach (): void {
    this.#readers++
  }

  /**
   * A reader that attached will read nothing through a cursor after all (it fetches alone, or
   * its answer has no body): a released fill stops keeping bytes for it. `readers` still counts it.
   * Once per such reader; a call when no attached reader is still without a cursor does nothing.
   */
  detach (): void {
    // counted past the readers, it would stand in for one that attaches later, whose bytes could then go
    if (!this.#awaitingCursors) return
    this.#detached++
    if (this.#released) this.#trim()
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

  /**
   * Resolves once the fill has a body byte or is complete. Rejects with the fill's error if
   * it fails first, or with CDN_ERR_LOCK_TIMEOUT after `timeoutMs`: an upstream that sends a
   * head and then stalls is a stuck writer too, and a joiner that has been sent nothing yet
   * can still fetch alone.
   */
  waitBody (timeoutMs: number): Promise<void> {
    if (this.#state === 'failed') return Promise.reject(this.#error)
    if (this.#length > 0 || this.#state === 'complete') return Promise.resolve()
    return new Promise((resolve, reject) => {
      let over = false
      const timer = setTimeout(() => {
        over = true
        reject(new CdnError('CDN_ERR_LOCK_TIMEOUT', `Waited ${timeoutMs} ms for the body of ${this.key}`))
      }, timeoutMs)
      timer.unref()
      const check = (): void => {
        if (over) return
        if (this.#state === 'failed') reject(this.#error)
        else if (this.#length > 0 || this.#state === 'complete') resolve()
        else {
          this.onProgress(check)
          return
        }
        over = true
        clearTimeout(timer)
      }
      this.onProgress(check)
    })
  }

  /** Resolves when the fill is complete or failed (a warm-up waiting for the fill it started or joined). */
  settled (): Promise<void> {
    return this.#whenOver(false)
  }

  /**
   * Resolves when the fill is complete or failed, or released: for a reader that needs the
   * body whole (several ranges, a rewrite). Attached without a cursor, such a reader keeps a
   * released fill from dropping anything, so it must not wait for the end of a body larger
   * than the node stores: it learns of the release here and reads through a cursor instead.
   */
  settledOrReleased (): Promise<void> {
    return this.#whenOver(true)
  }

  /** Resolves once the fill is complete or failed (or, with `orReleased`, released). */
  #whenOver (orReleased: boolean): Promise<void> {
    const over = (): boolean => (orReleased && this.#released) || this.#state === 'complete' || this.#state === 'failed'
    if (over()) return Promise.resolve()
    return new Promise((resolve) => {
      const check = (): void => {
        if (over()) resolve()
        else this.onProgress(check)
      }
      this.onProgress(check)
    })
  }

  /** Calls `wake` once, on the next appended chunk, completion, failure or release. */
  onProgress (wake: Wake): void {
    this.#wakeups.push(wake)
  }

  /**
   * Calls `watcher` if the fill fails, even for a reader waiting on something else (a
   * client socket that does not drain): a failed fill aborts every response at once.
   */
  watchFailure (watcher: (err: Error) => void): void {
    if (this.#state === 'failed') watcher(this.#error!)
    else if (this.#state !== 'complete') this.#failureWatchers.add(watcher)
  }

  unwatchFailure (watcher: (err: Error) => void): void {
    this.#failureWatchers.delete(watcher)
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

  /** A reader's cursor opened (FillCursor): a released fill keeps what it has not read. */
  track (cursor: FillCursor): void {
    this.#opened++
    this.#cursors.add(cursor)
  }

  /** The reader is done or gone (FillPipe). */
  untrack (cursor: FillCursor): void {
    if (this.#cursors.delete(cursor) && this.#released) this.#trim()
  }

  /** A cursor moved on past a chunk (FillCursor): a released fill may drop what is behind every reader. */
  advanced (): void {
    if (this.#released) this.#trim()
  }

  /** Drops the chunks of a released fill that every reader has passed. */
  #trim (): void {
    // a reader that attached without a cursor yet may still start anywhere
    if (this.#awaitingCursors) return
    let floor = this.#length
    for (const cursor of this.#cursors) if (cursor.position < floor) floor = cursor.position
    const chunks = this.#chunks
    let i = this.#kept
    while (i < chunks.length - 1 && this.#starts[i + 1]! <= floor) {
      this.#dropped += chunks[i]!.length
      chunks[i] = undefined
      i++
    }
    // the last chunk goes too once every reader is past it (no reader at all: nobody needs it)
    if (i === chunks.length - 1 && this.#length <= floor && chunks[i] !== undefined) {
      this.#dropped += chunks[i]!.length
      chunks[i] = undefined
      i++
    }
    this.#kept = i
    if (this.#onRoom !== undefined && this.heldBytes <= RELEASED_WINDOW_BYTES / 2) {
      const resume = this.#onRoom
      this.#onRoom = undefined
      resume()
    }
  }

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
    fill.track(this)
  }

  /** The reader is done or gone: a released fill stops keeping bytes for it. */
  close (): void {
    this.#fill.untrack(this)
  }

  /** Next byte position to send. */
  get position (): number { return this.#pos }
  /** All requested bytes have been handed out. */
  get done (): boolean { return this.#pos > this.#end }

  /** The next available slice (at most `maxBytes` long), or undefined when the fill has no more bytes yet. */
  next (maxBytes = Number.MAX_SAFE_INTEGER): Buffer | undefined {
    const fill = this.#fill
    if (this.#pos > this.#end || this.#pos >= fill.length || maxBytes < 1) return undefined
    if (this.#chunk < 0) this.#chunk = fill.chunkIndexAt(this.#pos)
    // by offsets, not lengths: a chunk this cursor finished may be gone (a released fill)
    while (this.#pos >= fill.chunkStart(this.#chunk + 1)) this.#chunk++
    const chunk = fill.chunk(this.#chunk)
    // never under a reader: a released fill only drops what every reader has passed
    if (chunk === undefined) return undefined
    const start = fill.chunkStart(this.#chunk)
    const from = this.#pos - start
    const to = Math.min(chunk.length, this.#end + 1 - start, from + maxBytes)
    this.#pos = start + to
    // past the end of a chunk: a released fill may drop it
    if (to === chunk.length) fill.advanced()
    return from === 0 && to === chunk.length ? chunk : chunk.subarray(from, to)
  }
}

// ---- fan-out to clients ----------------------------------------------------

/**
 * Bytes a reader gets the moment it can have any (its head goes with them): a reader's
 * first byte never waits for a pacer turn, and the catch-up of a late joiner is not
 * copied into its socket all at once.
 */
export const FIRST_SLICE_BYTES = 16 * 1024
/** Most bytes one reader gets per pacer visit (small chunks in one visit go out as one writev: node:http corks). */
export const SLICE_BYTES = 64 * 1024
/** Most bytes the pacer writes per event-loop turn, across all readers of all fills. */
export const TURN_BUDGET_BYTES = 512 * 1024
/**
 * Longest the pacer holds bulk writes back while a herd keeps joining (by default; A/B
 * benchmarks change it with {@link setPacerMaxDeferMs}).
 */
export const MAX_DEFER_MS = 40
/** After holding back that long, bulk runs undeferred for this long. */
export const MIN_BULK_MS = 5

/**
 * Benchmarking knob: how long the pacer may hold bulk back, 0 turning deferral off (bin/main.ts
 * sets it from `BENCH_PACER_DEFER_MS` for bench/scenarios/steady-misses.ts). Process-wide, like
 * the pacer. Not a setting: operators have no reason to turn it.
 */
export function setPacerMaxDeferMs (ms: number): void {
  if (!Number.isInteger(ms) || ms < 0 || ms > 1000) throw new TypeError(`Expected the pacer's deferral to be an integer number of ms between 0 and 1000, got ${String(ms)}`)
  PACER.maxDeferMs = ms
}

/** Where a fill reader's bytes go; a node:http ServerResponse is one. */
export interface FillSink {
  readonly destroyed: boolean
  /** False when the caller should wait for 'drain' before writing more. */
  write (chunk: Buffer): boolean
  end (): unknown
  once (event: 'drain', listener: () => void): unknown
}

/** What {@link pipeFill} reports. */
export interface FillPipeHooks {
  /** Body bytes handed to the sink. */
  readonly onBytes: (bytes: number) => void
  /** The fill failed before this reader had all its bytes: abort the response (never end it short). */
  readonly onFail: (err: Error | undefined) => void
}

/**
 * Streams bytes `start`..`endInclusive` of `fill` into `sink` as the fill gets them, and
 * ends the sink after the last one. The first {@link FIRST_SLICE_BYTES} go out at once
 * (now, or as soon as the fill has any); everything after is written by the pacer in
 * slices of at most {@link SLICE_BYTES}, round-robin, at most {@link TURN_BUDGET_BYTES}
 * per event-loop turn. libuv 1.46 (Node 20) accepts one connection per turn (seen with
 * strace: one accept4 per epoll_wait), so a turn that copies megabytes into sockets (a
 * herd's fan-out, a late joiner's catch-up) holds up every client still in the accept
 * queue; short turns keep intake moving. Each reader has its own backpressure ('drain');
 * the fill never waits for a reader.
 */
export function pipeFill (fill: SharedFill, sink: FillSink, start: number, endInclusive: number, hooks: FillPipeHooks): void {
  // Only a fill with several readers is a herd: a fill's only reader is a plain miss, and
  // steady misses must not hold back anyone's bulk.
  if (fill.readers > 1) PACER.noteJoin()
  const pipe = new FillPipe(fill, sink, new FillCursor(fill, start, endInclusive), hooks)
  pipe.pump(FIRST_SLICE_BYTES)
  pipe.watch()
}

/** One reader's position in a fill and what it waits for: bytes, 'drain', or its pacer turn. */
class FillPipe {
  readonly #fill: SharedFill
  readonly #sink: FillSink
  readonly #cursor: FillCursor
  readonly #hooks: FillPipeHooks
  #sentBytes = 0
  #done = false
  readonly #onReady = (): void => this.#ready()
  readonly #onFailure = (err: Error): void => this.#abort(err)

  constructor (fill: SharedFill, sink: FillSink, cursor: FillCursor, hooks: FillPipeHooks) {
    this.#fill = fill
    this.#sink = sink
    this.#cursor = cursor
    this.#hooks = hooks
  }

  /** Aborts this reader the moment the fill fails, whatever it is waiting for. */
  watch (): void {
    if (!this.#done) this.#fill.watchFailure(this.#onFailure)
  }

  /**
   * Writes up to `maxBytes` (stopping early at backpressure), then arranges the next step:
   * end, abort, wait for 'drain', wait for the fill, or queue for the next pacer visit.
   * Returns the bytes written.
   */
  pump (maxBytes: number): number {
    if (this.#done) return 0
    const sink = this.#sink
    const fill = this.#fill
    if (sink.destroyed) {
      this.#finish()
      return 0
    }
    if (fill.state === 'failed') {
      this.#abort(fill.error)
      return 0
    }
    const cursor = this.#cursor
    let written = 0
    let writable = true
    while (writable && written < maxBytes) {
      const chunk = cursor.next(maxBytes - written)
      if (chunk === undefined) break
      written += chunk.length
      writable = sink.write(chunk)
    }
    if (written > 0) {
      this.#sentBytes += written
      this.#hooks.onBytes(written)
    }
    if (cursor.done || (fill.state === 'complete' && cursor.position >= fill.length)) {
      this.#finish()
      sink.end()
    } else if (!writable) {
      sink.once('drain', this.#onReady)
    } else if (cursor.position < fill.length) {
      PACER.enqueue(this)
    } else {
      fill.onProgress(this.#onReady)
    }
    return written
  }

  #finish (): void {
    this.#done = true
    this.#fill.unwatchFailure(this.#onFailure)
    this.#cursor.close()
  }

  #abort (err: Error | undefined): void {
    if (this.#done) return
    this.#finish()
    this.#hooks.onFail(err)
  }

  #ready (): void {
    if (this.#done) return
    // Nothing sent yet: the first bytes (and the head with them) go now, not after a turn.
    if (this.#sentBytes === 0) this.pump(FIRST_SLICE_BYTES)
    else PACER.enqueue(this)
  }
}

/**
 * Runs queued readers in setImmediate turns: each gets one slice, in queue order, until
 * the turn's budget is spent; the rest keep their place for the next turn. Readers queued
 * during a turn wait for the next one, after the event loop has polled for I/O (accepts,
 * requests, upstream bytes) in between.
 *
 * While readers keep joining fills that already have readers (a herd arriving: more
 * connections are likely waiting in the accept queue), turns skip the bulk writes so each
 * accept costs one cheap turn; bulk is held back at most {@link MAX_DEFER_MS} (by default), then runs
 * undeferred for {@link MIN_BULK_MS}, so readers already streaming keep at least that share
 * of the time however many join. The first reader of a fill (a plain miss) is no herd and
 * defers nothing: with misses starting fills every turn, steady traffic would otherwise get
 * bulk only {@link MIN_BULK_MS} of every {@link MAX_DEFER_MS} + {@link MIN_BULK_MS}.
 */
class Pacer {
  maxDeferMs = MAX_DEFER_MS
  #queue: Array<FillPipe | undefined> = []
  #head = 0
  #scheduled = false
  #joined = false
  #deferredSinceMs: number | undefined
  #noDeferUntilMs = 0
  readonly #turn = (): void => this.#run()

  enqueue (pipe: FillPipe): void {
    this.#queue.push(pipe)
    this.#schedule()
  }

  /** A reader joined a fill that had one already: the next turn may yield to the readers still arriving. */
  noteJoin (): void {
    this.#joined = true
  }

  #schedule (): void {
    if (this.#scheduled) return
    this.#scheduled = true
    setImmediate(this.#turn)
  }

  #run (): void {
    this.#scheduled = false
    if (this.#joined) {
      this.#joined = false
      const now = performance.now()
      if (now >= this.#noDeferUntilMs) {
        this.#deferredSinceMs ??= now
        if (now - this.#deferredSinceMs < this.maxDeferMs) {
          this.#schedule()
          return
        }
        this.#noDeferUntilMs = now + MIN_BULK_MS
      }
    }
    this.#deferredSinceMs = undefined
    const queue = this.#queue
    const end = queue.length
    let budget = TURN_BUDGET_BYTES
    while (this.#head < end && budget > 0) {
      const pipe = queue[this.#head]!
      queue[this.#head++] = undefined
      budget -= pipe.pump(SLICE_BYTES)
    }
    if (this.#head === queue.length) {
      this.#queue = []
      this.#head = 0
      return
    }
    if (this.#head > 1024 && this.#head * 2 > queue.length) {
      this.#queue = queue.slice(this.#head)
      this.#head = 0
    }
    this.#schedule()
  }
}

const PACER = new Pacer()
