/**
 * isHit decides what counts as a cache hit for each kind of target.
 */
import t from 'tap'
import { isHit } from '../../../bench/lib/bench-target.ts'

t.test('isHit: the last Cache-Status entry decides; peers use X-Bench-Cache', async (t) => {
  const h = (headers: Record<string, string>): { headers: Record<string, string> } => ({ headers })
  t.ok(isHit('cache-status', h({ 'cache-status': 'bench-edge; hit' })))
  t.notOk(isHit('cache-status', h({ 'cache-status': 'bench-edge; fwd=miss; stored' })))
  t.notOk(isHit('cache-status', h({ 'cache-status': 'shield; hit, bench-edge; fwd=miss' })), 'a shield hit behind an edge miss is not the edge\'s hit')
  t.ok(isHit('cache-status', h({ 'cache-status': 'shield; fwd=miss, bench-edge; hit; ttl=3599' })))
  t.notOk(isHit('cache-status', h({})))
  t.ok(isHit('x-bench-cache', h({ 'x-bench-cache': 'HIT' })))
  t.notOk(isHit('x-bench-cache', h({ 'x-bench-cache': 'MISS' })))
  t.notOk(isHit('x-bench-cache', h({})))
  t.ok(isHit('always', h({})))
})
