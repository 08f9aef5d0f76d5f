/**
 * Fast-path joins (CacheProxy.answerFast → #joinFast, lib/http/fast-front.ts pipe/pending)
 * over real sockets: a raw origin the test answers by hand (head, body pieces, resets),
 * a real edge, and raw client sockets, so each case controls exactly when a joiner
 * arrives (before the fill's head, after it, mid-body) and reads the exact bytes it gets.
 *
 * The first request for a key goes through node:http (it starts the fill); the requests
 * that arrive while the origin holds its answer are the joiners. A joiner is forced
 * through node:http by one header the fast path declines (`x-force-slow`).
 */
import { once } from 'node:events'
import { STATUS_CODES } from 'node:http'
import net from 'node:net'
import t, { type Test } from 'tap'
import type { CacheNodeOptions } from '../../../edge/cache-node.ts'
import type { FastPending, FastReply, FastResponse } from '../../../lib/http/fast-front.ts'
import { startTestNode, type TestNode } from '../../helpers/cache-node.ts'
import { countHandled, startRawOrigin, TIMEOUTS, type RawOrigin, type RawRequest } from '../../helpers/raw-origin.ts'
import { httpDate } from '../../helpers/scripted-origin.ts'

const START_MS = Date.UTC(2026, 0, 5, 12, 0, 0) + 250
const DATE = httpDate(START_MS)
const SLOW = 'X-Force-Slow: 1\r\n'
const EDGE = 'streamedge-test-edge'
const JOINED_STATUS = `${EDGE}; fwd=uri-miss; fwd-status=200; stored; collapsed`

// ---- the origin: every request is held until the test answers it -----------------------------

/** One origin request, answered by hand. */
class Held {
  readonly req: RawRequest
  readonly socket: net.Socket

  constructor (req: RawRequest, socket: net.Socket) {
    this.req = req
    this.socket = socket
  }

  /** Writes the status line and fields (Date and Content-Length are the caller's). */
  head (status: number, fields: Fields): void {
    this.socket.write(`HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Whatever'}\r\n${fields.map(([n, v]) => `${n}: ${v}\r\n`).join('')}\r\n`, 'latin1')
  }

  write (bytes: Buffer | string): void {
    this.socket.write(bytes)
  }

  /** Head and whole body at once. */
  respond (status: number, fields: Fields, body: Buffer | string): void {
    const bytes = typeof body === 'string' ? Buffer.from(body) : body
    this.head(status, [...fields, ['content-length', String(bytes.length)]])
    this.write(bytes)
  }

  /** The upstream connection dies (a reset, or a body cut short). */
  reset (): void {
    this.socket.destroy()
  }
}

/** Decides what to do with an origin request: answer it through `held`, or leave it held. */
type Route = (held: Held) => void

type Fields = ReadonlyArray<readonly [string, string]>

/** Fields of a cacheable 200, without Content-Length (for `Held.respond`). */
function cacheable (extra: Fields = []): Fields {
  return [['content-type', 'application/octet-stream'], ['cache-control', 'max-age=600'], ['date', DATE], ...extra]
}

/** Fields of a cacheable 200 of `length` bytes, Content-Length included (for `Held.head`). */
function okFields (length: number, extra: Fields = []): Fields {
  return [...cacheable(extra), ['content-length', String(length)]]
}

/** A binary body, different per seed. */
function bodyOf (bytes: number, seed = 1): Buffer {
  const out = Buffer.allocUnsafe(bytes)
  for (let i = 0; i < bytes; i++) out[i] = (i * 131 + seed * 17 + (i >>> 9)) & 0xff
  return out
}

// ---- raw clients --------------------------------------------------------------------------

interface RawAnswer {
  readonly status: number
  /** Header lines as sent, in order. */
  readonly fields: ReadonlyArray<readonly [string, string]>
  readonly body: Buffer
  /** All Content-Length bytes arrived (false: the connection closed first). */
  readonly complete: boolean
}

/** A keep-alive client connection that reads responses byte-exactly, in order. */
class RawClient {
  readonly socket: net.Socket
  #buf = Buffer.alloc(0)
  #offset = 0
  #closed = false
  #changed: Array<() => void> = []

  constructor (socket: net.Socket) {
    this.socket = socket
    socket.on('data', (chunk: Buffer) => {
      this.#buf = Buffer.concat([this.#buf, chunk])
      this.#wake()
    })
    socket.on('error', () => {})
    socket.on('close', () => {
      this.#closed = true
      this.#wake()
    })
  }

  static async open (port: number): Promise<RawClient> {
    const socket = net.connect(port, '127.0.0.1')
    await once(socket, 'connect')
    return new RawClient(socket)
  }

  /** Bytes received so far (heads and bodies). */
  get received (): number { return this.#buf.length }
  /** The edge closed the connection (or it was reset). */
  get closed (): boolean { return this.#closed }

  send (text: string): void {
    this.socket.write(text, 'latin1')
  }

  /** Resolves once `check` holds (or the connection closed); rejects after `timeoutMs`. */
  async until (check: () => boolean, what: string, timeoutMs = 8000): Promise<void> {
    const deadline = performance.now() + timeoutMs
    while (!check() && !this.#closed) {
      const left = deadline - performance.now()
      if (left <= 0) throw new Error(`timed out waiting for ${what}`)
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left)
        this.#changed.push(() => { clearTimeout(timer); resolve() })
      })
    }
  }

  /** Body bytes of the response being read now (the next one `next` returns) received so far. */
  bodyBytesSoFar (): number {
    const end = this.#buf.indexOf('\r\n\r\n', this.#offset, 'latin1')
    return end < 0 ? 0 : this.#buf.length - end - 4
  }

  /** The next response (HEAD: a head only); a connection that closes first yields what came. */
  async next (method: 'GET' | 'HEAD' = 'GET'): Promise<RawAnswer> {
    let answer: RawAnswer | undefined
    await this.until(() => (answer = this.#parse(method)) !== undefined, 'a response')
    answer ??= this.#parse(method) ?? this.#partial()
    return answer
  }

  /** Sends RST: a client that leaves abruptly. */
  reset (): void {
    this.socket.resetAndDestroy()
  }

  #parse (method: 'GET' | 'HEAD'): RawAnswer | undefined {
    const buf = this.#buf
    const end = buf.indexOf('\r\n\r\n', this.#offset, 'latin1')
    if (end < 0) return undefined
    const [line = '', ...lines] = buf.toString('latin1', this.#offset, end).split('\r\n')
    const status = Number(/^HTTP\/1\.1 (\d{3}) /.exec(line)?.[1] ?? 0)
    const fields = lines.map((l) => {
      const colon = l.indexOf(':')
      return [l.slice(0, colon), l.slice(colon + 1).trim()] as const
    })
    const length = method === 'HEAD' || status === 304 || status === 204 ? 0 : Number(fields.find(([n]) => n.toLowerCase() === 'content-length')?.[1] ?? 0)
    const bodyStart = end + 4
    if (buf.length - bodyStart < length) {
      if (!this.#closed) return undefined
      this.#offset = buf.length
      return { status, fields, body: buf.subarray(bodyStart), complete: false }
    }
    this.#offset = bodyStart + length
    return { status, fields, body: buf.subarray(bodyStart, bodyStart + length), complete: true }
  }

  #partial (): RawAnswer {
    return { status: 0, fields: [], body: Buffer.alloc(0), complete: false }
  }

  #wake (): void {
    const changed = this.#changed
    this.#changed = []
    for (const wake of changed) wake()
  }
}

function get (path: string, extra = '', method: 'GET' | 'HEAD' = 'GET'): string {
  return `${method} ${path} HTTP/1.1\r\nHost: edge.test\r\nUser-Agent: fast-join-test\r\n${extra}\r\n`
}

function field (a: RawAnswer, name: string): string | undefined {
  return a.fields.find(([n]) => n.toLowerCase() === name)?.[1]
}

const HOP = new Set(['date', 'connection', 'keep-alive'])

/** The header lines without Date and the hop-by-hop ones each path chooses on its own. */
function comparable (a: RawAnswer): string[] {
  return a.fields.filter(([n]) => !HOP.has(n.toLowerCase())).map(([n, v]) => `${n}: ${v}`)
}

// ---- the edge -----------------------------------------------------------------------------

/** What the fast handler did with each request it saw, and how its pending answers ended. */
interface FastCalls {
  /** Declined at once (a miss with no fill, or not a plain request). */
  declined: number
  /** Answered at once (a hit, or a join whose fill's head is in). */
  immediate: number
  /** Answered later (FastPending). */
  pending: number
  /** Of the pending ones: answered on the fast path. */
  lateAnswered: number
  /** Of the pending ones: handed to node:http after all. */
  lateDeclined: number
}

interface Harness {
  readonly edge: TestNode
  readonly origin: RawOrigin
  readonly port: number
  readonly fast: FastCalls
  /** Requests node:http's path handled. */
  handled (): number
  /** Responses the fast path sent. */
  answered (): number
  /** How the origin answers requests to `path` (default: held until the test answers). */
  route (path: string, route: Route): void
  /** The origin request to `path` with this index (0: the first), once it has arrived. */
  held (path: string, index?: number): Promise<Held>
  /** A client connection, closed at teardown. */
  client (): Promise<RawClient>
  /** One GET of `path` on a new connection (left open: `client` goes on with it). */
  fetch (path: string): Promise<{ readonly client: RawClient, readonly answer: RawAnswer }>
  /** Access-log lines for `path` so far. */
  logs (path: string): Array<Record<string, unknown>>
}

async function setup (t: Test, overrides: Partial<CacheNodeOptions> = {}): Promise<Harness> {
  const routes = new Map<string, Route>()
  const helds: Held[] = []
  const origin = await startRawOrigin(t, {}, (req, socket) => {
    const held = new Held(req, socket)
    helds.push(held)
    routes.get(req.path.split('?')[0]!)?.(held)
  })
  const edge = await startTestNode(t, {
    origin: origin.url,
    upstreamTimeouts: TIMEOUTS,
    now: () => START_MS,
    // far beyond any wait here: an idle close must never stand in for the close a case expects
    keepAliveTimeoutMs: 60_000,
    shutdownGraceMs: 2000,
    ...overrides,
  })
  // before the edge closes (teardowns run last first): an upstream request still held would keep its pool open
  t.teardown(() => { for (const held of helds) held.socket.destroy() })
  const handled = countHandled(edge)
  const fast: FastCalls = { declined: 0, immediate: 0, pending: 0, lateAnswered: 0, lateDeclined: 0 }
  const proxy = edge.proxy
  const answerFast = proxy.answerFast.bind(proxy)
  proxy.answerFast = (req, path, rewrite) => {
    const res = answerFast(req, path, rewrite)
    if (res === undefined) {
      fast.declined++
      return res
    }
    if (!('pending' in res)) {
      fast.immediate++
      return res
    }
    fast.pending++
    const counted: FastPending = {
      pending: true,
      wait: (reply: FastReply) => res.wait({
        answer: (answer: FastResponse) => { fast.lateAnswered++; reply.answer(answer) },
        decline: () => { fast.lateDeclined++; return reply.decline() },
      }),
    }
    return counted
  }
  const port = Number(new URL(edge.url).port)
  const client = async (): Promise<RawClient> => {
    const c = await RawClient.open(port)
    t.teardown(() => c.socket.destroy())
    return c
  }
  return {
    edge,
    origin,
    port,
    fast,
    handled,
    answered: () => edge.fastPathStats()?.answered ?? 0,
    route: (path, route) => { routes.set(path, route) },
    held: async (path, index = 0) => {
      let found: Held | undefined
      await until(() => (found = helds.find((h) => h.req.path.split('?')[0] === path && h.req.index === index)) !== undefined, `origin request ${index} to ${path}`)
      return found!
    },
    client,
    fetch: async (path) => {
      const c = await client()
      c.send(get(path))
      return { client: c, answer: await c.next() }
    },
    logs: (path) => edge.logs.filter((l) => l.msg === 'request' && l.path === path),
  }
}

async function until (check: () => boolean, what: string, timeoutMs = 8000): Promise<void> {
  const deadline = performance.now() + timeoutMs
  while (!check()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}

function sleep (ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

/** An access-log line without what differs between any two requests. */
function logLine (line: Record<string, unknown> | undefined): Record<string, unknown> {
  const { reqId: _id, durationMs: _ms, time: _t, ...rest } = line ?? {}
  return rest
}

/** Starts the fill for `path` with a plain GET (node:http: nothing to join yet); resolves once the origin holds it. */
async function startFill (h: Harness, path: string, extra = ''): Promise<{ client: RawClient, fill: Held }> {
  const client = await h.client()
  client.send(get(path, extra))
  const fill = await h.held(path, 0)
  return { client, fill }
}

/**
 * The fill's response was stored: the next request for `path` is a hit with `status` (and
 * `body` when given), and the origin saw only the fill's request. Returns the hit's client.
 */
async function storedHit (t: Test, h: Harness, path: string, status: number, body?: Buffer): Promise<RawClient> {
  const { client, answer } = await h.fetch(path)
  t.equal(answer.status, status)
  if (body !== undefined) t.ok(answer.body.equals(body))
  t.match(field(answer, 'cache-status'), /; hit/)
  t.equal(h.origin.count(path), 1)
  return client
}

/** `n` fast joiners of `path`, each on its own connection, all waiting for the fill's head. */
async function pendingJoiners (h: Harness, path: string, n: number, extra = '', method: 'GET' | 'HEAD' = 'GET'): Promise<RawClient[]> {
  const before = h.fast.pending
  const clients = await Promise.all(Array.from({ length: n }, () => h.client()))
  for (const c of clients) c.send(get(path, extra, method))
  await until(() => h.fast.pending === before + n, `${n} fast joiners waiting`)
  return clients
}

// ---- cases --------------------------------------------------------------------------------

t.test('equivalence: a fast joiner gets what a node:http joiner of the same fill gets', async (t) => {
  const h = await setup(t)
  const path = '/eq/a.bin'
  const body = bodyOf(120_000)
  const { client: first, fill } = await startFill(h, path)
  // before the head: one of each
  const [fastEarly] = await pendingJoiners(h, path, 1)
  const slowEarly = await h.client()
  slowEarly.send(get(path, SLOW))
  await until(() => h.handled() === 2, 'the node:http joiner')
  fill.head(200, okFields(body.length, [['etag', '"e1"'], ['x-multi', 'a'], ['x-multi', 'b'], ['via', '1.1 origin-proxy'], ['last-modified', httpDate(Date.UTC(2025, 11, 1))]]))
  fill.write(body.subarray(0, 20_000))
  await first.until(() => first.bodyBytesSoFar() >= 20_000, 'the initiator\'s first bytes')
  await fastEarly!.until(() => fastEarly!.bodyBytesSoFar() >= 20_000, 'the early fast joiner\'s first bytes')
  // after the head, mid-body: one of each
  const fastLate = await h.client()
  fastLate.send(get(path))
  const slowLate = await h.client()
  slowLate.send(get(path, SLOW))
  await until(() => h.fast.immediate === 1 && h.handled() === 3, 'the late joiners')
  await fastLate.until(() => fastLate.bodyBytesSoFar() >= 20_000, 'the late fast joiner\'s catch-up')
  for (let at = 20_000; at < body.length; at += 25_000) {
    await sleep(10)
    fill.write(body.subarray(at, Math.min(at + 25_000, body.length)))
  }
  const [a, b, c, d, initiator] = await Promise.all([fastEarly!.next(), slowEarly.next(), fastLate.next(), slowLate.next(), first.next()])
  for (const [name, answer] of [['early fast', a], ['early slow', b], ['late fast', c], ['late slow', d], ['initiator', initiator]] as const) {
    t.ok(answer!.complete && answer!.status === 200 && answer!.body.equals(body), `${name}: the whole body`)
  }
  t.same(comparable(a!), comparable(b!), 'before the head: same header fields, same order, same values')
  t.same(comparable(c!), comparable(d!), 'mid-body: same header fields, same order, same values')
  t.equal(field(a!, 'cache-status'), JOINED_STATUS)
  t.equal(field(a!, 'date'), DATE, 'the origin\'s Date, once')
  t.equal(a!.fields.filter(([n]) => n.toLowerCase() === 'date').length, 1)
  t.equal(field(a!, 'via'), '1.1 origin-proxy, 1.1 streamedge-test-edge')
  t.equal(field(a!, 'content-length'), String(body.length))
  t.same(a!.fields.filter(([n]) => n === 'x-multi').map(([, v]) => v), b!.fields.filter(([n]) => n === 'x-multi').map(([, v]) => v))
  t.match(field(initiator!, 'cache-status'), /fwd=uri-miss; fwd-status=200; stored$/, 'the initiator is no joiner')
  t.equal(h.fast.lateAnswered, 1, 'the early fast joiner was answered on the fast path')
  t.equal(h.answered(), 2, 'both fast joiners went out through the fast path')
  t.equal(h.handled(), 3, 'node:http saw the initiator and the two forced joiners only')
  t.equal(h.origin.count(path), 1, 'one origin request')
  await until(() => h.logs(path).length === 5, 'five access-log lines')
  const lines = h.logs(path)
  const joins = lines.filter((l) => l.cachePhase === 'collapsed')
  t.equal(joins.length, 4)
  t.equal(new Set(joins.map((l) => JSON.stringify(logLine(l)))).size, 1, 'the four joiners log the same line')
  t.match(logLine(joins[0]), { method: 'GET', path, status: 200, cachePhase: 'collapsed', source: 'fill', bytes: body.length, completed: true, cacheKey: path, client: '127.0.0.1' })
  t.equal(await h.edge.metrics.collapsed.value({ outcome: 'joined' }), 4)
})

t.test('a herd: 30 fast joiners of one slow fill, one origin request', async (t) => {
  const h = await setup(t)
  const path = '/herd/seg.bin'
  const body = bodyOf(256 * 1024, 7)
  const servedBefore = h.edge.proxy.servedBytesTotal
  const { client: first, fill } = await startFill(h, path)
  const joiners = await pendingJoiners(h, path, 30)
  fill.head(200, okFields(body.length))
  for (let at = 0; at < body.length; at += 32 * 1024) {
    fill.write(body.subarray(at, at + 32 * 1024))
    await sleep(15)
  }
  const answers = await Promise.all(joiners.map((c) => c.next()))
  const initiator = await first.next()
  t.ok(initiator.complete && initiator.body.equals(body), 'the initiator got the body')
  const bad = answers.filter((a) => !a.complete || a.status !== 200 || !a.body.equals(body) || field(a, 'cache-status') !== JOINED_STATUS)
  t.equal(bad.length, 0, 'every joiner got the whole, correct body and the joined Cache-Status')
  t.equal(h.origin.count(path), 1, 'one origin request')
  t.equal(h.fast.lateAnswered, 30, 'all 30 answered on the fast path')
  t.equal(h.handled(), 1, 'node:http saw the initiator only')
  t.equal(await h.edge.metrics.collapsed.value({ outcome: 'joined' }), 30)
  await until(() => h.logs(path).length === 31, '31 access-log lines')
  const lines = h.logs(path)
  t.equal(lines.filter((l) => l.cachePhase === 'miss').length, 1)
  const joins = lines.filter((l) => l.cachePhase === 'collapsed')
  t.equal(joins.length, 30)
  t.equal(joins.filter((l) => l.source === 'fill' && l.completed === true && l.bytes === body.length && l.status === 200 && l.method === 'GET').length, 30, 'collapsed / fill / completed / whole body')
  t.equal(await h.edge.metrics.requests.value({ phase: 'collapsed', status: 200 }), 30)
  t.equal(await h.edge.metrics.servedBytes.value({ source: 'fill' }), 31 * body.length, 'served bytes count every reader of the fill')
  t.equal(h.edge.proxy.servedBytesTotal - servedBefore, 31 * body.length)
  t.equal(await h.edge.metrics.clientAborts.value({ phase: 'collapsed' }), 0)
  // the fill was stored: the next request is a fast memory hit
  await storedHit(t, h, path, 200, body)
})

t.test('joiners before the head and joiners after it, before the body is complete', async (t) => {
  const h = await setup(t)
  const path = '/mid/seg.bin'
  const body = bodyOf(200_000, 3)
  const { client: first, fill } = await startFill(h, path)
  const early = await pendingJoiners(h, path, 5)
  fill.head(200, okFields(body.length))
  await sleep(30)
  t.equal(h.fast.lateAnswered, 0, 'a head without body bytes answers nobody yet (head and first bytes leave together)')
  t.ok(early.every((c) => c.received === 0), 'no early joiner got anything yet')
  fill.write(body.subarray(0, 16_000))
  await until(() => h.fast.lateAnswered === 5, 'the early joiners answered')
  for (const c of early) await c.until(() => c.bodyBytesSoFar() >= 16_000, 'head and first bytes')
  const late = await Promise.all(Array.from({ length: 5 }, () => h.client()))
  for (const c of late) c.send(get(path))
  await until(() => h.fast.immediate === 5, 'the late joiners answered at once')
  // the late joiners stream what the fill has so far, before the origin sends more
  for (const c of late) await c.until(() => c.bodyBytesSoFar() >= 16_000, 'the late joiner\'s catch-up')
  t.equal(h.origin.count(path), 1)
  fill.write(body.subarray(16_000, 100_000))
  await sleep(20)
  fill.write(body.subarray(100_000))
  const answers = await Promise.all([...early, ...late].map((c) => c.next()))
  t.ok(answers.every((a) => a.complete && a.body.equals(body) && field(a, 'cache-status') === JOINED_STATUS), 'all ten got the whole body')
  t.ok((await first.next()).body.equals(body))
  t.equal(h.answered(), 10)
  t.equal(h.handled(), 1)
  t.equal(h.origin.count(path), 1)
  t.equal(await h.edge.metrics.collapsed.value({ outcome: 'joined' }), 10)
})

t.test('a HEAD joiner: the head only, the whole Content-Length, and the connection stays usable', async (t) => {
  const h = await setup(t)
  const path = '/head/seg.bin'
  const body = bodyOf(90_000, 4)
  const { client: first, fill } = await startFill(h, path)
  const [head] = await pendingJoiners(h, path, 1, '', 'HEAD')
  const slowHead = await h.client()
  slowHead.send(get(path, SLOW, 'HEAD'))
  await until(() => h.handled() === 2, 'the node:http HEAD joiner')
  fill.head(200, okFields(body.length))
  // a HEAD needs no body bytes: answered at the head
  const answer = await head!.next('HEAD')
  t.equal(answer.status, 200)
  t.equal(field(answer, 'content-length'), String(body.length), 'Content-Length of the whole body')
  t.equal(field(answer, 'cache-status'), JOINED_STATUS)
  t.equal(h.fast.lateAnswered, 1, 'answered on the fast path')
  const slowAnswer = await slowHead.next('HEAD')
  t.same(comparable(answer), comparable(slowAnswer), 'the same head as node:http\'s')
  // the same connection, mid-fill: a GET joins the fill, answered with its first bytes
  head!.send(get(path))
  await until(() => h.fast.pending === 2, 'the GET on the HEAD\'s connection waits for the first bytes')
  fill.write(body.subarray(0, 50_000))
  await sleep(10)
  fill.write(body.subarray(50_000))
  const whole = await head!.next()
  t.ok(whole.complete && whole.body.equals(body), 'no body bytes went out for the HEAD: the next response parses whole')
  // and once more, after the fill: a fast hit
  head!.send(get(path, '', 'HEAD'))
  const hit = await head!.next('HEAD')
  t.match(field(hit, 'cache-status'), /; hit/)
  t.equal(field(hit, 'content-length'), String(body.length))
  t.notOk(head!.closed, 'still open')
  t.ok((await first.next()).body.equals(body))
  t.equal(h.answered(), 3)
  t.equal(h.origin.count(path), 1)
  await until(() => h.logs(path).filter((l) => l.method === 'HEAD').length === 3, 'the HEAD log lines')
  t.match(logLine(h.logs(path).find((l) => l.method === 'HEAD' && l.cachePhase === 'collapsed')), { status: 200, source: 'fill', bytes: 0, completed: true })
})

t.test('keep-alive and pipelining: a join and a pipelined request for a cached object, answered in order', async (t) => {
  const h = await setup(t)
  const cached = '/pipe/cached.txt'
  h.route(cached, (held) => held.respond(200, cacheable(), 'cached body\n'))
  const warm = await h.client()
  warm.send(get(cached, SLOW))
  t.equal((await warm.next()).body.toString(), 'cached body\n')
  const path = '/pipe/seg.bin'
  const body = bodyOf(150_000, 5)
  const { client: first, fill } = await startFill(h, path)
  const client = await h.client()
  client.send(get(path) + get(cached) + get(path, '', 'HEAD'))
  await until(() => h.fast.pending === 1, 'the join waiting')
  fill.head(200, okFields(body.length))
  fill.write(body.subarray(0, 30_000))
  await client.until(() => client.bodyBytesSoFar() >= 30_000, 'the join streaming')
  t.equal(h.fast.immediate, 0, 'the pipelined requests wait for the join to finish')
  fill.write(body.subarray(30_000))
  const one = await client.next()
  const two = await client.next()
  const three = await client.next('HEAD')
  t.ok(one.complete && one.body.equals(body), 'first: the joined body')
  t.equal(field(one, 'cache-status'), JOINED_STATUS)
  t.equal(two.body.toString(), 'cached body\n', 'second: the cached object')
  t.match(field(two, 'cache-status'), /; hit/)
  t.equal(three.status, 200, 'third: a HEAD hit on the object just filled')
  t.equal(field(three, 'content-length'), String(body.length))
  t.ok((await first.next()).body.equals(body))
  t.equal(h.answered(), 3, 'all three on the fast path')
  t.notOk(client.closed)
  t.equal(h.origin.count(path), 1)
})

t.test('declined joins go to node:http and join the same fill: a 404', async (t) => {
  const h = await setup(t)
  const path = '/decline/missing.bin'
  const text = 'not here, and a body long enough to come in two pieces\n'
  const { client: first, fill } = await startFill(h, path)
  const joiners = await pendingJoiners(h, path, 3)
  // behind a join that will be declined: the hand-over keeps every request, in order
  const piped = await h.client()
  piped.send(get(path) + get('/healthz') + get(path, '', 'HEAD'))
  await until(() => h.fast.pending === 4, 'the pipelined join waiting')
  fill.head(404, [['content-type', 'text/plain'], ['date', DATE], ['content-length', String(text.length)]])
  fill.write(text.slice(0, 10))
  // node:http takes the pipelined HEAD at once too: 1 + 3 + 2
  await until(() => h.fast.lateDeclined === 4 && h.handled() === 6, 'the joiners handed to node:http')
  fill.write(text.slice(10))
  const answers = await Promise.all(joiners.map((c) => c.next()))
  const [p1, p2, p3] = [await piped.next(), await piped.next(), await piped.next('HEAD')]
  t.same([p1.status, p1.body.toString(), p2.status, p2.body.toString(), p3.status, p3.body.length], [404, text, 200, 'ok\n', 404, 0], 'the pipelined requests, answered in order by node:http')
  for (const a of answers) {
    t.equal(a.status, 404)
    t.equal(a.body.toString(), text)
    t.equal(field(a, 'cache-status'), `${EDGE}; fwd=uri-miss; fwd-status=404; stored; collapsed`)
  }
  t.equal((await first.next()).status, 404)
  t.equal(h.origin.count(path), 1, 'one origin request')
  t.equal(h.fast.lateAnswered, 0)
  t.equal(await h.edge.metrics.collapsed.value({ outcome: 'joined' }), 5, 'all five (the pipelined HEAD too) joined through node:http')
  // negatively cached: the next request is a fast hit
  await storedHit(t, h, path, 404)
})

t.test('declined joins: a response with Vary: accept-encoding', async (t) => {
  const h = await setup(t)
  const path = '/decline/vary.txt'
  const bodyFor = (coding: string | undefined): string => `the ${coding ?? 'identity'} variant, padded to be long enough for two pieces\n`
  h.route(path, (held) => {
    if (held.req.index === 0) return // the fill: held
    const coding = held.req.headers['accept-encoding']
    held.respond(200, [['content-type', 'text/plain'], ['cache-control', 'max-age=600'], ['vary', 'accept-encoding'], ['date', DATE]], bodyFor(coding))
  })
  const { client: first, fill } = await startFill(h, path, 'Accept-Encoding: gzip\r\n')
  const same = await pendingJoiners(h, path, 2, 'Accept-Encoding: gzip\r\n')
  const [other] = await pendingJoiners(h, path, 1, 'Accept-Encoding: br\r\n')
  const [none] = await pendingJoiners(h, path, 1)
  const gzip = bodyFor('gzip')
  fill.head(200, [['content-type', 'text/plain'], ['cache-control', 'max-age=600'], ['vary', 'accept-encoding'], ['date', DATE], ['content-length', String(gzip.length)]])
  fill.write(gzip.slice(0, 10))
  await until(() => h.fast.lateDeclined === 4 && h.handled() === 5, 'the joiners handed to node:http')
  fill.write(gzip.slice(10))
  for (const c of same) {
    const a = await c.next()
    t.equal(a.body.toString(), gzip, 'the same variant: shared')
    t.equal(field(a, 'cache-status'), JOINED_STATUS)
  }
  const br = await other!.next()
  t.equal(br.body.toString(), bodyFor('br'), 'another variant: fetched on its own')
  t.match(field(br, 'cache-status'), /detail=not-shareable/)
  const identity = await none!.next()
  t.equal(identity.body.toString(), bodyFor(undefined))
  t.equal((await first.next()).body.toString(), gzip)
  t.equal(h.origin.count(path), 3, 'the fill, and one fetch for each other variant')
  t.equal(await h.edge.metrics.collapsed.value({ outcome: 'joined' }), 2)
  t.equal(await h.edge.metrics.collapsed.value({ outcome: 'not-shareable' }), 2)
  t.equal(h.fast.lateAnswered, 0)
})

t.test('declined joins: a private response is not shared, each joiner fetches its own', async (t) => {
  const h = await setup(t)
  const path = '/decline/private.txt'
  const fields = [['content-type', 'text/plain'], ['cache-control', 'private, max-age=60'], ['date', DATE]] as const
  h.route(path, (held) => {
    if (held.req.index > 0) held.respond(200, fields, `for request ${held.req.index} only\n`)
  })
  const { client: first, fill } = await startFill(h, path)
  const joiners = await pendingJoiners(h, path, 3)
  fill.respond(200, fields, 'for request 0 only\n')
  const answers = await Promise.all(joiners.map((c) => c.next()))
  t.equal((await first.next()).body.toString(), 'for request 0 only\n')
  const bodies = answers.map((a) => a.body.toString()).sort()
  t.same(bodies, ['for request 1 only\n', 'for request 2 only\n', 'for request 3 only\n'], 'nobody got the initiator\'s private response')
  for (const a of answers) t.match(field(a, 'cache-status'), /fwd=uri-miss; fwd-status=200; detail=not-shareable/)
  t.equal(h.origin.count(path), 4, 'one request for the fill and one for each joiner')
  t.equal(h.fast.lateDeclined, 3)
  t.equal(await h.edge.metrics.collapsed.value({ outcome: 'not-shareable' }), 3)
  t.equal(await h.edge.metrics.collapsed.value({ outcome: 'joined' }), 0)
})

t.test('lock timeout: a fast joiner waits one lock timeout, then fetches alone', async (t) => {
  const lockTimeoutMs = 1000
  const h = await setup(t, { lockTimeoutMs })
  const path = '/lock/seg.bin'
  const body = bodyOf(10_000, 9)
  h.route(path, (held) => {
    if (held.req.index > 0) held.respond(200, cacheable(), 'fetched on its own\n')
  })
  const { client: first, fill } = await startFill(h, path)
  const startedAt = performance.now()
  const [joiner] = await pendingJoiners(h, path, 1)
  const answer = await joiner!.next()
  const waitedMs = performance.now() - startedAt
  t.equal(answer.status, 200)
  t.equal(answer.body.toString(), 'fetched on its own\n')
  t.match(field(answer, 'cache-status'), /fwd=uri-miss; fwd-status=200; detail=lock-timeout/)
  t.ok(waitedMs >= lockTimeoutMs - 50, `waited for the lock (${Math.round(waitedMs)} ms)`)
  // node:http must not wait a second lock timeout: that would take at least 2 × lockTimeoutMs
  t.ok(waitedMs < 2 * lockTimeoutMs, `answered within one lock timeout plus the origin's answer (${Math.round(waitedMs)} ms)`)
  t.equal(h.fast.lateDeclined, 1, 'handed to node:http')
  t.equal(await h.edge.metrics.collapsed.value({ outcome: 'lock-timeout' }), 1)
  t.equal(await h.edge.metrics.collapsed.value({ outcome: 'joined' }), 0)
  t.equal(h.origin.count(path), 2, 'the fill and the joiner\'s own request')
  t.match(logLine(h.logs(path).find((l) => l.cachePhase === 'miss' && l.source === 'pass')), { status: 200, completed: true })
  // the fill itself is unaffected
  fill.respond(200, cacheable(), body)
  t.ok((await first.next()).body.equals(body))
})

t.test('a stuck writer (a head, then nothing): staggered fast joiners each fetch alone at their own lock deadline; a HEAD joiner is answered at the head', async (t) => {
  const lockTimeoutMs = 600
  const h = await setup(t, { lockTimeoutMs })
  const path = '/lock/stuck.bin'
  const body = bodyOf(50_000, 4)
  h.route(path, (held) => {
    if (held.req.index > 0) held.respond(200, cacheable(), 'fetched on its own\n')
  })
  const { client: first, fill } = await startFill(h, path)
  const earlyAt = performance.now()
  const [early] = await pendingJoiners(h, path, 1)
  const [headJoiner] = await pendingJoiners(h, path, 1, '', 'HEAD')
  await sleep(300)
  const lateAt = performance.now()
  const [late] = await pendingJoiners(h, path, 1)
  fill.head(200, okFields(body.length))
  const headAnswer = await headJoiner!.next('HEAD')
  t.equal(headAnswer.status, 200, 'the HEAD joiner has its answer at the head')
  t.equal(field(headAnswer, 'content-length'), String(body.length))
  t.equal(h.fast.lateAnswered, 1, 'on the fast path')
  const answers = await Promise.all([early!, late!].map(async (c) => {
    const answer = await c.next()
    return { answer, at: performance.now() }
  }))
  for (const { answer } of answers) {
    t.equal(answer.body.toString(), 'fetched on its own\n')
    t.match(field(answer, 'cache-status'), /fwd=uri-miss; fwd-status=200; detail=lock-timeout/)
  }
  const [e, l] = answers
  t.ok(e!.at - earlyAt >= lockTimeoutMs - 50, `the early joiner waited its lock timeout (${Math.round(e!.at - earlyAt)} ms)`)
  t.ok(l!.at - lateAt >= lockTimeoutMs - 50, `the late joiner waited its own, not the early one's (${Math.round(l!.at - lateAt)} ms)`)
  t.ok(l!.at - e!.at >= 150, `the late joiner fetched after the early one (${Math.round(l!.at - e!.at)} ms later)`)
  t.equal(h.fast.lateDeclined, 2, 'both GETs handed to node:http')
  t.equal(await h.edge.metrics.collapsed.value({ outcome: 'lock-timeout' }), 2)
  t.equal(h.origin.count(path), 3, 'the fill and each joiner\'s own request')
  // the stuck fill itself goes on once its bytes come
  fill.write(body)
  t.ok((await first.next()).body.equals(body))
})

for (const failure of ['reset', 'garbage'] as const) {
  t.test(`the fill fails before its head (${failure}): joiners get node:http's error, no second origin request`, async (t) => {
    const h = await setup(t)
    const path = `/fail-head/${failure}.bin`
    h.route(path, (held) => {
      if (held.req.index > 0) held.respond(200, cacheable(), 'ok\n')
    })
    const { client: first, fill } = await startFill(h, path)
    const joiners = await pendingJoiners(h, path, 3)
    const slow = await h.client()
    slow.send(get(path, SLOW))
    await until(() => h.handled() === 2, 'the node:http joiner')
    if (failure === 'reset') fill.reset()
    else fill.write('THIS IS NOT HTTP\r\n\r\n')
    const answers = await Promise.all(joiners.map((c) => c.next()))
    const reference = await slow.next()
    t.equal(reference.status, 502, 'node:http\'s joiner gets 502')
    t.match(field(reference, 'cache-status'), /collapsed/)
    for (const a of answers) {
      t.equal(a.status, reference.status)
      t.same(comparable(a), comparable(reference), 'the same head')
      t.equal(a.body.toString(), reference.body.toString(), 'the same body')
    }
    t.equal((await first.next()).status, 502)
    t.equal(h.fast.lateDeclined, 3)
    await sleep(50)
    t.equal(h.origin.count(path), 1, 'no origin request because of the joiners')
    // the failed fill is gone: the next request fetches again
    t.equal((await h.fetch(path)).answer.body.toString(), 'ok\n')
    t.equal(h.origin.count(path), 2)
  })
}

t.test('the fill fails mid-body: fast joiners see an aborted transfer, nothing is stored', async (t) => {
  const h = await setup(t)
  const path = '/fail-body/seg.bin'
  const body = bodyOf(100_000, 11)
  h.route(path, (held) => {
    if (held.req.index > 0) held.respond(200, cacheable(), body)
  })
  const { client: first, fill } = await startFill(h, path)
  const early = await pendingJoiners(h, path, 3)
  fill.head(200, okFields(body.length))
  fill.write(body.subarray(0, 30_000))
  await until(() => h.fast.lateAnswered === 3, 'the early joiners answered')
  const late = await Promise.all([h.client(), h.client()])
  for (const c of late) c.send(get(path))
  const slow = await h.client()
  slow.send(get(path, SLOW))
  await until(() => h.fast.immediate === 2 && h.handled() === 2, 'the late joiners')
  for (const c of [...early, ...late, slow]) await c.until(() => c.bodyBytesSoFar() >= 30_000, 'the first 30000 bytes')
  fill.reset()
  const answers = await Promise.all([...early, ...late].map((c) => c.next()))
  for (const a of answers) {
    t.equal(a.status, 200)
    t.notOk(a.complete, 'the connection closed before Content-Length bytes')
    t.equal(a.body.length, 30_000)
    t.ok(a.body.equals(body.subarray(0, 30_000)), 'what came is right')
  }
  t.ok([...early, ...late].every((c) => c.closed), 'every fast joiner\'s connection is closed')
  t.notOk((await slow.next()).complete, 'as for node:http\'s joiner')
  t.notOk((await first.next()).complete)
  await until(() => h.logs(path).length === 7, 'seven access-log lines')
  const joins = h.logs(path).filter((l) => l.cachePhase === 'collapsed')
  t.equal(joins.length, 6)
  t.equal(new Set(joins.map((l) => JSON.stringify(logLine(l)))).size, 1, 'fast and node:http joiners log the same line')
  t.match(logLine(joins[0]), { status: 200, source: 'fill', bytes: 30_000, completed: false, errCode: 'CDN_ERR_UPSTREAM_TRUNCATED' })
  t.equal(await h.edge.metrics.clientAborts.value({ phase: 'collapsed' }), 0, 'an upstream failure is no client abort')
  t.equal(h.edge.store.memory.peek(path), undefined, 'nothing stored')
  const { answer: fresh } = await h.fetch(path)
  t.ok(fresh.complete && fresh.body.equals(body), 'the next request fetches again')
  t.equal(h.origin.count(path), 2)
})

t.test('the fill fails after its head, before any body byte: waiting joiners are cut off too', async (t) => {
  const h = await setup(t)
  const path = '/fail-body/empty.bin'
  const { client: first, fill } = await startFill(h, path)
  const joiners = await pendingJoiners(h, path, 2)
  fill.head(200, okFields(50_000))
  await sleep(20)
  fill.reset()
  const answers = await Promise.all(joiners.map((c) => c.next()))
  for (const a of answers) t.notOk(a.complete, 'no complete response')
  t.notOk((await first.next()).complete)
  t.equal(h.origin.count(path), 1)
  t.equal(h.fast.lateAnswered, 0, 'not answered on the fast path (the fill failed first)')
  t.equal(h.fast.lateDeclined, 2, 'handed to node:http, which joins the failed fill')
})

t.test('a fast joiner that leaves mid-stream: the others complete, the abort is counted, the edge is fine', async (t) => {
  const h = await setup(t)
  const path = '/abort/seg.bin'
  const body = bodyOf(160_000, 13)
  const { client: first, fill } = await startFill(h, path)
  const joiners = await pendingJoiners(h, path, 5)
  fill.head(200, okFields(body.length))
  fill.write(body.subarray(0, 40_000))
  for (const c of joiners) await c.until(() => c.bodyBytesSoFar() >= 40_000, 'the first 40000 bytes')
  const [victim, ...rest] = joiners
  victim!.reset()
  await until(() => h.edge.fastPathStats()!.open === 4, 'the edge to notice')
  fill.write(body.subarray(40_000, 100_000))
  await sleep(10)
  fill.write(body.subarray(100_000))
  const answers = await Promise.all(rest.map((c) => c.next()))
  t.ok(answers.every((a) => a.complete && a.body.equals(body)), 'the other joiners got the whole body')
  t.ok((await first.next()).body.equals(body))
  await until(() => h.logs(path).length === 6, 'six access-log lines')
  t.equal(await h.edge.metrics.clientAborts.value({ phase: 'collapsed' }), 1, 'one client abort')
  const aborted = h.logs(path).filter((l) => l.completed === false)
  t.equal(aborted.length, 1)
  t.match(logLine(aborted[0]), { cachePhase: 'collapsed', source: 'fill', status: 200 })
  t.notOk('errCode' in (aborted[0] ?? {}), 'a client abort, not an error')
  t.ok((aborted[0]?.bytes as number) >= 40_000 && (aborted[0]?.bytes as number) < body.length)
  // the fill was stored regardless, and the edge answers
  const again = await storedHit(t, h, path, 200, body)
  again.send(get('/healthz'))
  t.equal((await again.next()).status, 200)
})

t.test('Connection: close on a fast join: the edge closes after the whole body', async (t) => {
  const h = await setup(t)
  const path = '/close/seg.bin'
  const body = bodyOf(70_000, 15)
  const { client: first, fill } = await startFill(h, path)
  const client = await h.client()
  // the pipelined request after it is never answered: the connection ends with the first response
  client.send(get(path, 'Connection: close\r\n') + get(path))
  await until(() => h.fast.pending === 1, 'the join waiting')
  fill.head(200, okFields(body.length))
  fill.write(body.subarray(0, 35_000))
  await client.until(() => client.bodyBytesSoFar() >= 35_000, 'the first bytes')
  t.notOk(client.closed, 'open while the body streams')
  fill.write(body.subarray(35_000))
  const answer = await client.next()
  t.ok(answer.complete && answer.body.equals(body), 'the whole body')
  t.equal(field(answer, 'connection'), 'close')
  await client.until(() => client.closed, 'the close')
  t.ok(client.closed, 'the edge closed the connection')
  const rest = await client.next()
  t.equal(rest.status, 0, 'nothing after it')
  t.ok((await first.next()).body.equals(body))
  t.equal(h.answered(), 1)
})

t.test('a joiner whose client leaves while it waits is logged and counted once, answered fast or handed to node:http', async (t) => {
  const h = await setup(t)
  for (const [path, status] of [['/gone/ok.bin', 200], ['/gone/missing.bin', 404]] as const) {
    const aborts = await h.edge.metrics.clientAborts.value({ phase: 'collapsed' })
    const handled = h.handled()
    const { client: first, fill } = await startFill(h, path)
    const [gone, stay] = await pendingJoiners(h, path, 2)
    // the reference: a node:http joiner that leaves the same way
    const slowGone = await h.client()
    slowGone.send(get(path, SLOW))
    await until(() => h.handled() === handled + 2, 'the node:http joiner')
    const open = h.edge.fastPathStats()!.open
    gone!.reset()
    slowGone.reset()
    await until(() => h.edge.fastPathStats()!.open === open - 1 && h.logs(path).length === 1, 'the edge to notice')
    const body = bodyOf(5000, status)
    fill.respond(status, status === 200 ? cacheable() : [['content-type', 'text/plain'], ['date', DATE]], body)
    const answer = await stay!.next()
    t.ok(answer.complete && answer.status === status && answer.body.equals(body), `${status}: the joiner that stayed got its answer`)
    t.equal((await first.next()).status, status)
    await until(() => h.logs(path).length === 4, `${status}: four access-log lines`)
    const [slowLine, fastLine, ...others] = h.logs(path).filter((l) => l.completed === false)
    t.equal(others.length, 0, `${status}: two joiners left`)
    t.match(logLine(fastLine), { method: 'GET', path, status: 200, cachePhase: 'collapsed', source: 'fill', bytes: 0, completed: false, cacheKey: path })
    t.notOk('errCode' in (fastLine ?? {}))
    // (a fast join answered for a connection that is gone names the fill's upstream; node:http's line, written at the leave, cannot)
    const { upstream: _u, ...fastRest } = logLine(fastLine)
    t.same(fastRest, logLine(slowLine), `${status}: the same line as node:http's joiner that left`)
    t.equal(await h.edge.metrics.clientAborts.value({ phase: 'collapsed' }), aborts + 2, `${status}: two client aborts`)
    t.equal(h.origin.count(path), 1)
  }
  t.equal(h.fast.lateAnswered, 2, 'the 200\'s joiners were answered on the fast path (one for a connection that was gone)')
  t.equal(h.fast.lateDeclined, 2, 'the 404\'s joiners were declined (one for a connection that was gone)')
  t.equal(h.handled(), 5, 'node:http saw the initiators, the forced joiners and the 404 joiner that stayed, not the one that left')
})

t.test('a half-closed client whose waiting join is declined: the connection ends after the answer', async (t) => {
  const h = await setup(t)
  const path = '/half-close/missing.bin'
  const { client: first, fill } = await startFill(h, path)
  const [client] = await pendingJoiners(h, path, 1)
  client!.socket.end() // FIN: nothing more to send, still reading
  await sleep(20)
  fill.respond(404, [['content-type', 'text/plain'], ['date', DATE]], 'not here\n')
  const answer = await client!.next()
  t.equal(answer.status, 404, 'the answer came (node:http itself would have dropped it at the FIN)')
  await client!.until(() => client!.closed, 'the close', 600).catch(() => {})
  t.ok(client!.closed, 'the edge ended the connection once the client had its answer')
  await first.next()
})
