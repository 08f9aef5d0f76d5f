/**
 * The process around a baseline peer (bare-server.ts, stream-server.ts, the steering
 * scenario's bare 302 servers): a plain node:http server with the edge's NodeServer settings
 * on 127.0.0.1 port 0, a ready line on stdout that bench/lib/child-server.ts waits for, and a
 * clean exit on SIGTERM/SIGINT.
 */
import http from 'node:http'
import type { AddressInfo } from 'node:net'

/** Client-side timeouts the baseline shares with the edge it is compared with. */
export interface BaselineTimeouts {
  readonly keepAliveTimeoutMs: number
  readonly headersTimeoutMs: number
}

/**
 * Serves `handler` and prints `{"msg":"<name> listening","url":...,...readyFields}` once
 * listening; the process exits when SIGTERM or SIGINT has closed the server.
 */
export function serveBaseline (name: string, timeouts: BaselineTimeouts, handler: http.RequestListener, readyFields: Record<string, unknown> = {}): http.Server {
  const server = http.createServer({
    keepAliveTimeout: timeouts.keepAliveTimeoutMs,
    headersTimeout: timeouts.headersTimeoutMs,
    requestTimeout: 0,
    noDelay: true,
  }, handler)
  server.listen(0, '127.0.0.1', () => {
    const { port } = server.address() as AddressInfo
    process.stdout.write(`${JSON.stringify({ msg: `${name} listening`, url: `http://127.0.0.1:${port}`, ...readyFields })}\n`)
  })
  const stop = (): void => {
    server.close(() => process.exit(0))
    server.closeAllConnections()
  }
  process.once('SIGTERM', stop)
  process.once('SIGINT', stop)
  return server
}
