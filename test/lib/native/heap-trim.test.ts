/**
 * The native half of the heap trimmer, against the real glibc heap of this process: Buffers
 * below the mmap threshold freed inside the main arena stay resident until malloc_trim gives
 * their pages back. npm ci builds the helper (CI installs a C compiler), so a missing build fails.
 */
import t from 'tap'
import { gc } from '../../helpers/gc.ts'
import { heapTrim, heapTrimUnavailable } from '../../../lib/native/heap-trim.ts'

const addon = heapTrim
if (addon === undefined) throw new Error(`lib/native/heap-trim.node is not usable: ${String(heapTrimUnavailable)}`)

t.test('heapStats reports the arenas and the mmapped allocations', async (t) => {
  const stats = addon.heapStats()
  for (const field of ['arenaBytes', 'inUseBytes', 'freeBytes', 'mmappedBytes'] as const) {
    t.ok(Number.isSafeInteger(stats[field]) && stats[field] >= 0, `${field} is a byte count (${stats[field]})`)
  }
  t.ok(stats.inUseBytes + stats.freeBytes <= stats.arenaBytes + 1024 * 1024, 'in use and free are parts of the arenas')
  // Above glibc's largest dynamic mmap threshold (32 MiB), so mmapped whatever this process freed before.
  const big = Buffer.allocUnsafeSlow(40 * 1024 * 1024).fill(1)
  t.ok(addon.heapStats().mmappedBytes >= stats.mmappedBytes + big.length, 'a 40 MiB Buffer is mmapped on its own')
})

t.test('freed small Buffers stay resident inside the heap until trim gives their pages back', async (t) => {
  const chunkBytes = 32 * 1024
  const count = 2048 // 64 MiB of chunks below the mmap threshold, so from the arena
  let chunks: Buffer[] | undefined = Array.from({ length: count }, (_, i) => Buffer.allocUnsafeSlow(chunkBytes).fill(i & 0xff))
  // Something live above them, so their free space is not at the top of the heap (where free() itself trims).
  const pin = Buffer.allocUnsafeSlow(chunkBytes).fill(7)
  const rssFull = process.memoryUsage.rss()
  chunks = undefined
  for (let i = 0; i < 3; i++) gc()
  // The backing stores are freed by V8's sweeper after the collection, possibly on another thread.
  let freeBytes = 0
  for (let i = 0; i < 100; i++) {
    freeBytes = addon.heapStats().freeBytes
    if (freeBytes >= count * chunkBytes / 2) break
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
  t.ok(freeBytes >= count * chunkBytes / 2, `the freed chunks are free space in the heap (${freeBytes} B)`)
  const rssFreed = process.memoryUsage.rss()
  t.ok(rssFull - rssFreed < count * chunkBytes / 4, `free() alone gave little back (RSS ${rssFull} -> ${rssFreed})`)
  t.equal(addon.trim(), 1, 'trim gave memory back')
  const rssTrimmed = process.memoryUsage.rss()
  t.ok(rssFreed - rssTrimmed >= count * chunkBytes / 2, `trim took RSS from ${rssFreed} to ${rssTrimmed}`)
  t.equal(pin[0], 7, 'live allocations are untouched')
})
