/**
 * The decision cache: hits within a generation, rebuilt when the generation moves, cleared
 * when it reaches its entry bound, and expiring by TTL.
 */
import t from 'tap'
import { DecisionCache } from '../../../control-plane/steering/decision-cache.ts'

t.test('hits within a generation, rebuilds after it moves', async (t) => {
  const cache = new DecisionCache<string>({ ttlMs: 60_000, maxEntries: 100 })
  t.teardown(() => cache.close())
  let builds = 0
  const build = (): string => `plan-${++builds}`
  t.same(await cache.getOrBuild('k', 1, build), { value: 'plan-1', hit: false })
  t.same(await cache.getOrBuild('k', 1, build), { value: 'plan-1', hit: true })
  t.same(await cache.getOrBuild('k', 2, build), { value: 'plan-2', hit: false }, 'a health change invalidates')
  t.same(await cache.getOrBuild('other', 2, build), { value: 'plan-3', hit: false })
  await cache.clear()
  t.same(await cache.getOrBuild('k', 2, build), { value: 'plan-4', hit: false }, 'clear empties it')
  t.equal(cache.hits, 1)
  t.equal(cache.misses, 4)
})

t.test('bounded: reaching maxEntries empties the cache instead of growing', async (t) => {
  const cache = new DecisionCache<number>({ ttlMs: 60_000, maxEntries: 10 })
  t.teardown(() => cache.close())
  for (let i = 0; i < 35; i++) await cache.getOrBuild(`k${i}`, 1, () => i)
  t.ok(cache.size <= 10, `size ${cache.size} stays within the bound`)
  t.ok(cache.size > 0)
})

t.test('entries expire by TTL', async (t) => {
  const cache = new DecisionCache<number>({ ttlMs: 30, maxEntries: 10 })
  t.teardown(() => cache.close())
  await cache.getOrBuild('k', 1, () => 1)
  await new Promise((resolve) => setTimeout(resolve, 80))
  t.same(await cache.getOrBuild('k', 1, () => 2), { value: 2, hit: false })
  t.throws(() => new DecisionCache({ ttlMs: 0, maxEntries: 1 }), /options\.ttlMs/)
})
