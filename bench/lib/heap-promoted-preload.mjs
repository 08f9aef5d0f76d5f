// Preload for a promoted-bytes heap profile: `BENCH_HEAP_PROMOTED_DIR=DIR node --import
// <this file> ...` (bench/lib/heap-promoted.ts drives it). Each SIGUSR2 toggles V8's sampling
// heap profiler, set to keep the samples of objects a mark-compact frees and to drop those a
// scavenge frees: what is left is what survived the young generation, the bytes the scavenger
// promoted and mark-compacts then have to trace. Two kinds of young objects count too:
// - those still in new space when sampling stops (a short window would over-report by up to a
//   semi-space of garbage): the stop forces one scavenge first, which drops the dead ones; the
//   live ones left are at most youngLiveBytesAtStop;
// - the young garbage a mark-compact frees (it collects new space as well, and V8 counts what
//   it frees as collected by a major GC): at most the new space in use when each began,
//   youngBytesAtMarkCompacts (v8.GCProfiler), markCompacts of them.
// Files, for the n-th window of process pid, in DIR: heap-promoted-<pid>-<n>.sampling once
// sampling runs; at the stop .heapprofile, .source-maps.json (the maps of the profile's .ts
// files, tsx compiling each to one line) and last .meta.json. Plain JavaScript on purpose:
// it loads before (and independently of) tsx.
import { renameSync, writeFileSync } from 'node:fs'
import { Session } from 'node:inspector'
import { findSourceMap } from 'node:module'
import { join } from 'node:path'
import { GCProfiler, getHeapSpaceStatistics, setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'

const SAMPLING_INTERVAL_BYTES = 8192
const dir = process.env.BENCH_HEAP_PROMOTED_DIR

if (dir !== undefined && dir !== '') {
  // the maps of modules loaded from here on are kept, for TypeScript lines
  process.setSourceMapsEnabled(true)
  setFlagsFromString('--expose-gc')
  const gc = runInNewContext('gc')
  const session = new Session()
  session.connect()
  const post = (method, params = {}) => new Promise((resolve, reject) => session.post(method, params, (err, result) => err ? reject(err) : resolve(result)))
  const monotonicUs = () => Number(process.hrtime.bigint() / 1000n)
  const base = (n) => join(dir, `heap-promoted-${process.pid}-${n}`)
  const writeAtomically = (file, text) => {
    writeFileSync(`${file}.tmp`, text)
    renameSync(`${file}.tmp`, file)
  }
  const youngBytes = (spaces, name, used) => spaces.filter((s) => s[name] === 'new_space' || s[name] === 'new_large_object_space').reduce((sum, s) => sum + s[used], 0)
  let n = 0
  let startedUs
  let gcProfiler
  let busy = false

  const start = async () => {
    n++
    await post('HeapProfiler.enable')
    await post('HeapProfiler.startSampling', { samplingInterval: SAMPLING_INTERVAL_BYTES, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: false })
    gcProfiler = new GCProfiler()
    gcProfiler.start()
    startedUs = monotonicUs()
    writeAtomically(`${base(n)}.sampling`, `${startedUs}\n`)
  }

  const stop = async () => {
    const stoppedUs = monotonicUs()
    const fullGcs = gcProfiler.stop().statistics.filter((s) => s.gcType === 'MarkSweepCompact')
    const youngBytesAtMarkCompacts = fullGcs.reduce((sum, s) => sum + youngBytes(s.beforeGC.heapSpaceStatistics, 'spaceName', 'spaceUsedSize'), 0)
    gc({ type: 'minor' })
    const youngLiveBytesAtStop = youngBytes(getHeapSpaceStatistics(), 'space_name', 'space_used_size')
    const { profile } = await post('HeapProfiler.stopSampling')
    await post('HeapProfiler.disable')
    const maps = {}
    const seen = new Set()
    const visit = [profile.head]
    for (let node = visit.pop(); node !== undefined; node = visit.pop()) {
      const url = node.callFrame.url
      if (url.startsWith('file:') && url.endsWith('.ts') && !seen.has(url)) {
        seen.add(url)
        const map = findSourceMap(url)
        if (map !== undefined) {
          const { version, sources, names, mappings } = map.payload
          maps[url] = { version, sources, names, mappings }
        }
      }
      visit.push(...node.children)
    }
    const at = base(n)
    writeAtomically(`${at}.heapprofile`, JSON.stringify(profile))
    writeAtomically(`${at}.source-maps.json`, JSON.stringify(maps))
    writeAtomically(`${at}.meta.json`, JSON.stringify({ pid: process.pid, window: n, samplingIntervalBytes: SAMPLING_INTERVAL_BYTES, startedUs, stoppedUs, youngLiveBytesAtStop, markCompacts: fullGcs.length, youngBytesAtMarkCompacts }))
    startedUs = undefined
  }

  process.on('SIGUSR2', () => {
    if (busy) return
    busy = true
    const step = startedUs === undefined ? start : stop
    step().catch((err) => {
      writeFileSync(join(dir, `heap-promoted-${process.pid}-${n}.error`), String(err?.stack ?? err))
    }).finally(() => { busy = false })
  })
}
