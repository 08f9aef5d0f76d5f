/**
 * The demo origin: serves the committed HLS titles, a looping live stream per title and
 * synthetic objects of any size, all from memory, with scriptable faults and per-path
 * request counters. Used by tests (in-process), `npm start` and benchmarks (admin API).
 *
 * Request phases: count → fault lookup → delay → method check → fault status → resolve →
 * conditional (304) → range (206/416) → write body (throttle / truncate).
 * See bench/origin/README.md for routes, query knobs and the admin API.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { writeBody } from './body-writer.ts'
import { parseByteRange } from './byte-range.ts'
import { FaultTable, validateFault, type Fault } from './fault-table.ts'
import { DEFAULT_LIVE_WINDOW_SEGMENTS, LiveChannel, type LiveLookup } from './live-channel.ts'
import { loadMediaLibrary, type MediaLibrary } from './media-library.ts'
import type { OriginObject } from './origin-object.ts'
import { DEFAULT_SYNTHETIC_CACHE_MAX_BYTES, SyntheticStore } from './synthetic-body.ts'

export { syntheticBody } from './synthetic-body.ts'
export type { Fault } from './fault-table.ts'

/** Options of {@link startOrigin}. */
export interface OriginOptions {
  /** Interface to listen on (default `127.0.0.1`). */
  readonly host?: string
  /** TCP port, 0 for any free port (default 0). */
  readonly port?: number
  /** Directory holding `vod/<title>/...` (default: the committed bench/origin/media). */
  readonly mediaDir?: string
  /** Segments per live media playlist (default 6). */
  readonly liveWindowSegments?: number
  /** Called once per content request with a short access-log line. */
  readonly log?: (line: string) => void
  /** Clock for the live streams, in epoch ms (default Date.now). */
  readonly now?: () => number
  /** When live media sequence 0 started (default: now() at start). Give several origins the same value to make them agree. */
  readonly liveStartMs?: number
  /** Memory budget for built synthetic bodies (default 256 MiB). */
  readonly syntheticCacheMaxBytes?: number
}

/** A running origin. Counters cover content paths only (never `/_origin/`), keyed by path without query. */
export interface Origin {
  /** Base URL, e.g. `http://127.0.0.1:40123`. */
  readonly url: string
  readonly port: number
  close (): Promise<void>
  count (path: string): number
  totalRequests (): number
  /** Zeroes counters and restarts the in-flight high-water mark. */
  resetCounts (): void
  /** Installs a fault for an exact path, or for a prefix when the key ends with `*`. */
  setFault (pathOrPrefix: string, fault: Fault): void
  clearFaults (): void
  inFlight (): number
  maxInFlight (): number
}

const DEFAULT_MEDIA_DIR = fileURLToPath(new URL('./media/', import.meta.url))
const ADMIN_PREFIX = '/_origin/'
const MAX_ADMIN_BODY_BYTES = 64 * 1024

/** Loads the media into memory and starts listening; resolves once the port is bound. */
export async function startOrigin (opts: OriginOptions = {}): Promise<Origin> {
  const options = validateOptions(opts)
  const library = await loadMediaLibrary(options.mediaDir)
  const server = new OriginServer(library, options)
  await server.listen(options.host, options.port)
  return server
}

type ResolvedOptions = Required<Omit<OriginOptions, 'log' | 'liveStartMs'>> & {
  readonly log: OriginOptions['log'] | undefined
  readonly liveStartMs: number | undefined
}

function validateOptions (opts: OriginOptions): ResolvedOptions {
  const { host = '127.0.0.1', port = 0, mediaDir = DEFAULT_MEDIA_DIR, liveWindowSegments = DEFAULT_LIVE_WINDOW_SEGMENTS } = opts
  const { now = Date.now, syntheticCacheMaxBytes = DEFAULT_SYNTHETIC_CACHE_MAX_BYTES, log, liveStartMs } = opts
  if (typeof host !== 'string' || host === '') throw new TypeError(`Expected options.host to be a non-empty string, got ${String(host)}`)
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new TypeError(`Expected options.port to be an integer between 0 and 65535, got ${String(port)}`)
  if (typeof mediaDir !== 'string' || mediaDir === '') throw new TypeError(`Expected options.mediaDir to be a non-empty string, got ${String(mediaDir)}`)
  if (!Number.isInteger(liveWindowSegments) || liveWindowSegments < 1) {
    throw new TypeError(`Expected options.liveWindowSegments to be a positive integer, got ${String(liveWindowSegments)}`)
  }
  if (log !== undefined && typeof log !== 'function') throw new TypeError(`Expected options.log to be a function, got ${String(log)}`)
  if (typeof now !== 'function') throw new TypeError(`Expected options.now to be a function, got ${String(now)}`)
  if (liveStartMs !== undefined && !Number.isFinite(liveStartMs)) throw new TypeError(`Expected options.liveStartMs to be a finite number, got ${String(liveStartMs)}`)
  if (!Number.isInteger(syntheticCacheMaxBytes) || syntheticCacheMaxBytes < 0) {
    throw new TypeError(`Expected options.syntheticCacheMaxBytes to be a non-negative integer, got ${String(syntheticCacheMaxBytes)}`)
  }
  return { host, port, mediaDir, liveWindowSegments, now, syntheticCacheMaxBytes, log, liveStartMs }
}

class OriginServer implements Origin {
  readonly #server: Server
  readonly #library: MediaLibrary
  readonly #live = new Map<string, LiveChannel>()
  readonly #synthetic: SyntheticStore
  readonly #faults = new FaultTable()
  readonly #counts = new Map<string, number>()
  readonly #active = new Set<AbortController>()
  readonly #log: ((line: string) => void) | undefined
  #closed: Promise<void> | undefined
  #total = 0
  #inFlight = 0
  #maxInFlight = 0
  #url = ''
  #port = 0

  constructor (library: MediaLibrary, options: ResolvedOptions) {
    this.#library = library
    this.#log = options.log
    this.#synthetic = new SyntheticStore(options.syntheticCacheMaxBytes)
    const startMs = options.liveStartMs ?? options.now()
    for (const title of library.titles.values()) {
      this.#live.set(title.name, new LiveChannel({ title, windowSegments: options.liveWindowSegments, startMs, now: options.now }))
    }
    this.#server = createServer((req, res) => this.#onRequest(req, res))
  }

  get url (): string { return this.#url }
  get port (): number { return this.#port }

  async listen (host: string, port: number): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.#server.once('error', reject)
      this.#server.listen(port, host, () => {
        this.#server.off('error', reject)
        resolve()
      })
    })
    const address = this.#server.address()
    this.#port = typeof address === 'object' && address !== null ? address.port : port
    const urlHost = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host
    this.#url = `http://${urlHost}:${this.#port}`
  }

  close (): Promise<void> {
    this.#closed ??= new Promise((resolve) => {
      for (const request of this.#active) request.abort()
      this.#server.close(() => resolve())
      this.#server.closeAllConnections()
    })
    return this.#closed
  }

  count (path: string): number { return this.#counts.get(path) ?? 0 }
  totalRequests (): number { return this.#total }
  inFlight (): number { return this.#inFlight }
  maxInFlight (): number { return this.#maxInFlight }
  clearFaults (): void { this.#faults.clear() }

  resetCounts (): void {
    this.#counts.clear()
    this.#total = 0
    this.#maxInFlight = this.#inFlight
  }

  setFault (pathOrPrefix: string, fault: Fault): void {
    this.#faults.set(pathOrPrefix, validateFault(fault))
  }

  #onRequest (req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://origin.invalid')
    if (url.pathname.startsWith(ADMIN_PREFIX)) {
      this.#admin(req, res, url).catch((err: unknown) => sendText(res, 500, `${String(err)}\n`))
      return
    }
    const startedAt = performance.now()
    this.#counts.set(url.pathname, this.count(url.pathname) + 1)
    this.#total++
    this.#inFlight++
    this.#maxInFlight = Math.max(this.#maxInFlight, this.#inFlight)
    // One controller per request, aborted by the client leaving or by close(). Combining with
    // AbortSignal.any would be shorter, but on Node 20 it cut requests/s by about a third here.
    const aborted = new AbortController()
    this.#active.add(aborted)
    res.once('close', () => {
      this.#inFlight--
      this.#active.delete(aborted)
      aborted.abort()
      this.#log?.(`${req.method ?? '-'} ${req.url ?? '-'} ${res.statusCode}${res.writableFinished ? '' : ' aborted'} ${Math.round(performance.now() - startedAt)}ms`)
    })
    this.#serve(req, res, url, aborted.signal).catch((err: unknown) => {
      if (res.headersSent) res.destroy()
      else sendText(res, 500, `${String(err)}\n`)
    })
  }

  async #serve (req: IncomingMessage, res: ServerResponse, url: URL, signal: AbortSignal): Promise<void> {
    let fault: Fault | undefined
    try {
      fault = mergeFaults(this.#faults.take(url.pathname), queryFault(url.searchParams))
    } catch (err) {
      sendText(res, 400, `${(err as Error).message}\n`)
      return
    }
    if (fault?.delayMs !== undefined) await sleep(fault.delayMs, undefined, { signal }).catch(() => {})
    if (res.destroyed || signal.aborted) return
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      sendText(res, 405, 'Method Not Allowed\n', { allow: 'GET, HEAD', ...fault?.headers })
      return
    }
    if (fault?.status !== undefined) {
      await sendFaultStatus(req, res, fault, signal)
      return
    }
    const found = this.#resolve(url.pathname)
    if (found.kind !== 'object') {
      const body = found.kind === 'not-published' ? 'Not Found (segment not yet published)\n' : 'Not Found\n'
      sendText(res, 404, body, { ...fault?.headers })
      return
    }
    await serveObject(req, res, found.object, fault, signal)
  }

  #resolve (path: string): LiveLookup {
    if (path.startsWith('/vod/')) {
      const object = this.#library.objects.get(path)
      return object === undefined ? { kind: 'not-found' } : { kind: 'object', object }
    }
    if (path.startsWith('/live/')) {
      const slash = path.indexOf('/', 6)
      const channel = slash < 0 ? undefined : this.#live.get(path.slice(6, slash))
      return channel === undefined ? { kind: 'not-found' } : channel.lookup(path.slice(slash + 1))
    }
    if (path.startsWith('/synthetic/')) {
      const object = this.#synthetic.lookup(path)
      return object === undefined ? { kind: 'not-found' } : { kind: 'object', object }
    }
    return { kind: 'not-found' }
  }

  async #admin (req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const route = `${req.method ?? ''} ${url.pathname.slice(ADMIN_PREFIX.length)}`
    switch (route) {
      case 'GET counts':
        return sendJson(res, 200, Object.fromEntries(this.#counts))
      case 'GET stats':
        return sendJson(res, 200, { totalRequests: this.#total, inFlight: this.#inFlight, maxInFlight: this.#maxInFlight, faults: this.#faults.size })
      case 'POST reset':
        this.resetCounts()
        return sendEmpty(res)
      case 'DELETE fault': {
        const path = url.searchParams.get('path')
        this.#faults.clear(path ?? undefined)
        return sendEmpty(res)
      }
      case 'POST fault':
        return this.#adminSetFault(req, res)
      default:
        return sendJson(res, 404, { error: `Unknown admin route ${route}` })
    }
  }

  async #adminSetFault (req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      const { path, ...fault } = JSON.parse(await readBody(req, MAX_ADMIN_BODY_BYTES)) as Record<string, unknown>
      if (typeof path !== 'string') throw new TypeError(`Expected path to be a string, got ${String(path)}`)
      this.#faults.set(path, validateFault(fault))
      sendEmpty(res)
    } catch (err) {
      sendJson(res, 400, { error: (err as Error).message })
    }
  }
}

/** Serves an object with conditional and range handling, then the body as the fault allows. */
async function serveObject (req: IncomingMessage, res: ServerResponse, object: OriginObject, fault: Fault | undefined, signal: AbortSignal): Promise<void> {
  const headers: Record<string, string> = {
    'content-type': object.contentType,
    'cache-control': object.cacheControl,
    etag: object.etag,
    'last-modified': new Date(object.lastModifiedMs).toUTCString(),
    'accept-ranges': 'bytes',
    ...fault?.headers,
  }
  if (isNotModified(req, headers)) {
    res.writeHead(304, pick(headers, ['cache-control', 'etag', 'last-modified']))
    res.end()
    return
  }
  const range = req.method === 'GET' && rangeApplies(req, headers) ? parseByteRange(req.headers.range, object.size) : { kind: 'ignore' } as const
  if (range.kind === 'unsatisfiable') {
    sendText(res, 416, 'Range Not Satisfiable\n', { ...pick(headers, ['cache-control', 'etag', 'last-modified', 'accept-ranges']), 'content-range': `bytes */${object.size}` })
    return
  }
  const [start, end, status] = range.kind === 'range' ? [range.start, range.end, 206] : [0, object.size - 1, 200]
  if (status === 206) headers['content-range'] = `bytes ${start}-${end}/${object.size}`
  setContentLength(headers, end - start + 1)
  res.writeHead(status, headers)
  if (req.method === 'HEAD') {
    res.end()
    return
  }
  const body = object.body()
  const slice = start === 0 && end === body.length - 1 ? body : body.subarray(start, end + 1)
  await writeBody(res, slice, { bytesPerSecond: fault?.bytesPerSecond, truncateAtBytes: fault?.truncateAtBytes, signal })
}

/** @see RFC 9110 §13.1.2 (If-None-Match, weak comparison), §13.1.3 (If-Modified-Since), §13.2.2 (precedence) */
function isNotModified (req: IncomingMessage, headers: Record<string, string>): boolean {
  const ifNoneMatch = req.headers['if-none-match']
  if (ifNoneMatch !== undefined) {
    if (ifNoneMatch.trim() === '*') return true
    const etag = weakForm(headers['etag'] ?? '')
    return ifNoneMatch.split(',').some((tag) => weakForm(tag.trim()) === etag)
  }
  const since = Date.parse(req.headers['if-modified-since'] ?? '')
  const modified = Date.parse(headers['last-modified'] ?? '')
  return !Number.isNaN(since) && !Number.isNaN(modified) && modified <= since
}

/** If-Range needs a strong match on the ETag, or the exact Last-Modified date (RFC 9110 §13.1.5). */
function rangeApplies (req: IncomingMessage, headers: Record<string, string>): boolean {
  const ifRange = req.headers['if-range']
  if (ifRange === undefined) return true
  if (typeof ifRange !== 'string') return false
  if (ifRange.startsWith('W/')) return false
  if (ifRange.startsWith('"')) return ifRange === headers['etag']
  return ifRange === headers['last-modified']
}

function weakForm (tag: string): string {
  return tag.startsWith('W/') ? tag.slice(2) : tag
}

async function sendFaultStatus (req: IncomingMessage, res: ServerResponse, fault: Fault, signal: AbortSignal): Promise<void> {
  const status = fault.status ?? 500
  const bodiless = status === 204 || status === 304 // RFC 9110 §15.3.5, §15.4.5: no content, no length
  const body = Buffer.from(bodiless || req.method === 'HEAD' ? '' : `${status} injected by origin fault\n`)
  const headers: Record<string, string> = { 'content-type': 'text/plain; charset=utf-8', ...fault.headers }
  if (!bodiless) setContentLength(headers, body.length)
  res.writeHead(status, headers)
  await writeBody(res, body, { bytesPerSecond: fault.bytesPerSecond, truncateAtBytes: fault.truncateAtBytes, signal })
}

/**
 * Query knobs for quick manual experiments: `?delay=MS&rate=BYTES_PER_SEC&status=CODE&truncate=BYTES&cc=VALUE`.
 * Throws TypeError (answered 400) on a bad value.
 */
function queryFault (params: URLSearchParams): Fault | undefined {
  const raw: Record<string, unknown> = {}
  const numeric = { delay: 'delayMs', rate: 'bytesPerSecond', status: 'status', truncate: 'truncateAtBytes' } as const
  for (const [param, field] of Object.entries(numeric)) {
    const value = params.get(param)
    if (value !== null) raw[field] = value.trim() === '' ? Number.NaN : Number(value)
  }
  const cacheControl = params.get('cc')
  if (cacheControl !== null) raw['headers'] = { 'cache-control': cacheControl }
  return Object.keys(raw).length === 0 ? undefined : validateFault(raw, 'query')
}

function mergeFaults (base: Fault | undefined, override: Fault | undefined): Fault | undefined {
  if (base === undefined || override === undefined) return base ?? override
  const merged: Fault = { ...base, ...override }
  return base.headers !== undefined && override.headers !== undefined ? { ...merged, headers: { ...base.headers, ...override.headers } } : merged
}

// A fault may switch the framing to chunked (headers: {'transfer-encoding': 'chunked'}); a
// response must not carry both (RFC 9112 §6.3), so the declared length then goes.
function setContentLength (headers: Record<string, string>, length: number): void {
  if (headers['transfer-encoding'] !== undefined) return
  headers['content-length'] ??= String(length)
}

function pick (headers: Record<string, string>, names: readonly string[]): Record<string, string> {
  const picked: Record<string, string> = {}
  for (const name of names) {
    const value = headers[name]
    if (value !== undefined) picked[name] = value
  }
  return picked
}

function sendText (res: ServerResponse, status: number, text: string, headers: Record<string, string> = {}): void {
  const body = Buffer.from(text)
  const all: Record<string, string> = { 'content-type': 'text/plain; charset=utf-8', ...headers }
  setContentLength(all, body.length)
  res.writeHead(status, all)
  res.end(body)
}

function sendJson (res: ServerResponse, status: number, value: unknown): void {
  const body = Buffer.from(JSON.stringify(value))
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': String(body.length), 'cache-control': 'no-store' })
  res.end(body)
}

function sendEmpty (res: ServerResponse): void {
  res.writeHead(204, { 'cache-control': 'no-store' })
  res.end()
}

async function readBody (req: IncomingMessage, maxBytes: number): Promise<string> {
  const chunks: Buffer[] = []
  let bytes = 0
  for await (const chunk of req) {
    bytes += (chunk as Buffer).length
    if (bytes > maxBytes) throw new TypeError(`Expected a request body of at most ${maxBytes} bytes`)
    chunks.push(chunk as Buffer)
  }
  return Buffer.concat(chunks).toString('utf8')
}
