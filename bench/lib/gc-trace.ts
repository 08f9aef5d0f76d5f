/**
 * Garbage-collection evidence from V8's `--trace-gc-nvp`: one line per collection, key=value
 * pairs after a `[pid:isolate]   N ms: ` prefix, N counted from when that isolate started.
 * A child's stdout carries the lines among its JSON log lines; this reads them back (also
 * incrementally, from a log file that grows by tens of MB a window), places the bench's
 * CLOCK_MONOTONIC windows on the isolate's clock (bench/lib/gc-clock-preload.mjs), and
 * summarises a window: scavenges, their pauses and promoted bytes, mark-compacts.
 */
import { open } from 'node:fs/promises'
import { percentile } from './stats.ts'

/** One garbage collection, as `--trace-gc-nvp` printed it. */
export interface GcEvent {
  /** From the `[pid:isolate]` prefix, when the line has one. */
  readonly pid?: number
  readonly isolate?: string
  /** When V8 printed the line (the end of the pause), ms since its isolate started. */
  readonly atMs: number
  /** V8's name: `s` scavenge, `mc` mark-compact, `ms` (`mmc` in older V8) minor mark-sweep. */
  readonly kind: string
  readonly pauseMs: number
  /** Bytes allocated since the previous collection. */
  readonly allocatedBytes?: number
  /** Bytes the collection moved from new to old space (young collections). */
  readonly promotedBytes?: number
  /** Bytes that stayed in new space (young collections). */
  readonly newSpaceSurvivedBytes?: number
  /** Every key=value pair, as printed. */
  readonly fields: Readonly<Record<string, string>>
}

/** The line bench/lib/gc-clock-preload.mjs prints right after the scavenge it forces at startup. */
export interface GcClockMark {
  readonly pid: number
  /** CLOCK_MONOTONIC µs when that scavenge had returned. */
  readonly monotonicUs: number
}

/** A mark paired with the GC line before it: a point on both the isolate's clock and CLOCK_MONOTONIC. */
export interface GcClockAnchor {
  readonly pid: number
  /** The main thread's isolate (the one the preload ran on); other isolates (loader or worker threads) have clocks of their own. */
  readonly isolate?: string
  readonly atMs: number
  readonly monotonicUs: number
}

/** Pause statistics of a set of collections, ms; all 0 when there were none. */
export interface PauseStats {
  readonly p50: number
  readonly p90: number
  readonly max: number
  readonly sum: number
}

/** The collections of one window, on one isolate. */
export interface GcWindowSummary {
  /** The window on the isolate's clock, ms. */
  readonly fromMs: number
  readonly toMs: number
  /** Young-generation collections: scavenges (`gc=s`), and minor mark-sweeps (`gc=ms`) if V8 ran any. */
  readonly scavenges: number
  readonly scavengePauseMs: PauseStats
  /** Median bytes one scavenge promoted to old space (nearest rank). */
  readonly promotedP50Bytes: number
  /** Bytes promoted by every scavenge of the window. */
  readonly promotedBytes: number
  /** Bytes allocated over the window (the `allocated=` of every collection in it). */
  readonly allocatedBytes: number
  readonly markCompacts: number
  /** Each mark-compact's pause, ms, in order. */
  readonly markCompactPausesMs: readonly number[]
  /** Every pause of the window, ms. */
  readonly pauseSumMs: number
}

const GC_LINE = /^(?:\[(\d+):(0x[0-9a-fA-F]+)\]\s+)?(\d+(?:\.\d+)?) ms: (.*)$/
const MARK_LINE = /^gc-clock pid=(\d+) monotonic_us=(\d+)\s*$/
const YOUNG = new Set(['s', 'ms', 'mmc'])

/** Parses one `--trace-gc-nvp` line; undefined for anything else (log lines, `--trace-gc` lines, blanks). */
export function parseGcLine (line: string): GcEvent | undefined {
  const m = GC_LINE.exec(line.trim())
  if (m === null) return undefined
  const fields: Record<string, string> = {}
  for (const pair of m[4]!.split(/\s+/)) {
    const eq = pair.indexOf('=')
    if (eq > 0) fields[pair.slice(0, eq)] = pair.slice(eq + 1)
  }
  const kind = fields.gc
  const pauseMs = Number(fields.pause)
  if (kind === undefined || fields.pause === undefined || !Number.isFinite(pauseMs)) return undefined
  const num = (key: string): number | undefined => {
    const v = Number(fields[key])
    return fields[key] === undefined || !Number.isFinite(v) ? undefined : v
  }
  const allocated = num('allocated')
  const promoted = num('promoted')
  const survived = num('new_space_survived')
  return {
    ...(m[1] === undefined ? {} : { pid: Number(m[1]), isolate: m[2]! }),
    atMs: Number(m[3]),
    kind,
    pauseMs,
    ...(allocated === undefined ? {} : { allocatedBytes: allocated }),
    ...(promoted === undefined ? {} : { promotedBytes: promoted }),
    ...(survived === undefined ? {} : { newSpaceSurvivedBytes: survived }),
    fields,
  }
}

/** Parses the mark line of bench/lib/gc-clock-preload.mjs; undefined for anything else. */
export function parseGcClockMark (line: string): GcClockMark | undefined {
  const m = MARK_LINE.exec(line.trim())
  return m === null ? undefined : { pid: Number(m[1]), monotonicUs: Number(m[2]) }
}

/** What a trace holds: its collections in order, and the clock anchor when the preload ran. */
export interface GcTrace {
  readonly events: readonly GcEvent[]
  readonly anchor?: GcClockAnchor
}

/**
 * Accumulates a trace line by line. The anchor is the first mark, paired with the GC line
 * just before it from the same process: V8 writes its lines unbuffered, so the forced
 * scavenge's line precedes the mark the preload writes after it.
 */
export class GcTraceCollector {
  readonly #events: GcEvent[] = []
  #anchor: GcClockAnchor | undefined

  /** Takes one line of output; lines that are neither GC lines nor marks are ignored. */
  add (line: string): void {
    const event = parseGcLine(line)
    if (event !== undefined) {
      this.#events.push(event)
      return
    }
    if (this.#anchor !== undefined) return
    const mark = parseGcClockMark(line)
    if (mark === undefined) return
    const forced = this.#events.findLast((e) => e.pid === undefined || e.pid === mark.pid)
    if (forced === undefined) return
    this.#anchor = { pid: mark.pid, ...(forced.isolate === undefined ? {} : { isolate: forced.isolate }), atMs: forced.atMs, monotonicUs: mark.monotonicUs }
  }

  get trace (): GcTrace {
    return { events: this.#events, ...(this.#anchor === undefined ? {} : { anchor: this.#anchor }) }
  }
}

/** Parses a whole trace (a captured stdout). */
export function parseGcTrace (text: string): GcTrace {
  const collector = new GcTraceCollector()
  for (const line of text.split('\n')) collector.add(line)
  return collector.trace
}

/**
 * The main thread's collections: the anchor's isolate, else the isolate with the most lines
 * (a process's other isolates, such as the ESM loader thread, collect rarely).
 */
export function mainIsolateEvents (trace: GcTrace): GcEvent[] {
  let isolate = trace.anchor?.isolate
  let pid = trace.anchor?.pid
  if (isolate === undefined) {
    const counts = new Map<string, number>()
    for (const e of trace.events) counts.set(`${e.pid}:${e.isolate}`, (counts.get(`${e.pid}:${e.isolate}`) ?? 0) + 1)
    const top = [...counts].reduce<[string, number] | undefined>((a, c) => a === undefined || c[1] > a[1] ? c : a, undefined)
    const first = trace.events.find((e) => `${e.pid}:${e.isolate}` === top?.[0])
    isolate = first?.isolate
    pid = first?.pid
  }
  return trace.events.filter((e) => e.isolate === isolate && e.pid === pid)
}

/** Summarises the collections that ended in [fromMs, toMs] of the isolate's clock. */
export function summariseGcWindow (events: readonly GcEvent[], fromMs: number, toMs: number): GcWindowSummary {
  const inWindow = events.filter((e) => e.atMs >= fromMs && e.atMs <= toMs)
  const young = inWindow.filter((e) => YOUNG.has(e.kind))
  const full = inWindow.filter((e) => e.kind === 'mc')
  const pauses = young.map((e) => e.pauseMs)
  const sum = (values: readonly number[]): number => values.reduce((a, v) => a + v, 0)
  const or0 = (n: number): number => Number.isNaN(n) ? 0 : n
  return {
    fromMs,
    toMs,
    scavenges: young.length,
    scavengePauseMs: { p50: or0(percentile(pauses, 50)), p90: or0(percentile(pauses, 90)), max: Math.max(0, ...pauses), sum: round1(sum(pauses)) },
    promotedP50Bytes: or0(percentile(young.map((e) => e.promotedBytes ?? 0), 50)),
    promotedBytes: sum(young.map((e) => e.promotedBytes ?? 0)),
    allocatedBytes: sum(inWindow.map((e) => e.allocatedBytes ?? 0)),
    markCompacts: full.length,
    markCompactPausesMs: full.map((e) => e.pauseMs),
    pauseSumMs: round1(sum(inWindow.map((e) => e.pauseMs))),
  }
}

/**
 * Summarises a window given on CLOCK_MONOTONIC (µs, bench/lib/profile-run.ts `monotonicUs`),
 * for the main thread's isolate; undefined without an anchor (the child ran without
 * {@link gcTraceNodeArgs}' preload, so its clock cannot be placed).
 */
export function summariseGcWindowUs (trace: GcTrace, fromUs: number, toUs: number): GcWindowSummary | undefined {
  const anchor = trace.anchor
  if (anchor === undefined) return undefined
  const toIsolateMs = (us: number): number => round1(anchor.atMs + (us - anchor.monotonicUs) / 1000)
  return summariseGcWindow(mainIsolateEvents(trace), toIsolateMs(fromUs), toIsolateMs(toUs))
}

/** Node flags for a child whose collections are to be read back from its stdout. */
export function gcTraceNodeArgs (): string[] {
  return ['--trace-gc-nvp', '--import', new URL('./gc-clock-preload.mjs', import.meta.url).href]
}

const CHUNK_BYTES = 4 << 20
const BRACE = 0x7b
const NEWLINE = 0x0a

/**
 * Reads the GC lines of a growing stdout file, from where the last {@link update} stopped.
 * JSON log lines (starting with `{`) are skipped without being decoded: a decision log at
 * 20,000 lines a second is most of the file.
 */
export class GcTraceFile {
  readonly #path: string
  readonly #collector = new GcTraceCollector()
  #offset = 0

  constructor (path: string) {
    this.#path = path
  }

  /** Reads the complete lines written since the last call. */
  async update (): Promise<GcTrace> {
    const file = await open(this.#path, 'r')
    try {
      const buffer = Buffer.allocUnsafe(CHUNK_BYTES)
      for (;;) {
        const { bytesRead } = await file.read(buffer, 0, CHUNK_BYTES, this.#offset)
        if (bytesRead === 0) break
        let start = 0
        for (let nl = buffer.indexOf(NEWLINE, 0); nl !== -1 && nl < bytesRead; nl = buffer.indexOf(NEWLINE, start)) {
          if (buffer[start] !== BRACE && nl > start) this.#collector.add(buffer.toString('utf8', start, nl))
          start = nl + 1
        }
        // a line longer than a chunk is no GC line worth keeping: skip past it
        if (start === 0 && bytesRead === CHUNK_BYTES) start = bytesRead
        this.#offset += start
        // a short read is the end of the file; an incomplete last line is read again next time
        if (bytesRead < CHUNK_BYTES) break
      }
    } finally {
      await file.close()
    }
    return this.#collector.trace
  }
}

/** One log line's worth of a window summary; `decisions` adds bytes per decision. */
export function formatGcSummary (s: GcWindowSummary, decisions?: number): string {
  const per = (bytes: number): string | undefined => decisions === undefined || decisions <= 0 ? undefined : `${formatBytes(bytes / decisions)}/decision`
  const p = s.scavengePauseMs
  const windowMs = s.toMs - s.fromMs
  const promotedPer = per(s.promotedBytes)
  const allocatedPer = per(s.allocatedBytes)
  return `GC ${(s.fromMs / 1000).toFixed(1)}-${(s.toMs / 1000).toFixed(1)} s of the process: ${s.scavenges} scavenges, pause p50 ${p.p50} ms, p90 ${p.p90} ms, max ${p.max} ms, sum ${Math.round(p.sum)} ms; ` +
    `promoted p50 ${formatBytes(s.promotedP50Bytes)} (${formatBytes(s.promotedBytes)} in all${promotedPer === undefined ? '' : `, ${promotedPer}`}); ` +
    `${s.markCompacts} mark-compacts${s.markCompacts === 0 ? '' : ` (${s.markCompactPausesMs.join(', ')} ms)`}; ` +
    `${formatBytes(s.allocatedBytes)} allocated${allocatedPer === undefined ? '' : ` (${allocatedPer})`}; paused ${windowMs > 0 ? (100 * s.pauseSumMs / windowMs).toFixed(1) : '0'} % of the window`
}

/** Bytes as B, KB, MB or GB (powers of 1024). */
export function formatBytes (bytes: number): string {
  const units = ['B', 'KB', 'MB', 'GB']
  let v = bytes
  let i = 0
  while (Math.abs(v) >= 1024 && i < units.length - 1) {
    v /= 1024
    i++
  }
  return `${i === 0 ? Math.round(v) : v.toFixed(v >= 100 ? 0 : 1)} ${units[i]}`
}

function round1 (n: number): number {
  return Math.round(n * 10) / 10
}
