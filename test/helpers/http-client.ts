/**
 * A tiny HTTP client for tests that records what a real client sees: status, headers,
 * the exact body bytes, when the first body byte arrived, and whether the transfer
 * was cut short (an aborted response is an error here, never a short success).
 */
import http from 'node:http'
import https from 'node:https'

export interface Fetched {
  readonly status: number
  readonly headers: http.IncomingHttpHeaders
  readonly body: Buffer
  /** ms timestamps (performance.now()) */
  readonly startedAt: number
  readonly headersAt: number
  readonly firstByteAt: number | undefined
  readonly endAt: number
  /** Set when the response did not complete (socket closed mid-body, or an error). */
  readonly error: Error | undefined
}

export interface FetchOptions {
  readonly method?: string
  readonly headers?: Record<string, string>
  readonly body?: string | Buffer
  /** Destroy the request after this many body bytes (a client that leaves mid-transfer). */
  readonly abortAfterBytes?: number
  /** A fresh connection instead of the global keep-alive agent. */
  readonly agent?: http.Agent | false
  readonly ca?: string | Buffer
}

/** Sends one request and collects the whole response; never rejects for HTTP-level failures. */
export function fetchRaw (url: string, options: FetchOptions = {}): Promise<Fetched> {
  return new Promise((resolve, reject) => {
    const startedAt = performance.now()
    const u = new URL(url)
    const mod = u.protocol === 'https:' ? https : http
    const req = mod.request(u, {
      method: options.method ?? 'GET',
      headers: options.headers,
      agent: options.agent ?? false,
      ...(options.ca === undefined ? {} : { ca: options.ca }),
    }, (res) => {
      const headersAt = performance.now()
      const chunks: Buffer[] = []
      let bytes = 0
      let firstByteAt: number | undefined
      let settled = false
      const finish = (error: Error | undefined): void => {
        if (settled) return
        settled = true
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks), startedAt, headersAt, firstByteAt, endAt: performance.now(), error })
      }
      res.on('data', (chunk: Buffer) => {
        firstByteAt ??= performance.now()
        chunks.push(chunk)
        bytes += chunk.length
        if (options.abortAfterBytes !== undefined && bytes >= options.abortAfterBytes) {
          req.destroy()
          finish(new Error('aborted by test client'))
        }
      })
      res.on('end', () => {
        // 'end' after 'aborted' still fires in some Node versions; check completeness.
        finish(res.complete ? undefined : new Error('response incomplete'))
      })
      res.on('error', (err) => finish(err))
      res.on('close', () => finish(res.complete ? undefined : new Error('response closed before it completed')))
    })
    req.on('error', (err) => {
      reject(err)
    })
    req.end(options.body)
  })
}

/** A response with its raw header lines: names as sent, in order, repeats kept. */
export interface RawAnswer {
  readonly status: number
  /** [name, value, ...] as sent */
  readonly raw: readonly string[]
  readonly body: Buffer
}

/** One request on a fresh connection, answered with its raw header lines (to compare two paths field by field). */
export function getRaw (url: string, headers: Record<string, string> = {}, method = 'GET'): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers, agent: false }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, raw: res.rawHeaders, body: Buffer.concat(chunks) }))
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end()
  })
}

/** The first value of header `name` (lower case) in a raw answer. */
export function rawHeader (a: RawAnswer, name: string): string | undefined {
  for (let i = 0; i < a.raw.length; i += 2) if (a.raw[i]!.toLowerCase() === name) return a.raw[i + 1]
  return undefined
}
