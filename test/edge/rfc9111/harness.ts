/**
 * Shared rig of the RFC 9111 conformance suite: a scripted origin and an edge that
 * share one injectable clock, plus helpers to read our Cache-Status member (RFC 9211),
 * to wait for background work by polling, and to build common origin answers.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Test } from 'tap'
import type { CacheNodeOptions } from '../../../edge/cache-node.ts'
import { startTestNode, type TestNode } from '../../helpers/cache-node.ts'
import { fetchRaw, type Fetched, type FetchOptions } from '../../helpers/http-client.ts'
import {
  httpDate, startScriptedOrigin,
  type OriginRequest, type ScriptedOrigin, type ScriptedOriginOptions, type ScriptedResponse, type ScriptHandler,
} from '../../helpers/scripted-origin.ts'

export { httpDate }

/** Node options of issue 3 (the lead adds them to CacheNodeOptions); typed here so the suite compiles either way. */
export interface CachingOptions {
  /** Lifetime of a 404/410 without explicit freshness (default 10). */
  readonly negativeTtlSeconds?: number
  /** Ceiling on any 404/410 lifetime (default 60). */
  readonly negativeTtlMaxSeconds?: number
  /** Grace to serve stale on upstream errors when the response has no stale-if-error (default 0). */
  readonly staleIfErrorSeconds?: number
  /** Store Set-Cookie responses (without the cookie) (default false). */
  readonly allowSetCookie?: boolean
  /** Bearer token of POST /admin/purge; the endpoint is off when unset. */
  readonly adminToken?: string
  /** Most ranges answered as multipart/byteranges (default 16). */
  readonly maxRanges?: number
}

export type EdgeOverrides = Partial<CacheNodeOptions> & CachingOptions

/** The name our edge uses in Cache-Status (startTestNode's id is `test-edge`). */
export const CACHE_NAME = 'streamedge-test-edge'

/** A wall clock the test moves by hand; starts on a whole second so Date headers are exact. */
export class Clock {
  #ms: number

  constructor (startMs = Math.floor(Date.now() / 1000) * 1000) {
    this.#ms = startMs
  }

  /** Current time in epoch ms; pass as `now` to the edge and the origin. */
  readonly now = (): number => this.#ms

  /** Moves the clock forward by `seconds`. */
  advance (seconds: number): void {
    this.#ms += seconds * 1000
  }

  /** The HTTP-date `offsetSeconds` from now. */
  date (offsetSeconds = 0): string {
    return httpDate(this.#ms + offsetSeconds * 1000)
  }
}

export interface Rig {
  readonly origin: ScriptedOrigin
  readonly edge: TestNode
  readonly clock: Clock
  /** Sends one request to the edge. */
  fetch (path: string, options?: FetchOptions): Promise<Fetched>
}

interface TapLike { teardown (fn: () => unknown): void }

/** Starts a scripted origin and an edge in front of it, both on `clock` (a new one unless given). */
export async function startRig (t: TapLike, edge: EdgeOverrides = {}, origin: ScriptedOriginOptions & { clock?: Clock } = {}): Promise<Rig> {
  const clock = origin.clock ?? new Clock()
  const scripted = await startScriptedOrigin(t, { now: clock.now, ...origin })
  const node = await startEdge(t, { now: clock.now, ...edge, origin: scripted.url })
  return {
    origin: scripted,
    edge: node,
    clock,
    fetch: (path, options) => fetchRaw(node.url + path, options),
  }
}

type ResponseHeaders = Readonly<Record<string, string | readonly string[] | null>>

/** A text response (200 unless told) with these headers; `content-type: text/plain` unless given. */
export function ok (headers: ResponseHeaders = {}, body = 'v1', status = 200): ScriptedResponse {
  return { status, headers: { 'content-type': 'text/plain', ...headers }, body }
}

/** What an origin currently holds for a path, for {@link conditionalOrigin}. */
export interface Representation {
  readonly body: string
  readonly etag?: string
  readonly lastModified?: string
  /** Further headers of the 200 and of the 304 (cache-control, x-version, ...). */
  readonly headers?: ResponseHeaders
}

/**
 * An origin that evaluates preconditions like RFC 9110 §13.2.2 says: 304 when
 * If-None-Match matches (weak comparison) or, without If-None-Match, when
 * If-Modified-Since is not before Last-Modified; otherwise 200 with the body.
 */
export function conditionalOrigin (current: (req: OriginRequest) => Representation): ScriptHandler {
  return (req) => {
    const rep = current(req)
    const validators: Record<string, string> = {}
    if (rep.etag !== undefined) validators.etag = rep.etag
    if (rep.lastModified !== undefined) validators['last-modified'] = rep.lastModified
    if (notModified(req, rep)) return { status: 304, headers: { ...rep.headers, ...validators } }
    return ok({ ...validators, ...rep.headers }, rep.body)
  }
}

function notModified (req: OriginRequest, rep: Representation): boolean {
  const inm = req.headers['if-none-match']
  if (inm !== undefined) {
    if (inm.trim() === '*') return true
    if (rep.etag === undefined) return false
    const opaque = rep.etag.replace(/^W\//, '')
    return inm.split(',').some((tag) => tag.trim().replace(/^W\//, '') === opaque)
  }
  const ims = req.headers['if-modified-since']
  if (ims === undefined || rep.lastModified === undefined) return false
  const since = Date.parse(ims)
  return !Number.isNaN(since) && Date.parse(rep.lastModified) <= since
}

/** Nodes started on each cache directory a rig made, so the directory goes only after all of them closed. */
const nodesByDir = new Map<string, Set<TestNode>>()

/**
 * Starts an edge with issue-3 options (also a restart on an existing cacheDir). Without
 * a cacheDir it makes one and removes it only after every node on it has closed:
 * removing it while a node still writes fails with ENOTEMPTY and leaves the node running.
 */
export async function startEdge (t: TapLike, overrides: EdgeOverrides & { origin: string }): Promise<TestNode> {
  if (overrides.cacheDir !== undefined) {
    const node = await startTestNode(t, overrides)
    nodesByDir.get(overrides.cacheDir)?.add(node)
    return node
  }
  const cacheDir = await mkdtemp(join(tmpdir(), 'streamedge-rfc9111-'))
  const nodes = new Set<TestNode>()
  nodesByDir.set(cacheDir, nodes)
  t.teardown(async () => {
    await Promise.all([...nodes].map((node) => node.close()))
    nodesByDir.delete(cacheDir)
    await rm(cacheDir, { recursive: true, force: true, maxRetries: 5 })
  })
  const node = await startTestNode(t, { ...overrides, cacheDir })
  nodes.add(node)
  return node
}

/** Parameters of one Cache-Status member: `hit` → true, `fwd=stale` → 'stale', `detail="x"` → 'x'. */
export type CacheStatusParams = Readonly<Record<string, string | true>>

/** Every member of a Cache-Status field as [name, params], nearest-to-origin first (RFC 9211 §2). */
export function cacheStatusMembers (value: string | string[] | undefined): Array<[string, CacheStatusParams]> {
  if (value === undefined) return []
  const text = Array.isArray(value) ? value.join(', ') : value
  return splitOutsideQuotes(text, ',').map((member) => {
    const [name = '', ...params] = splitOutsideQuotes(member, ';').map((s) => s.trim())
    const out: Record<string, string | true> = {}
    for (const p of params) {
      const eq = p.indexOf('=')
      if (eq < 0) out[p] = true
      else out[p.slice(0, eq)] = unquote(p.slice(eq + 1))
    }
    return [unquote(name), out]
  })
}

/** Our edge's Cache-Status parameters, or undefined when the response has no member of ours. */
export function cacheStatus (res: Fetched): CacheStatusParams | undefined {
  return cacheStatusMembers(res.headers['cache-status']).filter(([name]) => name === CACHE_NAME).at(-1)?.[1]
}

/** Our edge's Cache-Status member as sent (for exact-format assertions). */
export function cacheStatusText (res: Fetched): string | undefined {
  const value = res.headers['cache-status']
  if (value === undefined) return undefined
  const text = Array.isArray(value) ? value.join(', ') : value
  return splitOutsideQuotes(text, ',').map((m) => m.trim()).filter((m) => m === CACHE_NAME || m.startsWith(CACHE_NAME + ';')).at(-1)
}

/** True when the response came from storage without a forward (RFC 9211 §2.1 hit). */
export function isHit (res: Fetched): boolean {
  const cs = cacheStatus(res)
  return cs?.hit === true && cs.fwd === undefined
}

/** What one request of a {@link play} sequence must produce; only the fields given are checked. */
export interface Expect {
  readonly status?: number
  readonly body?: string
  /** true: answered from storage without a forward (RFC 9211 hit); false: forwarded. */
  readonly hit?: boolean
  /** Our Cache-Status parameters: a value, `true` for a bare parameter, or undefined/absent via `notCacheStatus`. */
  readonly cacheStatus?: Readonly<Record<string, string | true | RegExp>>
  /** Parameters that must not be in our Cache-Status member (`stored` also rejects `stored=?1` only). */
  readonly notCacheStatus?: readonly string[]
  /** Response headers: a value, a pattern, or null for "absent". */
  readonly headers?: Readonly<Record<string, string | RegExp | null>>
  /** Requests the origin has seen for the path after this step (cumulative). */
  readonly originRequests?: number
}

/** One request of a sequence: move the clock, send, check. */
export interface Step {
  /** Seconds to move the clock forward before sending. */
  readonly advance?: number
  /** Defaults to the sequence's path. */
  readonly path?: string
  readonly method?: string
  readonly headers?: Record<string, string>
  readonly expect: Expect
}

/** Sends `steps` in order through the rig's edge and checks each answer; returns the responses. */
export async function play (t: Test, rig: Rig, path: string, steps: readonly Step[]): Promise<Fetched[]> {
  const out: Fetched[] = []
  let elapsed = 0
  for (const [i, step] of steps.entries()) {
    if (step.advance !== undefined) {
      rig.clock.advance(step.advance)
      elapsed += step.advance
    }
    const target = step.path ?? path
    const res = await rig.fetch(target, {
      ...(step.method === undefined ? {} : { method: step.method }),
      ...(step.headers === undefined ? {} : { headers: step.headers }),
    })
    out.push(res)
    checkResponse(t, res, step.expect, `step ${i + 1} (${step.method ?? 'GET'} ${target} at +${elapsed}s)`, () => rig.origin.count(target))
  }
  return out
}

/** Checks one response against an {@link Expect}; `label` prefixes every assertion message. */
export function checkResponse (t: Test, res: Fetched, expect: Expect, label: string, originCount?: () => number): void {
  const cs = cacheStatus(res)
  const shown = `Cache-Status: ${String(res.headers['cache-status'])}`
  if (res.error !== undefined) t.fail(`${label}: transfer failed: ${res.error.message}`)
  if (expect.status !== undefined) t.equal(res.status, expect.status, `${label}: status`)
  if (expect.body !== undefined) t.equal(text(res), expect.body, `${label}: body`)
  if (expect.hit === true) t.ok(isHit(res), `${label}: answered from storage (${shown})`)
  if (expect.hit === false) t.ok(cs?.hit !== true && cs?.fwd !== undefined, `${label}: forwarded (${shown})`)
  for (const [name, want] of Object.entries(expect.cacheStatus ?? {})) {
    const got = cs?.[name]
    if (want instanceof RegExp) t.match(String(got), want, `${label}: Cache-Status ${name} (${shown})`)
    else t.equal(got, want, `${label}: Cache-Status ${name} (${shown})`)
  }
  for (const name of expect.notCacheStatus ?? []) {
    t.ok(cs?.[name] === undefined || cs[name] === '?0', `${label}: no Cache-Status ${name} (${shown})`)
  }
  for (const [name, want] of Object.entries(expect.headers ?? {})) {
    const got = res.headers[name]
    if (want === null) t.equal(got, undefined, `${label}: no ${name} header`)
    else if (want instanceof RegExp) t.match(String(got), want, `${label}: ${name} header`)
    else t.equal(got, want, `${label}: ${name} header`)
  }
  if (expect.originRequests !== undefined && originCount !== undefined) {
    t.equal(originCount(), expect.originRequests, `${label}: origin requests so far`)
  }
}

/** Polls `check` every 5 ms until it holds; throws after `timeoutMs` naming `what`. */
export async function until (check: () => boolean | Promise<boolean>, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = performance.now() + timeoutMs
  for (;;) {
    if (await check()) return
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}

/** Requests `path` until `accept` takes the response (e.g. a background refresh landed); each poll is a real request. */
export async function fetchUntil (rig: Rig, path: string, accept: (res: Fetched) => boolean, what: string): Promise<Fetched> {
  let last: Fetched | undefined
  await until(async () => {
    last = await rig.fetch(path)
    return accept(last)
  }, what)
  return last!
}

/**
 * Gives background work (disk writes of earlier fills) ~50 ms to land. Used before
 * checking that an invalidated or purged object stays gone: a write still in flight
 * must not bring it back. Never needed for a test to pass, only to expose that bug.
 */
export async function settle (): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, 50))
}

/** A promise the test resolves by hand (to hold an origin response). */
export function gate (): { readonly promise: Promise<void>, open (): void } {
  let open: () => void = () => {}
  const promise = new Promise<void>((resolve) => { open = resolve })
  return { promise, open }
}

/** The response body as text. */
export function text (res: Fetched): string {
  return res.body.toString('utf8')
}

function splitOutsideQuotes (s: string, sep: string): string[] {
  const out: string[] = []
  let quoted = false
  let start = 0
  for (let i = 0; i < s.length; i++) {
    const c = s[i]
    if (c === '\\' && quoted) { i++; continue }
    if (c === '"') quoted = !quoted
    else if (c === sep && !quoted) {
      out.push(s.slice(start, i))
      start = i + 1
    }
  }
  out.push(s.slice(start))
  return out.map((part) => part.trim()).filter((part) => part.length > 0)
}

function unquote (s: string): string {
  return s.length >= 2 && s.startsWith('"') && s.endsWith('"') ? s.slice(1, -1).replace(/\\(.)/g, '$1') : s
}
