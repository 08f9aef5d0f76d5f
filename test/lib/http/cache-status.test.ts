import t from 'tap'
import { appendCacheStatus, formatCacheStatus, parseCacheStatus } from '../../../lib/http/cache-status.ts'
import type { CacheStatusEntry } from '../../../lib/http/cache-status.ts'

t.test('RFC 9211 §2 formatCacheStatus', async (t) => {
  const cases: Array<[CacheStatusEntry, string]> = [
    [{ cache: 'streamedge-edge1', hit: true, ttl: 300 }, 'streamedge-edge1; hit; ttl=300'],
    [{ cache: 'streamedge-edge1', fwd: 'uri-miss', fwdStatus: 200, stored: true, collapsed: true },
      'streamedge-edge1; fwd=uri-miss; fwd-status=200; stored; collapsed'],
    [{ cache: 'ExampleCache', hit: true, ttl: -412 }, 'ExampleCache; hit; ttl=-412'], // §3 stale hit
    [{ cache: 'ExampleCache', fwd: 'stale', fwdStatus: 304 }, 'ExampleCache; fwd=stale; fwd-status=304'],
    [{ cache: 'ExampleCache', fwd: 'uri-miss', collapsed: false }, 'ExampleCache; fwd=uri-miss; collapsed=?0'],
    [{ cache: 'c', fwd: 'bypass', stored: false }, 'c; fwd=bypass; stored=?0'],
    [{ cache: 'c', hit: false, fwd: 'miss' }, 'c; fwd=miss'], // hit=false is implied by fwd
    [{ cache: 'c' }, 'c'],
    [{ cache: 'CDN Company Here', hit: true }, '"CDN Company Here"; hit'], // not a token → sf-string
    [{ cache: 'edge"1', hit: true }, '"edge\\"1"; hit'],
    [{ cache: '1edge' }, '"1edge"'],
    [{ cache: '' }, '""'],
    [{ cache: 'c', ttl: 299.9 }, 'c; ttl=299'],
    [{ cache: 'c', ttl: -0.2 }, 'c; ttl=-1'], // floored: a just-stale object never looks fresh
    [{ cache: 'c', ttl: 1e20 }, 'c; ttl=999999999999999'], // clamped to the sf-integer range
    [{ cache: 'c', ttl: -Infinity }, 'c; ttl=-999999999999999'],
    [{ cache: 'c', ttl: Number.NaN }, 'c; ttl=0'],
    [{ cache: 'c', fwd: 'method', key: '/v/seg 1.ts?a="b"' }, 'c; fwd=method; key="/v/seg 1.ts?a=\\"b\\""'],
    [{ cache: 'c', fwd: 'bypass', detail: 'no-store' }, 'c; fwd=bypass; detail=no-store'],
    [{ cache: 'c', fwd: 'bypass', detail: 'too large' }, 'c; fwd=bypass; detail="too large"'],
    [{ cache: 'c', key: 'é\n' }, 'c; key="??"'],
    [{ cache: 'c', detail: 'x', key: 'k', collapsed: true, stored: true, ttl: 1, fwdStatus: 200, fwd: 'vary-miss', hit: true },
      'c; hit; fwd=vary-miss; fwd-status=200; ttl=1; stored; collapsed; key="k"; detail=x']
  ]
  for (const [entry, expected] of cases) t.equal(formatCacheStatus(entry), expected, expected)
})

t.test('formatCacheStatus output parses back to the same entry', async (t) => {
  const entries: CacheStatusEntry[] = [
    { cache: 'streamedge-edge1', hit: true, ttl: 300 },
    { cache: 'A B', fwd: 'partial', fwdStatus: 206, stored: false, collapsed: false, key: 'k "q"', detail: 'd e' },
    { cache: 'x', fwd: 'request', detail: 'tok' }
  ]
  for (const e of entries) t.same(parseCacheStatus(formatCacheStatus(e)), [e], JSON.stringify(e))
})

t.test('RFC 9211 §2 parseCacheStatus', async (t) => {
  t.same(parseCacheStatus('OriginCache; hit; ttl=1100, "CDN Company Here"; hit; ttl=545'), [
    { cache: 'OriginCache', hit: true, ttl: 1100 },
    { cache: 'CDN Company Here', hit: true, ttl: 545 }
  ], '§3 two-layer example, origin side first')
  t.same(parseCacheStatus([
    'ReverseProxyCache; hit',
    'ForwardProxyCache; fwd=uri-miss; collapsed; stored',
    'BrowserCache; fwd=uri-miss'
  ]), [
    { cache: 'ReverseProxyCache', hit: true },
    { cache: 'ForwardProxyCache', fwd: 'uri-miss', collapsed: true, stored: true },
    { cache: 'BrowserCache', fwd: 'uri-miss' }
  ], '§3 three field lines')
  const skipped: Array<[string, unknown]> = [
    ['c; fwd=teleport', [{ cache: 'c' }]], // unknown fwd value
    ['c; fwd="uri-miss"', [{ cache: 'c' }]], // fwd must be a Token
    ['c; hit=1', [{ cache: 'c' }]], // hit must be a Boolean
    ['c; ttl=1.5', [{ cache: 'c' }]],
    ['c; ttl="5"', [{ cache: 'c' }]],
    ['c; fwd-status=abc', [{ cache: 'c' }]],
    ['c; key=tok', [{ cache: 'c' }]], // key must be a String
    ['c; detail=?1', [{ cache: 'c' }]],
    ['c; extension=1; hit', [{ cache: 'c', hit: true }]],
    ['42; hit, c', [{ cache: 'c' }]], // members must be a String or Token
    ['(a b), c', [{ cache: 'c' }]],
    ['c; hit=?0', [{ cache: 'c', hit: false }]]
  ]
  for (const [value, expected] of skipped) t.same(parseCacheStatus(value), expected, value)
  for (const invalid of [undefined, 'c; hit,', 'c;;hit', 'c; HIT', 'c hit', '"unterminated', 'c, , d']) {
    t.same(parseCacheStatus(invalid), [], JSON.stringify(invalid))
  }
  t.same(parseCacheStatus(''), [])
})

t.test('RFC 9211 §2 appendCacheStatus: our member goes last (nearest the user)', async (t) => {
  const ours = 'streamedge-edge1; hit'
  t.equal(appendCacheStatus(undefined, ours), ours)
  t.equal(appendCacheStatus('', ours), ours)
  t.equal(appendCacheStatus('  ', ours), ours)
  t.equal(appendCacheStatus([], ours), ours)
  t.equal(appendCacheStatus('shield; fwd=uri-miss; stored', ours), 'shield; fwd=uri-miss; stored, streamedge-edge1; hit')
  t.equal(appendCacheStatus(['origin; hit', 'shield; hit'], ours), 'origin; hit, shield; hit, streamedge-edge1; hit')
  const chain = appendCacheStatus(appendCacheStatus(undefined, 'origin; hit'), 'shield; fwd=uri-miss')
  t.same(parseCacheStatus(appendCacheStatus(chain, ours)).map((e) => e.cache), ['origin', 'shield', 'streamedge-edge1'])
})
