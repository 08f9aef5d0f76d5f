/**
 * Tracked bodies (edge/proxy/tracked-bodies.ts), with real upstream bodies from 127.0.0.1
 * (undici through HttpUpstream) and a real CircuitBreaker: track() hands the response on
 * with its body wrapped and the answering upstream's name; destroyAll() cuts every body
 * still streaming (listeners see `cancel`, the origin sees its connection go) and leaves
 * finished ones alone; settleBody / settleOnError give the breaker the right verdict (a
 * half-open breaker with one trial slot tells success, failure and "no verdict" apart);
 * discardKept drains a kept fallback so its connection is reused.
 */
import { once } from 'node:events'
import http from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { PassThrough, type Readable } from 'node:stream'
import t, { type Test } from 'tap'
import { CdnError, type ErrorCode } from '../../../lib/errors.ts'
import { CircuitBreaker, type BreakerPermit } from '../../../edge/proxy/circuit-breaker.ts'
import type { BodyOutcome } from '../../../edge/proxy/observed-body.ts'
import { TrackedBodies, discardKept, settleBody, settleOnError } from '../../../edge/proxy/tracked-bodies.ts'
import { HttpUpstream, type UpstreamResponse } from '../../../edge/proxy/upstream.ts'

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))

async function readAll (body: Readable): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const chunk of body) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks)
}

interface Origin {
  readonly upstream: HttpUpstream
  /** Connections accepted so far, and how many of them have closed. */
  readonly connections: () => number
  readonly closedConnections: () => number
  /** Resolves when `n` connections have closed. */
  closed (n: number): Promise<void>
}

/**
 * An origin on 127.0.0.1: `/ok/<n>` answers n bytes, `/fail/<n>` a 503 with n bytes,
 * `/cut` promises 1 MB and dies after 1 KB, `/endless` streams until the peer goes.
 */
async function startOrigin (t: Test, connections = 4): Promise<Origin> {
  let opened = 0
  let closedCount = 0
  const waiters: Array<{ n: number, resolve: () => void }> = []
  const server = http.createServer((req, res) => {
    const [, kind, n] = (req.url ?? '').split('/')
    if (kind === 'ok' || kind === 'fail') {
      res.writeHead(kind === 'ok' ? 200 : 503, { 'content-length': n, 'x-kind': kind })
      res.end(Buffer.alloc(Number(n), 0x62))
      return
    }
    if (kind === 'cut') {
      res.writeHead(200, { 'content-length': String(1024 * 1024) })
      res.write(Buffer.alloc(1024))
      setImmediate(() => res.socket?.destroy())
      return
    }
    res.writeHead(200, { 'content-length': String(1024 * 1024 * 1024) })
    const more = (): void => {
      while (!res.destroyed && res.write(Buffer.alloc(64 * 1024))) { /* fill until backpressure */ }
      if (!res.destroyed) res.once('drain', more)
    }
    more()
  })
  server.on('connection', (socket: Socket) => {
    opened++
    socket.on('close', () => {
      closedCount++
      for (const w of waiters.filter((w) => closedCount >= w.n)) w.resolve()
    })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  const upstream = new HttpUpstream({ url, name: 'origin-a', connectTimeoutMs: 2000, firstByteTimeoutMs: 5000, idleTimeoutMs: 5000, connections, keepAliveTimeoutMs: 10_000 })
  t.teardown(async () => {
    await upstream.close()
    server.closeAllConnections()
    server.close()
  })
  return {
    upstream,
    connections: () => opened,
    closedConnections: () => closedCount,
    closed: (n) => closedCount >= n ? Promise.resolve() : new Promise((resolve) => waiters.push({ n, resolve })),
  }
}

function get (origin: Origin, path: string): Promise<UpstreamResponse> {
  return origin.upstream.request({ method: 'GET', path, headers: {} })
}

t.test('track: status and headers pass on, the body is wrapped and the upstream is named as given', async (t) => {
  const origin = await startOrigin(t)
  const bodies = new TrackedBodies()
  const raw = await get(origin, '/ok/5000')
  const outcomes: BodyOutcome[] = []
  const tracked = bodies.track(raw, 'shield-2', (outcome) => { outcomes.push(outcome) })
  t.equal(tracked.status, 200)
  t.equal(tracked.headers['x-kind'], 'ok')
  t.equal(tracked.upstream, 'shield-2', 'the name given to track(), not the transport\'s')
  t.not(tracked.body, raw.body, 'the body is the observed wrapper')
  t.equal((await readAll(tracked.body)).length, 5000)
  await tick()
  t.same(outcomes, ['end'])
})

t.test('destroyAll: cuts the bodies still streaming (their origin connections close), leaves finished ones alone', async (t) => {
  const origin = await startOrigin(t)
  const bodies = new TrackedBodies()
  const seen: Array<[string, BodyOutcome]> = []
  const listen = (name: string) => (outcome: BodyOutcome): void => { seen.push([name, outcome]) }
  const done = bodies.track(await get(origin, '/ok/10'), 'a', listen('finished'))
  t.equal((await readAll(done.body)).length, 10)
  await tick()
  const streaming = [
    bodies.track(await get(origin, '/endless'), 'a', listen('unread')),
    bodies.track(await get(origin, '/endless'), 'a', listen('half-read')),
  ]
  await new Promise((resolve) => streaming[1]!.body.once('data', resolve))
  for (const s of streaming) s.body.on('error', () => {})
  const closedBefore = origin.closedConnections()
  bodies.destroyAll()
  await origin.closed(closedBefore + 2)
  await tick()
  t.same(seen, [['finished', 'end'], ['unread', 'cancel'], ['half-read', 'cancel']], 'each listener once; the finished body is not touched')
  t.ok(streaming.every((s) => s.body.destroyed))
  bodies.destroyAll()
  await tick()
  t.equal(seen.length, 3, 'a second destroyAll finds nothing left to cut')
})

t.test('a body that failed or was dropped leaves the set: destroyAll does not report it again', async (t) => {
  const bodies = new TrackedBodies()
  const seen: BodyOutcome[] = []
  const source = new PassThrough()
  const tracked = bodies.track({ status: 200, headers: {}, body: source, upstream: 'x' }, 'x', (outcome) => { seen.push(outcome) })
  tracked.body.on('error', () => {})
  source.destroy(new Error('reset'))
  await tick()
  const dropped = bodies.track({ status: 200, headers: {}, body: new PassThrough(), upstream: 'x' }, 'x', (outcome) => { seen.push(outcome) })
  dropped.body.destroy()
  await tick()
  bodies.destroyAll()
  await tick()
  t.same(seen, ['error', 'cancel'])
})

/** A breaker in half-open with one trial slot, and that trial's permit. */
function trialPermit (): { breaker: CircuitBreaker, permit: BreakerPermit } {
  let now = 0
  const breaker = new CircuitBreaker({ failureThreshold: 1, errorRatePercent: 0, minRequests: 1, windowMs: 10_000, coolDownMs: 1000, halfOpenTrials: 1, now: () => now })
  breaker.acquire()!.failure()
  now += 1000
  const permit = breaker.acquire()
  if (permit === undefined || !permit.trial) throw new Error('expected a half-open trial permit')
  return { breaker, permit }
}

type Verdict = 'success' | 'failure' | 'no verdict'

/** What the breaker did with the trial: closed (success), open again (failure), still half-open with its slot free (release). */
function verdictOf (breaker: CircuitBreaker): Verdict | `unsettled (${string})` {
  if (breaker.state === 'closed') return 'success'
  if (breaker.state === 'open') return 'failure'
  return breaker.available() ? 'no verdict' : `unsettled (${breaker.state})`
}

t.test('settleBody with real bodies: a whole body is a success, a cut one a failure, a dropped one no verdict', async (t) => {
  const origin = await startOrigin(t)
  const run = async (path: string, consume: (body: Readable) => Promise<unknown>, failedStatus = false): Promise<string> => {
    const { breaker, permit } = trialPermit()
    const bodies = new TrackedBodies()
    let settled!: () => void
    const onSettled = new Promise<void>((resolve) => { settled = resolve })
    const res = bodies.track(await get(origin, path), 'origin-a', (outcome, err) => {
      settleBody(permit, outcome, err, 'origin-a', failedStatus)
      settled()
    })
    await consume(res.body).catch(() => {})
    await onSettled
    return verdictOf(breaker)
  }
  t.equal(await run('/ok/3000', readAll), 'success', 'all of a 200 body')
  t.equal(await run('/fail/3000', readAll, true), 'failure', 'all of a 5xx body kept as the answer (failedStatus)')
  t.equal(await run('/cut', readAll), 'failure', 'Content-Length not reached: the upstream\'s fault')
  t.equal(await run('/endless', async (body) => {
    await new Promise((resolve) => body.once('data', resolve))
    body.destroy()
  }), 'no verdict', 'our client left: the upstream is neither blamed nor credited')
})

t.test('settleBody: an "error" is mapped through toUpstreamError; only upstream faults count against the upstream', async (t) => {
  const cases: Array<[Error, Verdict]> = [
    [Object.assign(new Error('reset'), { code: 'ECONNRESET' }), 'failure'],
    [Object.assign(new Error('bad chunk'), { code: 'HPE_INVALID_CHUNK_SIZE' }), 'failure'],
    [Object.assign(new Error('closed early'), { code: 'ERR_STREAM_PREMATURE_CLOSE' }), 'failure'],
    [Object.assign(new Error('aborted'), { name: 'AbortError' }), 'no verdict'],
    [new CdnError('CDN_ERR_CLIENT_ABORTED'), 'no verdict'],
  ]
  for (const [err, want] of cases) {
    const { breaker, permit } = trialPermit()
    settleBody(permit, 'error', err, 'origin-a')
    t.equal(verdictOf(breaker), want, `${err.message} → ${want}`)
  }
  const { breaker, permit } = trialPermit()
  settleBody(permit, 'cancel', new Error('client went away'), 'origin-a', true)
  t.equal(verdictOf(breaker), 'no verdict', 'a cancel is no verdict even for a failed status')
})

t.test('settleOnError: the upstream-fault codes fail the permit, every other code releases it', async (t) => {
  const faults: ErrorCode[] = ['CDN_ERR_UPSTREAM_CONNECT', 'CDN_ERR_UPSTREAM_TIMEOUT', 'CDN_ERR_UPSTREAM_BODY_TIMEOUT', 'CDN_ERR_UPSTREAM_TRUNCATED', 'CDN_ERR_UPSTREAM_PROTOCOL', 'CDN_ERR_UPSTREAM_UNAVAILABLE']
  const others: ErrorCode[] = ['CDN_ERR_CLIENT_ABORTED', 'CDN_ERR_UPSTREAM_OVERLOADED', 'CDN_ERR_REQUEST_INVALID', 'CDN_ERR_LOCK_TIMEOUT', 'CDN_ERR_INTERNAL']
  for (const code of [...faults, ...others]) {
    const { breaker, permit } = trialPermit()
    settleOnError(permit, new CdnError(code))
    t.equal(verdictOf(breaker), faults.includes(code) ? 'failure' : 'no verdict', code)
  }
})

t.test('settleBody on a closed breaker: failures count toward opening it, releases do not', async (t) => {
  const breaker = new CircuitBreaker({ failureThreshold: 2, errorRatePercent: 0, minRequests: 1, windowMs: 10_000, coolDownMs: 60_000 })
  for (let i = 0; i < 5; i++) settleBody(breaker.acquire()!, 'cancel', undefined, 'origin-a')
  t.equal(breaker.state, 'closed', 'five dropped bodies open nothing')
  settleBody(breaker.acquire()!, 'error', new CdnError('CDN_ERR_UPSTREAM_TRUNCATED'), 'origin-a')
  settleBody(breaker.acquire()!, 'end', undefined, 'origin-a')
  settleBody(breaker.acquire()!, 'error', new CdnError('CDN_ERR_UPSTREAM_TRUNCATED'), 'origin-a')
  t.equal(breaker.state, 'closed', 'a success in between resets the consecutive count')
  settleBody(breaker.acquire()!, 'end', undefined, 'origin-a', true)
  t.equal(breaker.state, 'open', 'two failures in a row open it')
})

t.test('discardKept: a kept fallback is drained so its connection serves the next request', async (t) => {
  const origin = await startOrigin(t, 1)
  const kept = await get(origin, '/fail/300000')
  t.equal(kept.status, 503)
  discardKept(undefined)
  discardKept(kept)
  const next = await get(origin, '/ok/7')
  t.equal((await readAll(next.body)).length, 7)
  t.equal(origin.connections(), 1, 'the drained connection was reused, none was opened')
  t.ok(kept.body.readableEnded, 'the kept body was read to its end')
})
