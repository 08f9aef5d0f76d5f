/**
 * Passive health (breaker state machine on an injected clock) and active probes (real
 * timers and a real HTTP server on 127.0.0.1, asserted by state, never by elapsed time).
 */
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import t, { type Test } from 'tap'
import {
  CircuitBreaker, HealthProbe, upstreamProbeCheck, watchUpstream,
  type BreakerSettings, type BreakerStateChange,
} from '../../../edge/proxy/circuit-breaker.ts'
import { HttpUpstream } from '../../../edge/proxy/upstream.ts'

const SETTINGS: BreakerSettings = { failureThreshold: 3, errorRatePercent: 0, minRequests: 0, windowMs: 10_000, coolDownMs: 1000 }

function breaker (overrides: Partial<BreakerSettings> = {}) {
  const clock = { ms: 0 }
  const changes: BreakerStateChange[] = []
  const b = new CircuitBreaker({ ...SETTINGS, ...overrides, now: () => clock.ms, onStateChange: (c) => changes.push(c) })
  return { b, clock, changes }
}

function fail (b: CircuitBreaker, n: number): void {
  for (let i = 0; i < n; i++) b.acquire()!.failure()
}

async function waitFor (cond: () => boolean, what: string, ms = 5000): Promise<void> {
  const until = Date.now() + ms
  while (!cond()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}

t.test('consecutive failures open the circuit; a success in between resets the count', async (t) => {
  const { b, changes } = breaker()
  fail(b, 2)
  b.acquire()!.success()
  fail(b, 2)
  t.equal(b.state, 'closed', 'two failures after a success do not open it')
  fail(b, 1)
  t.equal(b.state, 'open')
  t.equal(b.acquire(), undefined, 'open refuses requests')
  t.notOk(b.available())
  t.match(changes, [{ from: 'closed', to: 'open', reason: '3 consecutive failures' }])
})

t.test('cool-down → half-open with one trial; the trial\'s success closes it', async (t) => {
  const { b, clock, changes } = breaker()
  fail(b, 3)
  clock.ms += 999
  t.equal(b.state, 'open', 'still cooling down')
  clock.ms += 1
  t.equal(b.state, 'half-open')
  const trial = b.acquire()
  t.ok(trial?.trial, 'first request after the cool-down is a trial')
  t.equal(b.acquire(), undefined, 'only one trial at a time')
  t.notOk(b.available())
  trial!.success()
  t.equal(b.state, 'closed')
  t.ok(b.acquire(), 'closed lets requests through')
  t.same(changes.map((c) => c.to), ['open', 'half-open', 'closed'])
})

t.test('a failed trial re-opens the circuit for another cool-down', async (t) => {
  const { b, clock } = breaker()
  fail(b, 3)
  clock.ms += 1000
  b.acquire()!.failure()
  t.equal(b.state, 'open')
  clock.ms += 500
  t.equal(b.acquire(), undefined, 'cool-down restarted at the failed trial')
  clock.ms += 500
  t.equal(b.state, 'half-open')
})

t.test('a released trial (client left) frees the slot without a verdict', async (t) => {
  const { b, clock } = breaker({ halfOpenTrials: 1 })
  fail(b, 3)
  clock.ms += 1000
  b.acquire()!.release()
  t.equal(b.state, 'half-open')
  t.ok(b.acquire(), 'another trial may go')
})

t.test('outcomes of permits taken before a state change are ignored', async (t) => {
  const { b, clock } = breaker()
  const early = [b.acquire()!, b.acquire()!, b.acquire()!]
  fail(b, 3)
  t.equal(b.state, 'open')
  clock.ms += 1000
  t.equal(b.state, 'half-open')
  for (const p of early) p.success()
  t.equal(b.state, 'half-open', 'stale successes do not close the circuit')
  const trial = b.acquire()!
  early[0]!.failure()
  t.equal(b.state, 'half-open', 'a stale failure does not re-open it')
  trial.success()
  t.equal(b.state, 'closed')
})

t.test('each permit counts once', async (t) => {
  const { b } = breaker()
  const p = b.acquire()!
  p.failure()
  p.failure()
  p.failure()
  t.equal(b.state, 'closed')
})

t.test('error rate over the window opens the circuit once enough requests were seen', async (t) => {
  const { b, changes } = breaker({ failureThreshold: 0, errorRatePercent: 50, minRequests: 10, windowMs: 1000 })
  for (let i = 0; i < 4; i++) {
    b.acquire()!.success()
    b.acquire()!.failure()
  }
  t.equal(b.state, 'closed', '8 requests: below minRequests')
  b.acquire()!.success()
  b.acquire()!.failure()
  t.equal(b.state, 'open', '5 of 10 failed')
  t.match(changes[0]?.reason, /5 of 10 requests failed/)
})

t.test('old outcomes slide out of the error-rate window', async (t) => {
  const { b, clock } = breaker({ failureThreshold: 0, errorRatePercent: 50, minRequests: 4, windowMs: 1000 })
  fail(b, 3)
  t.equal(b.state, 'closed', '3 requests: below minRequests')
  clock.ms += 1500
  for (let i = 0; i < 3; i++) b.acquire()!.success()
  b.acquire()!.failure()
  t.equal(b.state, 'closed', '1 of 4 in the current window failed; the 3 old failures expired')
  b.acquire()!.failure()
  b.acquire()!.failure()
  t.equal(b.state, 'open', '3 of 6 in the window')
})

t.test('markDown holds the circuit open past the cool-down until markUp', async (t) => {
  const { b, clock, changes } = breaker()
  b.markDown('probe: 3 probes failed')
  t.equal(b.state, 'open')
  t.ok(b.forcedDown)
  clock.ms += 60_000
  t.equal(b.state, 'open', 'no half-open trial while the probe says down')
  t.equal(b.acquire(), undefined)
  b.markUp('probe: 2 probes succeeded')
  t.equal(b.state, 'closed')
  t.ok(b.acquire())
  b.markUp('again')
  t.same(changes.map((c) => c.to), ['open', 'closed'], 'markUp without markDown does nothing')
})

t.test('a probe recovering does not close a circuit opened by traffic', async (t) => {
  const { b } = breaker()
  fail(b, 3)
  b.markUp('probe ok')
  t.equal(b.state, 'open')
})

t.test('bad settings are refused with a TypeError naming the field', async (t) => {
  t.throws(() => new CircuitBreaker({ ...SETTINGS, failureThreshold: -1 }), { name: 'TypeError', message: 'Expected options.failureThreshold to be an integer of at least 0, got -1' })
  t.throws(() => new CircuitBreaker({ ...SETTINGS, errorRatePercent: 101 }), { name: 'TypeError', message: /errorRatePercent to be at most 100/ })
  t.throws(() => new CircuitBreaker({ ...SETTINGS, windowMs: 0 }), { name: 'TypeError', message: /windowMs/ })
  t.throws(() => new CircuitBreaker({ ...SETTINGS, halfOpenTrials: 0 }), { name: 'TypeError', message: /halfOpenTrials/ })
  t.throws(() => new HealthProbe({ intervalMs: 0, timeoutMs: 1, failuresToDown: 1, successesToUp: 1, check: async () => true }), { name: 'TypeError', message: /intervalMs/ })
})

t.test('probe hysteresis: N failures down, M successes up', async (t) => {
  let answer: boolean | Error = true
  const flips: boolean[] = []
  const probe = new HealthProbe({
    intervalMs: 1000,
    timeoutMs: 1000,
    failuresToDown: 3,
    successesToUp: 2,
    check: async () => {
      if (answer instanceof Error) throw answer
      return answer
    },
    onChange: (healthy) => flips.push(healthy),
  })
  t.ok(probe.healthy, 'starts healthy')
  answer = false
  await probe.probeOnce()
  answer = new Error('ECONNREFUSED')
  await probe.probeOnce()
  t.ok(probe.healthy, 'two failures are not enough')
  answer = true
  await probe.probeOnce()
  answer = false
  await probe.probeOnce()
  await probe.probeOnce()
  t.ok(probe.healthy, 'a success reset the failure count')
  await probe.probeOnce()
  t.notOk(probe.healthy, 'three failures in a row: down')
  answer = true
  await probe.probeOnce()
  t.notOk(probe.healthy, 'one success is not enough')
  await probe.probeOnce()
  t.ok(probe.healthy, 'two successes in a row: up')
  t.same(flips, [false, true])
})

t.test('a probe that never answers fails at its timeout', async (t) => {
  const probe = new HealthProbe({
    intervalMs: 1000,
    timeoutMs: 20,
    failuresToDown: 1,
    successesToUp: 1,
    check: () => new Promise<boolean>(() => {}),
  })
  t.equal(await probe.probeOnce(), false)
  t.notOk(probe.healthy)
})

async function healthServer (t: Test): Promise<{ url: string, setStatus: (s: number) => void, hits: () => number }> {
  let status = 200
  let hits = 0
  const server: Server = createServer((req, res) => {
    hits++
    res.writeHead(req.url === '/readyz' ? status : 404, { 'content-type': 'text/plain' })
    res.end('x')
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => {
    server.closeAllConnections()
    server.close(() => resolve())
  }))
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, setStatus: (s) => { status = s }, hits: () => hits }
}

function httpUpstream (url: string): HttpUpstream {
  return new HttpUpstream({ url, connectTimeoutMs: 1000, firstByteTimeoutMs: 1000, idleTimeoutMs: 1000, connections: 4, keepAliveTimeoutMs: 1000 })
}

t.test('upstreamProbeCheck: 2xx/3xx healthy, 5xx and 404 not, refused connection throws', async (t) => {
  const server = await healthServer(t)
  const upstream = httpUpstream(server.url)
  t.teardown(() => upstream.close())
  const ready = upstreamProbeCheck(upstream, '/readyz')
  t.equal(await ready(new AbortController().signal), true)
  server.setStatus(503)
  t.equal(await ready(new AbortController().signal), false)
  t.equal(await upstreamProbeCheck(upstream, '/missing')(new AbortController().signal), false)
  const dead = httpUpstream('http://127.0.0.1:1')
  t.teardown(() => dead.close())
  await t.rejects(upstreamProbeCheck(dead, '/readyz')(new AbortController().signal))
})

t.test('watchUpstream: a running probe drives the breaker down and back up over real HTTP', async (t) => {
  const server = await healthServer(t)
  const upstream = httpUpstream(server.url)
  t.teardown(() => upstream.close())
  const changes: BreakerStateChange[] = []
  const health = watchUpstream(upstream, {
    breaker: SETTINGS,
    probe: { intervalMs: 10, timeoutMs: 500, path: '/readyz', failuresToDown: 2, successesToUp: 2 },
    onStateChange: (c) => changes.push(c),
  })
  t.teardown(() => health.probe?.stop())
  await waitFor(() => server.hits() >= 2, 'first probes')
  t.equal(health.breaker.state, 'closed')
  server.setStatus(503)
  await waitFor(() => health.breaker.state === 'open', 'probe marks it down')
  t.ok(health.breaker.forcedDown)
  t.match(changes.at(-1)?.reason, /^probe: 2 probes in a row failed/)
  server.setStatus(200)
  await waitFor(() => health.breaker.state === 'closed', 'probe marks it up')
  health.probe!.stop()
  const hitsAtStop = server.hits()
  await new Promise((resolve) => setTimeout(resolve, 50))
  t.ok(server.hits() <= hitsAtStop + 1, 'stop() ends the probing')
})

t.test('watchUpstream without probe settings only builds a breaker', async (t) => {
  const upstream = httpUpstream('http://127.0.0.1:1')
  t.teardown(() => upstream.close())
  const health = watchUpstream(upstream, { breaker: SETTINGS })
  t.equal(health.probe, undefined)
  t.equal(health.breaker.state, 'closed')
  t.throws(() => watchUpstream(upstream, { breaker: SETTINGS, probe: { intervalMs: 10, timeoutMs: 10, path: 'readyz', failuresToDown: 1, successesToUp: 1 } }), {
    name: 'TypeError',
    message: 'Expected probe.path to be a path starting with "/", got "readyz"',
  })
})
