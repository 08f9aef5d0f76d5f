/**
 * A scripted origin for cache tests: per path, the responses to give in order (or a
 * function of the request), and a record of every request it received, so a test can
 * say "the origin saw `If-None-Match: "v1"`" or "the origin was asked twice".
 * Listens on 127.0.0.1:0; closed (held responses and all) at teardown.
 */
import { once } from 'node:events'
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'

/** One answer of the origin. Everything is optional: the default is `200` with an empty body. */
export interface ScriptedResponse {
  readonly status?: number
  /**
   * Response headers. `null` leaves out a header the origin would otherwise add
   * (`date`, `content-length`). A `date` given here wins over the origin's clock.
   */
  readonly headers?: Readonly<Record<string, string | readonly string[] | null>>
  readonly body?: string | Buffer
  /** Wait this long before sending the response head. */
  readonly delayMs?: number
  /** Wait for this promise before sending the response head (a gate the test opens). */
  readonly waitFor?: Promise<unknown>
  /** Send a 103 Early Hints response with these headers before the final response. */
  readonly earlyHints?: Readonly<Record<string, string | readonly string[]>>
  /** Destroy the connection instead of answering (an upstream that fails). */
  readonly reset?: boolean
}

/** A request as the origin received it. */
export interface OriginRequest {
  readonly method: string
  /** Request target as received: path and query. */
  readonly path: string
  /** Lower-case header names, as node parses them. */
  readonly headers: IncomingHttpHeaders
  readonly body: Buffer
  /** 0 for the first request to this script's path (unscripted: to this exact target), 1 for the second, ... */
  readonly index: number
}

/** Computes an answer from the request (its method, conditional headers, ...). */
export type ScriptHandler = (req: OriginRequest) => ScriptedResponse | Promise<ScriptedResponse>

/** A scripted step: a fixed response, or a function of the request. */
export type ScriptStep = ScriptedResponse | ScriptHandler

export interface ScriptedOriginOptions {
  /**
   * The origin's wall clock in epoch ms, for the Date header (default: node's own Date).
   * Give it the edge's clock so that Date and the edge's `now` agree.
   */
  readonly now?: () => number
  /** Answers paths without a script (default: 404 with a short text body). */
  readonly fallback?: ScriptHandler
}

interface Teardown { teardown (fn: () => unknown): void }

interface Script {
  readonly steps: readonly ScriptStep[]
  next: number
  seen: number
}

const NOT_SCRIPTED: ScriptHandler = (req) => ({
  status: 404,
  headers: { 'content-type': 'text/plain' },
  body: `no script for ${req.path}\n`,
})

/** The running origin; see {@link startScriptedOrigin}. */
export class ScriptedOrigin {
  readonly #server: Server
  readonly #now: (() => number) | undefined
  readonly #fallback: ScriptHandler
  readonly #scripts = new Map<string, Script>()
  readonly #requests: OriginRequest[] = []
  readonly #timers = new Set<NodeJS.Timeout>()
  #url = ''
  #closed = false

  constructor (options: ScriptedOriginOptions = {}) {
    this.#now = options.now
    this.#fallback = options.fallback ?? NOT_SCRIPTED
    this.#server = createServer({ keepAliveTimeout: 30_000 }, (req, res) => this.#handle(req, res))
  }

  /** Base URL, e.g. `http://127.0.0.1:40123` (set by {@link listen}). */
  get url (): string {
    return this.#url
  }

  /** Binds 127.0.0.1 on a free port. */
  async listen (): Promise<string> {
    this.#server.listen(0, '127.0.0.1')
    await once(this.#server, 'listening')
    const { port } = this.#server.address() as AddressInfo
    this.#url = `http://127.0.0.1:${port}`
    return this.#url
  }

  /**
   * Scripts `path` (exact target, or the path alone to match any query): each request
   * takes the next step, and the last step answers every request after it.
   * Replaces an earlier script for the same path.
   */
  script (path: string, ...steps: ScriptStep[]): this {
    if (steps.length === 0) throw new TypeError(`Expected at least one step for ${path}, got none`)
    this.#scripts.set(path, { steps, next: 0, seen: 0 })
    return this
  }

  /** Every request received, in arrival order (recorded before any delay). */
  get requests (): readonly OriginRequest[] {
    return this.#requests
  }

  /** Requests whose target is `path`, or whose path is `path` when it has no query. */
  requestsTo (path: string, method?: string): OriginRequest[] {
    return this.#requests.filter((r) => matches(r.path, path) && (method === undefined || r.method === method))
  }

  /** How many requests reached `path` (every path when omitted). */
  count (path?: string, method?: string): number {
    return path === undefined ? this.#requests.length : this.requestsTo(path, method).length
  }

  /** The latest request to `path`. */
  last (path: string): OriginRequest | undefined {
    return this.requestsTo(path).at(-1)
  }

  /** Resolves once `path` has seen `count` requests; rejects after `timeoutMs`. */
  async waitForRequests (path: string, count: number, timeoutMs = 5000): Promise<void> {
    const deadline = performance.now() + timeoutMs
    while (this.count(path) < count) {
      if (performance.now() > deadline) {
        throw new Error(`origin saw ${this.count(path)} requests to ${path}, expected ${count} within ${timeoutMs} ms`)
      }
      await new Promise((resolve) => setTimeout(resolve, 5))
    }
  }

  /** Stops listening and cuts every open connection, held responses included. */
  async close (): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    for (const timer of this.#timers) clearTimeout(timer)
    this.#timers.clear()
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()))
    this.#server.closeAllConnections()
    await closed
  }

  #handle (req: IncomingMessage, res: ServerResponse): void {
    const chunks: Buffer[] = []
    req.on('data', (chunk: Buffer) => chunks.push(chunk))
    req.on('end', () => {
      const path = req.url ?? '/'
      const script = this.#scriptFor(path)
      const recorded: OriginRequest = {
        method: req.method ?? 'GET',
        path,
        headers: req.headers,
        body: Buffer.concat(chunks),
        index: script === undefined ? this.#requests.filter((r) => r.path === path).length : script.seen++,
      }
      this.#requests.push(recorded)
      const step = script === undefined ? this.#fallback : nextStep(script)
      void this.#answer(recorded, step, res)
    })
  }

  #scriptFor (target: string): Script | undefined {
    const exact = this.#scripts.get(target)
    if (exact !== undefined) return exact
    const q = target.indexOf('?')
    return q < 0 ? undefined : this.#scripts.get(target.slice(0, q))
  }

  async #answer (req: OriginRequest, step: ScriptStep, res: ServerResponse): Promise<void> {
    let response: ScriptedResponse
    try {
      response = typeof step === 'function' ? await step(req) : step
      if (response.delayMs !== undefined && response.delayMs > 0) await this.#sleep(response.delayMs)
      if (response.waitFor !== undefined) await response.waitFor
    } catch (err) {
      res.destroy(err instanceof Error ? err : new Error(String(err)))
      return
    }
    if (this.#closed || res.destroyed) return
    if (response.reset === true) {
      res.socket?.destroy()
      return
    }
    if (response.earlyHints !== undefined) res.writeEarlyHints(toHeaderObject(response.earlyHints))
    writeResponse(res, req.method, response, this.#now)
  }

  #sleep (ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#timers.delete(timer)
        resolve()
      }, ms)
      this.#timers.add(timer)
    })
  }
}

/** Starts a scripted origin on 127.0.0.1:0 and closes it when the test ends. */
export async function startScriptedOrigin (t: Teardown, options: ScriptedOriginOptions = {}): Promise<ScriptedOrigin> {
  const origin = new ScriptedOrigin(options)
  t.teardown(() => origin.close())
  await origin.listen()
  return origin
}

/** The HTTP-date (RFC 9110 §5.6.7 IMF-fixdate) of an epoch-ms time. */
export function httpDate (ms: number): string {
  return new Date(ms).toUTCString()
}

function nextStep (script: Script): ScriptStep {
  const step = script.steps[Math.min(script.next, script.steps.length - 1)]!
  script.next++
  return step
}

function matches (target: string, path: string): boolean {
  if (target === path) return true
  if (path.includes('?')) return false
  const q = target.indexOf('?')
  return q >= 0 && target.slice(0, q) === path
}

// Statuses that never carry content (RFC 9110 §6.4.1).
function bodyless (status: number): boolean {
  return status < 200 || status === 204 || status === 304
}

function writeResponse (res: ServerResponse, method: string, response: ScriptedResponse, now: (() => number) | undefined): void {
  const status = response.status ?? 200
  const body = typeof response.body === 'string' ? Buffer.from(response.body) : response.body ?? Buffer.alloc(0)
  const given = response.headers ?? {}
  const names = new Set(Object.keys(given).map((name) => name.toLowerCase()))
  res.sendDate = false
  const headers: Array<[string, string | readonly string[]]> = []
  for (const [name, value] of Object.entries(given)) if (value !== null) headers.push([name, value])
  if (!names.has('date')) headers.push(['date', httpDate(now === undefined ? Date.now() : now())])
  if (!names.has('content-length') && !names.has('transfer-encoding') && !bodyless(status)) {
    headers.push(['content-length', String(body.length)])
  }
  for (const [name, value] of headers) res.setHeader(name, typeof value === 'string' ? value : [...value])
  res.writeHead(status)
  res.end(method === 'HEAD' || bodyless(status) ? undefined : body)
}

function toHeaderObject (headers: Readonly<Record<string, string | readonly string[]>>): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {}
  for (const [name, value] of Object.entries(headers)) out[name] = typeof value === 'string' ? value : [...value]
  return out
}
