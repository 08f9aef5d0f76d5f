/**
 * Gives the malloc heap's free pages back to the kernel every few seconds (glibc's
 * malloc_trim, lib/native/heap-trim.c), so a cache node's RSS follows what it holds.
 *
 * Why a cache node needs it: Buffers below glibc's mmap threshold (socket reads, upstream
 * body chunks of up to 64 KiB) come from malloc's arenas and live until V8 collects them. A
 * burst of fills leaves tens of MB of them free inside the main arena, and glibc returns only
 * what is free at its top, so RSS stays at the burst's high-water mark. In the working-set
 * bench (a 64 MiB memory tier, limit 217 MB RSS) the edge ended at 238 and 241 MB in two runs
 * without trimming and at 215 MB with a trim every 5 s (`--only working-set --peers nginx`);
 * the full runs with it ended at 190-199 MB.
 *
 * The trim runs on the event loop (malloc_trim takes the arenas' locks; it must not race a
 * free on the main thread), so its time is counted (`streamedge_malloc_trim_seconds_total`).
 */
import { performance } from 'node:perf_hooks'
import type { HeapTrimAddon, MallocHeapStats } from './native/heap-trim.ts'

/** Options of {@link HeapTrimmer}. */
export interface HeapTrimmerOptions {
  /** The native half (lib/native/heap-trim.ts `heapTrim`); undefined leaves the trimmer idle. */
  readonly addon: HeapTrimAddon | undefined
  /** Milliseconds between trims; 0 never trims (heap stats are still reported). */
  readonly intervalMs: number
}

/** Running totals, as /metrics reports them. */
export interface HeapTrimmerStats {
  /** Trims run. */
  readonly trims: number
  /** Seconds the event loop spent in them. */
  readonly seconds: number
}

/** A timer that trims the malloc heap; unref'd, so it never keeps a process alive. */
export class HeapTrimmer {
  readonly #addon: HeapTrimAddon | undefined
  readonly #intervalMs: number
  #timer: NodeJS.Timeout | undefined
  #trims = 0
  #seconds = 0

  constructor (options: HeapTrimmerOptions) {
    const { addon, intervalMs } = options
    if (!Number.isSafeInteger(intervalMs) || intervalMs < 0) {
      throw new TypeError(`Expected options.intervalMs to be a non-negative integer, got ${String(intervalMs)}`)
    }
    this.#addon = addon
    this.#intervalMs = intervalMs
  }

  /** Whether trims will run: an interval was set and the native half is there. */
  get active (): boolean {
    return this.#addon !== undefined && this.#intervalMs > 0
  }

  /** Starts the timer (no-op when not {@link active} or already started). */
  start (): void {
    if (!this.active || this.#timer !== undefined) return
    this.#timer = setInterval(() => { this.trim() }, this.#intervalMs)
    this.#timer.unref()
  }

  stop (): void {
    clearInterval(this.#timer)
    this.#timer = undefined
  }

  /** Trims now; false when there is no native half. */
  trim (): boolean {
    const addon = this.#addon
    if (addon === undefined) return false
    const startedMs = performance.now()
    addon.trim()
    this.#seconds += (performance.now() - startedMs) / 1000
    this.#trims++
    return true
  }

  get stats (): HeapTrimmerStats {
    return { trims: this.#trims, seconds: this.#seconds }
  }

  /** How the malloc heap is used now; undefined without the native half. */
  heapStats (): MallocHeapStats | undefined {
    return this.#addon?.heapStats()
  }
}
