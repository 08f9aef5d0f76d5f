/**
 * Writing responses: from a stored object (hit), from a shared fill as its bytes
 * arrive, from an upstream response passed through, or an error. Handles client
 * preconditions (412 and 304, RFC 9110 §13), Range (§14) incl. multipart/byteranges, HEAD, Age
 * and Cache-Status. A response that cannot be completed is destroyed (the client sees
 * an aborted transfer), never ended short.
 */
import { randomBytes } from 'node:crypto'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { pipeline } from 'node:stream'
import { CdnError } from '../../lib/errors.ts'
import { appendCacheStatus, formatCacheStatus, type CacheStatusEntry } from '../../lib/http/cache-status.ts'
import { httpDateNow, parseHttpDate } from '../../lib/http/dates.ts'
import { ifMatchMatches, ifNoneMatchMatches, toStoredHeaders } from '../../lib/http/headers.ts'
import { formatContentRange, formatUnsatisfiedRange, ifRangeMatches, parseRangeHeader, resolveRanges, type ByteRange } from '../../lib/http/range.ts'
import { ageHeaderValue, initialAgeSeconds } from '../cache/freshness.ts'
import { storedDirectives } from '../cache/reuse-policy.ts'
import { pipeFill, type FillHead, type SharedFill } from '../cache/shared-fill.ts'
import type { ObjectMeta, StoredHeaders, StoredObject } from '../cache/types.ts'
import { CORS_HEADERS } from './access-gate.ts'
import type { CachePhase } from './cache-proxy.ts'
import type { UpstreamHeaders, UpstreamResponse } from './upstream.ts'

/** One client request as the pipeline tracks it from accept to log. */
export interface Exchange {
  readonly id: number
  readonly req: IncomingMessage
  readonly res: ServerResponse
  readonly startMs: number
  /** Request target as path + query. */
  readonly path: string
  /** The key the answer is looked up under (a variant key once the URL's Vary is known). */
  key: string | undefined
  phase: CachePhase
  /** Where the body bytes came from. */
  source: 'memory' | 'disk' | 'fill' | 'pass' | 'none'
  status: number
  /** Body bytes written to the client. */
  bytes: number
  upstream: string | undefined
  noCacheReason: string | undefined
  error: CdnError | undefined
  /** Socket peer address, taken at accept (the socket may be gone when the log line is written). */
  readonly peer: string | undefined
  readonly cacheName: string
  /** This node's Via member (`1.1 <name>`), added to every response it sends. */
  readonly via: string
  /** Most ranges answered as multipart/byteranges. */
  readonly maxRanges: number
  /**
   * Rewrites a whole 200 body for this client (the master-playlist steering tag carries
   * the session's token): returns the new body, or undefined to send the stored one.
   */
  readonly transform: ((body: Buffer) => Buffer | undefined) | undefined
  readonly now: () => number
}

/** Cache-Status fields of our entry (the cache name is the exchange's). */
export type StatusFields = Omit<CacheStatusEntry, 'cache'>

/** Headers we compute per response and never copy from the stored set. */
const COMPUTED = new Set(['age', 'cache-status', 'content-length', 'content-range', 'via', 'access-control-allow-origin', 'access-control-expose-headers'])

/** RFC 9110 §15.4.5: what a 304 carries of the 200 it stands for. */
const NOT_MODIFIED_FIELDS = ['cache-control', 'content-location', 'date', 'etag', 'expires', 'vary', 'last-modified']

/** What {@link rangeDecision} says. */
export type RangeDecision =
  | { readonly kind: 'full' }
  | { readonly kind: 'partial', readonly ranges: readonly ByteRange[] }
  | { readonly kind: 'unsatisfiable' }

const FULL: RangeDecision = { kind: 'full' }
const UNSATISFIABLE: RangeDecision = { kind: 'unsatisfiable' }

/** Decides how to answer a request's Range header for a 200 body of `size` bytes. */
function decideRange (ex: Exchange, status: number, headers: StoredHeaders, size: number): RangeDecision {
  return rangeDecision(ex.req.method, ex.req.headers.range, header(ex.req.headers['if-range']), ex.maxRanges, status, headers, size)
}

/**
 * How to answer a Range header (RFC 9110 §14) for a stored response of `status` with a
 * body of `size` bytes: whole, one or more ranges, or 416. Shared by both delivery paths.
 */
export function rangeDecision (method: string | undefined, range: string | undefined, ifRange: string | undefined, maxRanges: number, status: number, headers: StoredHeaders, size: number): RangeDecision {
  // RFC 9110 §14.2: range handling is defined for GET only; HEAD gets the 200 head.
  if (range === undefined || status !== 200 || method !== 'GET') return FULL
  const specs = parseRangeHeader(range)
  if (specs === null) return FULL
  if (!ifRangeMatches(ifRange, headerValue(headers.etag), headerValue(headers['last-modified']), headerValue(headers.date))) return FULL
  const resolved = resolveRanges(specs, size, { maxRanges })
  if (resolved.kind === 'unsatisfiable') return UNSATISFIABLE
  if (resolved.kind === 'ignore') return FULL
  return { kind: 'partial', ranges: resolved.ranges }
}

/** What a request's preconditions make of the response it would get (RFC 9110 §13.2.2). */
type Precondition = 'proceed' | 'not-modified' | 'failed'

/**
 * RFC 9110 §13.2.2 in its order: If-Match, else If-Unmodified-Since (412 when false),
 * then If-None-Match, else If-Modified-Since (304); Range comes after.
 */
function preconditions (req: IncomingMessage, status: number, headers: StoredHeaders): Precondition {
  if (preconditionFailed(req, status, headerValue(headers.etag), headerValue(headers['last-modified']))) return 'failed'
  return notModified(req, status, headers) ? 'not-modified' : 'proceed'
}

/**
 * RFC 9110 §13.1.1 / §13.1.4: If-Match (strong comparison) decides when present, else
 * If-Unmodified-Since against Last-Modified. §13.2.1: only a 2xx is subject to them.
 */
function preconditionFailed (req: IncomingMessage, status: number, etag: string | undefined, lastModified: string | undefined): boolean {
  const im = req.headers['if-match']
  if ((im === undefined && req.headers['if-unmodified-since'] === undefined) || status < 200 || status > 299) return false
  if (im !== undefined) return !ifMatchMatches(im, etag)
  return modifiedSince(header(req.headers['if-unmodified-since']), lastModified)
}

/**
 * If-Unmodified-Since (RFC 9110 §13.1.4) is false when the representation changed after its
 * date. Ignored (never false) when the field is no valid HTTP-date (a list of dates is
 * none) or there is no valid Last-Modified to compare.
 */
function modifiedSince (field: string | undefined, lastModified: string | undefined): boolean {
  const since = parseHttpDate(field)
  const modified = parseHttpDate(lastModified)
  return since !== undefined && modified !== undefined && modified > since
}

/**
 * RFC 9110 §13.2.2: If-None-Match (weak comparison) decides when present, else
 * If-Modified-Since against Last-Modified; only for GET/HEAD of a 200 (§15.4.5: a 304
 * stands for a 200).
 */
function notModified (req: IncomingMessage, status: number, headers: StoredHeaders): boolean {
  if (status !== 200) return false
  const inm = req.headers['if-none-match']
  if (inm !== undefined) return ifNoneMatchMatches(inm, headerValue(headers.etag))
  const ims = header(req.headers['if-modified-since'])
  if (ims === undefined) return false
  const since = parseHttpDate(ims)
  const modified = parseHttpDate(headerValue(headers['last-modified']))
  return since !== undefined && modified !== undefined && modified <= since
}

/** Who answers: the names a response carries in Cache-Status and Via. */
export type Responder = Pick<Exchange, 'cacheName' | 'via'>

/** Flat [name, value, ...] list of the stored headers plus ours (writeHead takes it as is). */
function buildHeaders (ex: Responder, stored: StoredHeaders, status: StatusFields, hidden?: readonly string[]): string[] {
  const out: string[] = []
  for (const name in stored) {
    if (COMPUTED.has(name) || (hidden !== undefined && hidden.includes(name))) continue
    const value = stored[name]!
    if (typeof value === 'string') out.push(name, value)
    else for (const v of value) out.push(name, v)
  }
  out.push('cache-status', appendCacheStatus(headerValue(stored['cache-status']), formatCacheStatus({ cache: ex.cacheName, ...status })))
  const via = headerValue(stored.via)
  out.push('via', via === undefined ? ex.via : `${via}, ${ex.via}`)
  out.push(...CORS_HEADERS)
  return out
}

function write304 (ex: Exchange, stored: StoredHeaders, status: StatusFields, age: string | undefined): void {
  const headers: string[] = []
  for (const name of NOT_MODIFIED_FIELDS) {
    const value = stored[name]
    if (value === undefined) continue
    if (typeof value === 'string') headers.push(name, value)
    else for (const v of value) headers.push(name, v)
  }
  if (age !== undefined) headers.push('age', age)
  writeHeadOnly(ex, 304, headers, status)
}

/**
 * RFC 9110 §15.5.13: made here, so dated now and without the stored response's fields
 * (no Age, no validators, no Content-Range); Cache-Status as the 200 would have it.
 */
function write412 (ex: Exchange, status: StatusFields): void {
  writeHeadOnly(ex, 412, ['date', httpDateNow(ex.now()), 'content-length', '0'], status)
}

/** A response without content: `headers`, then our Cache-Status (`status`: what the full answer would say) and CORS. */
function writeHeadOnly (ex: Exchange, code: 304 | 412, headers: string[], status: StatusFields): void {
  headers.push('cache-status', formatCacheStatus({ cache: ex.cacheName, ...status }), ...CORS_HEADERS)
  ex.status = code
  ex.res.writeHead(code, headers)
  ex.res.end()
}

/** Answers a precondition outcome other than 'proceed': 412, or 304 with `age`. */
function writePrecondition (ex: Exchange, outcome: Exclude<Precondition, 'proceed'>, stored: StoredHeaders, status: StatusFields, age: string): void {
  if (outcome === 'failed') write412(ex, status)
  else write304(ex, stored, status, age)
}

function write416 (ex: Exchange, size: number, status: StatusFields): void {
  ex.status = 416
  ex.res.writeHead(416, [
    'content-range', formatUnsatisfiedRange(size),
    'content-type', 'text/plain; charset=utf-8',
    'content-length', '22',
    'cache-status', formatCacheStatus({ cache: ex.cacheName, ...status }),
    ...CORS_HEADERS,
  ])
  ex.res.end('Range Not Satisfiable\n')
}

/**
 * The header fields of a stored response answered whole or as ranges, up to but without
 * the framing fields (Content-Range, Content-Length, which the caller appends): stored
 * fields, Cache-Status, Via, CORS, Age and Accept-Ranges. Both delivery paths (node:http
 * and the fast path, edge/proxy/fast-hit.ts) take their headers from here.
 */
export function storedObjectFields (ex: Responder, meta: ObjectMeta, status: StatusFields, nowMs: number): string[] {
  // RFC 9111 §5.2.2.4: fields named by no-cache="..." are not sent without revalidation.
  const hidden = status.hit === true || status.detail !== undefined ? storedDirectives(meta).noCacheFields : undefined
  const headers = buildHeaders(ex, meta.headers, status, hidden)
  headers.push('age', ageHeaderValue(meta, nowMs))
  if (meta.status === 200 && meta.headers['accept-ranges'] === undefined) headers.push('accept-ranges', 'bytes')
  return headers
}

/** Answers from a stored object (memory Buffer or disk stream). */
export function deliverObject (ex: Exchange, object: StoredObject, status: StatusFields): void {
  if (ex.transform !== undefined && object.body !== null && object.meta.status === 200) {
    const rewritten = ex.transform(object.body)
    if (rewritten !== undefined) {
      deliverRewritten(ex, object.meta, rewritten, status)
      return
    }
  }
  const meta: ObjectMeta = object.meta
  const now = ex.now()
  const precondition = preconditions(ex.req, meta.status, meta.headers)
  if (precondition !== 'proceed') {
    writePrecondition(ex, precondition, meta.headers, status, ageHeaderValue(meta, now))
    return
  }
  const size = meta.bodyBytes
  const range = decideRange(ex, meta.status, meta.headers, size)
  if (range.kind === 'unsatisfiable') {
    write416(ex, size, status)
    return
  }
  const headers = storedObjectFields(ex, meta, status, now)
  const slices = range.kind === 'full' ? undefined : range.ranges
  if (slices !== undefined && slices.length > 1) {
    writeMultipart(ex, headers, meta, slices, (r) => object.body !== null ? object.body.subarray(r.start, r.end + 1) : object.createReadStream(r.start, r.end))
    return
  }
  let start = 0
  let end = size - 1
  let code = meta.status
  if (slices !== undefined) {
    ;({ start, end } = slices[0]!)
    code = 206
    headers.push('content-range', formatContentRange(start, end, size))
  }
  const length = end - start + 1
  headers.push('content-length', String(Math.max(length, 0)))
  ex.status = code
  const res = ex.res
  res.writeHead(code, headers)
  if (ex.req.method === 'HEAD' || length <= 0) {
    res.end()
    return
  }
  if (object.body !== null) {
    const body = start === 0 && end === size - 1 ? object.body : object.body.subarray(start, end + 1)
    ex.bytes += body.length
    res.end(body)
    return
  }
  // Pooled chunks straight from the file to the socket (edge/cache/body-writer.ts): no stream
  // objects, and each buffer goes back to the pool once the socket has taken it.
  object.writeTo(res, start, end, (err, bytes) => {
    ex.bytes += bytes
    if (err !== undefined && !res.destroyed) res.destroy(err)
  })
}

/**
 * A body rewritten for this client: sent whole (Range ignored: the stored body's offsets
 * do not apply), with a weak ETag (RFC 9110 §8.8.1: same meaning, other bytes) and no
 * conditional 304 (the rewrite may differ per session); a failed If-Match or
 * If-Unmodified-Since is still a 412. `unframed`: sent close-delimited (rewriteUnframed).
 */
function deliverRewritten (ex: Exchange, meta: ObjectMeta, body: Buffer, status: StatusFields, unframed = false): void {
  // The rewrite's ETag is weak (rewrittenFields) and If-Match compares strongly: no tag of it can match, only *.
  if (preconditionFailed(ex.req, meta.status, undefined, headerValue(meta.headers['last-modified']))) {
    write412(ex, status)
    return
  }
  const headers = rewrittenFields(ex, meta.headers, status)
  headers.push('age', ageHeaderValue(meta, ex.now()))
  // from an unframed upstream body (rewriteUnframed): no more known to be complete than it was
  if (unframed) closeDelimited(ex.res, headers)
  else headers.push('content-length', String(body.length))
  ex.status = 200
  ex.res.writeHead(200, headers)
  if (ex.req.method === 'HEAD') {
    ex.res.end()
    return
  }
  ex.bytes += body.length
  ex.res.end(body)
}

/**
 * The fields of a body this node rewrote (tokens, content steering): its validator only
 * weak (the bytes differ from the origin's), and no byte ranges offered of it.
 */
function rewrittenFields (ex: Responder, stored: StoredHeaders, status: StatusFields): string[] {
  const etag = headerValue(stored.etag)
  const headers = buildHeaders(ex, stored, status, ['etag', 'accept-ranges'])
  if (etag !== undefined) headers.push('etag', etag.startsWith('W/') ? etag : `W/${etag}`)
  return headers
}

/**
 * multipart/byteranges (RFC 9110 §14.6): one part per range, each with its own
 * Content-Type and Content-Range. Parts come from Buffers or streams, in order.
 */
function writeMultipart (ex: Exchange, headers: string[], meta: ObjectMeta, ranges: readonly ByteRange[], part: (r: ByteRange) => Buffer | NodeJS.ReadableStream): void {
  const boundary = randomBytes(12).toString('hex')
  const type = headerValue(meta.headers['content-type'])
  const heads = ranges.map((r, i) => Buffer.from(
    `${i === 0 ? '' : '\r\n'}--${boundary}\r\n${type === undefined ? '' : `content-type: ${type}\r\n`}content-range: ${formatContentRange(r.start, r.end, meta.bodyBytes)}\r\n\r\n`))
  const tail = Buffer.from(`\r\n--${boundary}--\r\n`)
  let length = tail.length
  for (const [i, r] of ranges.entries()) length += heads[i]!.length + r.end - r.start + 1
  for (let i = 0; i < headers.length; i += 2) {
    if (headers[i] === 'content-type') headers.splice(i, 2)
  }
  headers.push('content-type', `multipart/byteranges; boundary=${boundary}`, 'content-length', String(length))
  ex.status = 206
  const res = ex.res
  res.writeHead(206, headers)
  if (ex.req.method === 'HEAD') {
    res.end()
    return
  }
  const next = (i: number): void => {
    if (res.destroyed) return
    if (i === ranges.length) {
      res.end(tail)
      return
    }
    res.write(heads[i])
    const body = part(ranges[i]!)
    if (Buffer.isBuffer(body)) {
      ex.bytes += body.length
      if (res.write(body)) next(i + 1)
      else res.once('drain', () => next(i + 1))
      return
    }
    body.on('data', (chunk: Buffer) => {
      ex.bytes += chunk.length
      if (!res.write(chunk)) {
        body.pause()
        res.once('drain', () => body.resume())
      }
    })
    body.once('error', (err: Error) => res.destroy(err))
    body.once('end', () => next(i + 1))
  }
  next(0)
}

/**
 * Answers from a fill: the head with the first bytes as soon as the fill has any, the rest
 * paced (see pipeFill). Each reader has its own backpressure; the fill never waits for
 * it. If the fill fails, the response is destroyed. `extraCookie` is
 * the Set-Cookie only the initiating client receives. `ex` is attached to the fill
 * (SharedFill.attach): it reads through a cursor, or detaches when its answer takes no
 * body bytes from the fill (HEAD, 304, 412, 416), so a released fill does not keep them for
 * it; an answer that needs the body whole (a rewrite, several ranges) stays attached until
 * the body is whole, or until the fill is released (larger than the node stores): then it
 * gets the body as it came, whole and unrewritten (`asItCame`; RFC 9110 §14.2 lets a server
 * ignore Range), through a cursor, so the fill keeps only its readers' lag, not the body.
 */
export function deliverFromFill (ex: Exchange, fill: SharedFill, head: FillHead, status: StatusFields, extraCookie?: string | readonly string[], asItCame = false): void {
  // An upstream body without framing (FillHead.unframed) is relayed without it: whole (RFC 9110
  // §14.2: its length is not known to be the representation's, so no Range), with no length.
  const unframed = head.unframed === true
  const rewrite = !asItCame && ex.transform !== undefined && head.status === 200
  if (unframed && rewrite && ex.req.method !== 'HEAD') {
    rewriteUnframed(ex, fill, head, status, extraCookie)
    return
  }
  const total = unframed ? undefined : fill.totalBytes
  // A 200 that carries Content-Range says it is part of a larger representation: its bytes
  // are no offsets into the whole, so no range is cut from them (it is relayed as it came).
  const rangeable = !asItCame && !unframed && head.status === 200 && head.headers['content-range'] === undefined
  const rangeAsked = ex.req.headers.range !== undefined && rangeable && ex.req.method !== 'HEAD'
  if ((rewrite && !unframed) || (rangeAsked && (total === undefined || isMultiRange(ex.req.headers.range)))) {
    // A body to rewrite, several ranges, or a range of a body of unknown length: answer once the body is whole.
    // Attached without a cursor, this reader keeps a released fill from dropping anything, so body() has it all;
    // a fill released meanwhile will not be whole in memory: its body goes out as it came.
    void fill.settledOrReleased().then(() => {
      if (fill.state === 'failed') failResponse(ex, fill.error, status)
      else if (fill.released) deliverFromFill(ex, fill, head, status, extraCookie, true)
      else deliverObject(ex, { meta: metaOfFill(fill, head, extraCookie), body: fill.body() }, status)
    })
    return
  }
  const precondition = preconditions(ex.req, head.status, head.headers)
  if (precondition !== 'proceed') {
    fill.detach()
    writePrecondition(ex, precondition, head.headers, status, ageAtHead(head, ex.now()))
    return
  }
  const range = total === undefined || !rangeable ? FULL : decideRange(ex, head.status, head.headers, total)
  if (range.kind === 'unsatisfiable') {
    fill.detach()
    write416(ex, total ?? 0, status)
    return
  }
  const headers = fillFields(ex, head, status, ex.now(), extraCookie)
  let start = 0
  let end = total === undefined ? Number.MAX_SAFE_INTEGER : total - 1
  let code = head.status
  if (range.kind === 'partial') {
    ;({ start, end } = range.ranges[0]!)
    code = 206
    headers.push('content-range', formatContentRange(start, end, total!))
  } else if (head.headers['content-range'] !== undefined) {
    // An upstream 206 (never stored) names its bytes only here; a 200 that carries one is relayed as it came.
    headers.push('content-range', headerValue(head.headers['content-range'])!)
  }
  if (total !== undefined) {
    acceptRanges(headers, head)
    headers.push('content-length', String(Math.max(end - start + 1, 0)))
  }
  ex.status = code
  const res = ex.res
  const withBody = ex.req.method !== 'HEAD' && !(total !== undefined && end < start) && !NO_BODY.has(head.status)
  if (unframed && withBody) closeDelimited(res, headers)
  res.writeHead(code, headers)
  if (!withBody) {
    fill.detach()
    res.end()
    return
  }
  pipeFill(fill, res, start, end, { onBytes: (bytes) => { ex.bytes += bytes }, onFail: (err) => failResponse(ex, err, status, unframed) })
}

const NO_BODY = new Set([204, 304])

/**
 * A body to rewrite from a fill whose upstream body had no framing: read whole first, then
 * answered as a framed one is (deliverObject: a rewrite gets no 304 and only If-Match: *,
 * a body the rewrite leaves alone the usual preconditions), but sent unframed too
 * (closeDelimited: a rewrite of a body that may be cut is no more complete).
 */
function rewriteUnframed (ex: Exchange, fill: SharedFill, head: FillHead, status: StatusFields, extraCookie: string | readonly string[] | undefined): void {
  void fill.settledOrReleased().then(() => {
    if (fill.state === 'failed') {
      failResponse(ex, fill.error, status)
      return
    }
    if (fill.released) {
      // larger than the node stores: relayed as it came (unrewritten), not held whole
      deliverFromFill(ex, fill, head, status, extraCookie, true)
      return
    }
    const body = fill.body()
    const rewritten = ex.transform!(body)
    if (rewritten !== undefined) {
      deliverRewritten(ex, metaOfFill(fill, head, extraCookie), rewritten, status, true)
      return
    }
    const precondition = preconditions(ex.req, head.status, head.headers)
    if (precondition !== 'proceed') {
      writePrecondition(ex, precondition, head.headers, status, ageAtHead(head, ex.now()))
      return
    }
    const headers = fillFields(ex, head, status, ex.now(), extraCookie)
    ex.status = head.status
    closeDelimited(ex.res, headers)
    ex.res.writeHead(head.status, headers)
    ex.bytes += body.length
    ex.res.end(body)
  })
}

/**
 * Does an upstream response's body end only with its connection (RFC 9112 §6.3 item 8: no
 * Content-Length, not chunked, a status that has content)? Then its end cannot be told from
 * a cut: a fill never stores it, and every delivery relays it unframed too.
 */
export function isCloseDelimited (status: number, headers: UpstreamHeaders): boolean {
  if (status < 200 || NO_BODY.has(status) || headers['content-length'] !== undefined) return false
  return !isChunked(headers['transfer-encoding'])
}

/** Is the last transfer coding chunked (RFC 9112 §6.3: then the framing shows where the body ends)? */
function isChunked (value: string | readonly string[] | undefined): boolean {
  const last = typeof value === 'string' ? value : value?.at(-1)
  if (last === undefined) return false
  return last.slice(last.lastIndexOf(',') + 1).trim().toLowerCase() === 'chunked'
}

/**
 * Sends the response body unframed: no Content-Length (the caller adds none), no chunked
 * coding, `Connection: close` and the end of the body at the close of the connection.
 */
function closeDelimited (res: ServerResponse, headers: string[]): void {
  res.useChunkedEncodingByDefault = false
  headers.push('connection', 'close')
}

/**
 * Aborts a close-delimited response with a TCP reset: for such a body a clean close (FIN) is
 * its end, so only a reset shows the client it was cut (node:http clients see ECONNRESET).
 * A TLS socket has no TCP handle of its own to reset: it is destroyed.
 */
function resetConnection (res: ServerResponse, err: Error | undefined): void {
  const socket = res.socket
  if (socket !== null && !socket.destroyed) {
    try {
      socket.resetAndDestroy()
    } catch {
      // not a TCP handle (TLS): destroyed below
    }
  }
  if (!res.destroyed) res.destroy(err)
}

/**
 * The header fields of a fill's response up to but without the framing ones (Content-Range,
 * Accept-Ranges, Content-Length): upstream fields, Cache-Status, Via, CORS, the initiator's
 * Set-Cookie and Age. Both delivery paths (node:http and the fast path's joins) take their
 * headers from here.
 */
export function fillFields (ex: Responder, head: FillHead, status: StatusFields, nowMs: number, extraCookie?: string | readonly string[]): string[] {
  const headers = buildHeaders(ex, head.headers, status)
  if (extraCookie !== undefined) for (const c of typeof extraCookie === 'string' ? [extraCookie] : extraCookie) headers.push('set-cookie', c)
  headers.push('age', ageAtHead(head, nowMs))
  return headers
}

/** A whole 200 of known length says it takes ranges (RFC 9110 §14.3) unless upstream said otherwise (or sent a part: Content-Range). */
export function acceptRanges (headers: string[], head: FillHead): void {
  if (head.status === 200 && head.headers['accept-ranges'] === undefined && head.headers['content-range'] === undefined) headers.push('accept-ranges', 'bytes')
}

function isMultiRange (range: string | undefined): boolean {
  return range !== undefined && range.includes(',')
}

/**
 * The meta of a complete fill, as if stored (for answers that need the whole body), with the
 * initiating client's Set-Cookie (`extraCookie`, kept out of the shared head) for its answer.
 */
function metaOfFill (fill: SharedFill, head: FillHead, extraCookie?: string | readonly string[]): ObjectMeta {
  return {
    key: fill.key,
    status: head.status,
    headers: extraCookie === undefined ? head.headers : { ...head.headers, 'set-cookie': extraCookie },
    bodyBytes: fill.length,
    requestTimeMs: head.requestTimeMs,
    responseTimeMs: head.responseTimeMs,
    initialAgeSeconds: initialAgeSeconds(head),
    freshnessLifetimeSeconds: 0,
  }
}

/**
 * Age of a response fresh from upstream: the estimate the cache keeps for it (RFC 9111 §4.2.3:
 * Date and Age as received), rendered as for a stored object, so a miss and the hits after it agree.
 */
function ageAtHead (head: FillHead, nowMs: number): string {
  return ageHeaderValue({ initialAgeSeconds: initialAgeSeconds(head), responseTimeMs: head.responseTimeMs }, nowMs)
}

/**
 * The fill failed before this response was complete: an error response if nothing went out yet
 * (saying what this one was, `status`), else an abort (a reset, for a close-delimited body).
 */
function failResponse (ex: Exchange, err: Error | undefined, status: StatusFields, closeDelimitedBody = false): void {
  ex.error ??= err as CdnError | undefined
  if (!ex.res.headersSent && err !== undefined && 'status' in err) {
    // the failed fill stored nothing, whatever its head promised
    const { stored: _stored, ...failed } = status
    deliverError(ex, err as CdnError, failed)
    return
  }
  if (closeDelimitedBody) resetConnection(ex.res, err)
  else ex.res.destroy(err)
}

/** Streams an upstream response straight to the client (nothing stored). */
export function deliverPass (ex: Exchange, upstream: UpstreamResponse, status: StatusFields, onBodyError: (err: Error) => void): void {
  if (ex.transform !== undefined && upstream.status === 200 && ex.req.method === 'GET' && upstream.headers['content-range'] === undefined) {
    passRewritten(ex, upstream, status, onBodyError)
    return
  }
  passAsIs(ex, upstream, status, onBodyError, [])
}

/** Most bytes of a pass-through body read whole for a rewrite: a playlist is far smaller. */
const MAX_PASS_REWRITE_BYTES = 4 * 1024 * 1024

/**
 * A pass-through 200 the node would rewrite if it were stored (a playlist: tokens on its
 * URIs, content steering), e.g. one the origin marks no-store: read whole, rewritten, sent
 * with its own length. A body past MAX_PASS_REWRITE_BYTES goes as it came.
 */
function passRewritten (ex: Exchange, upstream: UpstreamResponse, status: StatusFields, onBodyError: (err: Error) => void): void {
  const body = upstream.body
  const chunks: Buffer[] = []
  let bytes = 0
  const stop = (): void => {
    body.off('data', onData)
    body.off('end', onEnd)
    body.off('error', onError)
  }
  const onData = (chunk: Buffer): void => {
    chunks.push(chunk)
    bytes += chunk.length
    if (bytes <= MAX_PASS_REWRITE_BYTES) return
    stop()
    body.pause()
    passAsIs(ex, upstream, status, onBodyError, chunks)
  }
  const onEnd = (): void => {
    stop()
    const whole = Buffer.concat(chunks, bytes)
    const rewritten = ex.transform!(whole)
    const stored = toStoredHeaders(upstream.headers)
    const headers = rewritten === undefined ? buildHeaders(ex, stored, status) : rewrittenFields(ex, stored, status)
    const age = upstream.headers.age
    if (typeof age === 'string') headers.push('age', age)
    const out = rewritten ?? whole
    // a close-delimited body stays one: read whole, it is still not known to be complete
    if (isCloseDelimited(upstream.status, upstream.headers)) closeDelimited(ex.res, headers)
    else headers.push('content-length', String(out.length))
    ex.status = 200
    ex.bytes += out.length
    ex.res.writeHead(200, headers)
    ex.res.end(out)
  }
  const onError = (err: Error): void => {
    stop()
    onBodyError(err)
    // nothing went out yet: an error answer, not a cut connection
    deliverError(ex, ex.error ?? new CdnError('CDN_ERR_UPSTREAM_TRUNCATED', err.message), status)
  }
  body.on('data', onData)
  body.once('end', onEnd)
  body.once('error', onError)
}

/** Streams an upstream answer to the client as it comes, after `prefix` (bytes already read from it). */
function passAsIs (ex: Exchange, upstream: UpstreamResponse, status: StatusFields, onBodyError: (err: Error) => void, prefix: readonly Buffer[]): void {
  const stored = toStoredHeaders(upstream.headers)
  const headers = buildHeaders(ex, stored, status)
  for (const name of ['age', 'content-length', 'content-range'] as const) {
    const value = upstream.headers[name]
    if (typeof value === 'string') headers.push(name, value)
  }
  ex.status = upstream.status
  const res = ex.res
  const unframed = ex.req.method !== 'HEAD' && isCloseDelimited(upstream.status, upstream.headers)
  if (unframed) closeDelimited(res, headers)
  res.writeHead(upstream.status, headers)
  for (const chunk of prefix) {
    ex.bytes += chunk.length
    res.write(chunk)
  }
  upstream.body.on('data', (chunk: Buffer) => { ex.bytes += chunk.length })
  let failed = false
  const fail = (err: Error): void => {
    if (failed) return
    failed = true
    if (!ex.req.destroyed && !res.writableFinished) onBodyError(err)
    if (res.destroyed) return
    if (unframed) resetConnection(res, err)
    else res.destroy(err)
  }
  if (unframed) {
    // Ahead of pipeline's listeners: it would end the response with a clean close, which for a
    // close-delimited body is its end.
    upstream.body.once('error', fail)
    upstream.body.once('close', () => {
      if (!upstream.body.readableEnded) fail(new CdnError('CDN_ERR_UPSTREAM_TRUNCATED', `Body from upstream ${upstream.upstream} was cut off`))
    })
  }
  pipeline(upstream.body, res, (err) => {
    if (err !== undefined && err !== null) fail(err)
  })
}

/** Answers with a status and a short text body, generated here (not cacheable). */
export function deliverStatus (ex: Exchange, code: number, body: string, status: StatusFields, retryAfterSeconds?: number): void {
  ex.status = code
  const headers = [
    'content-type', 'text/plain; charset=utf-8',
    'content-length', String(Buffer.byteLength(body)),
    'cache-control', 'no-store',
    'cache-status', formatCacheStatus({ cache: ex.cacheName, ...status }),
    'via', ex.via,
    ...CORS_HEADERS,
  ]
  if (retryAfterSeconds !== undefined) headers.push('retry-after', String(retryAfterSeconds))
  ex.res.writeHead(code, headers)
  ex.res.end(ex.req.method === 'HEAD' ? undefined : body)
}

/** Answers with an error status, or aborts the response if its head is already out. */
export function deliverError (ex: Exchange, error: CdnError, status: StatusFields): void {
  ex.error = error
  if (ex.res.headersSent) {
    ex.res.destroy(error)
    return
  }
  deliverStatus(ex, error.status, `${error.status} ${error.code}: ${error.message}\n`, { ...status, detail: error.code }, error.retryAfterSeconds)
}

function header (value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value
}

function headerValue (value: string | readonly string[] | undefined): string | undefined {
  return typeof value === 'string' ? value : value?.join(', ')
}
