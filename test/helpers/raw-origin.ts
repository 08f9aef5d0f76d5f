/**
 * A raw HTTP/1.1 origin for tests of lying or broken upstreams: a `net` server on
 * 127.0.0.1 port 0 whose handlers write the exact bytes a case needs (conflicting framing,
 * junk after a body, an unsolicited 100 Continue, a head that never ends), which
 * node:http would never send. Plus `herd`: requests that provably share one fill.
 */
import net from 'node:net'
import type { CacheNodeOptions } from '../../edge/cache-node.ts'
import type { BreakerSettings } from '../../edge/proxy/circuit-breaker.ts'
import { UpstreamChain } from '../../edge/proxy/upstream-chain.ts'
import { HttpUpstream } from '../../edge/proxy/upstream.ts'
import { OriginPool } from '../../shield/origin-pool.ts'
import { cacheStatus } from '../edge/rfc9111/harness.ts'
import { startTestNode, type TestNode } from './cache-node.ts'
import { fetchRaw, type Fetched } from './http-client.ts'

interface Teardown { teardown (fn: () => unknown): void }

/** A request as the raw origin parsed it. */
export interface RawRequest {
  readonly method: string
  readonly path: string
  /** Lower-case names. */
  readonly headers: Readonly<Record<string, string>>
  /** Which connection it came on (1, 2, ... in accept order). */
  readonly connection: number
  /** 0 for the first request to this path, 1 for the second, ... */
  readonly index: number
}

/** Answers one request by writing raw bytes to the socket (and may keep it, end it, or destroy it). */
export type RawHandler = (req: RawRequest, socket: net.Socket) => void | Promise<void>

export interface RawOrigin {
  readonly url: string
  readonly requests: readonly RawRequest[]
  /** Requests to `path` (every path when omitted). */
  count (path?: string): number
  /** Connections accepted so far. */
  readonly connections: number
}

/**
 * Starts a raw HTTP/1.1 origin: parses request heads (bodyless requests only: the edge
 * sends GET and HEAD) on keep-alive connections and hands each to `handler` for `path`,
 * or to `fallback`. Every socket is destroyed at teardown.
 */
export async function startRawOrigin (t: Teardown, handlers: Record<string, RawHandler>, fallback: RawHandler = notFound): Promise<RawOrigin> {
  const requests: RawRequest[] = []
  const sockets = new Set<net.Socket>()
  let connections = 0
  const server = net.createServer((socket) => {
    const connection = ++connections
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
    socket.on('error', () => {})
    let pending = ''
    socket.on('data', (data: Buffer) => {
      pending += data.toString('latin1')
      let end: number
      while ((end = pending.indexOf('\r\n\r\n')) >= 0) {
        const [requestLine = '', ...lines] = pending.slice(0, end).split('\r\n')
        pending = pending.slice(end + 4)
        const [method = '', path = ''] = requestLine.split(' ')
        const headers: Record<string, string> = {}
        for (const line of lines) {
          const colon = line.indexOf(':')
          if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim()
        }
        const bare = path.split('?')[0]!
        const req: RawRequest = { method, path, headers, connection, index: requests.filter((r) => r.path.split('?')[0] === bare).length }
        requests.push(req)
        void Promise.resolve((handlers[bare] ?? fallback)(req, socket)).catch(() => socket.destroy())
      }
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => {
    for (const socket of sockets) socket.destroy()
    server.close(() => resolve())
  }))
  const { port } = server.address() as net.AddressInfo
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    count: (path) => path === undefined ? requests.length : requests.filter((r) => r.path.split('?')[0] === path).length,
    get connections () { return connections },
  }
}

const notFound: RawHandler = (req, socket) => { socket.write(rawResponse(404, ['content-type: text/plain'], `no ${req.path}\n`)) }

/** A response as bytes: status line, header lines as given (no Content-Length added unless `length`), body. */
export function rawResponse (status: number, headers: readonly string[], body: string | Buffer = '', length: 'content-length' | 'none' = 'content-length'): Buffer {
  const bytes = typeof body === 'string' ? Buffer.from(body, 'latin1') : body
  const lines = [`HTTP/1.1 ${status} ${REASONS[status] ?? 'Whatever'}`, ...headers]
  if (length === 'content-length') lines.push(`content-length: ${bytes.length}`)
  return Buffer.concat([Buffer.from(lines.join('\r\n') + '\r\n\r\n', 'latin1'), bytes])
}

/**
 * A handler that writes a 200 head (`fields` as given: no Content-Length added) and the first
 * `sent` bytes of `body`, then waits for `next()` and hands the socket to `then` (the rest, a
 * reset, a stall): an origin caught mid-body.
 */
export function sendPart (fields: readonly string[], body: Buffer, sent: number, next: () => Promise<unknown>, then: (socket: net.Socket) => void): RawHandler {
  return async (_req, socket) => {
    socket.write(rawResponse(200, fields, body.subarray(0, sent), 'none'))
    await next()
    then(socket)
  }
}

const REASONS: Record<number, string> = { 100: 'Continue', 102: 'Processing', 103: 'Early Hints', 200: 'OK', 206: 'Partial Content', 304: 'Not Modified', 404: 'Not Found', 500: 'Internal Server Error' }

/**
 * Counts requests that reached node:http's pipeline; a request that joins a fill there has
 * attached to it when this counts it (fast-path joiners do not pass here: see CacheProxy.fillReaders).
 */
export function countHandled (edge: TestNode): () => number {
  const proxy = edge.proxy
  const handle = proxy.handle.bind(proxy)
  let n = 0
  proxy.handle = (req, res) => {
    n++
    handle(req, res)
  }
  return () => n
}

/**
 * Sends `n` GETs for `path` (with `headers[i]` each) that all wait on one fill: the first
 * starts it, the others join it while the origin holds its answer, and `held` lets it go.
 */
export async function herd (edge: TestNode, origin: RawOrigin, path: string, held: { open (): void }, n: number, headers: Array<Record<string, string>> = []): Promise<Fetched[]> {
  const first = fetchRaw(edge.url + path, { headers: headers[0] ?? {} })
  await poll(() => origin.count(path) === 1, 'the fill request')
  const rest = Array.from({ length: n - 1 }, (_, i) => fetchRaw(edge.url + path, { headers: headers[i + 1] ?? {} }))
  // attached on either path: node:http's, or the fast path's wait for the fill's head
  await poll(() => edge.proxy.fillReaders(path) === n, 'the others to join')
  held.open()
  return await Promise.all([first, ...rest])
}

async function poll (check: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = performance.now() + timeoutMs
  while (!check()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}

// ---- the edge in front of it ---------------------------------------------------------------

/** Upstream timeouts short enough for stall cases. */
export const TIMEOUTS = { connectTimeoutMs: 1000, firstByteTimeoutMs: 5000, idleTimeoutMs: 5000, connections: 8, keepAliveTimeoutMs: 5000 }

/** A real edge in front of `origin`, with upstream timeouts short enough for stall cases. */
export async function edgeFor (t: Teardown, origin: RawOrigin, overrides: Partial<CacheNodeOptions> = {}): Promise<TestNode> {
  return await startTestNode(t, { origin: origin.url, upstreamTimeouts: TIMEOUTS, ...overrides })
}

const TIER_BREAKER: BreakerSettings = { failureThreshold: 5, errorRatePercent: 0, minRequests: 0, windowMs: 10_000, coolDownMs: 1000 }

/** A shield and an edge in front of `origin`. */
export interface Tiers {
  readonly shield: TestNode
  readonly edge: TestNode
}

/** origin → shield (OriginPool, `originIdleMs` between body bytes) → edge (UpstreamChain with that one shield, and the origin direct). */
export async function startTiers (t: Teardown, origin: RawOrigin, originIdleMs = 5000): Promise<Tiers> {
  const timeouts = { connectTimeoutMs: 1000, firstByteTimeoutMs: 5000, idleTimeoutMs: originIdleMs, keepAliveTimeoutMs: 5000 }
  const pool = new OriginPool({ origins: [{ url: origin.url, name: 'origin' }], timeouts, maxConcurrent: 8, maxQueue: 64, queueTimeoutMs: 5000, retries: 0, breaker: TIER_BREAKER })
  const shield = await startTestNode(t, { role: 'shield', id: 'test-shield', upstream: pool, shutdownGraceMs: 0 })
  const http1 = (url: string, name: string): HttpUpstream => new HttpUpstream({ url, name, ...TIMEOUTS })
  const chain = new UpstreamChain({ shields: [{ id: shield.url, upstream: http1(shield.url, 'shield') }], origin: http1(origin.url, 'origin'), breaker: TIER_BREAKER })
  const edge = await startTestNode(t, { upstream: chain, shutdownGraceMs: 0 })
  return { shield, edge }
}

/** Our Cache-Status member, e.g. `{ fwd: 'uri-miss', 'fwd-status': '200', stored: true }`. */
export function status (res: Fetched): Record<string, string | true> {
  return { ...cacheStatus(res) }
}

/** True when the key is held in either tier (or on its way to disk). */
export function stored (edge: TestNode, key: string): boolean {
  return edge.store.memory.peek(key) !== undefined || edge.store.disk.has(key) || [...edge.store.disk.pendingKeys()].includes(key)
}
