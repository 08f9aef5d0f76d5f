/**
 * The HTTP(S) front of a cache node: keep-alive node:http (and node:https) servers,
 * the operational endpoints (/healthz, /readyz, /metrics), and graceful shutdown
 * (stop accepting, let in-flight responses finish up to a deadline). The plain HTTP
 * listener can put a fast path in front of node:http (lib/http/fast-front.ts) for the
 * requests it can answer at once; operational endpoints always go to node:http.
 */
import { once } from 'node:events'
import http, { type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import https from 'node:https'
import type { AddressInfo } from 'node:net'
import type { Duplex } from 'node:stream'
import { FastFront, type FastFrontStats, type FastHandler, type SendHeadBody, type SendHeadFile } from '../../lib/http/fast-front.ts'
import type { Logger } from '../../lib/log.ts'

export interface ListenAddress {
  readonly host: string
  readonly port: number
}

export interface NodeServerOptions {
  readonly listen: ListenAddress
  readonly tls?: { readonly listen: ListenAddress, readonly cert: Buffer | string, readonly key: Buffer | string }
  /** Serves everything that is not an operational endpoint. */
  readonly handler: (req: IncomingMessage, res: ServerResponse) => void
  /**
   * Answers what it can synchronously below node:http on the plain HTTP listener (not
   * HTTPS); undefined hands the connection to node:http and `handler`. Never sees the
   * operational endpoints.
   */
  readonly fastHandler?: FastHandler | undefined
  /** The fast path's zero-copy sender (FastFrontOptions.sendFile); undefined copies every body. */
  readonly sendFile?: SendHeadFile | undefined
  /** Which peers' connections use `sendFile` (FastFrontOptions.sendFileTo); undefined: all. */
  readonly sendFileTo?: ((remoteAddress: string | undefined) => boolean) | undefined
  /** The fast path's one-call sender of medium bodies from memory (FastFrontOptions.sendHeadBody); undefined writes them through the socket. */
  readonly sendHeadBody?: SendHeadBody | undefined
  /** Serves `/admin/...` (authenticated operations such as purge). */
  readonly admin?: (req: IncomingMessage, res: ServerResponse) => void
  /** Ready to take traffic (/readyz)? */
  readonly ready: () => boolean
  /** Prometheus exposition for /metrics. */
  readonly metrics: () => Promise<{ contentType: string, body: string }>
  readonly keepAliveTimeoutMs: number
  readonly headersTimeoutMs: number
  readonly logger: Logger
  /** Name for Cache-Status (RFC 9211) on the answers the server gives itself (400, 431...); none without. */
  readonly cacheName?: string | undefined
}

/** Marks a socket whose parse error has been answered. */
const REFUSED = Symbol('refused')

/** node:http's own answers to parse errors (its default clientError handler), by error code. */
const CLIENT_ERRORS: Readonly<Record<string, readonly [number, string]>> = {
  HPE_HEADER_OVERFLOW: [431, 'Request Header Fields Too Large'],
  HPE_CHUNK_EXTENSIONS_OVERFLOW: [413, 'Content Too Large'],
  ERR_HTTP_REQUEST_TIMEOUT: [408, 'Request Timeout'],
}

export class NodeServer {
  readonly #o: NodeServerOptions
  readonly #servers: Server[] = []
  #front: FastFront | undefined
  #closing = false
  #connections = 0

  constructor (options: NodeServerOptions) {
    this.#o = options
  }

  /** Starts listening; resolves with the bound URLs (port 0 becomes a real port). */
  async listen (): Promise<{ url: string, httpsUrl: string | undefined }> {
    const onRequest = (req: IncomingMessage, res: ServerResponse): void => this.#route(req, res)
    const common = {
      keepAliveTimeout: this.#o.keepAliveTimeoutMs,
      headersTimeout: this.#o.headersTimeoutMs,
      // node checks headersTimeout on this interval (default 30 s): a slow head would get up to 30 s more
      connectionsCheckingInterval: Math.min(30_000, Math.max(50, Math.floor(this.#o.headersTimeoutMs / 4))),
      requestTimeout: 0, // long segment downloads are fine; idle sockets are bounded by keepAliveTimeout
      // Host is checked in #route, so that the 400 carries Cache-Status like every other refusal
      requireHostHeader: false,
      noDelay: true,
    }
    const plain = http.createServer(common, onRequest)
    const fast = this.#o.fastHandler
    if (fast !== undefined) {
      this.#front = new FastFront({
        keepAliveTimeoutMs: this.#o.keepAliveTimeoutMs,
        handler: (req) => this.#operational(req.target) ? undefined : fast(req),
        sendFile: this.#o.sendFile,
        sendFileTo: this.#o.sendFileTo,
        sendHeadBody: this.#o.sendHeadBody,
      })
      this.#front.attach(plain)
    }
    const url = await this.#bind(plain, this.#o.listen, 'http')
    let httpsUrl: string | undefined
    if (this.#o.tls !== undefined) {
      const secure = https.createServer({ ...common, cert: this.#o.tls.cert, key: this.#o.tls.key }, onRequest)
      httpsUrl = await this.#bind(secure, this.#o.tls.listen, 'https')
    }
    return { url, httpsUrl }
  }

  async #bind (server: Server, at: ListenAddress, scheme: string): Promise<string> {
    server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => this.#clientError(err, socket))
    // Not a forward proxy: without a listener node:http would close the connection without a word.
    server.on('connect', (_req: IncomingMessage, socket: Duplex) => {
      socket.on('error', () => {})
      socket.end(this.#refusal(501, 'Not Implemented', 'CONNECT is not supported'))
    })
    // RFC 9110 §10.1.1: an expectation other than 100-continue (which node:http answers itself)
    server.on('checkExpectation', (_req: IncomingMessage, res: ServerResponse) => this.#refuse(res, 417, 'Expectation Failed'))
    server.on('connection', (socket) => {
      this.#connections++
      socket.once('close', () => { this.#connections-- })
    })
    server.listen(at.port, at.host)
    await once(server, 'listening')
    this.#servers.push(server)
    const address = server.address() as AddressInfo
    const host = address.family === 'IPv6' ? `[${address.address}]` : address.address
    return `${scheme}://${host}:${address.port}`
  }

  /** Is `url` answered by `#route` itself or the admin handler, rather than `handler`? */
  #operational (url: string): boolean {
    const c = url.charCodeAt(1)
    if (c !== 0x68 && c !== 0x72 && c !== 0x6d && c !== 0x61) return false // not /h…, /r…, /m…, /a…
    return (url.startsWith('/admin/') && this.#o.admin !== undefined) || url === '/healthz' || url === '/readyz' || url === '/metrics'
  }

  /**
   * node:http's answer to bytes it cannot parse, with Cache-Status: 431 for an oversized head,
   * 408 for one that took too long, 400 for the rest; the connection closes. When an earlier request
   * on the connection is still being answered, that answer completes and the connection closes
   * after it: a 400 written now would read as the answer to that request, or cut into its body.
   */
  #clientError (err: NodeJS.ErrnoException, socket: Duplex): void {
    this.#o.logger.debug({ err: { code: err.code, message: err.message } }, 'client error')
    const refused = socket as Duplex & { [REFUSED]?: true, _httpMessage?: ServerResponse | null }
    // the parser stays failed: every later chunk would report the same error again
    if (refused[REFUSED] === true) return
    refused[REFUSED] = true
    if (err.code === 'ECONNRESET' || !socket.writable) {
      socket.destroy()
      return
    }
    const inFlight = refused._httpMessage
    if (inFlight !== null && inFlight !== undefined && !inFlight.writableFinished) {
      if (!inFlight.headersSent) inFlight.shouldKeepAlive = false
      inFlight.once('close', () => socket.end())
      return
    }
    const [status, reason] = CLIENT_ERRORS[err.code ?? ''] ?? [400, 'Bad Request']
    socket.end(this.#refusal(status, reason, reason))
  }

  /** The fields of every refusal the server answers itself (`body` is ASCII). */
  #refusalFields (body: string): Array<[string, string]> {
    const fields: Array<[string, string]> = [['Content-Type', 'text/plain; charset=utf-8'], ['Content-Length', String(body.length)], ['Cache-Control', 'no-store']]
    if (this.#o.cacheName !== undefined) fields.push(['Cache-Status', `${this.#o.cacheName}; detail=CDN_ERR_REQUEST_INVALID`])
    return fields
  }

  /** A whole response for a raw socket: `status`, Cache-Status, and the connection closes. */
  #refusal (status: number, reason: string, message: string): string {
    const body = `${status} ${message}\n`
    const fields = this.#refusalFields(body).map(([name, value]) => `${name}: ${value}\r\n`).join('')
    return `HTTP/1.1 ${status} ${reason}\r\n${fields}Connection: close\r\n\r\n${body}`
  }

  /** `#refusal` through node:http, for a request it parsed. */
  #refuse (res: ServerResponse, status: number, message: string): void {
    const body = `${status} ${message}\n`
    res.shouldKeepAlive = false
    // llhttp may still fail on this request's head after it was handed over (a bad
    // Transfer-Encoding): this answer is the one, #clientError must not write another
    const socket = res.socket as (Duplex & { [REFUSED]?: true }) | null
    if (socket !== null) socket[REFUSED] = true
    res.writeHead(status, this.#refusalFields(body).flat())
    res.end(body)
  }

  /**
   * What node:http lets through and HTTP/1.1 refuses: a version other than 1.x (llhttp takes
   * `HTTP/2.0` and a missing version, read as 0.9), a missing or repeated Host (RFC 9112 §3.2),
   * and a Transfer-Encoding whose last coding is not chunked (§6.1: the body length is
   * unknowable; llhttp fails the connection only after the request was handed over).
   */
  #malformed (req: IncomingMessage, res: ServerResponse): boolean {
    if (req.httpVersionMajor !== 1) {
      this.#refuse(res, 505, 'HTTP Version Not Supported')
      return true
    }
    let hosts = 0
    const raw = req.rawHeaders
    for (let i = 0; i < raw.length; i += 2) if (raw[i]!.length === 4 && raw[i]!.toLowerCase() === 'host') hosts++
    if (hosts > 1 || (hosts === 0 && req.httpVersionMinor >= 1)) {
      this.#refuse(res, 400, hosts === 0 ? 'Host is required' : 'more than one Host')
      return true
    }
    const te = req.headers['transfer-encoding']
    if (te !== undefined && !/(?:^|,)[ \t]*chunked[ \t]*$/i.test(te)) {
      this.#refuse(res, 400, 'Transfer-Encoding does not end with chunked')
      return true
    }
    return false
  }

  #route (req: IncomingMessage, res: ServerResponse): void {
    if (this.#malformed(req, res)) return
    const url = req.url ?? '/'
    if (!this.#operational(url)) {
      this.#o.handler(req, res)
      return
    }
    if (url.startsWith('/admin/') && this.#o.admin !== undefined) {
      this.#o.admin(req, res)
      return
    }
    if (url === '/healthz') {
      sendText(res, 200, 'ok\n')
      return
    }
    if (url === '/readyz') {
      const ready = this.#o.ready() && !this.#closing
      sendText(res, ready ? 200 : 503, ready ? 'ready\n' : 'not ready\n')
      return
    }
    if (url === '/metrics') {
      this.#o.metrics().then(({ contentType, body }) => {
        res.writeHead(200, { 'content-type': contentType, 'cache-control': 'no-store' })
        res.end(body)
      }, (err: unknown) => {
        this.#o.logger.error({ err }, 'metrics rendering failed')
        sendText(res, 500, 'metrics unavailable\n')
      })
    }
  }

  /** Client connections open now. */
  get connections (): number { return this.#connections }

  /** The fast path's counters (undefined without one). */
  get fastPath (): FastFrontStats | undefined { return this.#front?.stats }

  /** Stops accepting, closes idle keep-alive sockets, waits for in-flight responses up to `graceMs`, then cuts the rest. */
  async close (graceMs: number): Promise<void> {
    this.#closing = true
    const front = this.#front
    // The front's connections are the server's too: close() waits for them as for node:http's.
    front?.closeIdle()
    const closing = this.#servers.map(async (server) => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()))
      server.closeIdleConnections()
      const timer = setTimeout(() => {
        front?.closeAll()
        server.closeAllConnections()
      }, graceMs)
      timer.unref()
      await closed
      clearTimeout(timer)
    })
    await Promise.all(closing)
  }
}

function sendText (res: ServerResponse, status: number, body: string): void {
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' })
  res.end(body)
}
