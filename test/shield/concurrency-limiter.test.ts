/**
 * The origin concurrency cap on its own: FIFO hand-over, bounded queue, queue deadline,
 * aborts and shutdown. Outcomes are asserted, never elapsed times.
 */
import t from 'tap'
import { CdnError, isCdnError } from '../../lib/errors.ts'
import { ConcurrencyLimiter, type LimiterSlot } from '../../shield/concurrency-limiter.ts'

function limiter (overrides: Partial<ConstructorParameters<typeof ConcurrencyLimiter>[0]> = {}): ConcurrencyLimiter {
  return new ConcurrencyLimiter({ name: 'origin-a', maxConcurrent: 2, maxQueue: 3, queueTimeoutMs: 60_000, retryAfterSeconds: 2, ...overrides })
}

t.test('slots up to the cap at once, then FIFO hand-over as slots are released', async (t) => {
  const l = limiter()
  const a = await l.acquire()
  const b = await l.acquire()
  t.notOk(l.hasFreeSlot)
  const order: string[] = []
  const c = l.acquire().then((s) => { order.push('c'); return s })
  const d = l.acquire().then((s) => { order.push('d'); return s })
  t.match(l.stats, { active: 2, queued: 2 })
  a.release()
  const slotC = await c
  t.same(order, ['c'], 'the oldest waiter goes first')
  b.release()
  await d
  t.same(order, ['c', 'd'])
  slotC.release()
  slotC.release()
  t.match(l.stats, { active: 1, queued: 0, maxActiveSeen: 2 }, 'a second release is ignored')
})

t.test('a full queue refuses at once with CDN_ERR_UPSTREAM_OVERLOADED, 503 and Retry-After', async (t) => {
  const l = limiter({ maxConcurrent: 1, maxQueue: 1 })
  await l.acquire()
  const waiting = l.acquire()
  const err = await l.acquire().catch((e: unknown) => e)
  t.ok(isCdnError(err, 'CDN_ERR_UPSTREAM_OVERLOADED'))
  t.equal((err as CdnError).status, 503)
  t.equal((err as CdnError).retryAfterSeconds, 2)
  t.match((err as Error).message, 'origin-a has 1 requests in flight (cap 1) and 1 waiting (queue 1)')
  t.equal(l.stats.rejectedQueueFull, 1)
  t.notOk(l.canAccept)
  void waiting
  l.close()
  await t.rejects(waiting, { code: 'CDN_ERR_UPSTREAM_UNAVAILABLE' }, 'close() refuses waiters')
})

t.test('maxQueue 0 refuses as soon as every slot is taken', async (t) => {
  const l = limiter({ maxConcurrent: 1, maxQueue: 0 })
  await l.acquire()
  await t.rejects(l.acquire(), { code: 'CDN_ERR_UPSTREAM_OVERLOADED' })
})

t.test('a waiter past its deadline is refused; later waiters keep their own deadlines', async (t) => {
  let now = 0
  const l = limiter({ maxConcurrent: 1, maxQueue: 5, queueTimeoutMs: 30, now: () => now })
  const held = await l.acquire()
  const first = l.acquire().catch((e: unknown) => e)
  now = 20
  const second = l.acquire().catch((e: unknown) => e)
  now = 30 // the first waiter's deadline; the second's is 50
  const err = await first
  t.ok(isCdnError(err, 'CDN_ERR_UPSTREAM_OVERLOADED'), 'first waiter timed out')
  t.match((err as Error).message, 'waited 30 ms for a free connection to origin-a')
  t.equal(l.stats.queued, 1, 'the second is still waiting')
  held.release()
  const slot = await second
  t.notOk(slot instanceof Error, 'the second got the released slot')
  t.equal(l.stats.rejectedQueueTimeout, 1)
})

t.test('an aborted waiter leaves the queue and never takes a slot', async (t) => {
  const l = limiter({ maxConcurrent: 1 })
  const held = await l.acquire()
  const controller = new AbortController()
  const gone = l.acquire(controller.signal)
  const next = l.acquire()
  controller.abort()
  await t.rejects(gone, { code: 'CDN_ERR_CLIENT_ABORTED' })
  t.equal(l.stats.queued, 1)
  held.release()
  const slot: LimiterSlot = await next
  t.equal(l.stats.active, 1, 'the slot went to the live waiter')
  slot.release()
  await t.rejects(l.acquire(AbortSignal.abort()), { code: 'CDN_ERR_CLIENT_ABORTED' }, 'an already aborted signal is refused at once')
})

t.test('thousands of waiters drain in order with one timer', async (t) => {
  const l = limiter({ maxConcurrent: 4, maxQueue: 5000 })
  const held = await Promise.all([l.acquire(), l.acquire(), l.acquire(), l.acquire()])
  const order: number[] = []
  const waiters = Array.from({ length: 3000 }, (_, i) => l.acquire().then((slot) => {
    order.push(i)
    slot.release()
  }))
  for (const s of held) s.release()
  await Promise.all(waiters)
  t.equal(order.length, 3000)
  t.ok(order.every((v, i) => v === i), 'served in arrival order')
  t.match(l.stats, { active: 0, queued: 0, maxActiveSeen: 4 })
})

t.test('bad options are refused with a TypeError naming the field', async (t) => {
  t.throws(() => limiter({ maxConcurrent: 0 }), { name: 'TypeError', message: 'Expected options.maxConcurrent to be an integer of at least 1, got 0' })
  t.throws(() => limiter({ maxQueue: -1 }), { name: 'TypeError', message: /maxQueue/ })
  t.throws(() => limiter({ queueTimeoutMs: 0 }), { name: 'TypeError', message: /queueTimeoutMs/ })
})
