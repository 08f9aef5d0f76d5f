/**
 * The heap trimmer: a timer around the native trim (a counting stand-in here; the real one in
 * test/lib/native/heap-trim.test.ts), and a cache node that runs one, seen through /metrics.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { HeapTrimmer } from '../../lib/heap-trimmer.ts'
import type { HeapTrimAddon } from '../../lib/native/heap-trim.ts'
import { heapTrim } from '../../lib/native/heap-trim.ts'
import { startTestNode } from '../helpers/cache-node.ts'
import { startTestOrigin } from '../helpers/origin-fixture.ts'

function countingAddon (): HeapTrimAddon & { calls: number } {
  const addon = {
    calls: 0,
    trim (): number { return ++addon.calls % 2 },
    heapStats: () => ({ arenaBytes: 3000, inUseBytes: 2000, freeBytes: 1000, mmappedBytes: 500 }),
  }
  return addon
}


t.test('trims on its interval until stopped, counting trims and their time', async (t) => {
  const addon = countingAddon()
  const trimmer = new HeapTrimmer({ addon, intervalMs: 20 })
  t.ok(trimmer.active)
  trimmer.start()
  trimmer.start() // a second start does not add a second timer
  await sleep(150)
  trimmer.stop()
  const { trims, seconds } = trimmer.stats
  t.ok(trims >= 3 && trims <= 8, `about one trim per 20 ms (${trims} in 150 ms)`)
  t.equal(trims, addon.calls)
  t.ok(seconds >= 0 && seconds < 1)
  await sleep(60)
  t.equal(addon.calls, trims, 'no trim after stop')
})

t.test('interval 0 or no native half: never trims; heap stats only with the native half', async (t) => {
  const addon = countingAddon()
  const off = new HeapTrimmer({ addon, intervalMs: 0 })
  t.notOk(off.active)
  off.start()
  await sleep(30)
  t.equal(addon.calls, 0)
  t.same(off.heapStats(), { arenaBytes: 3000, inUseBytes: 2000, freeBytes: 1000, mmappedBytes: 500 })
  const missing = new HeapTrimmer({ addon: undefined, intervalMs: 10 })
  t.notOk(missing.active)
  missing.start()
  t.equal(missing.trim(), false)
  t.equal(missing.heapStats(), undefined)
  t.same(missing.stats, { trims: 0, seconds: 0 })
})

t.test('the interval is validated', async (t) => {
  t.throws(() => new HeapTrimmer({ addon: undefined, intervalMs: -1 }), /options\.intervalMs to be a non-negative integer, got -1/)
  t.throws(() => new HeapTrimmer({ addon: undefined, intervalMs: 1.5 }), /options\.intervalMs to be a non-negative integer, got 1\.5/)
})

t.test('a cache node with mallocTrimIntervalMs trims and reports it on /metrics', async (t) => {
  if (heapTrim === undefined) throw new Error('lib/native/heap-trim.node is not built (npm ci builds it)')
  const origin = await startTestOrigin(t)
  const node = await startTestNode(t, { origin: origin.url, mallocTrimIntervalMs: 20 })
  await sleep(150)
  const text = await (await fetch(`${node.url}/metrics`)).text()
  const value = (series: string): number => Number(new RegExp(`^${series}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text)?.[1] ?? NaN)
  t.ok(value('streamedge_malloc_trims_total') >= 3, `trims counted (${value('streamedge_malloc_trims_total')})`)
  t.ok(value('streamedge_malloc_trim_seconds_total') > 0, 'their time counted')
  for (const state of ['in_use', 'free', 'mmapped']) {
    const m = new RegExp(`^streamedge_malloc_heap_bytes\\{state="${state}"[^}]*\\} (\\d+)$`, 'm').exec(text)
    t.ok(m !== null, `streamedge_malloc_heap_bytes{state="${state}"} reported`)
  }
  t.ok(Number(/^streamedge_malloc_heap_bytes\{state="in_use"[^}]*\} (\d+)$/m.exec(text)?.[1]) > 1024 * 1024, 'a running node has MBs in use')
})

t.test('a cache node without the setting never trims', async (t) => {
  const origin = await startTestOrigin(t)
  const node = await startTestNode(t, { origin: origin.url })
  await sleep(50)
  const text = await (await fetch(`${node.url}/metrics`)).text()
  t.match(text, /^streamedge_malloc_trims_total\{[^}]*\} 0$/m)
})
