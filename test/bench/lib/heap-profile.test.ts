/**
 * summariseHeapProfile on a small hand-made sampling heap profile: self bytes per site
 * (one site reached by two stacks adds up), stacks leaf first, locations cut to the
 * checkout and mapped to TypeScript lines, pseudo-frames by name.
 */
import t from 'tap'
import type { LineResolver } from '../../../bench/lib/cpu-profile.ts'
import { summariseHeapProfile, type HeapProfileNode } from '../../../bench/lib/heap-profile.ts'

const node = (functionName: string, url: string, columnNumber: number, selfSize: number, children: HeapProfileNode[] = [], lineNumber = 0): HeapProfileNode =>
  ({ callFrame: { functionName, url, lineNumber, columnNumber }, selfSize, children })

const LOG = 'file:///repo/lib/log.ts'
const profile = {
  head: node('(root)', '', 0, 0, [
    node('write', LOG, 10, 0, [
      node('encode', LOG, 50, 3000),
      node('', 'node:internal/buffer', 0, 1000, [], 4),
    ]),
    node('flush', LOG, 80, 0, [node('encode', LOG, 50, 1000), node('set', '', 0, 300)]),
    node('(V8 API)', '', 0, 500),
    node('', 'file:///elsewhere/node_modules/pino/lib/tools.js', 0, 400, [], 8),
  ]),
}
// tsx output is one line: columns 10, 50, 80 come from TypeScript lines 10, 42, 60 (0-based 9, 41, 59)
const resolveLine: LineResolver = (url, line, column) => url === LOG && line === 0 ? ({ 10: 9, 50: 41, 80: 59 } as Record<number, number>)[column] : undefined

t.test('sites by self bytes, largest first', async (t) => {
  const s = summariseHeapProfile(profile, { rootUrl: 'file:///repo', resolveLine })
  t.equal(s.totalBytes, 6200)
  t.same(s.topSites.map((x) => [x.functionName, x.location, x.selfBytes]), [
    ['encode', 'lib/log.ts:42', 4000],
    ['(anonymous)', 'node:internal/buffer:5', 1000],
    ['(V8 API)', '(V8 API)', 500],
    ['(anonymous)', 'node_modules/pino/lib/tools.js:9', 400],
    ['set', '(builtin) < flush lib/log.ts:60', 300],
  ], 'a builtin is told apart by its caller')
  t.equal(Math.round(s.topSites[0]!.selfPercent * 10) / 10, 64.5)
  t.same(s.topStacks.slice(0, 2).map((x) => [x.functionName, x.selfBytes]), [
    ['encode lib/log.ts:42 < write lib/log.ts:10', 3000],
    ['encode lib/log.ts:42 < flush lib/log.ts:60', 1000],
  ], 'stacks: leaf first, one per path')
  t.ok(s.topStacks.some((x) => x.functionName === 'set (builtin) < flush lib/log.ts:60' && x.selfBytes === 300))
})

t.test('top, stackDepth, and no source maps', async (t) => {
  const s = summariseHeapProfile(profile, { top: 1, stackDepth: 1 })
  t.same(s.topSites.map((x) => [x.functionName, x.location]), [['encode', '/repo/lib/log.ts']], 'line 0 without a map: the file alone')
  t.same(s.topStacks.map((x) => x.functionName), ['encode /repo/lib/log.ts'])
  const empty = summariseHeapProfile({ head: node('(root)', '', 0, 0) })
  t.same(empty, { totalBytes: 0, topSites: [], topStacks: [] })
})
