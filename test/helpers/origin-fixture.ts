/**
 * Test glue for the demo origin: start one per test with teardown, and a minimal HTTP
 * client that records each body chunk's arrival and whether the body was cut short.
 */
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http'
import { startOrigin, type Origin, type OriginOptions } from '../../bench/origin/origin-server.ts'

/** The part of a tap Test this helper needs. */
interface Teardown {
  teardown (fn: () => unknown): void
}

/** Starts an origin on 127.0.0.1:0 and closes it when the test ends. */
export async function startTestOrigin (t: Teardown, options: OriginOptions = {}): Promise<Origin> {
  const origin = await startOrigin(options)
  t.teardown(() => origin.close())
  return origin
}

/** A URL nothing listens on: a demo origin's address after it closed (a stopped shield or origin). */
export async function deadOriginUrl (): Promise<string> {
  const origin = await startOrigin()
  await origin.close()
  return origin.url
}

/** One body chunk as the client saw it. */
export interface OriginChunk {
  readonly atMs: number
  readonly bytes: number
}

/** What the client received; `error` is set when the body ended early (socket closed mid-body). */
export interface OriginResponse {
  readonly status: number
  readonly headers: IncomingHttpHeaders
  readonly body: Buffer
  readonly chunks: readonly OriginChunk[]
  readonly complete: boolean
  readonly error: Error | undefined
}

/** Options of {@link originRequest}. */
export interface OriginRequestOptions {
  readonly method?: string
  readonly headers?: Record<string, string>
  readonly body?: string
}

/** Sends one request on a fresh connection; rejects only when no response arrives at all. */
export function originRequest (url: string, options: OriginRequestOptions = {}): Promise<OriginResponse> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method: options.method ?? 'GET', headers: options.headers ?? {}, agent: false }, (res) => {
      const parts: Buffer[] = []
      const chunks: OriginChunk[] = []
      let error: Error | undefined
      res.on('data', (chunk: Buffer) => {
        parts.push(chunk)
        chunks.push({ atMs: performance.now(), bytes: chunk.length })
      })
      res.on('error', (err) => { error = err })
      res.on('close', () => {
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(parts), chunks, complete: res.complete, error })
      })
    })
    req.on('error', reject)
    req.end(options.body)
  })
}
