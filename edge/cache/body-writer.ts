/**
 * Sends a byte range of a verified object file's body to a Writable (the client's
 * response) through pooled read buffers: read a chunk, write it, and reuse the buffer
 * in the write's callback, which is when the socket no longer references it. One chunk
 * per reader at a time, so 100 readers of 2 MiB objects hold 100 chunks, not 200 MiB.
 */
import { read } from 'node:fs'
import type { Writable } from 'node:stream'
import { CdnError } from '../../lib/errors.ts'
import type { BufferPool } from './buffer-pool.ts'
import type { OpenFile } from './open-files.ts'

/** What writeBodyRange reads and where its buffers come from. */
export interface BodyRangeWrite {
  /** The open file, with a reference this write owns: released through `release` when it ends. */
  readonly file: OpenFile
  readonly release: (file: OpenFile) => void
  readonly pool: BufferPool
  /** The file's path, for error messages. */
  readonly path: string
  /** File offset of the first body byte. */
  readonly bodyOffset: number
  /** First and last body byte to send, inclusive. */
  readonly start: number
  readonly endInclusive: number
  /** The file is shorter than its header said (truncated behind the store's back). */
  readonly onCorrupt: (reason: string) => void
}

/**
 * Writes the range to `out`, ends `out`, and calls `done` once with the bytes `out`
 * accepted; an error (read failure, damage, `out` closed or failing) stops the write and
 * leaves `out` to the caller, who destroys it so the client never sees a clean short body.
 */
export function writeBodyRange (out: Writable, w: BodyRangeWrite, done: (err: Error | undefined, bytes: number) => void): void {
  let position = w.start
  let written = 0
  let writing = false
  let finished = false
  const finish = (err: Error | undefined): void => {
    if (finished) return
    finished = true
    out.off('close', onClose)
    w.release(w.file)
    done(err, written)
  }
  // node:http drops a write's callback when the socket is already gone, so 'close' ends a
  // write that waits for one; the buffer it holds is left to the GC (the pool replaces it).
  const onClose = (): void => { if (writing) finish(prematureClose()) }
  out.on('close', onClose)
  const next = (): void => {
    if (out.destroyed || out.writableEnded) return finish(prematureClose())
    const buf = w.pool.take()
    const length = Math.min(buf.length, w.endInclusive + 1 - position)
    read(w.file.fd, buf, 0, length, w.bodyOffset + position, (err, bytesRead) => {
      if (err !== null || bytesRead === 0 || out.destroyed || out.writableEnded) {
        w.pool.give(buf)
        if (err !== null) return finish(err)
        if (bytesRead !== 0) return finish(prematureClose())
        w.onCorrupt('file ended before its body did')
        return finish(new CdnError('CDN_ERR_STORE_CORRUPT', `Object file ${w.path} failed its checks: file ended before its body did`))
      }
      position += bytesRead
      const last = position > w.endInclusive
      writing = true
      out.write(bytesRead === buf.length ? buf : buf.subarray(0, bytesRead), (err) => {
        // The socket is done with the bytes (written or dropped): the buffer may be reused.
        writing = false
        w.pool.give(buf)
        if (finished) return
        if (err !== undefined && err !== null) return finish(err)
        written += bytesRead
        if (last) finish(undefined)
        else next()
      })
      if (last) out.end()
    })
  }
  next()
}

function prematureClose (): Error {
  return Object.assign(new Error('Premature close'), { code: 'ERR_STREAM_PREMATURE_CLOSE' })
}
