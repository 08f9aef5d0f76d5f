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
import { FastFront, type FastFrontStats, type FastHandler } from '../../lib/http/fast-front.ts'
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
  /** Serves `/admin/...` (authenticated operations such as purge). */
  readonly admin?: (req: IncomingMessage, res: ServerResponse) => void
  /** Ready to take traffic (/readyz)? */
  readonly ready: () => boolean
  /** Prometheus exposition for /metrics. */
  readonly metrics: () => Promise<{ contentType: string, body: string }>
  readonly keepAliveTimeoutMs: number
  readonly headersTimeoutMs: number
  readonly logger: Logger
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
      requestTimeout: 0, // long segment downloads are fine; idle sockets are bounded by keepAliveTimeout
      noDelay: true,
    }
    const plain = http.createServer(common, onRequest)
    const fast = this.#o.fastHandler
    if (fast !== undefined) {
      this.#front = new FastFront({
        keepAliveTimeoutMs: this.#o.keepAliveTimeoutMs,
        handler: (req) => this.#operational(req.target) ? undefined : fast(req),
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
    server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
      // Malformed requests get a 400 and the socket is closed (node's default, plus a log line).
      if (err.code !== 'ECONNRESET' && socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n')
      else socket.destroy()
      this.#o.logger.debug({ err: { code: err.code, message: err.message } }, 'client error')
    })
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

  #route (req: IncomingMessage, res: ServerResponse): void {
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
