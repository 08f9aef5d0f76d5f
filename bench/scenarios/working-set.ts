/**
 * Scenario "working-set" (issue 7): random access over a set of segments 2.5 times larger
 * than the memory tier, so most hits must come from the disk tier. The edge gets a 64 MiB
 * memory tier (its disk tier holds the rest), Varnish 64 MiB of malloc storage (open-source
 * Varnish has no second tier), nginx its proxy_cache files (the page cache is its memory).
 * Reports req/s and the byte hit ratio (1 - origin bytes / bytes served in the measured
 * windows; target 1.0 for the edge), plus the edge's memory/disk hit split from /metrics.
 */
import { startOrigin } from '../origin/origin-server.ts'
import { startPeer } from '../peers/start-peer.ts'
import type { BenchTarget } from '../lib/bench-target.ts'
import { runComparison, type ComparisonRunOptions, type GeneratorName } from '../lib/compare.ts'
import { httpGet } from '../lib/http-get.ts'
import { startOriginMeter } from '../lib/origin-meter.ts'
import { promSamples } from '../lib/prometheus-text.ts'
import { memoryCheck, type MemoryCheck, type WorkingSetResult } from '../lib/results.ts'
import { startEdgeTarget } from '../lib/start-target.ts'

/** Objects in the working set. */
export const WORKING_SET_OBJECTS = 160
/** About 1 MiB each, whole 188-byte TS packets. */
export const WORKING_SET_OBJECT_BYTES = Math.floor(2 ** 20 / 188) * 188
/** Memory tier of the edge and malloc storage of Varnish: 64 MiB, against a 160 MiB set. */
export const WORKING_SET_MEMORY_BYTES = 64 * 2 ** 20
const PRIME_CONCURRENCY = 8

/** Settings of {@link runWorkingSet}: the common comparison settings, nothing of its own. */
export type WorkingSetOptions = ComparisonRunOptions

/** Runs the scenario; every process it started is stopped when it returns. */
export async function runWorkingSet (o: WorkingSetOptions): Promise<{ result: WorkingSetResult, memory: MemoryCheck[] }> {
  const origin = await startOrigin({ syntheticCacheMaxBytes: 2 * WORKING_SET_OBJECTS * WORKING_SET_OBJECT_BYTES })
  const meter = await startOriginMeter(origin.url)
  const targets: BenchTarget[] = []
  const paths = Array.from({ length: WORKING_SET_OBJECTS }, (_, i) => `/synthetic/set-${i}-${WORKING_SET_OBJECT_BYTES}.ts`)
  try {
    targets.push(await startEdgeTarget({ originUrl: meter.url, memoryMaxBytes: WORKING_SET_MEMORY_BYTES, edgeRoot: o.edgeRoot }))
    // One slice covers a whole 1 MiB object, so nginx-slice would repeat nginx here.
    for (const peer of o.peers) if (peer.name !== 'nginx-slice') targets.push(await startPeer(peer, { originUrl: meter.url, memoryMaxBytes: WORKING_SET_MEMORY_BYTES }))
    o.log(`working-set: ${WORKING_SET_OBJECTS} objects of ${WORKING_SET_OBJECT_BYTES} B (${((WORKING_SET_OBJECTS * WORKING_SET_OBJECT_BYTES) / 2 ** 20).toFixed(0)} MiB), memory ${WORKING_SET_MEMORY_BYTES / 2 ** 20} MiB; ${targets.map((t) => t.name).join(', ')}`)
    for (const t of targets) await prime(t, paths)
    const edge = targets[0]!
    const lookups = { memoryHits: 0, diskHits: 0, misses: 0 }
    let lookupsKnown = true
    let before: Awaited<ReturnType<typeof edgeLookups>>
    const generators: GeneratorName[] = o.wrkCommand === undefined ? ['autocannon'] : ['wrk']
    const comparison = await runComparison({
      workload: { name: 'working-set', title: `Working set 2.5× the memory tier: random access over ${WORKING_SET_OBJECTS} × 1 MiB`, paths, bodyBytes: WORKING_SET_OBJECT_BYTES, connections: o.connections, costUnit: 'gb' },
      targets,
      generators,
      wrkCommand: o.wrkCommand,
      rounds: o.rounds,
      warmupS: o.warmupS,
      measureS: o.measureS,
      origin: () => ({ requests: origin.totalRequests(), bytes: meter.bytes() }),
      beforeWindow: o.beforeWindow,
      beforeMeasure: async (t: BenchTarget) => {
        if (t === edge) before = await edgeLookups(edge)
      },
      afterWindow: async (t: BenchTarget) => {
        if (t !== edge) return
        const after = await edgeLookups(edge)
        if (before === undefined || after === undefined) {
          lookupsKnown = false
          return
        }
        lookups.memoryHits += after.memoryHits - before.memoryHits
        lookups.diskHits += after.diskHits - before.diskHits
        lookups.misses += after.misses - before.misses
      },
      log: o.log,
    })
    const memory = [memoryCheck('working-set', edge)].filter((m) => m !== undefined)
    return {
      result: { comparison, objects: WORKING_SET_OBJECTS, objectBytes: WORKING_SET_OBJECT_BYTES, memoryBudgetBytes: WORKING_SET_MEMORY_BYTES, edgeLookups: lookupsKnown ? lookups : undefined },
      memory,
    }
  } finally {
    await Promise.all(targets.map((t) => t.stop()))
    await meter.close()
    await origin.close()
  }
}

/** Fetches every object once, a few at a time, so the measured windows start from a filled cache. */
async function prime (t: BenchTarget, paths: readonly string[]): Promise<void> {
  let next = 0
  const worker = async (): Promise<void> => {
    for (let i = next++; i < paths.length; i = next++) {
      const res = await httpGet(t.url + paths[i]!)
      if (res.status !== 200 || res.body.length !== WORKING_SET_OBJECT_BYTES) throw new Error(`${t.name}: priming ${paths[i]!} got ${res.status} with ${res.body.length} bytes`)
    }
  }
  await Promise.all(Array.from({ length: PRIME_CONCURRENCY }, worker))
}

/** The edge's cache lookup counters from /metrics, or undefined when it has none there. */
async function edgeLookups (edge: BenchTarget): Promise<{ memoryHits: number, diskHits: number, misses: number } | undefined> {
  const res = await httpGet(`${edge.url}/metrics`, 10_000).catch(() => undefined)
  if (res === undefined || res.status !== 200) return undefined
  return parseLookups(res.body.toString('utf8'))
}

/** Sums `streamedge_cache_lookups_total` by result and tier from Prometheus text. */
export function parseLookups (text: string): { memoryHits: number, diskHits: number, misses: number } | undefined {
  const out = { memoryHits: 0, diskHits: 0, misses: 0 }
  let seen = false
  for (const { labels, value } of promSamples(text, 'streamedge_cache_lookups_total')) {
    if (labels === '' || !Number.isFinite(value)) continue
    seen = true
    if (labels.includes('result="miss"')) out.misses += value
    else if (labels.includes('tier="memory"')) out.memoryHits += value
    else if (labels.includes('tier="disk"')) out.diskHits += value
  }
  return seen ? out : undefined
}
