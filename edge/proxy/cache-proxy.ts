/**
 * The caching reverse-proxy pipeline, shared by the edge and shield roles.
 *
 * Phases of a GET/HEAD request:
 *   accept → key → lookup memory → join a fill in flight → lookup disk → start a fill
 *          → (fill) head → admit → store
 *          → deliver (hit | from the fill as bytes arrive) → log
 * Other methods pass through to the upstream uncached.
 *
 * Outcomes are values (`CachePhase`, `NoCacheReason`), not exceptions: each request
 * ends with one access-log line, one metrics update and a Cache-Status header that
 * say the same thing.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { CdnError, isCdnError } from '../../lib/errors.ts'
import type { Logger } from '../../lib/log.ts'
import type { CacheNodeMetrics } from '../../lib/metrics.ts'
import { formatCacheStatus, type CacheStatusEntry } from '../../lib/http/cache-status.ts'
import { forwardRequestHeaders, toStoredHeaders } from '../../lib/http/headers.ts'
import { makeCacheKey } from '../cache/cache-key.ts'
import { computeFreshness, isFresh, storability } from '../cache/freshness.ts'
import { SharedFill, type FillHead } from '../cache/shared-fill.ts'
import type { TieredStore } from '../cache/tiered-store.ts'
import type { MemoryObject, ObjectMeta, StoredObject } from '../cache/types.ts'
import { integrityCheckFor } from '../hls/integrity.ts'
import { deliverError, deliverFromFill, deliverObject, deliverPass, type Exchange } from './deliver.ts'
import { toUpstreamError, type Upstream, type UpstreamResponse } from './upstream.ts'

export type CachePhase = 'hit' | 'miss' | 'collapsed' | 'pass' | 'bypass' | 'error'

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
  /** Wall clock in ms (injectable for tests). */
  readonly now?: () => number
}

export class CacheProxy {
  readonly #o: CacheProxyOptions
  readonly #now: () => number
  readonly #fills = new Map<string, SharedFill>()
  readonly #strip: ReadonlySet<string>
  #nextId = 0

  constructor (options: CacheProxyOptions) {
    if (!Number.isSafeInteger(options.lockTimeoutMs) || options.lockTimeoutMs < 1) {
      throw new TypeError(`Expected options.lockTimeoutMs to be a positive integer, got ${String(options.lockTimeoutMs)}`)
    }
    if (!Number.isSafeInteger(options.maxObjectBytes) || options.maxObjectBytes < 0) {
      throw new TypeError(`Expected options.maxObjectBytes to be a non-negative integer, got ${String(options.maxObjectBytes)}`)
    }
    this.#o = options
    this.#now = options.now ?? Date.now
    this.#strip = new Set(options.stripQueryParams)
    options.metrics.watchFillsInFlight(() => this.#fills.size)
  }

  /** Fills in flight (for metrics and tests). */
  get fillsInFlight (): number { return this.#fills.size }

  /** Handles one client request; never throws. */
  handle (req: IncomingMessage, res: ServerResponse): void {
    const ex = this.#begin(req, res)
    const method = req.method ?? 'GET'
    if (method !== 'GET' && method !== 'HEAD') {
      this.#forward(ex, 'pass', { fwd: 'method' })
      return
    }
    let key: string
    try {
      key = makeCacheKey(ex.path, { stripQueryParams: this.#strip })
    } catch (err) {
      deliverError(ex, isCdnError(err) ? err : new CdnError('CDN_ERR_REQUEST_INVALID', undefined, { cause: err }), { fwd: 'bypass' })
      return
    }
    ex.key = key
    const now = this.#now()
    const hot = this.#o.store.getFromMemory(key)
    if (hot !== undefined && isFresh(hot.meta, now)) {
      this.#hit(ex, hot, 'memory')
      return
    }
    const fill = this.#fills.get(key)
    if (fill !== undefined) {
      void this.#join(ex, fill, false)
      return
    }
    void this.#lookupDisk(ex, key)
  }

  #begin (req: IncomingMessage, res: ServerResponse): Exchange {
    const url = req.url ?? '/'
    const ex: Exchange = {
      id: ++this.#nextId,
      req,
      res,
      startMs: this.#now(),
      path: url.startsWith('/') ? url : absoluteFormPath(url),
      key: undefined,
      phase: 'miss',
      source: 'none',
      status: 0,
      bytes: 0,
      upstream: undefined,
      noCacheReason: undefined,
      error: undefined,
      client: req.socket.remoteAddress,
      cacheName: this.#o.cacheName,
      now: this.#now,
    }
    res.once('close', () => this.#end(ex))
    return ex
  }

  #hit (ex: Exchange, object: StoredObject, tier: 'memory' | 'disk'): void {
    ex.phase = 'hit'
    ex.source = tier
    this.#o.metrics.lookups.inc({ result: 'hit', tier })
    deliverObject(ex, object, { hit: true })
  }

  async #lookupDisk (ex: Exchange, key: string): Promise<void> {
    let found: StoredObject | undefined
    try {
      found = await this.#o.store.getFromDisk(key)
    } catch (err) {
      this.#o.logger.warn({ err, cacheKey: key }, 'disk lookup failed')
    }
    if (ex.res.destroyed) return
    if (found !== undefined && isFresh(found.meta, this.#now())) {
      this.#hit(ex, found, 'disk')
      return
    }
    this.#o.metrics.lookups.inc({ result: 'miss', tier: 'none' })
    const inFlight = this.#fills.get(key)
    if (inFlight !== undefined) {
      await this.#join(ex, inFlight, false)
      return
    }
    const fill = new SharedFill(key, this.#now())
    this.#fills.set(key, fill)
    void this.#runFill(fill, ex)
    await this.#join(ex, fill, true)
  }

  /** Attaches a request to a fill and answers it from the fill's bytes. */
  async #join (ex: Exchange, fill: SharedFill, initiator: boolean): Promise<void> {
    fill.attach()
    ex.phase = initiator ? 'miss' : 'collapsed'
    ex.source = 'fill'
    let head: FillHead
    try {
      head = await fill.waitHead(initiator ? undefined : this.#o.lockTimeoutMs)
    } catch (err) {
      if (isCdnError(err, 'CDN_ERR_LOCK_TIMEOUT')) {
        this.#o.metrics.collapsed.inc({ outcome: 'lock-timeout' })
        this.#o.logger.warn({ reqId: ex.id, cacheKey: fill.key }, 'gave up waiting for a shared fill; fetching alone')
        this.#forward(ex, 'miss', { fwd: 'uri-miss', detail: 'lock-timeout' })
        return
      }
      deliverError(ex, isCdnError(err) ? err : toUpstreamError(err, 'upstream'), { fwd: 'uri-miss', ...(initiator ? {} : { collapsed: true }) })
      return
    }
    if (!initiator && !head.shareable) {
      // Another client's private answer: never share it, ask upstream for this one.
      this.#o.metrics.collapsed.inc({ outcome: 'not-shareable' })
      this.#forward(ex, 'miss', { fwd: 'uri-miss', detail: 'not-shareable' })
      return
    }
    if (!initiator) this.#o.metrics.collapsed.inc({ outcome: 'joined' })
    ex.upstream = head.upstream
    deliverFromFill(ex, fill, head, {
      fwd: 'uri-miss',
      fwdStatus: head.status,
      ...(head.storable ? { stored: true } : {}),
      ...(initiator ? {} : { collapsed: true }),
    })
  }

  /** Fetches for a fill and feeds it; admits and stores the body if it completes intact. */
  async #runFill (fill: SharedFill, ex: Exchange): Promise<void> {
    const { metrics, logger } = this.#o
    const requestTimeMs = this.#now()
    let res: UpstreamResponse
    try {
      res = await this.#upstreamRequest(ex, 'GET', true)
    } catch (err) {
      const error = toUpstreamError(err, this.#o.upstream.name)
      this.#countUpstreamError(error)
      this.#fillFailed(fill, error, 'failed')
      return
    }
    const responseTimeMs = this.#now()
    metrics.upstreamLatency.observe({ upstream: res.upstream }, (responseTimeMs - requestTimeMs) / 1000)
    metrics.upstreamResponses.inc({ upstream: res.upstream, status: res.status })
    const headers = toStoredHeaders(res.headers)
    const declared = parseContentLength(res.headers['content-length'])
    const verdict = storability({ method: 'GET', status: res.status, reqHeaders: ex.req.headers, resHeaders: headers, shared: true })
    let noStore: string | undefined = verdict.storable ? undefined : verdict.reason
    if (noStore === undefined && headers.vary !== undefined && headers.vary !== '') noStore = 'vary' // variants: issue 3
    if (noStore === undefined && declared !== undefined && declared > this.#o.maxObjectBytes) noStore = 'too-large'
    const shareable = noStore === undefined || SHAREABLE_REASONS.has(noStore)
    fill.setHead({
      status: res.status,
      headers,
      declaredBytes: declared,
      shareable,
      storable: noStore === undefined,
      requestTimeMs,
      responseTimeMs,
      upstream: res.upstream,
    })
    // A response nobody else may see must not collect joiners; later requests start their own fill.
    if (!shareable) this.#dropFill(fill)

    res.body.on('data', (chunk: Buffer) => {
      fill.append(chunk)
      if (noStore === undefined && fill.length > this.#o.maxObjectBytes) noStore = 'too-large'
    })
    res.body.once('error', (err) => {
      const error = toUpstreamError(err, res.upstream)
      this.#countUpstreamError(error)
      logger.warn({ cacheKey: fill.key, upstream: res.upstream, err: error, receivedBytes: fill.length, declaredBytes: declared }, 'upstream body failed; readers aborted, nothing stored')
      this.#fillFailed(fill, error, 'failed')
    })
    res.body.once('end', () => {
      if (declared !== undefined && fill.length !== declared) {
        const error = new CdnError('CDN_ERR_UPSTREAM_TRUNCATED', `Body of ${fill.key} was ${fill.length} bytes, Content-Length said ${declared}`)
        this.#countUpstreamError(error)
        this.#fillFailed(fill, error, 'failed')
        return
      }
      const body = fill.complete()
      this.#admit(fill, body, noStore)
    })
  }

  /** The admission gate: only complete, cacheable, intact bodies are stored. */
  #admit (fill: SharedFill, body: Buffer, noStore: string | undefined): void {
    const head = fill.head!
    const { metrics, logger } = this.#o
    let reason = noStore
    if (reason === undefined && this.#o.checkIntegrity) {
      const check = integrityCheckFor(fill.key, headerString(head.headers['content-type']))
      if (check !== undefined && !check(body)) reason = 'integrity'
    }
    if (reason !== undefined) {
      metrics.fills.inc({ outcome: 'not-stored' })
      metrics.admissionRejections.inc({ reason })
      const log = reason === 'integrity' ? logger.warn.bind(logger) : logger.debug.bind(logger)
      log({ cacheKey: fill.key, noCacheReason: reason, status: head.status, bytes: body.length }, 'response not stored')
      this.#dropFill(fill)
      return
    }
    const freshness = computeFreshness({
      status: head.status,
      headers: head.headers,
      requestTimeMs: head.requestTimeMs,
      responseTimeMs: head.responseTimeMs,
    })
    const meta: ObjectMeta = {
      key: fill.key,
      status: head.status,
      headers: head.headers,
      bodyBytes: body.length,
      requestTimeMs: head.requestTimeMs,
      responseTimeMs: head.responseTimeMs,
      initialAgeSeconds: freshness.initialAgeSeconds,
      freshnessLifetimeSeconds: freshness.freshnessLifetimeSeconds,
    }
    const object: MemoryObject = { meta, body }
    metrics.fills.inc({ outcome: 'stored' })
    const store = this.#o.store
    const written = store.put(object)
    if (store.memory.get(fill.key) === object) {
      this.#dropFill(fill)
      return
    }
    // Too big for memory: keep answering from the fill until the disk copy exists.
    void written.finally(() => this.#dropFill(fill))
  }

  #fillFailed (fill: SharedFill, error: CdnError, outcome: 'failed'): void {
    this.#o.metrics.fills.inc({ outcome })
    fill.fail(error)
    this.#dropFill(fill)
  }

  #dropFill (fill: SharedFill): void {
    if (this.#fills.get(fill.key) === fill) this.#fills.delete(fill.key)
  }

  #countUpstreamError (error: CdnError): void {
    this.#o.metrics.upstreamErrors.inc({ upstream: this.#o.upstream.name, code: error.code })
  }

  #upstreamRequest (ex: Exchange, method: string, forCache: boolean): Promise<UpstreamResponse> {
    const headers = forwardRequestHeaders(ex.req.headers, { stripConditionals: forCache, stripRange: forCache, drop: HOST })
    return this.#o.upstream.request({
      method,
      // The cache key is the normalised target: what we store must be what we asked for,
      // or an origin that resolves `/a/../b` differently could poison the cache.
      path: ex.key ?? stripQuery(ex.path, this.#strip),
      headers,
      body: method === 'GET' || method === 'HEAD' ? null : ex.req,
    })
  }

  /** Sends the request upstream for this client alone and streams the answer back, uncached. */
  #forward (ex: Exchange, phase: CachePhase, status: Omit<CacheStatusEntry, 'cache'>): void {
    ex.phase = phase
    ex.source = 'pass'
    const method = ex.req.method ?? 'GET'
    this.#upstreamRequest(ex, method, false).then((res) => {
      this.#o.metrics.upstreamResponses.inc({ upstream: res.upstream, status: res.status })
      ex.upstream = res.upstream
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

  /** One access-log line and the request metrics, when the response ends or the client leaves. */
  #end (ex: Exchange): void {
    const { metrics } = this.#o
    const res = ex.res
    const status = ex.status === 0 ? res.statusCode : ex.status
    const completed = res.writableFinished
    metrics.requests.inc({ phase: ex.phase, status })
    if (ex.bytes > 0) metrics.servedBytes.inc({ source: ex.source }, ex.bytes)
    if (!completed && ex.error === undefined) metrics.clientAborts.inc({ phase: ex.phase })
    if (!this.#o.accessLog) return
    this.#o.logger.info({
      reqId: ex.id,
      method: ex.req.method,
      path: ex.path,
      status,
      cachePhase: ex.phase,
      source: ex.source,
      bytes: ex.bytes,
      durationMs: this.#now() - ex.startMs,
      completed,
      cacheKey: ex.key,
      upstream: ex.upstream,
      noCacheReason: ex.noCacheReason,
      errCode: ex.error?.code,
      client: ex.client,
    }, 'request')
  }
}

/** The upstream sets its own Host. */
const HOST: ReadonlySet<string> = new Set(['host'])

/** Reasons a response is not stored that still let concurrent requests share it. */
const SHAREABLE_REASONS: ReadonlySet<string> = new Set(['status', 'no-freshness', 'partial', 'too-large', 'vary'])

function parseContentLength (value: string | string[] | undefined): number | undefined {
  if (typeof value !== 'string' || !/^\d{1,15}$/.test(value)) return undefined
  return Number(value)
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
