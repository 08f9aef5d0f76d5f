/**
 * Writing responses: from a stored object (hit), from a shared fill as its bytes
 * arrive, from an upstream response passed through, or an error. Handles Range
 * (RFC 9110 §14), HEAD, Age and Cache-Status. A response that cannot be completed is
 * destroyed (the client sees an aborted transfer), never ended short.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { pipeline } from 'node:stream'
import type { CdnError } from '../../lib/errors.ts'
import { appendCacheStatus, formatCacheStatus, type CacheStatusEntry } from '../../lib/http/cache-status.ts'
import { toStoredHeaders } from '../../lib/http/headers.ts'
import { formatContentRange, formatUnsatisfiedRange, ifRangeMatches, parseRangeHeader, resolveRanges } from '../../lib/http/range.ts'
import { ageHeaderValue, ttlSeconds } from '../cache/freshness.ts'
import { FillCursor, type FillHead, type SharedFill } from '../cache/shared-fill.ts'
import type { ObjectMeta, StoredHeaders, StoredObject } from '../cache/types.ts'
import type { CachePhase } from './cache-proxy.ts'
import type { UpstreamResponse } from './upstream.ts'

/** One client request as the pipeline tracks it from accept to log. */
export interface Exchange {
  readonly id: number
  readonly req: IncomingMessage
  readonly res: ServerResponse
  readonly startMs: number
  /** Request target as path + query. */
  readonly path: string
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
  /** Client address, taken at accept (the socket may be gone when the log line is written). */
  readonly client: string | undefined
  readonly cacheName: string
  readonly now: () => number
}

type StatusFields = Omit<CacheStatusEntry, 'cache'>

/** Headers we compute per response and never copy from the stored set. */
const COMPUTED = new Set(['age', 'cache-status', 'content-length', 'content-range'])

type RangeDecision =
  | { readonly kind: 'full' }
  | { readonly kind: 'partial', readonly start: number, readonly end: number }
  | { readonly kind: 'unsatisfiable' }

/** Decides how to answer a request's Range header for a 200 body of `size` bytes. */
function decideRange (req: IncomingMessage, status: number, headers: StoredHeaders, size: number): RangeDecision {
  const range = req.headers.range
  if (range === undefined || status !== 200) return { kind: 'full' }
  const specs = parseRangeHeader(range)
  if (specs === null) return { kind: 'full' }
  if (!ifRangeMatches(header(req.headers['if-range']), headerValue(headers.etag), headerValue(headers['last-modified']))) {
    return { kind: 'full' }
  }
  const resolved = resolveRanges(specs, size)
  if (resolved.kind === 'unsatisfiable') return { kind: 'unsatisfiable' }
  // Several ranges become multipart/byteranges in issue 3; until then a 200 is a valid answer.
  if (resolved.kind === 'ignore' || resolved.ranges.length !== 1) return { kind: 'full' }
  const only = resolved.ranges[0]!
  return { kind: 'partial', start: only.start, end: only.end }
}

/** Flat [name, value, ...] list of the stored headers plus ours (writeHead takes it as is). */
function buildHeaders (ex: Exchange, stored: StoredHeaders, status: StatusFields): string[] {
  const out: string[] = []
  for (const name in stored) {
    if (COMPUTED.has(name)) continue
    const value = stored[name]!
    if (typeof value === 'string') out.push(name, value)
    else for (const v of value) out.push(name, v)
  }
  out.push('cache-status', appendCacheStatus(headerValue(stored['cache-status']), formatCacheStatus({ cache: ex.cacheName, ...status })))
  return out
}

function write416 (ex: Exchange, size: number, status: StatusFields): void {
  ex.status = 416
  ex.res.writeHead(416, [
    'content-range', formatUnsatisfiedRange(size),
    'content-type', 'text/plain; charset=utf-8',
    'content-length', '22',
    'cache-status', formatCacheStatus({ cache: ex.cacheName, ...status }),
  ])
  ex.res.end('Range Not Satisfiable\n')
}

/** Answers from a stored object (memory Buffer or disk stream). */
export function deliverObject (ex: Exchange, object: StoredObject, status: StatusFields): void {
  const meta: ObjectMeta = object.meta
  const now = ex.now()
  const fields: StatusFields = { ...status, ttl: Math.floor(ttlSeconds(meta, now)) }
  const size = meta.bodyBytes
  const range = decideRange(ex.req, meta.status, meta.headers, size)
  if (range.kind === 'unsatisfiable') {
    write416(ex, size, fields)
    return
  }
  const headers = buildHeaders(ex, meta.headers, fields)
  headers.push('age', ageHeaderValue(meta, now))
  let start = 0
  let end = size - 1
  let code = meta.status
  if (range.kind === 'partial') {
    ;({ start, end } = range)
    code = 206
    headers.push('content-range', formatContentRange(start, end, size))
  }
  if (meta.status === 200 && meta.headers['accept-ranges'] === undefined) headers.push('accept-ranges', 'bytes')
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
  const stream = object.createReadStream(start, end)
  stream.on('data', (chunk: Buffer) => { ex.bytes += chunk.length })
  pipeline(stream, res, (err) => {
    if (err !== undefined && err !== null && !res.destroyed) res.destroy(err)
  })
}

/**
 * Answers from a fill: the head now, then each byte as soon as the fill has it.
 * Each reader has its own backpressure (it waits for its socket's 'drain'); the fill
 * never waits for it. If the fill fails, the response is destroyed.
 */
export function deliverFromFill (ex: Exchange, fill: SharedFill, head: FillHead, status: StatusFields): void {
  const total = fill.totalBytes
  if (ex.req.headers.range !== undefined && head.status === 200 && total === undefined && ex.req.method !== 'HEAD') {
    // A range of a body of unknown length: its offsets mean nothing until the fill ends.
    void fill.settled().then(() => {
      if (fill.state === 'failed') failResponse(ex, fill.error)
      else deliverFromFill(ex, fill, head, status)
    })
    return
  }
  const range = total === undefined ? { kind: 'full' as const } : decideRange(ex.req, head.status, head.headers, total)
  if (range.kind === 'unsatisfiable') {
    write416(ex, total ?? 0, status)
    return
  }
  const headers = buildHeaders(ex, head.headers, status)
  headers.push('age', String(ageAtHead(head, ex.now())))
  let start = 0
  let end = total === undefined ? Number.MAX_SAFE_INTEGER : total - 1
  let code = head.status
  if (range.kind === 'partial') {
    ;({ start, end } = range)
    code = 206
    headers.push('content-range', formatContentRange(start, end, total!))
  }
  if (head.status === 200 && head.headers['accept-ranges'] === undefined && total !== undefined) headers.push('accept-ranges', 'bytes')
  if (total !== undefined) headers.push('content-length', String(Math.max(end - start + 1, 0)))
  ex.status = code
  const res = ex.res
  res.writeHead(code, headers)
  if (ex.req.method === 'HEAD' || (total !== undefined && end < start) || NO_BODY.has(head.status)) {
    res.end()
    return
  }
  const cursor = new FillCursor(fill, start, end)
  const pump = (): void => {
    if (res.destroyed) return
    for (let chunk = cursor.next(); chunk !== undefined; chunk = cursor.next()) {
      ex.bytes += chunk.length
      if (!res.write(chunk)) {
        res.once('drain', pump)
        return
      }
    }
    if (cursor.done || (fill.state === 'complete' && cursor.position >= fill.length)) {
      res.end()
      return
    }
    if (fill.state === 'failed') {
      failResponse(ex, fill.error)
      return
    }
    fill.onProgress(pump)
  }
  pump()
}

const NO_BODY = new Set([204, 304])

/** Age of a response fresh from upstream (RFC 9111 §4.2.3, with no time resident yet beyond the fill). */
function ageAtHead (head: FillHead, nowMs: number): number {
  const ageHeader = Number.parseInt(headerValue(head.headers.age) ?? '0', 10)
  const apparent = Math.max(0, Number.isFinite(ageHeader) ? ageHeader : 0)
  return Math.floor(apparent + Math.max(0, nowMs - head.requestTimeMs) / 1000)
}

function failResponse (ex: Exchange, err: Error | undefined): void {
  ex.error ??= err as CdnError | undefined
  if (!ex.res.headersSent && err !== undefined && 'status' in err) {
    deliverError(ex, err as CdnError, { fwd: 'uri-miss' })
    return
  }
  ex.res.destroy(err)
}

/** Streams an upstream response straight to the client (nothing stored). */
export function deliverPass (ex: Exchange, upstream: UpstreamResponse, status: StatusFields, onBodyError: (err: Error) => void): void {
  const stored = toStoredHeaders(upstream.headers)
  const headers = buildHeaders(ex, stored, status)
  for (const name of ['age', 'content-length', 'content-range'] as const) {
    const value = upstream.headers[name]
    if (typeof value === 'string') headers.push(name, value)
  }
  ex.status = upstream.status
  const res = ex.res
  res.writeHead(upstream.status, headers)
  upstream.body.on('data', (chunk: Buffer) => { ex.bytes += chunk.length })
  pipeline(upstream.body, res, (err) => {
    if (err === undefined || err === null) return
    if (!ex.req.destroyed && !res.writableFinished) onBodyError(err)
    if (!res.destroyed) res.destroy(err)
  })
}

/** Answers with an error status, or aborts the response if its head is already out. */
export function deliverError (ex: Exchange, error: CdnError, status: StatusFields): void {
  ex.error = error
  const res = ex.res
  if (res.headersSent) {
    res.destroy(error)
    return
  }
  const body = `${error.status} ${error.code}: ${error.message}\n`
  ex.status = error.status
  res.writeHead(error.status, [
    'content-type', 'text/plain; charset=utf-8',
    'content-length', String(Buffer.byteLength(body)),
    'cache-control', 'no-store',
    'cache-status', formatCacheStatus({ cache: ex.cacheName, ...status, detail: error.code }),
  ])
  res.end(ex.req.method === 'HEAD' ? undefined : body)
}

function header (value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value
}

function headerValue (value: string | readonly string[] | undefined): string | undefined {
  return typeof value === 'string' ? value : value?.join(', ')
}
