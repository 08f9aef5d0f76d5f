/**
 * Objects larger than the node stores (maxObjectBytes) stream through with bounded memory:
 * the fill drops what its reader has passed, and when the reader stops reading, the upstream
 * waits for it instead of the edge holding the rest of the body (edge/cache/shared-fill.ts,
 * `release`). Real sockets: an origin that counts what it has written, a client that pauses.
 */
import { createHash } from 'node:crypto'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { RELEASED_WINDOW_BYTES } from '../../edge/cache/shared-fill.ts'
import { startTestNode } from '../helpers/cache-node.ts'

const MiB = 1024 * 1024
const OBJECT_BYTES = 96 * MiB
const CHUNK = Buffer.alloc(64 * 1024, 0x47)

/** An origin sending OBJECT_BYTES (Content-Length, or chunked) with backpressure, counting bytes handed to its socket. */
async function countingOrigin (t: Parameters<typeof startTestNode>[0], chunked: boolean): Promise<{ url: string, sent: () => number, requests: () => number }> {
  let sent = 0
  let requests = 0
  const server = http.createServer((_req, res) => {
    requests++
    res.writeHead(200, { 'content-type': 'video/mp4', 'cache-control': 'max-age=600', ...(chunked ? {} : { 'content-length': String(OBJECT_BYTES) }) })
    let left = OBJECT_BYTES
    const pump = (): void => {
      while (left > 0) {
        left -= CHUNK.length
        sent += CHUNK.length
        if (!res.write(CHUNK)) {
          res.once('drain', pump)
          return
        }
      }
      res.end()
    }
    pump()
  })
  server.listen(0, '127.0.0.1')
  await new Promise((resolve) => server.once('listening', resolve))
  t.teardown(() => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()) }))
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, sent: () => sent, requests: () => requests }
}

for (const chunked of [false, true]) {
  t.test(`a body past maxObjectBytes (${chunked ? 'chunked, found out mid-way' : 'declared'}): a paused client pauses the origin, and the body arrives whole, unstored`, async (t) => {
    const origin = await countingOrigin(t, chunked)
    const edge = await startTestNode(t, { origin: origin.url, maxObjectBytes: 4 * MiB })
    const hash = createHash('sha256')
    let received = 0
    const res = await new Promise<http.IncomingMessage>((resolve, reject) => http.get(`${edge.url}/big/movie.mp4`, resolve).on('error', reject))
    t.equal(res.statusCode, 200)
    res.on('data', (chunk: Buffer) => { received += chunk.length; hash.update(chunk) })
    // read a little, then stop: the edge must not pull the rest of the body in meanwhile
    while (received < 8 * MiB) await sleep(5)
    res.pause()
    let before = -1
    for (let i = 0; i < 100 && origin.sent() !== before; i++) {
      before = origin.sent()
      await sleep(50)
    }
    const stalledAt = origin.sent()
    t.ok(stalledAt < OBJECT_BYTES, `the origin stopped before the end (${(stalledAt / MiB).toFixed(1)} MiB sent of ${OBJECT_BYTES / MiB})`)
    // what the edge can hold: its window, plus socket buffers on both sides of it (a few MiB each on loopback)
    t.ok(stalledAt - received < RELEASED_WINDOW_BYTES + 24 * MiB, `bounded lag: ${((stalledAt - received) / MiB).toFixed(1)} MiB ahead of the client`)
    res.resume()
    await new Promise((resolve) => res.once('end', resolve))
    t.equal(received, OBJECT_BYTES, 'the whole body')
    t.equal(hash.digest('hex'), createHash('sha256').update(Buffer.alloc(OBJECT_BYTES, 0x47)).digest('hex'), 'byte for byte')
    const again = await new Promise<http.IncomingMessage>((resolve, reject) => http.get(`${edge.url}/big/movie.mp4`, resolve).on('error', reject))
    t.match(again.headers['cache-status'], /fwd=uri-miss/, 'not stored: fetched again')
    again.resume()
    await new Promise((resolve) => again.once('end', resolve))
    t.equal(origin.requests(), 2)
  })
}
