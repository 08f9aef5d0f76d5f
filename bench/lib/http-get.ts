/**
 * One-off HTTP GETs for set-up and sanity checks (warming a cache, copying a response's
 * headers), on a fresh connection each so they never share a socket with the load.
 */
import http from 'node:http'

/** A complete response. */
export interface FetchedResponse {
  readonly status: number
  /** As received: [name, value, ...] with the server's casing. */
  readonly rawHeaders: readonly string[]
  readonly headers: http.IncomingHttpHeaders
  readonly body: Buffer
}

/** GETs `url` (127.0.0.1 only) and buffers the body; rejects after `timeoutMs`. */
export function httpGet (url: string, timeoutMs = 30_000, headers: Readonly<Record<string, string>> = {}): Promise<FetchedResponse> {
  const target = new URL(url)
  if (target.hostname !== '127.0.0.1') return Promise.reject(new TypeError(`Expected a 127.0.0.1 URL, got ${url}`))
  return new Promise((resolve, reject) => {
    const req = http.get(target, { agent: false, timeout: timeoutMs, headers: { ...headers } }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (chunk: Buffer) => chunks.push(chunk))
      res.once('error', reject)
      res.once('end', () => resolve({ status: res.statusCode ?? 0, rawHeaders: res.rawHeaders, headers: res.headers, body: Buffer.concat(chunks) }))
    })
    req.once('timeout', () => req.destroy(new Error(`GET ${url} timed out after ${timeoutMs} ms`)))
    req.once('error', reject)
  })
}

/** Hop-by-hop and per-response fields a server adds itself; never copied into a fixed header list. */
const SERVER_ADDED = new Set(['date', 'connection', 'keep-alive', 'transfer-encoding'])

/** The response's headers as a flat list a node:http server can send as is. */
export function replayableHeaders (rawHeaders: readonly string[]): string[] {
  const out: string[] = []
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!
    if (!SERVER_ADDED.has(name.toLowerCase())) out.push(name, rawHeaders[i + 1]!)
  }
  return out
}
