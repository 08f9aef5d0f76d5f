/**
 * The caching reverse-proxy pipeline, shared by the edge and shield roles.
 *
 * Phases of a GET/HEAD request:
 *   accept → key → lookup (memory, then a fill in flight, then disk; Vary markers lead
 *   to the variant) → reuse decision (RFC 9111 §4: fresh | stale but acceptable |
 *   stale-while-revalidate | revalidate) → fill (one upstream fetch per key, conditional
 *   when a stale entry has validators) → admit → store → deliver → log.
 * Other methods pass through uncached; successful unsafe ones invalidate (§4.4).
 *
 * Outcomes are values, not exceptions: each request ends with one access-log line, one
 * metrics update and a Cache-Status header (RFC 9211) that say the same thing.
 * @see https://www.rfc-editor.org/rfc/rfc9111
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { CdnError, isCdnError } from '../../lib/errors.ts'
import type { FastBodySink, FastPending, FastReply, FastRequest, FastResponse } from '../../lib/http/fast-front.ts'
import { infoLineWriter, jsonString, type Logger } from '../../lib/log.ts'
import type { CacheNodeMetrics } from '../../lib/metrics.ts'
import type { CacheStatusEntry } from '../../lib/http/cache-status.ts'
import { forwardRequestHeaders, toStoredHeaders } from '../../lib/http/headers.ts'
import { parseRangeHeader } from '../../lib/http/range.ts'
import { makeCacheKey } from '../cache/cache-key.ts'
import type { DiskStore } from '../cache/disk-store.ts'
import { computeFreshness, isFresh, responseDirectives, storability, ttlSeconds } from '../cache/freshness.ts'
import type { PurgeJournal, PurgeKind } from '../cache/purge-journal.ts'
import { ruleCovers } from '../cache/purge-journal.ts'
import { canServeStaleOnError, decideReuse, requestDirectives, storedDirectives, type RequestDirectives } from '../cache/reuse-policy.ts'
import { conditionalHeaders, freshenedMeta, hasValidator, validatorsMatch } from '../cache/revalidation.ts'
import { pipeFill, SharedFill, type FillHead } from '../cache/shared-fill.ts'
import type { TieredStore } from '../cache/tiered-store.ts'
import type { MemoryObject, ObjectMeta, StoredHeaders, StoredObject } from '../cache/types.ts'
import { makeVaryMarker, markerNames, primaryOf, sameNames, variantKey, varyNames, VARIANT_SEPARATOR } from '../cache/vary.ts'
import { integrityCheckFor } from '../hls/integrity.ts'
import { deliverError, deliverFromFill, deliverObject, deliverPass, deliverStatus, isCloseDelimited, rangeDecision, type Exchange, type Responder, type StatusFields } from './deliver.ts'
import { HitHeads, HitWires, JoinHead, type HitHead } from './hit-head.ts'
import { NO_CONTENT_POLICY, type AdmitDecision, type ContentPolicy, type PolicyResponse } from './content-policy.ts'
import type { Forwarding } from './forwarding.ts'
import { toUpstreamError, type Upstream, type UpstreamResponse } from './upstream.ts'

export type CachePhase = 'hit' | 'miss' | 'collapsed' | 'revalidated' | 'stale' | 'pass' | 'bypass' | 'error'

/** Rewrites a whole 200 body for one client (the master-playlist steering tag), or undefined to send it as stored. */
export type BodyRewrite = (body: Buffer) => Buffer | undefined

/** Request headers as the pipeline reads them (node:http's, or the fast path's). */
type RequestHeaders = Readonly<Record<string, string | readonly string[] | undefined>>

/** What the access log and the request metrics say about a finished request. */
type Accounted = Pick<Exchange, 'id' | 'startMs' | 'path' | 'key' | 'phase' | 'source' | 'bytes' | 'upstream' | 'noCacheReason' | 'error' | 'peer'>

const HIT_IN_MEMORY = { result: 'hit', tier: 'memory' } as const
const JOINED = { outcome: 'joined' } as const

/**
 * A fast path answer (CacheProxy.answerFast) that is also its own exchange record: the
 * front calls `onDone` on it when the response is out, and it is accounted like any
 * other request then (a class rather than a closure: nothing per request but this object).
 * What a subclass adds is what it answers with: a memory hit's bytes, or a fill's stream.
 */
abstract class FastExchange implements FastResponse, Accounted {
  abstract readonly phase: CachePhase
  abstract readonly source: Exchange['source']
  abstract readonly status: number
  abstract readonly bytes: number
  abstract readonly upstream: string | undefined
  abstract readonly noCacheReason: string | undefined
  abstract readonly error: CdnError | undefined
  readonly head: string
  readonly ownDate: boolean
  readonly id: number
  readonly startMs: number
  readonly path: string
  readonly key: string
  readonly peer: string | undefined
  readonly method: string
  readonly forwardedFor: string | undefined
  readonly #done: (answer: FastExchange, completed: boolean) => void

  constructor (head: string, ownDate: boolean, done: (answer: FastExchange, completed: boolean) => void, id: number, startMs: number, req: FastRequest, path: string, key: string) {
    this.head = head
    this.ownDate = ownDate
    this.#done = done
    this.id = id
    this.startMs = startMs
    this.path = path
    this.key = key
    this.method = req.method
    this.peer = req.remoteAddress
    this.forwardedFor = req.headers['x-forwarded-for']
  }

  onDone (completed: boolean): void {
    this.#done(this, completed)
  }
}

/** A fresh memory hit: the stored body (or one range of it). */
class FastHit extends FastExchange {
  readonly phase = 'hit'
  readonly source = 'memory'
  readonly upstream = undefined
  readonly noCacheReason = undefined
  readonly error = undefined
  readonly body: Buffer
  readonly bytes: number
  readonly status: number
  // Where a whole-body answer's bytes are kept from one request to the next (undefined for a range)
  readonly #wires: HitWires | undefined
  // The disk tier, which may hold the same bytes in a file the kernel can send from (sendFile)
  readonly #disk: DiskStore
  readonly #meta: ObjectMeta
  // Offset of `body` in the stored body (a range's first byte)
  readonly #start: number
  // The object's rendered heads, which keep `head` completed for the wire (fullHead)
  readonly #rendered: HitHead

  constructor (head: string, body: Buffer, rendered: HitHead, done: (answer: FastExchange, completed: boolean) => void, id: number, startMs: number, req: FastRequest, path: string, key: string, status: number, wires: HitWires | undefined, disk: DiskStore, meta: ObjectMeta, start: number) {
    super(head, rendered.ownDate, done, id, startMs, req, path, key)
    this.#rendered = rendered
    this.body = body
    this.status = status
    this.bytes = req.method === 'HEAD' ? 0 : body.length
    this.#wires = wires
    this.#disk = disk
    this.#meta = meta
    this.#start = start
  }

  wire (date: string, close: boolean): Buffer | undefined {
    return close ? undefined : this.#wires?.get(this.head, this.body, date, this.startMs)
  }

  fullHead (date: string, close: boolean): string {
    return this.#rendered.wireHead(this.head, date, close)
  }

  /** The body from the disk tier's copy of this very version, when it has one it can lend now (DiskStore.lendFile). */
  sendFile (send: (fileFd: number, offset: number) => number): number | undefined {
    const lent = this.#disk.lendFile(this.#meta.key, this.#meta)
    if (lent === undefined) return undefined
    try {
      return send(lent.file.fd, lent.bodyOffset + this.#start)
    } finally {
      this.#disk.returnFile(lent)
    }
  }
}

/**
 * A request joining a fill in flight: streams the fill's bytes as they arrive. Made attached
 * to the fill (SharedFill.attach): it opens a cursor when the front pipes its body, or
 * detaches (a HEAD at once; a GET whose connection went before its answer, at onDone).
 */
class FastJoin extends FastExchange {
  readonly phase = 'collapsed'
  readonly source = 'fill'
  readonly status = 200
  readonly upstream: string
  readonly noCacheReason: string | undefined
  bytes = 0
  error: CdnError | undefined = undefined
  readonly #fill: SharedFill
  readonly #lastByte: number
  // Attached, with neither a cursor nor a detach yet
  #unread = true
  #sink: FastBodySink | undefined

  constructor (head: string, ownDate: boolean, job: FillJob, fillHead: FillHead, totalBytes: number, done: (answer: FastExchange, completed: boolean) => void, id: number, startMs: number, req: FastRequest, path: string) {
    super(head, ownDate, done, id, startMs, req, path, job.key)
    this.#fill = job.fill
    this.#lastByte = totalBytes - 1
    this.upstream = fillHead.upstream
    this.noCacheReason = fillHead.noStoreReason
    // the front pipes no body for a HEAD
    if (req.method === 'HEAD') this.#readNothing()
  }

  override onDone (completed: boolean): void {
    // a GET whose connection was gone before its answer: never piped
    this.#readNothing()
    super.onDone(completed)
  }

  /** This reader takes no bytes from the fill: a released fill stops keeping them for it. */
  #readNothing (): void {
    if (!this.#unread) return
    this.#unread = false
    this.#fill.detach()
  }

  pipe (sink: FastBodySink): void {
    this.#unread = false
    this.#sink = sink
    // its own hooks (FillPipeHooks): no closures per joiner
    pipeFill(this.#fill, sink, 0, this.#lastByte, this)
  }

  /** FillPipeHooks: body bytes handed to the socket. */
  onBytes (bytes: number): void {
    this.bytes += bytes
  }

  /** FillPipeHooks: the fill failed before this reader had all its bytes. */
  onFail (err: Error | undefined): void {
    this.error ??= err as CdnError | undefined
    this.#sink?.destroy()
  }
}

/**
 * A fast-path request for a fill in flight that has no head yet, or (a GET) no body bytes:
 * the front hands it its reply (`wait`), and it waits in its job's list until the proxy
 * answers the fill's waiters together (CacheProxy #serveWaiters). No promise, closure or
 * timer per waiter: a herd's waiters share one watch on the fill and one lock timer.
 */
class FastWaiter implements FastPending {
  readonly pending = true
  readonly job: FillJob
  readonly req: FastRequest
  readonly path: string
  readonly startMs: number
  /** Set by `wait`, before the waiter is listed. */
  reply: FastReply | undefined = undefined
  /** When it stops waiting and fetches alone (performance.now() ms; the lock timeout). */
  deadline = 0
  readonly #enqueue: (waiter: FastWaiter) => void

  constructor (job: FillJob, req: FastRequest, path: string, startMs: number, enqueue: (waiter: FastWaiter) => void) {
    this.job = job
    this.req = req
    this.path = path
    this.startMs = startMs
    this.#enqueue = enqueue
  }

  wait (reply: FastReply): void {
    this.reply = reply
    this.#enqueue(this)
  }
}

/**
 * A fast-path join that handed its request to node:http after all (the fill's head was not
 * one the fast path answers, or never came): the node:http path joins the same fill, and a
 * lock that ran out on the fast path is not waited for twice. The request is attached to the
 * fill already: the rejoin that takes this note carries that on (see #resume).
 */
interface ResumedJoin {
  readonly job: FillJob
  readonly lockExpired: boolean
}

export interface CacheProxyOptions {
  /** Name this cache uses in Cache-Status (RFC 9211), e.g. `streamedge-edge-1`. */
  readonly cacheName: string
  readonly store: TieredStore
  readonly upstream: Upstream
  readonly metrics: CacheNodeMetrics
  readonly logger: Logger
  /** Write one access-log line per request. */
  readonly accessLog: boolean
  /** How long a request waits for another request's fill to produce a head before fetching alone. */
  readonly lockTimeoutMs: number
  /** Responses longer than this are streamed but never stored. */
  readonly maxObjectBytes: number
  /** Query parameters removed from cache keys and upstream URLs. */
  readonly stripQueryParams: readonly string[]
  /** Refuse to store bodies that fail cheap format checks (MPEG-TS sync bytes, fMP4 boxes). */
  readonly checkIntegrity: boolean
  /** Lifetime of 404/410 responses without explicit freshness (negative caching); 0 disables. */
  readonly negativeTtlSeconds: number
  /** Ceiling on the lifetime of any 404/410 response. */
  readonly negativeTtlMaxSeconds: number
  /** Serve stale this long past expiry when upstream fails, even without stale-if-error (operator grace). */
  readonly staleIfErrorSeconds: number
  /** Store responses with Set-Cookie (without the cookie: only the client that caused the fill gets it). */
  readonly allowSetCookie: boolean
  /** Most ranges answered as multipart/byteranges; more get the whole body. */
  readonly maxRanges: number
  /**
   * A range starting this many bytes beyond what a fill has (or at all, when nothing is
   * cached or filling) goes upstream as a range request of its own, uncached, instead of
   * waiting for (and pulling) the whole object up to it. 0 turns the guard off.
   */
  readonly rangeMissOffsetBytes: number
  /** Persists purges; without one, purges still apply but do not survive a restart. */
  readonly journal?: PurgeJournal
  /** Via, CDN-Loop and X-Forwarded-For handling (this node's name and trusted proxies). */
  readonly forwarding: Forwarding
  /**
   * Per-request body rewriting (the master-playlist steering tag): given the request and
   * its URL, a function that rewrites a whole 200 body, or undefined for none.
   */
  readonly bodyTransform?: (req: IncomingMessage, url: string) => BodyRewrite | undefined
  /** Content-aware rules (HLS), or a factory given this proxy (for prefetching through `warm`); a plain HTTP cache without. */
  readonly contentPolicy?: ContentPolicy | ((proxy: CacheProxy) => ContentPolicy)
  /** Wall clock in ms (injectable for tests). */
  readonly now?: () => number
}

/** What a fill is for and how its readers describe it. */
interface FillJob {
  readonly fill: SharedFill
  /** The URL's key (what goes upstream). */
  readonly primaryKey: string
  /** Where the answer is looked up: the primary key, or a variant key when the URL's Vary is known. */
  readonly key: string
  /** The initiating request's headers: the upstream request and the variant are derived from them. */
  readonly reqHeaders: RequestHeaders
  /** Via, CDN-Loop and X-Forwarded-For for the upstream request, from the initiating request. */
  readonly forwarded: Record<string, string>
  /** The stored response being revalidated, if any. */
  readonly stale: StoredObject | undefined
  readonly fwd: 'uri-miss' | 'vary-miss' | 'stale' | 'request'
  /** Header names the response varies on (known once the head arrived). */
  varyNames: readonly string[]
  /** A purge or invalidation covered this key while the fill ran: do not store its result. */
  purged: boolean
  /** The initiator's Set-Cookie, kept out of the shared head when allowSetCookie is on. */
  setCookie: string | readonly string[] | undefined
  /** Set by admission: the body went into storage. */
  stored: boolean
  /** The response has no freshness of its own: stored only if the content policy gives it a lifetime. */
  needsPolicyLifetime: boolean
  /** The head of fast-path joiners, rendered by the first (undefined until then). */
  joinHead: JoinHead | undefined
  /** How long a joiner waits for this fill (#lockTimeoutMs, asked of the content policy once). */
  lockTimeoutMs: number | undefined
  /** Fast-path joiners waiting for the head, or (GETs) for the first body bytes: answered together (#serveWaiters). */
  waiters: FastWaiter[]
  /** #serveWaiters runs at the fill's next step (#watchWaiters). */
  waitersWatched: boolean
  /** Runs #expireWaiters at the earliest waiter's lock deadline: one timer per fill, not per waiter. */
  waitersTimer: NodeJS.Timeout | undefined
}

/** What `warm` did for a URL. */
export interface WarmResult {
  /** cached: fresh in storage already; filled: fetched and stored; joined: another fill was under way and stored it; not-stored / failed. */
  readonly result: 'cached' | 'filled' | 'joined' | 'not-stored' | 'failed'
  readonly status?: number
  /** Body bytes fetched from upstream for it (0 when cached). */
  readonly bytes: number
}

/** Methods known safe (RFC 9110 §9.2.1): every other one invalidates on success, unknown ones included (RFC 9111 §4.4). */
const SAFE: ReadonlySet<string> = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE'])
/**
 * Request fields never sent upstream: the upstream sets its own Host, and node:http has
 * answered Expect: 100-continue (undici refuses to send Expect: a fill would fail for every
 * client sharing it).
 */
const NOT_FORWARDED: ReadonlySet<string> = new Set(['host', 'expect'])
/** Reasons a response is not stored that still let concurrent requests share it. */
const SHAREABLE_REASONS: ReadonlySet<string> = new Set(['status', 'no-freshness', 'partial', 'too-large', 'stale-5xx', 'request-no-store', 'unframed'])

export class CacheProxy {
  readonly #o: CacheProxyOptions
  readonly #now: () => number
  readonly #fills = new Map<string, FillJob>()
  readonly #strip: ReadonlySet<string>
  readonly #keyOptions: { readonly stripQueryParams: ReadonlySet<string> }
  readonly #policy: ContentPolicy
  readonly #heads: HitHeads
  readonly #wires = new HitWires()
  readonly #responder: Responder
  readonly #accountFast = (answer: FastExchange, completed: boolean): void => this.#account(answer, answer.method, answer.status, completed, answer.forwardedFor)
  // Fast-path joins handed to node:http, by connection (the socket node:http's request carries)
  readonly #resumed = new WeakMap<object, ResumedJoin>()
  // The access log's line writer: one line per request, rendered here (lib/log.ts infoLineWriter)
  readonly #accessLine: (fields: string) => void
  #nextId = 0
  #servedBytes = 0

  constructor (options: CacheProxyOptions) {
    for (const field of ['lockTimeoutMs', 'maxRanges'] as const) {
      const value = options[field]
      if (!Number.isSafeInteger(value) || value < 1) throw new TypeError(`Expected options.${field} to be a positive integer, got ${String(value)}`)
    }
    for (const field of ['maxObjectBytes', 'negativeTtlSeconds', 'negativeTtlMaxSeconds', 'staleIfErrorSeconds', 'rangeMissOffsetBytes'] as const) {
      const value = options[field]
      if (!Number.isSafeInteger(value) || value < 0) throw new TypeError(`Expected options.${field} to be a non-negative integer, got ${String(value)}`)
    }
    this.#o = options
    this.#now = options.now ?? Date.now
    this.#accessLine = infoLineWriter(options.logger, 'request')
    this.#strip = new Set(options.stripQueryParams)
    this.#keyOptions = { stripQueryParams: this.#strip }
    const policy = options.contentPolicy
    this.#policy = policy === undefined ? NO_CONTENT_POLICY : typeof policy === 'function' ? policy(this) : policy
    this.#responder = { cacheName: options.cacheName, via: options.forwarding.via }
    this.#heads = new HitHeads(this.#responder)
    options.metrics.watchFillsInFlight(() => this.#fills.size)
  }

  /** Fills in flight (for metrics and tests). */
  get fillsInFlight (): number { return this.#fills.size }

  /**
   * Requests attached to the fill in flight for `url` (path and query; its primary key),
   * the initiator included: 0 when none is in flight. For tests that line up a herd.
   */
  fillReaders (url: string): number {
    return this.#fills.get(makeCacheKey(url, this.#keyOptions))?.fill.readers ?? 0
  }

  /** Body bytes sent to clients since start (heartbeats report it as egress). */
  get servedBytesTotal (): number { return this.#servedBytes }

  /** Handles one client request; never throws. */
  handle (req: IncomingMessage, res: ServerResponse): void {
    const ex = this.#begin(req, res)
    // left, not taken, unless the rejoin below takes it: #resume then undoes the fast path's attach
    const resumed = this.#resumed.get(req.socket)
    if (this.#o.forwarding.isLoop(req)) {
      // RFC 8586: this request has been through this node already; forwarding it would loop.
      ex.phase = 'error'
      this.#o.logger.warn({ reqId: ex.id, path: ex.path, cdnLoop: req.headers['cdn-loop'], via: req.headers.via }, 'request loop refused')
      deliverStatus(ex, 508, 'Loop Detected\n', { detail: 'loop' })
      return
    }
    if (ex.path.charCodeAt(0) !== 0x2f || ex.path.includes('#')) {
      // Asterisk-form (`OPTIONS *`) and fragments name no resource here (RFC 9112 §3.2); sent
      // on, undici would refuse the target and the error would be charged to the upstream.
      deliverError(ex, new CdnError('CDN_ERR_REQUEST_INVALID', 'Expected an origin-form request target without a fragment'), { fwd: 'bypass' })
      return
    }
    const method = req.method ?? 'GET'
    if (method !== 'GET' && method !== 'HEAD') {
      this.#forward(ex, 'pass', { fwd: 'method' }, SAFE.has(method) ? undefined : (r) => this.#invalidateAfter(ex, r))
      return
    }
    let primary: string
    try {
      primary = makeCacheKey(ex.path, { stripQueryParams: this.#strip })
    } catch (err) {
      deliverError(ex, isCdnError(err) ? err : new CdnError('CDN_ERR_REQUEST_INVALID', undefined, { cause: err }), { fwd: 'bypass' })
      return
    }
    ex.key = primary
    const directives = requestDirectives(req.headers)
    const store = this.#o.store
    let found = store.getFromMemory(primary)
    let vary = false
    const names = markerNames(found)
    if (names !== undefined) {
      vary = true
      ex.key = variantKey(primary, names, req.headers)
      found = store.getFromMemory(ex.key)
    }
    if (found !== undefined) {
      this.#useStored(ex, primary, found, 'memory', directives)
      return
    }
    if (resumed !== undefined && resumed.job.key === ex.key) {
      this.#resumed.delete(req.socket)
      void this.#join(ex, resumed.job, false, resumed)
      return
    }
    const job = this.#fills.get(ex.key)
    if (job !== undefined && !directives.onlyIfCached) {
      void this.#join(ex, job, false)
      return
    }
    void this.#lookupDisk(ex, primary, vary, directives)
  }

  /**
   * The synchronous answer to a GET or HEAD whose object is fresh in memory, for the fast
   * path below node:http (edge/proxy/fast-hit.ts): the decision, headers, body, metrics,
   * access-log line and content-policy hooks of `handle` for the same request. Undefined
   * when the request needs anything more (a miss, stale, Vary, 304, 416, several ranges,
   * a rewritten body...): node:http then takes it to `handle`. The caller has admitted
   * the request (`path` is its URL without the token; `rewrite` what `bodyTransform` gives
   * it) and declined request headers that could change the decision (conditionals,
   * Cache-Control, Authorization...).
   */
  answerFast (req: FastRequest, path: string, rewrite: BodyRewrite | undefined): FastResponse | FastPending | undefined {
    const loop = req.headers['cdn-loop']
    if (loop !== undefined && this.#o.forwarding.loops(loop)) return undefined
    let primary: string
    try {
      primary = makeCacheKey(path, this.#keyOptions)
    } catch {
      return undefined
    }
    const object = this.#o.store.getFromMemory(primary)
    if (object === undefined) return this.#joinFast(req, path, primary, rewrite)
    if (markerNames(object) !== undefined) return undefined
    const meta = object.meta
    // node:http sends no body for these whatever the Content-Length says
    if (meta.status === 204 || meta.status === 304) return undefined
    const now = this.#now()
    if (decideReuse(meta, requestDirectives(req.headers), now).kind !== 'fresh') return undefined
    if (rewrite !== undefined && meta.status === 200 && rewrite(object.body) !== undefined) return undefined
    const size = meta.bodyBytes
    const range = rangeDecision(req.method, req.headers.range, undefined, this.#o.maxRanges, meta.status, meta.headers, size)
    if (range.kind === 'unsatisfiable' || (range.kind === 'partial' && range.ranges.length > 1)) return undefined
    const ttl = Math.floor(ttlSeconds(meta, now))
    const rendered = this.#heads.get(object, ttl, now)
    if (rendered === undefined) return undefined
    let head = rendered.whole
    let body = object.body
    let status = meta.status
    let start = 0
    if (range.kind === 'partial') {
      start = range.ranges[0]!.start
      const end = range.ranges[0]!.end
      head = rendered.partial(start, end, size)
      body = body.subarray(start, end + 1)
      status = 206
    }
    this.#o.metrics.lookups.inc(HIT_IN_MEMORY)
    const hit = new FastHit(head, body, rendered, this.#accountFast, ++this.#nextId, now, req, path, primary, status, range.kind === 'partial' ? undefined : this.#wires, this.#o.store.disk, meta, start)
    if (this.#policy.refreshAhead(meta, now)) {
      this.#refreshInBackground(primary, primary, object, req.headers, this.#o.forwarding.upstreamHeadersFrom(req.remoteAddress, req.headers))
    }
    this.#policy.onServed(primary, status)
    return hit
  }

  /**
   * A fast-path request for an object not in memory: when a fill for it is in flight, the
   * request joins it (a herd's waiters cost no node:http objects): answered now if the fill's
   * head is in, else once it comes. Only plain whole-object GETs and HEADs of a shareable 200
   * of known length are answered here; for anything else the request goes to node:http,
   * which joins the same fill (`#resumed`).
   */
  #joinFast (req: FastRequest, path: string, primary: string, rewrite: BodyRewrite | undefined): FastResponse | FastPending | undefined {
    if (rewrite !== undefined || req.headers.range !== undefined) return undefined
    const job = this.#fills.get(primary)
    if (job === undefined || job.fill.state === 'failed') return undefined
    const startMs = this.#now()
    const head = job.fill.head
    // A GET that comes after the head but before any body byte waits like an early one: sent
    // nothing yet, it can still fetch alone if the writer stalls (the lock timeout, #expireWaiters).
    if (head !== undefined && !(req.method === 'GET' && noBodyYet(job.fill))) {
      // declined (undefined), node:http joins and attaches on its own
      return this.#fastJoin(req, path, job, head, startMs, false)
    }
    return new FastWaiter(job, req, path, startMs, this.#enqueueWaiter)
  }

  /**
   * A fast-path joiner starts waiting: attached to the fill, in its job's list until the fill
   * moves on (#serveWaiters) or its lock timeout runs out (#expireWaiters). A herd's waiters
   * share one watch on the fill and one timer.
   */
  readonly #enqueueWaiter = (waiter: FastWaiter): void => {
    const { job } = waiter
    job.fill.attach()
    waiter.deadline = performance.now() + this.#lockTimeoutMs(job)
    job.waiters.push(waiter)
    this.#watchWaiters(job)
    if (job.waitersTimer === undefined) this.#armWaitersTimer(job, waiter.deadline)
  }

  /** Has #serveWaiters run at the fill's next step: its head (or failure) while it has none, else its next bytes, end or failure. */
  #watchWaiters (job: FillJob): void {
    if (job.waitersWatched) return
    job.waitersWatched = true
    const { fill } = job
    const serve = (): void => this.#serveWaiters(job)
    if (fill.head === undefined) fill.waitHead().then(serve, serve)
    else fill.onProgress(serve)
  }

  /**
   * Answers every waiting joiner of `job` that can be answered now, in one loop: a HEAD once
   * the head is in, a GET once body bytes are (its head and first bytes then leave in one
   * write, where answering at the head would cost a write for the head alone and another for
   * the bytes a moment later). A fill that failed, or whose head the fast path does not
   * answer, hands its waiters to node:http, which joins the same fill (and cuts a failed
   * one's response off as for its own joiners).
   */
  #serveWaiters (job: FillJob): void {
    job.waitersWatched = false
    const waiters = job.waiters
    if (waiters.length === 0) return
    job.waiters = []
    const { fill } = job
    const head = fill.head
    const waitForBytes = head !== undefined && noBodyYet(fill) && fastJoinable(job, head) !== undefined
    for (const waiter of waiters) {
      const { req, path, reply, startMs } = waiter
      if (head === undefined) {
        this.#resume(req, path, reply!, job, false, startMs)
      } else if (waitForBytes && req.method === 'GET') {
        job.waiters.push(waiter)
      } else {
        const join = this.#fastJoin(req, path, job, head, startMs, true)
        if (join !== undefined) reply!.answer(join)
        else this.#resume(req, path, reply!, job, false, startMs)
      }
    }
    // answering may have queued new waiters (pipelined requests): they are in the list too
    if (job.waiters.length > 0) this.#watchWaiters(job)
    else this.#disarmWaitersTimer(job)
  }

  #armWaitersTimer (job: FillJob, deadline: number): void {
    job.waitersTimer = setTimeout(this.#expireWaiters, Math.max(0, deadline - performance.now()), job)
    job.waitersTimer.unref()
  }

  #disarmWaitersTimer (job: FillJob): void {
    if (job.waitersTimer === undefined) return
    clearTimeout(job.waitersTimer)
    job.waitersTimer = undefined
  }

  /**
   * The lock timeout of `job`'s earliest waiter ran out: every waiter whose deadline has passed
   * fetches alone (the head never came, or the upstream sent a head and stalled: a stuck
   * writer); the timer is set again for the next one.
   */
  readonly #expireWaiters = (job: FillJob): void => {
    job.waitersTimer = undefined
    // a timer fires on the event loop's millisecond clock: within a millisecond counts as due
    const now = performance.now() + 1
    const waiters = job.waiters
    job.waiters = []
    let expired: FastWaiter[] | undefined
    let next = Number.POSITIVE_INFINITY
    for (const waiter of waiters) {
      if (waiter.deadline <= now) {
        (expired ??= []).push(waiter)
      } else {
        job.waiters.push(waiter)
        next = Math.min(next, waiter.deadline)
      }
    }
    if (job.waiters.length > 0) this.#armWaitersTimer(job, next)
    for (const waiter of expired ?? []) this.#resume(waiter.req, waiter.path, waiter.reply!, job, true, waiter.startMs)
  }

  /**
   * The fast-path answer of a joiner of `job` whose head is `head`, or undefined when node:http
   * must answer. The answer is attached to the fill (`attached`: it was, while it waited).
   */
  #fastJoin (req: FastRequest, path: string, job: FillJob, head: FillHead, startMs: number, attached: boolean): FastJoin | undefined {
    const total = fastJoinable(job, head)
    if (total === undefined) return undefined
    job.joinHead ??= new JoinHead(this.#responder, head, { fwd: job.fwd, fwdStatus: head.status, ...(head.storable ? { stored: true } : {}), collapsed: true }, total)
    const rendered = job.joinHead.get(this.#now())
    if (rendered === undefined) return undefined
    this.#o.metrics.collapsed.inc(JOINED)
    this.#policy.onServed(job.primaryKey, head.status)
    if (!attached) job.fill.attach()
    return new FastJoin(rendered.whole, rendered.ownDate, job, head, total, this.#accountFast, ++this.#nextId, startMs, req, path)
  }

  /**
   * A fast-path join goes to node:http after all, which joins the same fill (see `handle`),
   * attached as it is here. node:http parses the bytes handed over as they are fed to it, so its
   * rejoin has taken the note by the time decline returns; a note left means no rejoin (the
   * client left, the token door or a loop check answered, memory had the object by then):
   * this reader reads nothing from the fill.
   */
  #resume (req: FastRequest, path: string, reply: FastReply, job: FillJob, lockExpired: boolean, startMs: number): void {
    const connection = req.connection
    if (connection !== undefined) this.#resumed.set(connection, { job, lockExpired })
    const handed = reply.decline()
    if (connection === undefined || this.#resumed.delete(connection)) job.fill.detach()
    if (handed) return
    // The client left while it waited: node:http never sees this request, so it is accounted
    // here as node:http accounts a joiner whose client leaves (at 'close': collapsed, no bytes,
    // status 200 as res.statusCode defaults, not completed: a client abort).
    const gone: Accounted = { id: ++this.#nextId, startMs, path, key: job.key, phase: 'collapsed', source: 'fill', bytes: 0, upstream: undefined, noCacheReason: undefined, error: undefined, peer: req.remoteAddress }
    this.#account(gone, req.method, 200, false, req.headers['x-forwarded-for'])
  }

  #begin (req: IncomingMessage, res: ServerResponse): Exchange {
    const url = req.url ?? '/'
    const path = url.startsWith('/') ? url : absoluteFormPath(url)
    const ex: Exchange = {
      id: ++this.#nextId,
      req,
      res,
      startMs: this.#now(),
      path,
      key: undefined,
      phase: 'miss',
      source: 'none',
      status: 0,
      bytes: 0,
      upstream: undefined,
      noCacheReason: undefined,
      error: undefined,
      peer: req.socket.remoteAddress,
      cacheName: this.#o.cacheName,
      via: this.#o.forwarding.via,
      maxRanges: this.#o.maxRanges,
      transform: this.#o.bodyTransform?.(req, path),
      now: this.#now,
    }
    res.once('close', () => this.#end(ex))
    return ex
  }

  async #lookupDisk (ex: Exchange, primary: string, knownVary: boolean, directives: RequestDirectives): Promise<void> {
    const store = this.#o.store
    let found: StoredObject | undefined
    let vary = knownVary
    try {
      found = await store.getFromDisk(ex.key!)
      const names = knownVary ? undefined : markerNames(found)
      if (names !== undefined) {
        vary = true
        ex.key = variantKey(primary, names, ex.req.headers)
        found = store.getFromMemory(ex.key) ?? await store.getFromDisk(ex.key)
      }
    } catch (err) {
      this.#o.logger.warn({ err, cacheKey: ex.key }, 'disk lookup failed')
    }
    if (ex.res.destroyed) return
    if (found !== undefined) {
      this.#useStored(ex, primary, found, 'disk', directives)
      return
    }
    this.#o.metrics.lookups.inc({ result: 'miss', tier: 'none' })
    if (directives.onlyIfCached) {
      this.#onlyIfCached(ex)
      return
    }
    const inFlight = this.#fills.get(ex.key!)
    if (inFlight !== undefined) {
      await this.#join(ex, inFlight, false)
      return
    }
    if (this.#rangeBeyondGuard(ex, 0)) {
      this.#forward(ex, 'miss', { fwd: vary ? 'vary-miss' : 'uri-miss', detail: 'range-offset' })
      return
    }
    await this.#join(ex, this.#startFill(ex, primary, undefined, vary ? 'vary-miss' : 'uri-miss'), true)
  }

  /** A stored response was found: decide how it may be used (RFC 9111 §4). */
  #useStored (ex: Exchange, primary: string, object: StoredObject, tier: 'memory' | 'disk', directives: RequestDirectives): void {
    const { metrics } = this.#o
    const meta = object.meta
    // §3.5: a response to a request with Authorization is shared only when it says so.
    if (ex.req.headers.authorization !== undefined && !storedDirectives(meta).sharedWithAuthorization) {
      metrics.lookups.inc({ result: 'miss', tier: 'none' })
      this.#forward(ex, 'bypass', { fwd: 'bypass', detail: 'authorization' })
      return
    }
    const now = this.#now()
    const decision = decideReuse(meta, directives, now)
    if (decision.kind === 'fresh' || decision.kind === 'stale-acceptable') {
      metrics.lookups.inc({ result: 'hit', tier })
      if (decision.kind === 'stale-acceptable') metrics.staleServed.inc({ reason: 'max-stale' })
      ex.phase = 'hit'
      ex.source = tier
      deliverObject(ex, object, { hit: true, ttl: Math.floor(ttlSeconds(meta, now)) })
      if (decision.kind === 'fresh' && this.#policy.refreshAhead(meta, now)) this.#refreshInBackground(ex.key!, primary, object, ex.req.headers, this.#o.forwarding.upstreamHeaders(ex.req))
      this.#policy.onServed(primary, ex.status)
      return
    }
    if (decision.kind === 'stale-while-revalidate') {
      metrics.lookups.inc({ result: 'hit', tier })
      metrics.staleServed.inc({ reason: 'stale-while-revalidate' })
      ex.phase = 'stale'
      ex.source = tier
      this.#refreshInBackground(ex.key!, primary, object, ex.req.headers, this.#o.forwarding.upstreamHeaders(ex.req))
      deliverObject(ex, object, { fwd: 'stale', ttl: Math.floor(ttlSeconds(meta, now)), detail: 'stale-while-revalidate' })
      this.#policy.onServed(primary, ex.status)
      return
    }
    metrics.lookups.inc({ result: 'miss', tier: 'none' })
    if (directives.onlyIfCached) {
      this.#onlyIfCached(ex)
      return
    }
    const inFlight = this.#fills.get(ex.key!)
    if (inFlight !== undefined) {
      void this.#join(ex, inFlight, false)
      return
    }
    if (ex.req.method === 'HEAD' && hasValidator(meta)) {
      this.#headRevalidate(ex, object, decision.reason)
      return
    }
    void this.#join(ex, this.#startFill(ex, primary, object, decision.reason), true)
  }

  #onlyIfCached (ex: Exchange): void {
    // §5.2.1.7: nothing usable without going forward.
    ex.phase = 'error'
    deliverStatus(ex, 504, 'Gateway Timeout: not in cache (only-if-cached)\n', { detail: 'only-if-cached' })
  }

  /** One refresh per key, with no client waiting on it (RFC 5861 stale-while-revalidate). */
  #refreshInBackground (key: string, primary: string, stale: StoredObject, reqHeaders: RequestHeaders, forwarded: Record<string, string>): void {
    if (this.#fills.has(key)) return
    const job = this.#fillFor(key, primary, reqHeaders, forwarded, stale, 'stale')
    job.fill.waitHead().catch(() => {})
  }

  #startFill (ex: Exchange, primary: string, stale: StoredObject | undefined, fwd: FillJob['fwd']): FillJob {
    return this.#fillFor(ex.key!, primary, ex.req.headers, this.#o.forwarding.upstreamHeaders(ex.req), stale, fwd)
  }

  /**
   * Starts a fill for `key`: `reqHeaders` are the headers of the request it is for (none
   * for warm-ups), `forwarded` the Via, CDN-Loop and X-Forwarded-For to send upstream.
   */
  #fillFor (key: string, primary: string, reqHeaders: RequestHeaders, forwarded: Record<string, string>, stale: StoredObject | undefined, fwd: FillJob['fwd']): FillJob {
    const job: FillJob = {
      fill: new SharedFill(key, this.#now()),
      primaryKey: primary,
      key,
      reqHeaders,
      forwarded,
      stale,
      fwd,
      varyNames: [],
      purged: false,
      setCookie: undefined,
      stored: false,
      needsPolicyLifetime: false,
      joinHead: undefined,
      lockTimeoutMs: undefined,
      waiters: [],
      waitersWatched: false,
      waitersTimer: undefined,
    }
    this.#fills.set(key, job)
    void this.#runFill(job)
    return job
  }

  /**
   * Makes sure `url` (path and query) is cached, with no client waiting: fresh in
   * storage already, or filled now (joining a fill under way). For prefetch and prefill.
   * Request headers are empty, so a URL that varies is warmed for the default variant.
   */
  async warm (url: string): Promise<WarmResult> {
    const primary = makeCacheKey(url, { stripQueryParams: this.#strip })
    const store = this.#o.store
    let key = primary
    let found = store.getFromMemory(primary) ?? await store.getFromDisk(primary)
    const names = markerNames(found)
    if (names !== undefined) {
      key = variantKey(primary, names, {})
      found = store.getFromMemory(key) ?? await store.getFromDisk(key)
    }
    if (found !== undefined && isFresh(found.meta, this.#now())) return { result: 'cached', status: found.meta.status, bytes: 0 }
    const inFlight = this.#fills.get(key)
    const job = inFlight ?? this.#fillFor(key, primary, {}, this.#o.forwarding.ownHeaders(), found, found === undefined ? 'uri-miss' : 'stale')
    // no attach(): this waits for the fill but reads none of it, so it is no herd member
    await job.fill.settled()
    const { fill } = job
    if (fill.state === 'failed') return { result: 'failed', bytes: fill.length }
    const head = fill.head!
    if (head.stored !== undefined) return { result: head.stored.kind === 'stale-if-error' ? 'failed' : 'cached', status: head.status, bytes: 0 }
    const result = !job.stored ? 'not-stored' : inFlight === undefined ? 'filled' : 'joined'
    return { result, status: head.status, bytes: fill.length }
  }

  /**
   * Is `url` (path and query) fresh in the memory tier now? What `warm` would answer
   * `cached` for, without a promise (prefetch asks it for every segment ahead of a hit).
   * Refreshes the object's recency as `warm` does; a URL that varies answers false.
   */
  isFreshInMemory (url: string): boolean {
    let key: string
    try {
      key = makeCacheKey(url, { stripQueryParams: this.#strip })
    } catch {
      return false
    }
    const found = this.#o.store.getFromMemory(key)
    return found !== undefined && markerNames(found) === undefined && isFresh(found.meta, this.#now())
  }

  /** Attaches a request to a fill and answers it from the fill. */
  async #join (ex: Exchange, job: FillJob, initiator: boolean, resumed?: ResumedJoin): Promise<void> {
    const { fill } = job
    if (!initiator && fill.state !== 'complete' && this.#rangeBeyondGuard(ex, fill.length)) {
      // The fill is far from this range's first byte: ask upstream for the range alone.
      // attached on the fast path already (#resume), and reads nothing from this fill
      if (resumed !== undefined) fill.detach()
      this.#o.metrics.collapsed.inc({ outcome: 'range-offset' })
      this.#forward(ex, 'miss', { fwd: job.fwd, detail: 'range-offset' })
      return
    }
    // a request resumed from the fast path was attached there (detached by its answer or #lockTimedOut)
    if (resumed === undefined) fill.attach()
    ex.phase = initiator ? 'miss' : 'collapsed'
    ex.source = 'fill'
    if (resumed?.lockExpired === true) {
      this.#lockTimedOut(ex, job)
      return
    }
    const lockTimeoutMs = this.#lockTimeoutMs(job)
    const deadline = performance.now() + lockTimeoutMs
    let head: FillHead
    try {
      head = await fill.waitHead(initiator ? undefined : lockTimeoutMs)
    } catch (err) {
      if (isCdnError(err, 'CDN_ERR_LOCK_TIMEOUT')) {
        this.#lockTimedOut(ex, job)
        return
      }
      // the fill failed: nothing to read
      fill.detach()
      deliverError(ex, isCdnError(err) ? err : toUpstreamError(err, 'upstream'), { fwd: job.fwd, ...(initiator ? {} : { collapsed: true }) })
      return
    }
    if (!initiator && !this.#mayShare(ex, job, head)) {
      // attached, but reads nothing from it: a released fill need not keep bytes for it
      fill.detach()
      this.#o.metrics.collapsed.inc({ outcome: 'not-shareable' })
      this.#forward(ex, 'miss', { fwd: job.fwd, detail: 'not-shareable' })
      return
    }
    if (!initiator && ex.req.method === 'GET' && !(await this.#bodyOrFailure(fill, deadline))) {
      // The upstream sent a head and stalled (a stuck writer): nothing has gone to this client yet.
      this.#lockTimedOut(ex, job)
      return
    }
    if (!initiator) this.#o.metrics.collapsed.inc(JOINED)
    ex.upstream = head.upstream
    ex.noCacheReason = head.noStoreReason
    const collapsed = initiator ? {} : { collapsed: true }
    if (head.stored !== undefined) {
      // answered from storage: nothing from the fill's body
      fill.detach()
      const { object, kind } = head.stored
      ex.phase = kind === 'revalidated' ? 'revalidated' : 'stale'
      ex.source = object.body === null ? 'disk' : 'memory'
      const ttl = Math.floor(ttlSeconds(object.meta, this.#now()))
      const status: StatusFields = kind === 'revalidated'
        ? { fwd: job.fwd === 'request' ? 'request' : 'stale', fwdStatus: 304, stored: true, ttl, ...collapsed }
        : kind === 'kept'
          ? { fwd: job.fwd, fwdStatus: head.status, ttl, detail: head.noStoreReason ?? 'kept-stored', ...collapsed }
          : { fwd: 'stale', ...(head.status === 0 ? {} : { fwdStatus: head.status }), ttl, detail: 'stale-if-error', ...collapsed }
      if (kind === 'kept') ex.phase = 'hit'
      deliverObject(ex, object, status)
      this.#policy.onServed(job.primaryKey, ex.status)
      return
    }
    deliverFromFill(ex, fill, head, {
      fwd: job.fwd,
      fwdStatus: head.status,
      ...(head.storable ? { stored: true } : {}),
      ...collapsed,
    }, initiator ? job.setCookie : undefined)
    this.#policy.onServed(job.primaryKey, head.status)
  }

  /**
   * Waits until the fill has a body byte, is complete or has failed (the delivery that follows
   * handles each), up to `deadline` (performance.now()); false when that ran out first.
   */
  async #bodyOrFailure (fill: SharedFill, deadline: number): Promise<boolean> {
    if (!noBodyYet(fill)) return true
    try {
      await fill.waitBody(Math.max(0, deadline - performance.now()))
      return true
    } catch (err) {
      return !isCdnError(err, 'CDN_ERR_LOCK_TIMEOUT')
    }
  }

  /** How long a joiner of `job` waits for its head (the content policy's, e.g. LL-HLS blocking reloads, else the node's). */
  #lockTimeoutMs (job: FillJob): number {
    job.lockTimeoutMs ??= this.#policy.lockTimeoutMs?.(job.primaryKey) ?? this.#o.lockTimeoutMs
    return job.lockTimeoutMs
  }

  /** A joiner (attached) gave up waiting for the fill's head: it fetches alone, reading nothing from the fill. */
  #lockTimedOut (ex: Exchange, job: FillJob): void {
    job.fill.detach()
    this.#o.metrics.collapsed.inc({ outcome: 'lock-timeout' })
    this.#o.logger.warn({ reqId: ex.id, cacheKey: job.fill.key }, 'gave up waiting for a shared fill; fetching alone')
    this.#forward(ex, 'miss', { fwd: job.fwd, detail: 'lock-timeout' })
  }

  /**
   * Does this GET ask for a single range starting more than the guard beyond `haveBytes`?
   * (nginx's proxy_cache_max_range_offset, Squid's range_offset_limit.)
   */
  #rangeBeyondGuard (ex: Exchange, haveBytes: number): boolean {
    const guard = this.#o.rangeMissOffsetBytes
    const range = ex.req.headers.range
    if (guard === 0 || range === undefined || ex.req.method !== 'GET') return false
    const specs = parseRangeHeader(range)
    if (specs === null || specs.length !== 1) return false
    const spec = specs[0]!
    return 'first' in spec && spec.first - haveBytes > guard
  }

  /** May a collapsed request be answered with another request's response? */
  #mayShare (ex: Exchange, job: FillJob, head: FillHead): boolean {
    if (!head.shareable) return false
    if (job.varyNames.length === 0) return true
    // The response varies: only requests that would select the same variant may share it.
    return variantKey('', job.varyNames, ex.req.headers) === variantKey('', job.varyNames, job.reqHeaders)
  }

  /** Fetches for a fill and feeds it; admits and stores the body if it completes intact. */
  async #runFill (job: FillJob): Promise<void> {
    const { metrics } = this.#o
    const { fill, stale } = job
    const conditional = stale === undefined ? {} : conditionalHeaders(stale.meta)
    const requestTimeMs = this.#now()
    let res: UpstreamResponse
    try {
      res = await this.#o.upstream.request({
        method: 'GET',
        // The URL's normalised key: what we store must be what we asked for, or an origin
        // that resolves `/a/../b` differently could poison the cache.
        path: job.primaryKey,
        key: job.primaryKey,
        headers: { ...forwardRequestHeaders(job.reqHeaders, { stripConditionals: true, stripRange: true, drop: NOT_FORWARDED }), ...job.forwarded, ...conditional },
      })
    } catch (err) {
      const error = toUpstreamError(err, this.#o.upstream.name)
      this.#countUpstreamError(error)
      if (stale !== undefined) metrics.revalidations.inc({ outcome: 'failed' })
      if (!this.#settleStaleOnError(job, 0, error)) this.#fillFailed(job, error)
      return
    }
    const responseTimeMs = this.#now()
    metrics.upstreamLatency.observe({ upstream: res.upstream }, (responseTimeMs - requestTimeMs) / 1000)
    metrics.upstreamResponses.inc({ upstream: res.upstream, status: res.status })
    const headers = toStoredHeaders(res.headers)
    if (stale !== undefined && res.status === 304 && Object.keys(conditional).length > 0) {
      res.body.resume()
      await this.#settleNotModified(job, stale, headers, requestTimeMs, responseTimeMs, res.upstream)
      return
    }
    if (res.status === 304) {
      // We sent no condition: a 304 has no content for anyone (RFC 9110 §15.4.5), and passed on it would show none.
      res.body.resume()
      const error = new CdnError('CDN_ERR_UPSTREAM_PROTOCOL', `Upstream ${res.upstream} answered 304 to an unconditional request for ${job.key}`)
      this.#countUpstreamError(error)
      if (stale !== undefined) metrics.revalidations.inc({ outcome: 'failed' })
      if (!this.#settleStaleOnError(job, 304, error)) this.#fillFailed(job, error)
      return
    }
    if (stale !== undefined) metrics.revalidations.inc({ outcome: res.status >= 500 ? 'failed' : 'modified' })
    if (res.status >= 500 && this.#settleStaleOnError(job, res.status, undefined)) {
      res.body.resume()
      return
    }
    this.#streamResponse(job, res, headers, requestTimeMs, responseTimeMs)
  }

  /** A 304 for our conditional request: freshen the stored response and answer from it (RFC 9111 §4.3.4). */
  async #settleNotModified (job: FillJob, stale: StoredObject, headers: StoredHeaders, requestTimeMs: number, responseTimeMs: number, upstream: string): Promise<void> {
    const { metrics, logger } = this.#o
    if (!validatorsMatch(stale.meta, headers)) {
      metrics.revalidations.inc({ outcome: 'failed' })
      const error = new CdnError('CDN_ERR_UPSTREAM_PROTOCOL', `304 for ${job.key} names another representation than the one stored`)
      logger.warn({ cacheKey: job.key, upstream }, error.message)
      void this.#o.store.delete(stale.meta.key)
      this.#fillFailed(job, error)
      return
    }
    metrics.revalidations.inc({ outcome: 'not-modified' })
    const meta = freshenedMeta(stale.meta, headers, requestTimeMs, responseTimeMs)
    let object: StoredObject = { ...stale, meta } as StoredObject
    if (!job.purged) {
      try {
        object = await this.#o.store.freshen(stale, meta)
      } catch (err) {
        logger.warn({ err, cacheKey: job.key }, 'could not store the revalidated headers')
      }
    }
    job.fill.settleStored({ ...headOf(200, meta.headers, requestTimeMs, responseTimeMs, upstream), stored: { object, kind: 'revalidated' } })
    this.#dropFill(job)
  }

  /** Upstream failed: answer from the stale entry when it allows (RFC 5861 §4, or the grace). */
  #settleStaleOnError (job: FillJob, status: number, error: CdnError | undefined): boolean {
    const { stale } = job
    if (stale === undefined || !canServeStaleOnError(stale.meta, this.#now(), this.#o.staleIfErrorSeconds)) return false
    this.#o.metrics.staleServed.inc({ reason: 'stale-if-error' })
    this.#o.metrics.fills.inc({ outcome: 'failed' })
    this.#o.logger.warn({ cacheKey: job.key, status, errCode: error?.code }, 'upstream failed; serving stale')
    const now = this.#now()
    job.fill.settleStored({ ...headOf(status, stale.meta.headers, now, now, this.#o.upstream.name), stored: { object: stale, kind: 'stale-if-error' } })
    this.#dropFill(job)
    return true
  }

  /** A new response: share it with the fill's readers as it arrives, and store it if admitted. */
  #streamResponse (job: FillJob, res: UpstreamResponse, received: StoredHeaders, requestTimeMs: number, responseTimeMs: number): void {
    const { fill } = job
    let headers = received
    const declared = parseContentLength(res.headers['content-length'])
    const verdict = storability({
      method: 'GET', status: res.status, reqHeaders: job.reqHeaders, resHeaders: headers, shared: true, allowSetCookie: this.#o.allowSetCookie,
    })
    let noStore: string | undefined = verdict.storable ? undefined : verdict.reason
    if (noStore === 'no-freshness' && (res.status === 404 || res.status === 410) && this.#o.negativeTtlSeconds > 0) noStore = undefined
    // No freshness information at all (bare packagers): the content policy may still give a lifetime.
    if (noStore === 'no-freshness' && res.status === 200 && this.#policy !== NO_CONTENT_POLICY) {
      noStore = undefined
      job.needsPolicyLifetime = true
    }
    // A 5xx never replaces what we hold (RFC 9111 §4.3.3 lets a cache keep using it).
    if (noStore === undefined && res.status >= 500 && job.stale !== undefined) noStore = 'stale-5xx'
    if (noStore === undefined && declared !== undefined && declared > this.#o.maxObjectBytes) noStore = 'too-large'
    // Admission needs framing that shows the end (RFC 9112 §6.3): a body delimited by the close
    // of the connection ends the same way whether it is whole or the origin died mid-way. Its
    // readers get it close-delimited too (deliverFromFill), so no tier after this one stores it.
    const unframed = isCloseDelimited(res.status, res.headers)
    if (noStore === undefined && unframed) noStore = 'unframed'
    const names = varyNames(headers.vary)
    job.varyNames = names[0] === '*' ? [] : names
    if (headers['set-cookie'] !== undefined && noStore === undefined) {
      // Allowed only with allowSetCookie: the cookie goes to the initiator, never into storage.
      job.setCookie = headers['set-cookie']
      const { 'set-cookie': _cookie, ...rest } = headers
      headers = rest
    }
    const shareable = names[0] !== '*' && (noStore === undefined || SHAREABLE_REASONS.has(noStore))
    const head: FillHead = {
      ...headOf(res.status, headers, requestTimeMs, responseTimeMs, res.upstream),
      declaredBytes: declared,
      shareable,
      storable: noStore === undefined,
      ...(noStore === undefined ? {} : { noStoreReason: noStore }),
      ...(unframed ? { unframed: true } : {}),
    }
    const policyResponse: PolicyResponse = { url: job.primaryKey, status: res.status, headers }
    // A buffered response (e.g. a live playlist) is judged whole before any reader sees it.
    let buffered = noStore === undefined && this.#policy.bufferWhole(policyResponse)
    const chunks: Buffer[] = []
    let bufferedBytes = 0
    if (!buffered) {
      fill.setHead(head)
      // A response nobody else may see must not collect joiners; later requests start their own fill.
      if (!shareable) this.#dropFill(job)
      // Larger than the node stores, whatever the reason it is not stored (noStore keeps the first one).
      if (declared !== undefined && declared > this.#o.maxObjectBytes) this.#releaseFill(job)
    }
    res.body.on('data', (chunk: Buffer) => {
      if (buffered) {
        chunks.push(chunk)
        bufferedBytes += chunk.length
        if (bufferedBytes <= this.#o.maxObjectBytes) return
        // Too large to store: nothing is left to judge whole, so it streams from here on (its
        // readers are told it is not stored), and is released like any other.
        buffered = false
        noStore = 'too-large'
        fill.setHead({ ...head, storable: false, noStoreReason: noStore })
        for (const held of chunks) fill.append(held)
        chunks.length = 0
      } else {
        fill.append(chunk)
      }
      // Released once, whatever else keeps it out of storage (unframed, no-store, a status...):
      // joiners and memory are bounded for every body larger than the node stores.
      if (!fill.released && fill.length > this.#o.maxObjectBytes) {
        noStore ??= 'too-large'
        this.#releaseFill(job)
      }
      // a released fill holds its readers' lag: past its window, the upstream waits for them
      if (fill.full) {
        res.body.pause()
        fill.onRoom(() => res.body.resume())
      }
    })
    // Set once the body ended or failed: a body that only closes was cut off (a chain or pool
    // destroys the bodies still streaming at close), and a fill left waiting would never settle.
    let over = false
    res.body.once('close', () => {
      if (over) return
      const error = new CdnError('CDN_ERR_UPSTREAM_TRUNCATED', `Body of ${fill.key} was cut off after ${buffered ? bufferedBytes : fill.length} bytes`)
      this.#countUpstreamError(error)
      this.#fillFailed(job, error)
    })
    res.body.once('error', (err) => {
      over = true
      const error = toUpstreamError(err, res.upstream)
      this.#countUpstreamError(error)
      this.#o.logger.warn({ cacheKey: fill.key, upstream: res.upstream, err: error, receivedBytes: fill.length, declaredBytes: declared }, 'upstream body failed; readers aborted, nothing stored')
      this.#fillFailed(job, error)
    })
    res.body.once('end', () => {
      over = true
      const length = buffered ? bufferedBytes : fill.length
      if (declared !== undefined && length !== declared) {
        const error = new CdnError('CDN_ERR_UPSTREAM_TRUNCATED', `Body of ${fill.key} was ${length} bytes, Content-Length said ${declared}`)
        this.#countUpstreamError(error)
        this.#fillFailed(job, error)
        return
      }
      if (!buffered) {
        fill.complete()
        this.#admit(job, noStore)
        return
      }
      const body = Buffer.concat(chunks, bufferedBytes)
      const decision = noStore === undefined ? this.#policyDecision(job, policyResponse, head, body) : undefined
      if (decision?.action === 'keep-stored' && job.stale !== undefined) {
        this.#keepStored(job, head, decision.reason)
        return
      }
      // Judged before any reader sees it, so its Cache-Status can say whether it is kept.
      const refused = decision === undefined ? undefined : policyRefusal(decision, job.needsPolicyLifetime)
      fill.setHead(refused === undefined ? head : { ...head, storable: false, noStoreReason: refused })
      fill.append(body)
      fill.complete()
      this.#admit(job, noStore, decision)
    })
  }

  /** What the content policy says about a complete response, given its computed lifetime. */
  #policyDecision (job: FillJob, res: PolicyResponse, head: FillHead, body: Buffer): AdmitDecision {
    return this.#policy.admit(res, body, this.#freshness(head).freshnessLifetimeSeconds, job.stale)
  }

  /** The policy refused a new response in favour of the stored one: readers get the stored one. */
  #keepStored (job: FillJob, head: FillHead, reason: string): void {
    const { metrics, logger } = this.#o
    metrics.fills.inc({ outcome: 'not-stored' })
    metrics.admissionRejections.inc({ reason })
    logger.warn({ cacheKey: job.key, noCacheReason: reason, status: head.status }, 'new response refused; serving the stored one')
    job.fill.settleStored({ ...head, storable: false, noStoreReason: reason, stored: { object: job.stale!, kind: 'kept' } })
    this.#dropFill(job)
  }

  /** The admission gate: only complete, cacheable, intact bodies the content policy accepts are stored. */
  #admit (job: FillJob, noStore: string | undefined, decided?: AdmitDecision): void {
    const { fill } = job
    const head = fill.head!
    const { metrics, logger } = this.#o
    const refused = (reason: string): void => {
      metrics.fills.inc({ outcome: 'not-stored' })
      metrics.admissionRejections.inc({ reason })
      const log = reason === 'integrity' ? logger.warn.bind(logger) : logger.debug.bind(logger)
      log({ cacheKey: fill.key, noCacheReason: reason, status: head.status, bytes: fill.length }, 'response not stored')
      this.#dropFill(job)
    }
    const early = noStore ?? (job.purged ? 'purged' : undefined)
    // Decided before the body is assembled: a released fill no longer has it all.
    if (early !== undefined) return refused(early)
    const body = fill.body()
    // Only a 2xx body is the object itself; an error page under a .ts name is not a damaged segment.
    if (this.#o.checkIntegrity && head.status >= 200 && head.status < 300) {
      const check = integrityCheckFor(job.primaryKey, headerString(head.headers['content-type']))
      if (check !== undefined && !check(body)) return refused('integrity')
    }
    const decision = decided ?? this.#policyDecision(job, { url: job.primaryKey, status: head.status, headers: head.headers }, head, body)
    const policyReason = policyRefusal(decision, job.needsPolicyLifetime)
    if (policyReason !== undefined) return refused(policyReason)
    const key = job.varyNames.length > 0 ? variantKey(job.primaryKey, job.varyNames, job.reqHeaders) : job.primaryKey
    const freshness = this.#freshness(head)
    const lifetime = decision.action === 'store' ? decision.lifetimeSeconds : undefined
    const meta: ObjectMeta = {
      key,
      status: head.status,
      headers: head.headers,
      bodyBytes: body.length,
      ...freshness,
      ...(lifetime === undefined ? {} : { freshnessLifetimeSeconds: lifetime }),
    }
    const object: MemoryObject = { meta, body }
    job.stored = true
    metrics.fills.inc({ outcome: 'stored' })
    this.#storeVariantIndex(job, key)
    const store = this.#o.store
    const written = store.put(object)
    if (store.memory.get(key) === object) {
      this.#dropFill(job)
      return
    }
    // Too big for memory: keep answering from the fill until the disk copy exists.
    void written.finally(() => this.#dropFill(job))
  }

  /** Freshness of a new response, with negative caching for 404/410 (bounded by the ceiling). */
  #freshness (head: FillHead): Pick<ObjectMeta, 'requestTimeMs' | 'responseTimeMs' | 'initialAgeSeconds' | 'freshnessLifetimeSeconds'> {
    const f = computeFreshness({ status: head.status, headers: head.headers, requestTimeMs: head.requestTimeMs, responseTimeMs: head.responseTimeMs })
    let lifetime = f.freshnessLifetimeSeconds
    if (head.status === 404 || head.status === 410) {
      // the directives freshness read (CDN-Cache-Control when valid, which also hides Expires: RFC 9213 §2.2)
      const { cc, targeted } = responseDirectives(head.headers)
      const explicit = cc.maxAge !== undefined || cc.sMaxage !== undefined || (!targeted && head.headers.expires !== undefined)
      if (!explicit) lifetime = this.#o.negativeTtlSeconds
      lifetime = Math.min(lifetime, this.#o.negativeTtlMaxSeconds)
    }
    return { requestTimeMs: head.requestTimeMs, responseTimeMs: head.responseTimeMs, initialAgeSeconds: f.initialAgeSeconds, freshnessLifetimeSeconds: lifetime }
  }

  /**
   * Keeps the URL's Vary marker in step with the newest response (RFC 9111 §4.1): a
   * response with another Vary (or none) replaces the old variants.
   */
  #storeVariantIndex (job: FillJob, storedKey: string): void {
    const store = this.#o.store
    const previous = markerNames(store.memory.peek(job.primaryKey))
    if (job.varyNames.length === 0) {
      if (previous !== undefined) this.#deleteVariants(job.primaryKey, storedKey)
      return
    }
    if (previous !== undefined && sameNames(previous, job.varyNames)) return
    if (previous !== undefined || job.fwd === 'uri-miss') this.#deleteVariants(job.primaryKey, storedKey)
    void store.put(makeVaryMarker(job.primaryKey, job.varyNames, this.#now()))
  }

  /** Deletes the stored variants of a URL, except `keep` (the one being stored now). */
  #deleteVariants (primary: string, keep: string): void {
    const prefix = primary + VARIANT_SEPARATOR
    for (const key of this.#storedKeys((k) => k.startsWith(prefix) && k !== keep)) void this.#o.store.delete(key)
  }

  #fillFailed (job: FillJob, error: CdnError): void {
    this.#o.metrics.fills.inc({ outcome: 'failed' })
    job.fill.fail(error)
    this.#dropFill(job)
  }

  #dropFill (job: FillJob): void {
    if (this.#fills.get(job.key) === job) this.#fills.delete(job.key)
  }

  /**
   * A body larger than the node stores: nobody new joins (a later request fetches on its
   * own, as for any uncached object), and the fill stops keeping bytes its readers passed,
   * so memory holds the readers' lag, not the object.
   */
  #releaseFill (job: FillJob): void {
    this.#dropFill(job)
    job.fill.release()
  }

  #countUpstreamError (error: CdnError): void {
    this.#o.metrics.upstreamErrors.inc({ upstream: this.#o.upstream.name, code: error.code })
  }

  /**
   * HEAD on a stale entry: ask upstream with HEAD; when its validators match, the
   * stored GET is freshened (RFC 9111 §4.3.5) and answers from storage.
   */
  #headRevalidate (ex: Exchange, object: StoredObject, reason: 'stale' | 'request'): void {
    ex.phase = 'revalidated'
    // An upstream failure, or a 304 to our unconditional HEAD: the stored copy if stale-if-error allows, else the error.
    const failed = (error: CdnError): void => {
      this.#countUpstreamError(error)
      if (canServeStaleOnError(object.meta, this.#now(), this.#o.staleIfErrorSeconds)) {
        this.#o.metrics.staleServed.inc({ reason: 'stale-if-error' })
        deliverObject(ex, object, { fwd: 'stale', ttl: Math.floor(ttlSeconds(object.meta, this.#now())), detail: 'stale-if-error' })
        return
      }
      deliverError(ex, error, { fwd: reason })
    }
    const requestTimeMs = this.#now()
    this.#o.upstream.request({
      method: 'HEAD',
      path: stripQuery(ex.path, this.#strip),
      key: primaryOf(ex.key!),
      headers: { ...forwardRequestHeaders(ex.req.headers, { stripConditionals: true, stripRange: true, drop: NOT_FORWARDED }), ...this.#o.forwarding.upstreamHeaders(ex.req) },
    }).then(async (res) => {
      res.body.resume()
      ex.upstream = res.upstream
      this.#o.metrics.upstreamResponses.inc({ upstream: res.upstream, status: res.status })
      if (res.status === 304) {
        // We sent no condition (RFC 9110 §15.4.5): passed on, the client would get a 304 it never asked for.
        failed(new CdnError('CDN_ERR_UPSTREAM_PROTOCOL', `Upstream ${res.upstream} answered 304 to an unconditional HEAD for ${ex.key!}`))
        return
      }
      const headers = toStoredHeaders(res.headers)
      if (res.status !== 200 || !validatorsMatch(object.meta, headers)) {
        ex.phase = 'pass'
        deliverPass(ex, res, { fwd: reason, fwdStatus: res.status }, () => {})
        return
      }
      const meta = freshenedMeta(object.meta, headers, requestTimeMs, this.#now())
      const updated = await this.#o.store.freshen(object, meta).catch(() => ({ ...object, meta }) as StoredObject)
      deliverObject(ex, updated, { fwd: reason, fwdStatus: 200, stored: true, ttl: Math.floor(ttlSeconds(meta, this.#now())) })
    }, (err: unknown) => failed(toUpstreamError(err, this.#o.upstream.name)))
  }

  /** Sends the request upstream for this client alone and streams the answer back, uncached. */
  #forward (ex: Exchange, phase: CachePhase, status: StatusFields, onResponse?: (res: UpstreamResponse) => void): void {
    ex.phase = phase
    ex.source = 'pass'
    const method = ex.req.method ?? 'GET'
    const bodyless = method === 'GET' || method === 'HEAD'
    // Nobody else waits on this request: when its client leaves, drop it (queued or streaming).
    const abort = new AbortController()
    ex.res.once('close', () => { if (!ex.res.writableFinished) abort.abort() })
    this.#o.upstream.request({
      method,
      path: stripQuery(ex.path, this.#strip),
      ...(ex.key === undefined ? {} : { key: primaryOf(ex.key) }),
      headers: { ...forwardRequestHeaders(ex.req.headers, { drop: NOT_FORWARDED }), ...this.#o.forwarding.upstreamHeaders(ex.req) },
      body: bodyless ? null : ex.req,
      signal: abort.signal,
    }).then((res) => {
      this.#o.metrics.upstreamResponses.inc({ upstream: res.upstream, status: res.status })
      ex.upstream = res.upstream
      if (res.status === 304 && bodyless && !askedNotModified(ex.req)) {
        // A 304 answers a condition this client did not set (RFC 9110 §15.4.5): it would show nothing.
        res.body.resume()
        const error = new CdnError('CDN_ERR_UPSTREAM_PROTOCOL', `Upstream ${res.upstream} answered 304 to an unconditional request for ${ex.path}`)
        this.#countUpstreamError(error)
        deliverError(ex, error, { ...status, fwdStatus: 304 })
        return
      }
      onResponse?.(res)
      deliverPass(ex, res, { ...status, fwdStatus: res.status }, (err) => {
        const error = toUpstreamError(err, res.upstream)
        this.#countUpstreamError(error)
        ex.error = error
      })
    }, (err: unknown) => {
      const error = toUpstreamError(err, this.#o.upstream.name)
      this.#countUpstreamError(error)
      deliverError(ex, error, status)
    })
  }

  /**
   * RFC 9111 §4.4: a non-error response to an unsafe method invalidates the target URI
   * and the Location and Content-Location URIs on the same host.
   */
  #invalidateAfter (ex: Exchange, res: UpstreamResponse): void {
    if (res.status < 200 || res.status >= 400) return
    const targets = [ex.path]
    for (const name of ['location', 'content-location'] as const) {
      const value = headerString(res.headers[name])
      const path = value === undefined ? undefined : sameHostPath(value, headerString(ex.req.headers.host))
      if (path !== undefined) targets.push(path)
    }
    for (const target of targets) {
      let primary: string
      try {
        primary = makeCacheKey(target, { stripQueryParams: this.#strip })
      } catch {
        continue
      }
      const removed = this.#deleteMatching({ t: this.#now(), kind: 'url', value: primary })
      if (removed > 0) this.#o.metrics.purges.inc({ kind: 'invalidation' })
    }
  }

  /**
   * Purges one URL (all its variants) or every URL under a prefix, from memory, disk and
   * fills in flight. The purge is journaled first, so it survives a restart.
   */
  async purge (request: { readonly url: string } | { readonly prefix: string }): Promise<number> {
    const kind: PurgeKind = 'url' in request ? 'url' : 'prefix'
    const raw = 'url' in request ? request.url : request.prefix
    const value = kind === 'url' ? makeCacheKey(raw, { stripQueryParams: this.#strip }) : raw
    const rule = { t: this.#now(), kind, value }
    await this.#o.journal?.record(rule)
    const purged = this.#deleteMatching(rule)
    this.#o.metrics.purges.inc({ kind })
    this.#o.logger.info({ purge: kind, value, purged }, 'purged')
    return purged
  }

  /** Deletes every stored object a rule covers and keeps fills in flight from storing; returns how many objects went. */
  #deleteMatching (rule: { readonly t: number, readonly kind: PurgeKind, readonly value: string }): number {
    const matches = (key: string): boolean => ruleCovers(rule, key)
    for (const job of this.#fills.values()) if (matches(job.key)) job.purged = true
    let count = 0
    const store = this.#o.store
    for (const key of this.#purgeCandidates(rule, matches)) {
      const meta = store.memory.peek(key)?.meta ?? store.disk.peekMeta(key)
      if (meta !== undefined && meta.status !== 0) count++ // status 0: a Vary marker, not an object
      void store.delete(key)
    }
    return count
  }

  /**
   * The stored keys a rule may cover. A URL without variants is one key, found without a
   * scan (invalidations after unsafe methods are frequent); its variants are looked for
   * only when a Vary marker says there are some; prefixes scan every key.
   */
  #purgeCandidates (rule: { readonly kind: PurgeKind, readonly value: string }, matches: (key: string) => boolean): string[] {
    if (rule.kind === 'prefix') return this.#storedKeys(matches)
    const store = this.#o.store
    const marker = store.memory.peek(rule.value) ?? (() => {
      const meta = store.disk.peekMeta(rule.value)
      return meta === undefined ? undefined : { meta, body: Buffer.alloc(0) }
    })()
    if (markerNames(marker) !== undefined) return this.#storedKeys(matches)
    // Not indexed does not mean not on disk (a cold index, a write in flight): delete it anyway.
    return [rule.value]
  }

  /** Keys held in memory or on disk that satisfy `match` (a snapshot, safe to delete while iterating). */
  #storedKeys (match: (key: string) => boolean): string[] {
    const keys = new Set<string>()
    for (const key of this.#o.store.memory.keys()) if (match(key)) keys.add(key)
    for (const key of this.#o.store.disk.keys()) if (match(key)) keys.add(key)
    for (const key of this.#o.store.disk.pendingKeys()) if (match(key)) keys.add(key)
    return [...keys]
  }

  /** One access-log line and the request metrics, when the response ends or the client leaves. */
  #end (ex: Exchange): void {
    const res = ex.res
    this.#account(ex, ex.req.method, ex.status === 0 ? res.statusCode : ex.status, res.writableFinished, ex.req.headers['x-forwarded-for'])
  }

  /** The access-log line and request metrics of a finished request, from either path. */
  #account (ex: Accounted, method: string | undefined, status: number, completed: boolean, forwardedFor: string | readonly string[] | undefined): void {
    const { metrics } = this.#o
    metrics.requests.inc({ phase: ex.phase, status })
    if (ex.bytes > 0) {
      this.#servedBytes += ex.bytes
      metrics.servedBytes.inc({ source: ex.source }, ex.bytes)
    }
    if (!completed && ex.error === undefined) metrics.clientAborts.inc({ phase: ex.phase })
    if (!this.#o.accessLog) return
    // The bytes pino's logger.info({ reqId, method, path, ... }, 'request') writes, fields in that
    // order and undefined ones left out, rendered without pino's generic serialiser (its per-key
    // serialisation of 14 fields was most of a small hit's log cost; as for the control plane's
    // decision log, control-plane/server.ts).
    let line = `,"reqId":${ex.id}`
    if (method !== undefined) line += `,"method":${jsonString(method)}`
    line += `,"path":${jsonString(ex.path)},"status":${status},"cachePhase":"${ex.phase}","source":"${ex.source}","bytes":${ex.bytes},"durationMs":${jsonNumber(this.#now() - ex.startMs)},"completed":${completed}`
    if (ex.key !== undefined) line += `,"cacheKey":${jsonString(ex.key)}`
    if (ex.upstream !== undefined) line += `,"upstream":${jsonString(ex.upstream)}`
    if (ex.noCacheReason !== undefined) line += `,"noCacheReason":${jsonString(ex.noCacheReason)}`
    if (ex.error !== undefined) line += `,"errCode":"${ex.error.code}"`
    const client = this.#o.forwarding.clientFrom(ex.peer, forwardedFor)
    if (client !== undefined) line += `,"client":${jsonString(client)}`
    this.#accessLine(line)
  }
}

/**
 * The body length when a fast-path joiner may be answered from `job`'s fill with head
 * `head`: a shareable 200 of known, non-zero length without Vary or Content-Range, still
 * streaming or complete (not a stored outcome). Undefined sends the joiner to node:http.
 * An unframed body never qualifies, even once complete: the fast path answers with
 * Content-Length, where it must go on close-delimited (deliverFromFill does that).
 */
function fastJoinable (job: FillJob, head: FillHead): number | undefined {
  const { fill } = job
  if (fill.state === 'failed' || head.stored !== undefined || head.unframed === true || head.status !== 200 || !head.shareable || job.varyNames.length > 0) return undefined
  const total = fill.totalBytes
  if (total === undefined || total === 0 || head.headers['content-range'] !== undefined) return undefined
  return total
}

/** Why a content policy's decision keeps a response out of storage, if it does. */
function policyRefusal (decision: AdmitDecision, needsPolicyLifetime: boolean): string | undefined {
  if (decision.action !== 'store') return decision.reason
  return needsPolicyLifetime && decision.lifetimeSeconds === undefined ? 'no-freshness' : undefined
}

/** A number as JSON writes it (non-finite ones as null). */
function jsonNumber (n: number): string {
  return Number.isFinite(n) ? String(n) : 'null'
}

function headOf (status: number, headers: StoredHeaders, requestTimeMs: number, responseTimeMs: number, upstream: string): FillHead {
  return { status, headers, declaredBytes: undefined, shareable: true, storable: false, requestTimeMs, responseTimeMs, upstream }
}

function parseContentLength (value: string | string[] | undefined): number | undefined {
  if (typeof value !== 'string' || !/^\d{1,15}$/.test(value)) return undefined
  return Number(value)
}

/** A fill with its head and not one body byte yet: a joiner that has been sent nothing may still fetch alone (the lock timeout). */
function noBodyYet (fill: SharedFill): boolean {
  return fill.state === 'streaming' && fill.length === 0
}

/** Could a 304 answer this GET or HEAD: does it carry If-None-Match or If-Modified-Since (RFC 9110 §13.1, §15.4.5)? */
function askedNotModified (req: IncomingMessage): boolean {
  return req.headers['if-none-match'] !== undefined || req.headers['if-modified-since'] !== undefined
}

function headerString (value: string | readonly string[] | undefined): string | undefined {
  return typeof value === 'string' ? value : value?.[0]
}

/** `http://host/path?q` (absolute-form, RFC 9112 §3.2.2) → `/path?q`. */
function absoluteFormPath (url: string): string {
  try {
    const u = new URL(url)
    return u.pathname + u.search
  } catch {
    return url
  }
}

/** The path of a Location / Content-Location value when it names this host (RFC 9111 §4.4). */
function sameHostPath (value: string, host: string | undefined): string | undefined {
  if (value.startsWith('/') && !value.startsWith('//')) return value
  try {
    const u = new URL(value)
    return host !== undefined && u.host === host ? u.pathname + u.search : undefined
  } catch {
    return undefined
  }
}

/** Removes the given query parameters (e.g. tokens) before a request goes upstream. */
function stripQuery (path: string, strip: ReadonlySet<string>): string {
  const q = path.indexOf('?')
  if (q < 0 || strip.size === 0) return path
  const kept = path.slice(q + 1).split('&').filter((pair) => {
    const eq = pair.indexOf('=')
    return !strip.has(decodeURIComponentSafe(eq < 0 ? pair : pair.slice(0, eq)))
  })
  return kept.length === 0 ? path.slice(0, q) : `${path.slice(0, q)}?${kept.join('&')}`
}

function decodeURIComponentSafe (s: string): string {
  try {
    return decodeURIComponent(s)
  } catch {
    return s
  }
}
