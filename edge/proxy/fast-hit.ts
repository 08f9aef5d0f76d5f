/**
 * The edge's hit fast path: a GET or HEAD whose object is fresh in the memory tier is
 * answered synchronously below node:http (lib/http/fast-front.ts), with the same status,
 * headers and body the node:http path sends, the same access-log line, metrics and HLS
 * hooks (CacheProxy.answerFast), and none of node:http's per-request objects.
 *
 * Only requests whose headers cannot change the RFC 9111 decision come here: every field
 * must be on a short allow-list (no conditionals, no Cache-Control or Pragma, no
 * Authorization, no If-Range...). Anything else, and every request the proxy cannot answer
 * from memory at once, is declined: node:http then takes the connection and the request
 * goes through the whole pipeline.
 */
import type { FastHandler, FastRequest } from '../../lib/http/fast-front.ts'
import type { AccessGate } from './access-gate.ts'
import type { BodyRewrite, CacheProxy } from './cache-proxy.ts'

/**
 * Request fields a fast hit may carry: they select nothing (no object answered here
 * varies: Vary'd objects are declined) and change no reuse decision (RFC 9111 §4). The
 * proxy checks `cdn-loop` (RFC 8586) and handles `range` (one satisfiable range, else
 * declined); `via` and the `x-forwarded-*` family only matter for what goes upstream (a
 * refresh-ahead) and the log's client address. The `sec-*` and `dnt` fields are what
 * browser players add to every request, the `x-forwarded-*`, `x-real-ip` and `forwarded`
 * ones what load balancers add; nothing in the pipeline reads them on a hit.
 */
export const FAST_HIT_FIELDS: ReadonlySet<string> = new Set([
  'host', 'user-agent', 'accept', 'accept-language', 'accept-encoding', 'connection', 'referer', 'origin', 'range',
  'via', 'cdn-loop', 'x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'x-forwarded-port', 'x-real-ip', 'forwarded',
  'sec-fetch-dest', 'sec-fetch-mode', 'sec-fetch-site', 'sec-fetch-user', 'sec-ch-ua', 'sec-ch-ua-mobile', 'sec-ch-ua-platform', 'dnt',
])

/** Options of {@link createFastHitHandler}. */
export interface FastHitOptions {
  /** The token door (playback tokens, exactly as node:http requests pass it). */
  readonly gate: Pick<AccessGate, 'pass'>
  readonly proxy: Pick<CacheProxy, 'answerFast'>
  /**
   * The per-request body rewrite (CacheProxyOptions.bodyTransform, keyed here by the
   * request's token, URL and Host): a hit it would rewrite is declined.
   */
  readonly rewriteFor?: ((token: string | undefined, url: string, host: string | undefined) => BodyRewrite | undefined) | undefined
}

/** The FastFront handler of a cache node (NodeServer keeps its operational paths out of it). */
export function createFastHitHandler (options: FastHitOptions): FastHandler {
  const { gate, proxy, rewriteFor } = options
  return (req: FastRequest) => {
    if (!plainFields(req.headers)) return undefined
    const admitted = gate.pass(req)
    if (admitted === undefined) return undefined
    return proxy.answerFast(req, admitted.url, rewriteFor?.(admitted.token, admitted.url, req.headers.host))
  }
}

/** Does the request carry only {@link FAST_HIT_FIELDS}? */
export function plainFields (headers: Readonly<Record<string, string>>): boolean {
  for (const name in headers) if (!FAST_HIT_FIELDS.has(name)) return false
  return true
}
