/**
 * Authenticated operations on a cache node, under `/admin/`:
 * - `POST /admin/purge` with `{"url": "/path?q"}` (that URL, all variants) or
 *   `{"prefix": "/vod/title/"}`; answers `{"purged": <objects removed>}`.
 * - more routes from `routes` (the HLS layer adds `/admin/prefill` and `/admin/inventory`).
 * Authentication is `Authorization: Bearer <token>`, compared in constant time. With no
 * token configured the endpoints do not exist (404).
 */
import { createHash, timingSafeEqual } from 'node:crypto'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { isCdnError } from '../../lib/errors.ts'
import type { Logger } from '../../lib/log.ts'
import type { CacheProxy } from './cache-proxy.ts'

export interface AdminOptions {
  readonly token: string | undefined
  readonly proxy: CacheProxy
  readonly logger: Logger
  /** Extra endpoints by name: `/admin/<name>` and `/admin/<name>/<rest>`. */
  readonly routes?: AdminRoutes
}

/** An authenticated admin request, as an extra route sees it. */
export interface AdminRequest {
  readonly method: string
  /** What follows `/admin/<name>` in the path: '' or '/<more>'. */
  readonly rest: string
  readonly query: URLSearchParams
  /** The JSON body (POST, PUT, PATCH), or undefined when there is none or it is not JSON. */
  readonly body: unknown
}

/** An extra route's answer, sent as JSON. */
export interface AdminAnswer {
  readonly status: number
  readonly body: unknown
  /** For 405 answers. */
  readonly allow?: string
}

/** An extra admin endpoint. */
export interface AdminRoute {
  handle (req: AdminRequest): AdminAnswer | Promise<AdminAnswer>
}

/** Extra admin endpoints by name. */
export type AdminRoutes = ReadonlyMap<string, AdminRoute>

// Routes a content policy registers for its proxy while the node is being built (the
// policy factory sees the proxy, not the admin handler). Weak: a closed node leaves nothing.
const REGISTERED = new WeakMap<CacheProxy, AdminRoutes>()

/**
 * Adds `routes` to the admin endpoints of the node serving `proxy` (for content policies,
 * which are built inside startCacheNode). Routes given in AdminOptions win.
 */
export function registerAdminRoutes (proxy: CacheProxy, routes: AdminRoutes): void {
  REGISTERED.set(proxy, routes)
}

/** Largest admin request body we read. */
const MAX_BODY_BYTES = 64 * 1024
/** What readJson gives for a body over MAX_BODY_BYTES (answered 413, RFC 9110 §15.5.14). */
const TOO_LARGE = Symbol('too large')

/** Builds the `/admin/` request handler. */
export function createAdminHandler (options: AdminOptions): (req: IncomingMessage, res: ServerResponse) => void {
  const expected = options.token === undefined ? undefined : digest(options.token)
  return (req, res) => {
    if (expected === undefined) return sendJson(res, 404, { error: 'admin endpoints are disabled (no admin token configured)' })
    const auth = req.headers.authorization
    // RFC 9110 §11.1: the scheme name is case-insensitive.
    const match = auth === undefined ? null : /^bearer +(\S+)\s*$/i.exec(auth)
    const given = match === null ? undefined : digest(match[1]!)
    if (given === undefined || !timingSafeEqual(given, expected)) {
      options.logger.warn({ client: req.socket.remoteAddress, path: req.url }, 'admin request refused: bad or missing token')
      res.setHeader('www-authenticate', 'Bearer')
      return sendJson(res, 401, { error: 'missing or wrong bearer token' })
    }
    if (req.url !== '/admin/purge') return routeExtra(req, res, options)
    if (req.method !== 'POST') {
      res.setHeader('allow', 'POST')
      return sendJson(res, 405, { error: 'use POST' })
    }
    readJson(req).then(async (body) => {
      if (body === TOO_LARGE) return sendTooLarge(res)
      const request = purgeRequest(body)
      if (request === undefined) return sendJson(res, 400, { error: 'expected a JSON body {"url": "/path"} or {"prefix": "/path/"}' })
      const purged = await options.proxy.purge(request)
      sendJson(res, 200, { purged })
    }).catch((err: unknown) => {
      if (isCdnError(err, 'CDN_ERR_REQUEST_INVALID')) return sendJson(res, 400, { error: err.message })
      if (!req.complete) return options.logger.warn({ err, client: req.socket.remoteAddress }, 'purge request body cut short: nothing purged')
      options.logger.error({ err }, 'purge failed')
      sendJson(res, 500, { error: 'purge failed' })
    })
  }
}

/** `/admin/<name>[/<rest>][?query]` to an extra route, or 404. */
function routeExtra (req: IncomingMessage, res: ServerResponse, options: AdminOptions): void {
  const url = new URL(req.url ?? '/', 'http://admin.invalid')
  const tail = url.pathname.slice('/admin/'.length)
  const slash = tail.indexOf('/')
  const name = slash < 0 ? tail : tail.slice(0, slash)
  const route = options.routes?.get(name) ?? REGISTERED.get(options.proxy)?.get(name)
  if (route === undefined) return sendJson(res, 404, { error: `no admin endpoint ${url.pathname}` })
  const method = req.method ?? 'GET'
  const hasBody = method === 'POST' || method === 'PUT' || method === 'PATCH'
  ;(hasBody ? readJson(req) : Promise.resolve(undefined)).then(async (body) => {
    if (body === TOO_LARGE) return sendTooLarge(res)
    const answer = await route.handle({ method, rest: slash < 0 ? '' : tail.slice(slash), query: url.searchParams, body })
    if (answer.allow !== undefined) res.setHeader('allow', answer.allow)
    sendJson(res, answer.status, answer.body)
  }).catch((err: unknown) => {
    if (isCdnError(err, 'CDN_ERR_REQUEST_INVALID')) return sendJson(res, 400, { error: err.message })
    options.logger.error({ err, path: url.pathname }, 'admin request failed')
    if (!res.headersSent) sendJson(res, 500, { error: 'admin request failed' })
  })
}

function purgeRequest (body: unknown): { url: string } | { prefix: string } | undefined {
  if (typeof body !== 'object' || body === null) return undefined
  const { url, prefix } = body as { url?: unknown, prefix?: unknown }
  if (typeof url === 'string' && url.startsWith('/') && prefix === undefined) return { url }
  if (typeof prefix === 'string' && prefix.startsWith('/') && url === undefined) return { prefix }
  return undefined
}

// Hashing both sides gives equal-length buffers, so the comparison leaks no length.
function digest (token: string): Buffer {
  return createHash('sha256').update(token).digest()
}

/** The body parsed as JSON (undefined when it is not JSON), or TOO_LARGE without reading past the limit. */
async function readJson (req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = []
  let bytes = 0
  for await (const chunk of req) {
    bytes += (chunk as Buffer).length
    if (bytes > MAX_BODY_BYTES) return TOO_LARGE
    chunks.push(chunk as Buffer)
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'))
  } catch {
    return undefined
  }
}

function sendTooLarge (res: ServerResponse): void {
  sendJson(res, 413, { error: `request body over ${MAX_BODY_BYTES} bytes` })
}

function sendJson (res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body) + '\n'
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' })
  res.end(text)
}
