/**
 * isHit decides what counts as a cache hit for each kind of target.
 */
import t from 'tap'
import { isHit, parseGcCounts } from '../../../bench/lib/bench-target.ts'

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

t.test('parseGcCounts: prom-client\'s GC counts by kind out of a streamedge /metrics; none without them', async (t) => {
  const text = [
    '# HELP streamedge_nodejs_gc_duration_seconds Garbage collection duration by kind, one of major, minor, incremental or weakcb.',
    '# TYPE streamedge_nodejs_gc_duration_seconds histogram',
    'streamedge_nodejs_gc_duration_seconds_bucket{le="0.001",kind="minor"} 40',
    'streamedge_nodejs_gc_duration_seconds_sum{kind="minor"} 0.05',
    'streamedge_nodejs_gc_duration_seconds_count{kind="minor"} 57',
    'streamedge_nodejs_gc_duration_seconds_count{kind="incremental"} 9',
    'streamedge_nodejs_gc_duration_seconds_count{kind="major"} 3',
    '',
  ].join('\n')
  t.same(parseGcCounts(text), { minor: 57, major: 3 })
  t.same(parseGcCounts(text.replace(/.*kind="major".*\n/, '')), { minor: 57, major: 0 }, 'a kind not seen yet counts 0')
  t.same(parseGcCounts(text.split('\n').slice(0, 2).join('\n')), { minor: 0, major: 0 }, 'no collection yet: the family without samples')
  t.equal(parseGcCounts('streamedge_cache_lookups_total{result="hit",tier="memory"} 5\n'), undefined)
})
