/**
 * The decision cache: hits within a generation, rebuilt when the generation moves, cleared
 * when it reaches its entry bound, and expiring by TTL; the synchronous memory level in front
 * of cache-manager, filled by either path and reconciled with cache-manager in the background.
 */
import t from 'tap'
import { DecisionCache } from '../../../control-plane/steering/decision-cache.ts'

t.test('hits within a generation, rebuilds after it moves', async (t) => {
  const cache = new DecisionCache<string>({ ttlMs: 60_000, maxEntries: 100 })
  t.teardown(() => cache.close())
  let builds = 0
  const build = (): string => `plan-${++builds}`
  t.same(await cache.getOrBuild('o', 'k', 1, build), { value: 'plan-1', hit: false })
  t.same(await cache.getOrBuild('o', 'k', 1, build), { value: 'plan-1', hit: true })
  t.same(await cache.getOrBuild('o', 'k', 2, build), { value: 'plan-2', hit: false }, 'a health change invalidates')
  t.same(await cache.getOrBuild('o', 'other', 2, build), { value: 'plan-3', hit: false })
  t.same(await cache.getOrBuild('o2', 'k', 2, build), { value: 'plan-4', hit: false }, 'another scope is another key')
  await cache.clear()
  t.same(await cache.getOrBuild('o', 'k', 2, build), { value: 'plan-5', hit: false }, 'clear empties it')
  t.equal(cache.hits, 1)
  t.equal(cache.misses, 5)
})

t.test('the memory level answers synchronously; fills are reconciled with cache-manager', async (t) => {
  const cache = new DecisionCache<string[]>({ ttlMs: 60_000, maxEntries: 100 })
  t.teardown(() => cache.close())
  t.equal(cache.peek('o', 'k', 1), undefined, 'cold: a miss')
  const built = ['a']
  cache.fill('o', 'k', 1, built)
  t.equal(cache.peek('o', 'k', 1), built, 'the fill answers at once')
  t.equal(cache.peek('o', 'k', 2), undefined, 'not for another generation')
  await new Promise((resolve) => setImmediate(resolve))
  t.same(await cache.getOrBuild('o', 'k', 1, () => ['never']), { value: ['a'], hit: true })
  t.equal(cache.size, 1, 'the fill was written to cache-manager')

  // A plan cache-manager already holds for the generation wins over a local build.
  await cache.getOrBuild('o', 'j', 1, () => ['from-l2'])
  const local = ['local']
  cache.fill('o', 'j', 1, local)
  t.equal(cache.peek('o', 'j', 1), local, 'a local build answers until cache-manager has been read')
  await new Promise((resolve) => setTimeout(resolve, 10))
  t.same(cache.peek('o', 'j', 1), ['from-l2'], 'then the authority\'s plan replaces it')
})

t.test('bounded: reaching maxEntries empties the cache instead of growing', async (t) => {
  const cache = new DecisionCache<number>({ ttlMs: 60_000, maxEntries: 10 })
  t.teardown(() => cache.close())
  for (let i = 0; i < 35; i++) await cache.getOrBuild(`o${i % 3}`, `k${i}`, 1, () => i)
  t.ok(cache.size <= 10, `size ${cache.size} stays within the bound`)
  t.ok(cache.size > 0)
  t.ok(cache.memorySize <= 10, `memory level ${cache.memorySize} too`)
  for (let i = 0; i < 35; i++) cache.fill('o', `f${i}`, 1, i)
  t.ok(cache.memorySize <= 10 && cache.memorySize > 0, 'fills are bounded as well')
})

t.test('entries expire by TTL in both levels', async (t) => {
  let nowMs = 1_000_000
  const cache = new DecisionCache<number>({ ttlMs: 30, maxEntries: 10, now: () => nowMs })
  t.teardown(() => cache.close())
  await cache.getOrBuild('o', 'k', 1, () => 1)
  t.equal(cache.peek('o', 'k', 1), 1)
  nowMs += 31
  t.equal(cache.peek('o', 'k', 1), undefined, 'the memory copy expired')
  await new Promise((resolve) => setTimeout(resolve, 80))
  t.same(await cache.getOrBuild('o', 'k', 1, () => 2), { value: 2, hit: false }, 'and cache-manager\'s too')
  t.throws(() => new DecisionCache({ ttlMs: 0, maxEntries: 1 }), /options\.ttlMs/)
})
