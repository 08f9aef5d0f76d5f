/**
 * Authenticated operations on a cache node, under `/admin/`:
 * - `POST /admin/purge` with `{"url": "/path?q"}` (that URL, all variants) or
 *   `{"prefix": "/vod/title/"}`; answers `{"purged": <objects removed>}`.
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
}

/** Largest admin request body we read. */
const MAX_BODY_BYTES = 64 * 1024

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
    if (req.url !== '/admin/purge') return sendJson(res, 404, { error: `no admin endpoint ${req.url ?? ''}` })
    if (req.method !== 'POST') {
      res.setHeader('allow', 'POST')
      return sendJson(res, 405, { error: 'use POST' })
    }
    readJson(req).then(async (body) => {
      const request = purgeRequest(body)
      if (request === undefined) return sendJson(res, 400, { error: 'expected a JSON body {"url": "/path"} or {"prefix": "/path/"}' })
      const purged = await options.proxy.purge(request)
      sendJson(res, 200, { purged })
    }).catch((err: unknown) => {
      if (isCdnError(err, 'CDN_ERR_REQUEST_INVALID')) return sendJson(res, 400, { error: err.message })
      options.logger.error({ err }, 'purge failed')
      sendJson(res, 500, { error: 'purge failed' })
    })
  }
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

async function readJson (req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = []
  let bytes = 0
  for await (const chunk of req) {
    bytes += (chunk as Buffer).length
    if (bytes > MAX_BODY_BYTES) return undefined
    chunks.push(chunk as Buffer)
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'))
  } catch {
    return undefined
  }
}

function sendJson (res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body) + '\n'
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' })
  res.end(text)
}
