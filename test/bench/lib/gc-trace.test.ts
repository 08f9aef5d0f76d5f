/**
 * Reading `--trace-gc-nvp` output back: real lines captured from a steering control plane
 * (fixtures/gc-trace-nvp.txt: its main isolate, the ESM loader thread's isolate with a clock
 * of its own, a JSON log line, a `--trace-gc` line and a gc-clock mark), window summaries,
 * incremental reading of a growing file, and the clock preload in a real child.
 */
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { appendFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { formatBytes, formatGcSummary, GcTraceFile, gcTraceNodeArgs, mainIsolateEvents, parseGcClockMark, parseGcLine, parseGcTrace, summariseGcWindow, summariseGcWindowUs } from '../../../bench/lib/gc-trace.ts'

const FIXTURE = new URL('./fixtures/gc-trace-nvp.txt', import.meta.url)
const MAIN = '0x1ad4c9a0'

t.test('parseGcLine reads a scavenge, a mark-compact, and nothing else', async (t) => {
  const lines = (await readFile(FIXTURE, 'utf8')).split('\n')
  const scavenge = parseGcLine(lines[0]!)
  t.match(scavenge, { pid: 12256, isolate: MAIN, atMs: 8546, kind: 's', pauseMs: 3.6, allocatedBytes: 13822648, promotedBytes: 696264, newSpaceSurvivedBytes: 702040 })
  t.equal(scavenge?.fields['scavenge.parallel'], '2.63')
  const mc = parseGcLine(lines.find((l) => l.includes('10097 ms:'))!)
  t.match(mc, { atMs: 10097, kind: 'mc', pauseMs: 9.4 })
  t.equal(parseGcLine(lines[1]!), undefined, 'a JSON log line')
  t.equal(parseGcLine(lines[2]!), undefined, 'the gc-clock mark')
  t.equal(parseGcLine(lines.find((l) => l.includes('Scavenge 5.6'))!), undefined, 'a --trace-gc line')
  t.equal(parseGcLine(''), undefined)
  t.equal(parseGcLine('[1:0x1]  5 ms: pause=x gc=s'), undefined, 'a pause that is no number')
  const bare = parseGcLine(lines[0]!.replace(/^\[[^\]]*\]/, ''))
  t.match(bare, { atMs: 8546, kind: 's', pauseMs: 3.6 }, 'the [pid:isolate] prefix is optional')
  t.equal(bare?.pid, undefined)
})

t.test('parseGcClockMark', async (t) => {
  t.same(parseGcClockMark('gc-clock pid=12256 monotonic_us=5000000000'), { pid: 12256, monotonicUs: 5_000_000_000 })
  t.equal(parseGcClockMark('gc-clock pid=x monotonic_us=1'), undefined)
})

t.test('parseGcTrace pairs the mark with the GC line before it and keeps every isolate', async (t) => {
  const trace = parseGcTrace(await readFile(FIXTURE, 'utf8'))
  t.equal(trace.events.length, 14, '12 main-isolate lines, 2 of the loader thread\'s isolate')
  t.same(trace.anchor, { pid: 12256, isolate: MAIN, atMs: 8546, monotonicUs: 5_000_000_000 })
  const main = mainIsolateEvents(trace)
  t.equal(main.length, 12)
  t.ok(main.every((e) => e.isolate === MAIN))
  t.equal(mainIsolateEvents({ events: trace.events }).length, 12, 'without a mark: the isolate with the most lines')
})

t.test('summariseGcWindow: the main isolate\'s collections that ended in the window', async (t) => {
  const main = mainIsolateEvents(parseGcTrace(await readFile(FIXTURE, 'utf8')))
  // 8722 .. 9837: eight scavenges; 10097: one mark-compact (computed by hand from the lines)
  const s = summariseGcWindow(main, 8700, 10100)
  t.match(s, {
    fromMs: 8700,
    toMs: 10100,
    scavenges: 8,
    scavengePauseMs: { p50: 3.6, p90: 8.6, max: 8.6, sum: 37.7 },
    promotedP50Bytes: 653440,
    promotedBytes: 5248592,
    allocatedBytes: 124570688,
    markCompacts: 1,
    markCompactPausesMs: [9.4],
    pauseSumMs: 47.1,
  })
  const empty = summariseGcWindow(main, 0, 100)
  t.match(empty, { scavenges: 0, scavengePauseMs: { p50: 0, p90: 0, max: 0, sum: 0 }, promotedP50Bytes: 0, markCompacts: 0 }, 'no collections: zeros, not NaN')
})

t.test('summariseGcWindowUs places a CLOCK_MONOTONIC window through the anchor', async (t) => {
  const trace = parseGcTrace(await readFile(FIXTURE, 'utf8'))
  const s = summariseGcWindowUs(trace, 5_000_000_000 + (8700 - 8546) * 1000, 5_000_000_000 + (10100 - 8546) * 1000)
  t.match(s, { fromMs: 8700, toMs: 10100, scavenges: 8, markCompacts: 1 })
  t.equal(summariseGcWindowUs({ events: trace.events }, 0, 1), undefined, 'no anchor, no window')
  t.match(formatGcSummary(s!, 100_000), /^GC 8\.7-10\.1 s of the process: 8 scavenges, pause p50 3\.6 ms, p90 8\.6 ms, max 8\.6 ms, sum 38 ms; promoted p50 638 KB \(5\.0 MB in all, 52 B\/decision\); 1 mark-compacts \(9\.4 ms\); 119 MB allocated \(1\.2 KB\/decision\); paused 3\.4 % of the window$/)
})

t.test('formatBytes', async (t) => {
  t.equal(formatBytes(512), '512 B')
  t.equal(formatBytes(1536), '1.5 KB')
  t.equal(formatBytes(200 * 1024 * 1024), '200 MB')
})

t.test('GcTraceFile reads a growing file line by line, an incomplete line on the next update', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'streamedge-test-gc-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const file = join(dir, 'stdout.jsonl')
  const lines = (await readFile(FIXTURE, 'utf8')).split('\n')
  await writeFile(file, `${lines.slice(0, 4).join('\n')}\n${lines[4]!.slice(0, 100)}`)
  const reader = new GcTraceFile(file)
  t.equal((await reader.update()).events.length, 2, 'the first two GC lines; the cut one waits')
  t.equal((await reader.update()).events.length, 2, 'nothing new')
  await appendFile(file, `${lines[4]!.slice(100)}\n${lines.slice(5).join('\n')}`)
  const trace = await reader.update()
  t.equal(trace.events.length, 14)
  t.equal(trace.events[2]?.atMs, 8863, 'the cut line, whole')
  t.same(trace.anchor, { pid: 12256, isolate: MAIN, atMs: 8546, monotonicUs: 5_000_000_000 })
})

t.test('a child with gcTraceNodeArgs: its clock mark places its own collections', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'streamedge-test-gc-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  // The child notes CLOCK_MONOTONIC around a scavenge of its own: mapped through the mark,
  // that scavenge's line must fall between the two (give or take rounding to whole ms).
  const script = `
    const gc = require('node:vm').runInNewContext('gc')
    const us = () => Number(process.hrtime.bigint() / 1000n)
    setTimeout(() => {
      const from = us()
      gc({ type: 'minor' })
      const to = us()
      require('node:fs').writeSync(1, JSON.stringify({ from, to, globalGc: typeof globalThis.gc }) + '\\n')
    }, 200)
  `
  const child = spawn(process.execPath, [...gcTraceNodeArgs(), '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] })
  let out = ''
  child.stdout.on('data', (chunk: Buffer) => { out += chunk.toString() })
  const [code] = await once(child, 'exit') as [number | null]
  t.equal(code, 0)
  const trace = parseGcTrace(out)
  t.ok(trace.anchor !== undefined, 'the mark was found')
  t.equal(trace.anchor?.pid, child.pid)
  const { from, to, globalGc } = JSON.parse(out.split('\n').find((l) => l.startsWith('{'))!) as { from: number, to: number, globalGc: string }
  t.equal(globalGc, 'undefined', 'the preload leaves no gc() in the program\'s global scope')
  // 20 ms: both line times are rounded to whole ms; the rest is slack for a busy machine
  // (placing the window by the spawn time instead would be 5-150 ms off)
  const s = summariseGcWindowUs(trace, from - 20_000, to + 20_000)
  t.ok(s !== undefined && s.scavenges >= 1, `the child's scavenge is in its window (${JSON.stringify(s)})`)
})
