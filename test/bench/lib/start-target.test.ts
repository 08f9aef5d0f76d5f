/**
 * startEdgeTarget through the real CLI: the `edge` target (access log off, stdout a pipe) and,
 * with `accessLog`, the `edge-log` target (--log.access true, one JSON line per request in a
 * file beside its cache dir), each removing its temp dir on stop.
 */
import { readFile, readlink, stat } from 'node:fs/promises'
import { dirname } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { startOrigin } from '../../../bench/origin/origin-server.ts'
import type { BenchTarget } from '../../../bench/lib/bench-target.ts'
import { startEdgeTarget } from '../../../bench/lib/start-target.ts'
import { warmUntilHit } from '../../../bench/lib/warm-target.ts'

const PATH = `/synthetic/segment-${188 * 20}.ts` // whole TS packets: the admission gate checks the sync bytes
const MEMORY_BYTES = 16 * 2 ** 20

type Line = Record<string, unknown>

/**
 * The access-log lines of `path` in `file`, waiting (bounded) until one satisfies `until`:
 * the edge batches its writes, so the miss's line may land well before the hit's.
 */
async function accessLines (file: string, path: string, until: (line: Line) => boolean): Promise<Line[]> {
  let mine: Line[] = []
  for (let i = 0; i < 100; i++) {
    const lines = (await readFile(file, 'utf8')).split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Line)
    mine = lines.filter((l) => l.msg === 'request' && l.path === path)
    if (mine.some(until)) return mine
    await sleep(50)
  }
  return mine
}

const skip = process.platform === 'linux' ? false : 'reads the edge\'s stdout through /proc'

t.test('edge: access log off, stdout not a file; edge-log: the same edge logging each request to a file', { skip }, async (t) => {
  const origin = await startOrigin()
  t.teardown(() => origin.close())
  const started: BenchTarget[] = []
  t.teardown(() => Promise.all(started.map((x) => x.stop())))

  const edge = await startEdgeTarget({ originUrl: origin.url, memoryMaxBytes: MEMORY_BYTES })
  started.push(edge)
  t.equal(edge.name, 'edge')
  t.equal(edge.memoryBudgetBytes, MEMORY_BYTES)
  t.match(await readlink(`/proc/${edge.pids[0]!}/fd/1`), /^(pipe|socket):/, 'stdout stays the pipe (node: a socket pair) the listening line is read from')
  t.ok(edge.isHit(await warmUntilHit(edge, PATH)), 'serves hits')
  const gc0 = await edge.gcCounts?.()
  t.ok(gc0 !== undefined && gc0.minor >= 0 && gc0.major >= 0, `GC counts from its /metrics (${JSON.stringify(gc0)})`)
  // allocate in the edge: a few hundred hits and their answers are garbage
  for (let i = 0; i < 300; i++) await warmUntilHit(edge, PATH)
  const gc1 = await edge.gcCounts?.()
  t.ok(gc1 !== undefined && gc0 !== undefined && gc1.minor >= gc0.minor && gc1.major >= gc0.major, `counters only grow (${JSON.stringify(gc1)})`)

  const logged = await startEdgeTarget({ originUrl: origin.url, memoryMaxBytes: MEMORY_BYTES, accessLog: true })
  started.push(logged)
  t.equal(logged.name, 'edge-log')
  t.equal(logged.memoryBudgetBytes, MEMORY_BYTES, 'the same memory budget as edge')
  const logFile = await readlink(`/proc/${logged.pids[0]!}/fd/1`)
  t.match(logFile, /streamedge-bench-edge-log-[^/]+\/stdout\.jsonl$/, 'stdout goes to a file in its own temp dir')
  const hit = await warmUntilHit(logged, PATH)
  t.ok(logged.isHit(hit), 'serves hits')
  const lines = await accessLines(logFile, PATH, (l) => l.cachePhase === 'hit')
  t.ok(lines.length >= 1, 'one access-log line per request')
  t.ok(lines.some((l) => l.cachePhase === 'hit' && l.status === 200), 'the hit is logged')

  await logged.stop()
  started.splice(started.indexOf(logged), 1)
  await t.rejects(stat(dirname(logFile)), { code: 'ENOENT' }, 'its temp dir (cache and log) is removed on stop')
})
