/**
 * The byte-rate cap on a fake clock: debt, refill, refunds, burst, no cap, abort.
 */
import t from 'tap'
import { ByteRateLimiter, sleep } from '../../../edge/hls/byte-rate-limiter.ts'

function clock (): { now: () => number, sleep: (ms: number) => Promise<void>, slept: number[] } {
  let ms = 0
  const slept: number[] = []
  return { now: () => ms, sleep: async (d) => { slept.push(d); ms += d }, slept }
}

t.test('a reservation puts the bucket in debt; time pays it back at the rate', async (t) => {
  const c = clock()
  const limiter = new ByteRateLimiter({ bytesPerSecond: 1000, now: c.now, sleep: c.sleep })
  t.equal(limiter.delayMs(), 0, 'nothing reserved, nothing to wait for')
  await limiter.acquire(500)
  t.equal(c.now(), 500, '500 bytes at 1000 B/s are paid for before the transfer starts')
  t.equal(limiter.delayMs(), 0)
  limiter.take(2000)
  t.equal(limiter.delayMs(), 2000, 'bytes beyond the reservation add debt')
  limiter.refund(1500)
  t.equal(limiter.delayMs(), 500, 'a refund (bytes reserved but not moved) shortens the wait')
  await limiter.acquire(500)
  t.equal(c.now(), 1500, 'the next transfer waits for the debt and its own bytes')
  t.ok(c.slept.every((d) => d <= 100), 'sleeps are short so refunds are noticed')
})

t.test('over a run the average stays at the cap', async (t) => {
  const c = clock()
  const limiter = new ByteRateLimiter({ bytesPerSecond: 10_000, now: c.now, sleep: c.sleep })
  let moved = 0
  for (let i = 0; i < 50; i++) {
    await limiter.acquire(1000)
    moved += 1000
  }
  const rate = moved / (c.now() / 1000)
  t.ok(Math.abs(rate - 10_000) / 10_000 < 0.01, `rate ${rate} B/s`)
})

t.test('burst and no cap', async (t) => {
  const c = clock()
  const burst = new ByteRateLimiter({ bytesPerSecond: 100, burstBytes: 1000, now: c.now, sleep: c.sleep })
  c.sleep(60_000)
  t.equal(burst.delayMs(), 0)
  burst.take(1000)
  t.equal(burst.delayMs(), 0, 'an idle period allows up to burstBytes at once')
  burst.take(100)
  t.equal(burst.delayMs(), 1000)
  const free = new ByteRateLimiter({ bytesPerSecond: 0, now: c.now })
  free.take(1e12)
  t.equal(free.delayMs(), 0)
  t.equal(free.bytesPerSecond, 0)
  t.throws(() => new ByteRateLimiter({ bytesPerSecond: -1 }), TypeError)
  t.throws(() => new ByteRateLimiter({ bytesPerSecond: 1, burstBytes: Number.NaN }), TypeError)
})

t.test('acquire and sleep stop when their signal aborts', async (t) => {
  const limiter = new ByteRateLimiter({ bytesPerSecond: 1 })
  limiter.take(1_000_000)
  const abort = new AbortController()
  const waiting = limiter.acquire(1000, abort.signal)
  abort.abort(new Error('stop'))
  await t.rejects(waiting, /stop/)
  t.ok(limiter.delayMs() <= 1_000_000 * 1000, 'the aborted reservation was refunded (only the first debt is left)')
  await t.rejects(sleep(10, AbortSignal.abort(new Error('already'))), /already/)
  await sleep(1)
})
