import type { ServerResponse } from 'node:http'
import { setTimeout as sleep } from 'node:timers/promises'

/** Interval between throttled writes; small enough that a cache in front sees bytes arrive progressively. */
export const THROTTLE_TICK_MS = 10

/** How {@link writeBody} sends a body. */
export interface WriteBodyOptions {
  readonly bytesPerSecond?: number | undefined
  /** Send this many bytes, then destroy the socket (Content-Length still announces the whole body). */
  readonly truncateAtBytes?: number | undefined
  /** Aborts a throttled write (server shutdown). */
  readonly signal?: AbortSignal | undefined
}

/**
 * Writes `body` after the headers already set on `res`, optionally throttled and/or truncated.
 * Resolves when the response ended or was destroyed; never rejects.
 */
export async function writeBody (res: ServerResponse, body: Buffer, options: WriteBodyOptions = {}): Promise<void> {
  const limit = Math.min(body.length, options.truncateAtBytes ?? body.length)
  const truncated = limit < body.length
  const bytesPerSecond = options.bytesPerSecond
  if (bytesPerSecond === undefined) {
    if (!truncated) {
      res.end(body)
      return
    }
    res.flushHeaders()
    await writeChunk(res, body.subarray(0, limit))
  } else {
    res.flushHeaders()
    await writeThrottled(res, body.subarray(0, limit), bytesPerSecond, options.signal)
  }
  if (truncated || res.destroyed) {
    res.destroy()
    return
  }
  res.end()
}

// Paces by elapsed time rather than counting ticks, so timer lateness does not lower the rate.
async function writeThrottled (res: ServerResponse, body: Buffer, bytesPerSecond: number, signal: AbortSignal | undefined): Promise<void> {
  const startedAt = performance.now()
  let sent = 0
  while (sent < body.length && !res.destroyed && signal?.aborted !== true) {
    const due = Math.floor(bytesPerSecond * (performance.now() - startedAt + THROTTLE_TICK_MS) / 1000)
    const n = Math.min(body.length - sent, due - sent)
    if (n > 0) {
      await writeChunk(res, body.subarray(sent, sent + n))
      sent += n
    }
    if (sent < body.length) await sleep(THROTTLE_TICK_MS, undefined, { signal }).catch(() => {})
  }
  if (sent < body.length) res.destroy()
}

/** Resolves once the chunk was handed to the socket, or the response died. */
function writeChunk (res: ServerResponse, chunk: Buffer): Promise<void> {
  if (res.destroyed) return Promise.resolve()
  if (chunk.length === 0) return new Promise((resolve) => setImmediate(resolve))
  return new Promise((resolve) => {
    const done = (): void => {
      res.off('close', done)
      resolve()
    }
    res.once('close', done)
    res.write(chunk, () => done())
  })
}
