/**
 * The heap trimmer's native half (lib/native/heap-trim.c, built at install by
 * lib/native/build.ts), or why it is missing: malloc_trim and mallinfo2 from glibc.
 */
import { loadBuilt } from './load-built.ts'

/** How the malloc heap is used, every arena together (glibc's mallinfo2). */
export interface MallocHeapStats {
  /** Bytes the arenas took from the kernel (brk and their own mmaps). */
  readonly arenaBytes: number
  /** Of those, bytes allocated. */
  readonly inUseBytes: number
  /** Of those, bytes free: resident until trimmed, as far as they were ever touched. */
  readonly freeBytes: number
  /** Bytes of allocations mmapped on their own (at or above the mmap threshold). */
  readonly mmappedBytes: number
}

/** The native functions (synchronous). */
export interface HeapTrimAddon {
  /** malloc_trim(0): gives every free page of the malloc heap back to the kernel; 1 when some were, 0 when none. */
  trim (): number
  heapStats (): MallocHeapStats
}

const loaded = loadBuilt<HeapTrimAddon>('heap-trim', 'malloc_trim is glibc\'s')
/** The addon, or undefined (then {@link heapTrimUnavailable} says why). */
export const heapTrim: HeapTrimAddon | undefined = loaded.addon
/** Why {@link heapTrim} is undefined; undefined when it loaded. */
export const heapTrimUnavailable: string | undefined = loaded.unavailable
