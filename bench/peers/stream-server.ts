/**
 * The cold-herd baseline ("ideal streamer"): what a shared fill costs with no cache at
 * all. The first request for a path starts one paced producer (the origin's pacing:
 * a slice every 10 ms at `bytesPerSecond`); every request for that path, early or late,
 * gets the head and the bytes produced so far at once, then each new slice as it is
 * produced. No lookups, no store, no backpressure handling (node buffers for slow
 * readers). Same http.Server settings as the edge. Prints
 * `{"msg":"stream listening","url":...}` when ready.
 *
 * Usage: node --import tsx bench/peers/stream-server.ts '<json StreamServerConfig>'
 */
import type { ServerResponse } from 'node:http'
import { THROTTLE_TICK_MS } from '../origin/body-writer.ts'
import { syntheticBody } from '../origin/synthetic-body.ts'
import { serveBaseline } from './baseline-server.ts'

/** The JSON argument of this script. */
export interface StreamServerConfig {
  /** Body = syntheticBody(name, bytes, 'ts') for every path. */
  readonly name: string
  readonly bytes: number
  readonly bytesPerSecond: number
  readonly keepAliveTimeoutMs: number
  readonly headersTimeoutMs: number
}

interface Broadcast {
  readonly startedAt: number
  sent: number
  readonly readers: Set<ServerResponse>
}

const config = JSON.parse(process.argv[2] ?? '{}') as StreamServerConfig
if (!Number.isSafeInteger(config.bytes) || !Number.isSafeInteger(config.bytesPerSecond) || config.bytesPerSecond < 1) {
  throw new TypeError(`Expected integer config.bytes and config.bytesPerSecond, got ${String(config.bytes)} and ${String(config.bytesPerSecond)}`)
}
const body = syntheticBody(config.name, config.bytes, 'ts')
const headers = ['content-type', 'video/mp2t', 'cache-control', 'public, max-age=3600', 'content-length', String(body.length)]
const broadcasts = new Map<string, Broadcast>()

function start (path: string): Broadcast {
  const b: Broadcast = { startedAt: performance.now(), sent: 0, readers: new Set() }
  broadcasts.set(path, b)
  const tick = (): void => {
    // Paced by elapsed time, like the origin's throttled writer, so timer lateness does not lower the rate.
    const due = Math.min(body.length, Math.floor(config.bytesPerSecond * (performance.now() - b.startedAt + THROTTLE_TICK_MS) / 1000))
    if (due > b.sent) {
      const slice = body.subarray(b.sent, due)
      b.sent = due
      for (const res of b.readers) res.write(slice)
    }
    if (b.sent < body.length) {
      setTimeout(tick, THROTTLE_TICK_MS)
      return
    }
    for (const res of b.readers) res.end()
    broadcasts.delete(path)
  }
  setImmediate(tick)
  return b
}

serveBaseline('stream', config, (req, res) => {
  if (req.method === 'HEAD') {
    // the herd client's connection warm-up (bench/peers/herd-client.ts warmPath): no broadcast
    res.writeHead(200, headers)
    res.end()
    return
  }
  const path = req.url ?? '/'
  const b = broadcasts.get(path) ?? start(path)
  res.writeHead(200, headers)
  if (b.sent > 0) res.write(body.subarray(0, b.sent))
  else res.flushHeaders()
  b.readers.add(res)
  res.once('close', () => b.readers.delete(res))
})
