/**
 * Promoted-bytes heap profiles of a child server, window by window: the child runs with
 * bench/lib/heap-promoted-preload.mjs; each start and stop is a SIGUSR2, answered by a file
 * the preload writes into the shared directory. The profile counts the objects that survived
 * the young generation between the two, give or take young objects it cannot tell apart
 * (still young at the stop, or freed by a mark-compact): their bytes bound the error.
 */
import { access, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { pathToFileURL } from 'node:url'
import { sourceMapLineResolver, type SourceMapDump } from './cpu-profile.ts'
import { formatBytes } from './gc-trace.ts'
import { summariseHeapProfile, type AllocationSite, type HeapProfile } from './heap-profile.ts'
import { processAlive as alive } from './proc-cpu.ts'

const PRELOAD = new URL('./heap-promoted-preload.mjs', import.meta.url).href

/** Node flags and environment that let {@link HeapPromotedSampler} sample a child, its files going to `dir`. */
export function heapPromotedChild (dir: string): { nodeArgs: string[], env: Record<string, string> } {
  return { nodeArgs: ['--import', PRELOAD], env: { BENCH_HEAP_PROMOTED_DIR: dir } }
}

/** What the preload notes about a window. */
export interface HeapPromotedMeta {
  readonly pid: number
  readonly window: number
  readonly samplingIntervalBytes: number
  /** CLOCK_MONOTONIC µs when sampling started and when the stop began. */
  readonly startedUs: number
  readonly stoppedUs: number
  /** New space in use after the scavenge forced at the stop: young objects alive at the end, which the profile counts. */
  readonly youngLiveBytesAtStop: number
  /** Mark-compacts during the window, and the new space in use when they began: young garbage they freed counts too. */
  readonly markCompacts: number
  readonly youngBytesAtMarkCompacts: number
}

/** One window's files. */
export interface HeapPromotedCapture {
  readonly profileFile: string
  readonly sourceMapsFile: string
  readonly meta: HeapPromotedMeta
}

/** A window's promoted bytes, summarised. */
export interface HeapPromotedSummary {
  /** The `.heapprofile` (Chrome DevTools: Memory, Load). */
  readonly file: string
  readonly durationMs: number
  /** Sampled bytes that survived the young generation (V8's estimate from samples). */
  readonly totalBytes: number
  /** Of which at most this much may be young objects: alive at the stop, plus new space when each mark-compact began. */
  readonly youngBytesBound: number
  readonly markCompacts: number
  readonly topSites: readonly AllocationSite[]
  readonly topStacks: readonly AllocationSite[]
}

/** Starts and stops a child's sampling; one window at a time. */
export class HeapPromotedSampler {
  readonly #pid: number
  readonly #dir: string
  readonly #timeoutMs: number
  #window = 0
  #sampling = false

  /** `pid`: a child started with {@link heapPromotedChild}(`dir`). */
  constructor (pid: number, dir: string, options: { readonly timeoutMs?: number } = {}) {
    if (!Number.isSafeInteger(pid) || pid <= 0) throw new TypeError(`Expected pid to be a positive integer, got ${String(pid)}`)
    this.#pid = pid
    this.#dir = dir
    this.#timeoutMs = options.timeoutMs ?? 30_000
  }

  /** Starts sampling; resolves once the child samples. */
  async start (): Promise<void> {
    if (this.#sampling) throw new Error('heap sampling already started')
    this.#window++
    process.kill(this.#pid, 'SIGUSR2')
    await this.#waitFor('sampling')
    this.#sampling = true
  }

  /** Stops sampling; resolves with the window's files once the child wrote them. */
  async stop (): Promise<HeapPromotedCapture> {
    if (!this.#sampling) throw new Error('heap sampling not started')
    this.#sampling = false
    process.kill(this.#pid, 'SIGUSR2')
    const metaFile = await this.#waitFor('meta.json')
    const meta = JSON.parse(await readFile(metaFile, 'utf8')) as HeapPromotedMeta
    return { profileFile: this.#file('heapprofile'), sourceMapsFile: this.#file('source-maps.json'), meta }
  }

  #file (suffix: string): string {
    return join(this.#dir, `heap-promoted-${this.#pid}-${this.#window}.${suffix}`)
  }

  async #waitFor (suffix: string): Promise<string> {
    const file = this.#file(suffix)
    const deadline = performance.now() + this.#timeoutMs
    for (;;) {
      if (await exists(file)) return file
      const error = await readFile(this.#file('error'), 'utf8').catch(() => undefined)
      if (error !== undefined) throw new Error(`heap sampling of pid ${this.#pid} failed: ${error}`)
      if (!alive(this.#pid)) throw new Error(`pid ${this.#pid} exited before writing ${file}`)
      if (performance.now() > deadline) throw new Error(`pid ${this.#pid} wrote no ${file} within ${this.#timeoutMs} ms (started with heapPromotedChild?)`)
      await sleep(20)
    }
  }
}

/** Reads a window's files and summarises them; `root` is the checkout the child ran (cut from locations). */
export async function summariseHeapPromoted (capture: HeapPromotedCapture, options: { readonly root: string, readonly top?: number }): Promise<HeapPromotedSummary> {
  const profile = JSON.parse(await readFile(capture.profileFile, 'utf8')) as HeapProfile
  const maps = JSON.parse(await readFile(capture.sourceMapsFile, 'utf8').catch(() => '{}')) as SourceMapDump
  const summary = summariseHeapProfile(profile, { top: options.top ?? 15, rootUrl: pathToFileURL(options.root).href, resolveLine: sourceMapLineResolver(maps) })
  return {
    file: capture.profileFile,
    durationMs: (capture.meta.stoppedUs - capture.meta.startedUs) / 1000,
    totalBytes: summary.totalBytes,
    youngBytesBound: capture.meta.youngLiveBytesAtStop + capture.meta.youngBytesAtMarkCompacts,
    markCompacts: capture.meta.markCompacts,
    topSites: summary.topSites,
    topStacks: summary.topStacks,
  }
}

/** Log lines for a summary: the total, then the top `sites` allocation sites. */
export function formatHeapPromoted (s: HeapPromotedSummary, options: { readonly decisions?: number, readonly sites?: number } = {}): string[] {
  const per = options.decisions === undefined || options.decisions <= 0 ? '' : ` (${formatBytes(s.totalBytes / options.decisions)}/decision)`
  return [
    `promoted (heap samples surviving the young generation) over ${(s.durationMs / 1000).toFixed(1)} s: ${formatBytes(s.totalBytes)}${per}, of which up to ${formatBytes(s.youngBytesBound)} may be young objects (alive at the stop, or freed by the window's ${s.markCompacts} mark-compacts); ${s.file}`,
    ...s.topSites.slice(0, options.sites ?? 10).map((x) => `    ${x.selfPercent.toFixed(1).padStart(5)} %  ${formatBytes(x.selfBytes).padStart(8)}  ${x.functionName}  ${x.location}`),
  ]
}

function exists (file: string): Promise<boolean> {
  return access(file).then(() => true, () => false)
}
