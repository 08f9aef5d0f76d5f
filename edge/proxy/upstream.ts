/**
 * Upstream HTTP (the only undici import). An `Upstream` answers a request with a
 * response head and a body stream; `HttpUpstream` talks to one origin through a
 * keep-alive undici Pool. The shield tier (issue 4) adds an upstream *chain* that
 * implements the same interface over several upstreams, so the proxy pipeline never
 * knows whether it talks to a shield or an origin.
 */
import type { Socket } from 'node:net'
import type { Duplex, Readable } from 'node:stream'
import { Client, Pool, buildConnector, errors as undiciErrors, type Dispatcher } from 'undici'
import { CdnError, isCdnError } from '../../lib/errors.ts'

export type UpstreamHeaders = Record<string, string | string[] | undefined>

export interface UpstreamRequest {
  readonly method: string
  /** Path and query, starting with `/`. */
  readonly path: string
  readonly headers: UpstreamHeaders
  readonly body?: Readable | null
  readonly signal?: AbortSignal
  /** The cache key the request fills, when there is one: chains pick a shield by it (defaults to `path`). */
  readonly key?: string
}

export interface UpstreamResponse {
  readonly status: number
  readonly headers: UpstreamHeaders
  /** The body; a short or stalled body ends in a stream error (map it with toUpstreamError). */
  readonly body: Readable
  /** Name of the upstream that answered (for logs, metrics, Cache-Status). */
  readonly upstream: string
}

/** Health of one member of an upstream (a shield of a chain, an origin of a pool), for metrics. */
export interface UpstreamHealth {
  readonly name: string
  /** Circuit breaker: closed (in use), half-open (on trial) or open (skipped). */
  readonly state: 'closed' | 'open' | 'half-open'
  /** Marked down by its active probe. */
  readonly probeDown: boolean
  /** Requests in flight and waiting in line (origin pools only). */
  readonly active?: number
  readonly queued?: number
  /** Requests refused so far because the queue was full or waited too long (origin pools only). */
  readonly rejectedQueueFull?: number
  readonly rejectedQueueTimeout?: number
}

/** Anything that can answer an HTTP request for the cache: an origin, a shield, a chain of them. */
export interface Upstream {
  readonly name: string
  request (req: UpstreamRequest): Promise<UpstreamResponse>
  /** Per-member health, when the upstream has members (read at scrape time). */
  health? (): readonly UpstreamHealth[]
  close (): Promise<void>
}

export interface HttpUpstreamOptions {
  /** Base URL, e.g. `http://origin:8000` or `https://origin/prefix` (the prefix is prepended to request paths). */
  readonly url: string
  /** Name in logs and metrics (default: the URL's host). */
  readonly name?: string
  readonly connectTimeoutMs: number
  /** Time to the response head. */
  readonly firstByteTimeoutMs: number
  /** Longest gap between body bytes. */
  readonly idleTimeoutMs: number
  readonly connections: number
  readonly keepAliveTimeoutMs: number
}

/** One origin or shield, over a keep-alive connection pool. */
export class HttpUpstream implements Upstream {
  readonly name: string
  readonly #pool: Pool
  readonly #prefix: string
  readonly #host: string

  constructor (options: HttpUpstreamOptions) {
    let url: URL
    try {
      url = new URL(options.url)
    } catch {
      throw new TypeError(`Expected options.url to be an http(s) URL, got ${JSON.stringify(options.url)}`)
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new TypeError(`Expected options.url to be an http(s) URL, got ${JSON.stringify(options.url)}`)
    }
    for (const field of ['connectTimeoutMs', 'firstByteTimeoutMs', 'idleTimeoutMs', 'connections', 'keepAliveTimeoutMs'] as const) {
      const value = options[field]
      if (!Number.isSafeInteger(value) || value < 1) {
        throw new TypeError(`Expected options.${field} to be a positive integer, got ${String(value)}`)
      }
    }
    this.name = options.name ?? url.host
    this.#host = url.host
    this.#prefix = url.pathname === '/' ? '' : url.pathname.replace(/\/$/, '')
    this.#pool = new Pool(url.origin, {
      connections: options.connections,
      pipelining: 1,
      keepAliveTimeout: options.keepAliveTimeoutMs,
      headersTimeout: options.firstByteTimeoutMs,
      bodyTimeout: options.idleTimeoutMs,
      connect: { timeout: options.connectTimeoutMs },
      factory: (origin, clientOptions) => new ResetAwareClient(origin, clientOptions as Client.Options, this.name),
    })
  }

  async request (req: UpstreamRequest): Promise<UpstreamResponse> {
    const headers = { ...req.headers, host: this.#host }
    let res
    try {
      res = await this.#pool.request({
        method: req.method as 'GET',
        path: this.#prefix + req.path,
        headers: headers as Record<string, string>,
        body: req.body ?? null,
        signal: req.signal,
      })
    } catch (err) {
      throw toUpstreamError(err, this.name)
    }
    const coding = unsupportedTransferCoding(res.headers['transfer-encoding'])
    if (coding !== undefined) {
      // undici undoes chunked only; with Transfer-Encoding (hop-by-hop) dropped, coded bytes would pass for the content.
      res.body.on('error', () => {}).destroy()
      throw new CdnError('CDN_ERR_UPSTREAM_PROTOCOL', `Response from upstream ${this.name} has a transfer coding we cannot decode: ${coding}`)
    }
    return { status: res.statusCode, headers: res.headers, body: res.body, upstream: this.name }
  }

  async close (): Promise<void> {
    await this.#pool.close()
  }
}

/**
 * A pool connection that fails, instead of ending, a close-delimited body (RFC 9112 §6.3
 * item 8) whose connection ended in an error: undici reads an ECONNRESET there as the
 * body's end (client-h1.js, onHttpSocketError), so a body cut by a reset would pass for a
 * whole one, and we would relay it with a clean close. Framed bodies never take that path.
 */
class ResetAwareClient extends Client {
  /** The current connection's socket: with pipelining 1 it carries the one request in flight. */
  readonly #connection: { socket: Socket | null }
  readonly #upstream: string

  constructor (origin: URL, options: Client.Options, upstream: string) {
    const connection: { socket: Socket | null } = { socket: null }
    const connect = typeof options.connect === 'function' ? options.connect : buildConnector(options.connect ?? {})
    super(origin, {
      ...options,
      connect: (connectOptions, callback) => connect(connectOptions, (...args) => {
        if (args[0] === null) connection.socket = args[1]
        callback(...args)
      }),
    })
    this.#connection = connection
    this.#upstream = upstream
  }

  override dispatch (options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    // Pool hands its clients handlers in undici's legacy shape (it unwraps the others first)
    if (typeof handler.onComplete !== 'function') return super.dispatch(options, handler)
    return super.dispatch(options, new ResetGuard(handler, this.#connection, this.#upstream))
  }
}

/**
 * Passes a request's events on to `handler`, except a completion reported while the socket
 * that carried the response is destroyed with an error. undici reports one only for a
 * close-delimited body cut by a reset, from inside that socket's 'error' event (a framed
 * body completes as its last byte is parsed, a clean close is no error): it becomes an error.
 */
class ResetGuard implements Dispatcher.DispatchHandler {
  readonly #handler: Dispatcher.DispatchHandler
  readonly #connection: { readonly socket: Socket | null }
  readonly #upstream: string

  constructor (handler: Dispatcher.DispatchHandler, connection: { readonly socket: Socket | null }, upstream: string) {
    this.#handler = handler
    this.#connection = connection
    this.#upstream = upstream
  }

  onConnect (abort: (err?: Error) => void): void {
    this.#handler.onConnect?.(abort)
  }

  onResponseStarted (): void {
    this.#handler.onResponseStarted?.()
  }

  onHeaders (statusCode: number, headers: Buffer[], resume: () => void, statusText: string): boolean {
    return this.#handler.onHeaders?.(statusCode, headers, resume, statusText) ?? true
  }

  onData (chunk: Buffer): boolean {
    return this.#handler.onData?.(chunk) ?? true
  }

  onComplete (trailers: string[] | null): void {
    const cause = this.#connection.socket?.errored
    if (cause == null) {
      this.#handler.onComplete?.(trailers)
      return
    }
    const reason = (cause as { code?: string }).code ?? cause.message
    this.#handler.onError?.(new CdnError('CDN_ERR_UPSTREAM_TRUNCATED',
      `Body from upstream ${this.#upstream} cut: it ends at the connection's close, and the connection ended in ${reason}`, { cause }))
  }

  onError (err: Error): void {
    this.#handler.onError?.(err)
  }

  onUpgrade (statusCode: number, headers: Buffer[] | string[] | null, socket: Duplex): void {
    this.#handler.onUpgrade?.(statusCode, headers, socket)
  }

  onBodySent (chunkSize: number, totalBytesSent: number): void {
    this.#handler.onBodySent?.(chunkSize, totalBytesSent)
  }
}

/** The first transfer coding (RFC 9112 §7) other than chunked in a Transfer-Encoding field, if any. */
function unsupportedTransferCoding (value: string | string[] | undefined): string | undefined {
  if (value === undefined) return undefined
  for (const line of typeof value === 'string' ? [value] : value) {
    for (const coding of line.split(',')) {
      const name = coding.trim().toLowerCase()
      if (name !== 'chunked' && name !== '') return name
    }
  }
  return undefined
}

/** Maps undici and socket errors to CdnError codes (upstream source). */
export function toUpstreamError (err: unknown, upstream: string): CdnError {
  if (isCdnError(err)) return err
  const e = err as { code?: string, name?: string, message?: string }
  const where = `upstream ${upstream}`
  if (err instanceof undiciErrors.ConnectTimeoutError) {
    return new CdnError('CDN_ERR_UPSTREAM_CONNECT', `Connect timeout to ${where}`, { cause: err })
  }
  if (err instanceof undiciErrors.HeadersTimeoutError) {
    return new CdnError('CDN_ERR_UPSTREAM_TIMEOUT', `No response head from ${where} in time`, { cause: err })
  }
  if (err instanceof undiciErrors.BodyTimeoutError) {
    return new CdnError('CDN_ERR_UPSTREAM_BODY_TIMEOUT', `Body from ${where} stalled`, { cause: err })
  }
  // A head too large, bytes that do not parse as HTTP, or a response nobody asked for (an unsolicited 100 Continue, junk after a body).
  if (err instanceof undiciErrors.HeadersOverflowError || err instanceof undiciErrors.HTTPParserError ||
    (err instanceof undiciErrors.SocketError && (e.message === 'bad response' || e.message === 'bad upgrade'))) {
    return new CdnError('CDN_ERR_UPSTREAM_PROTOCOL', `Invalid response from ${where}: ${e.message ?? ''}`, { cause: err })
  }
  if (err instanceof undiciErrors.ResponseContentLengthMismatchError || err instanceof undiciErrors.SocketError) {
    return new CdnError('CDN_ERR_UPSTREAM_TRUNCATED', `Body from ${where} ended early: ${e.message ?? ''}`, { cause: err })
  }
  if (e.code === 'ECONNREFUSED' || e.code === 'ECONNRESET' || e.code === 'EHOSTUNREACH' || e.code === 'ENOTFOUND' || e.code === 'EAI_AGAIN') {
    return new CdnError('CDN_ERR_UPSTREAM_CONNECT', `Cannot reach ${where}: ${e.code}`, { cause: err })
  }
  if (e.name === 'AbortError' || e.code === 'UND_ERR_ABORTED') {
    return new CdnError('CDN_ERR_CLIENT_ABORTED', `Request to ${where} aborted`, { cause: err })
  }
  if (typeof e.code === 'string' && e.code.startsWith('HPE_')) {
    return new CdnError('CDN_ERR_UPSTREAM_PROTOCOL', `Invalid response from ${where}: ${e.message ?? e.code}`, { cause: err })
  }
  return new CdnError('CDN_ERR_UPSTREAM_UNAVAILABLE', `Request to ${where} failed: ${e.message ?? String(err)}`, { cause: err })
}
