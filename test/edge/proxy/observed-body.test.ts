/**
 * Observed bodies (edge/proxy/observed-body.ts): the wrapper passes bytes through unchanged
 * and reports exactly once how the body ended: `end`, `error` (the upstream failed it, a
 * premature close included) or `cancel` (our consumer dropped it first), which listening on
 * the source alone cannot tell apart. Backpressure reaches the source. Then real upstream
 * bodies over 127.0.0.1 (undici, through HttpUpstream): a truncated body, a dropped one
 * (the origin sees its connection go), and discardBody keeping a keep-alive connection
 * reusable after a 5xx body nobody forwards.
 */
import { once } from 'node:events'
import http from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { PassThrough, Readable, Writable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import t, { type Test } from 'tap'
import { discardBody, observeBody, type BodyOutcome } from '../../../edge/proxy/observed-body.ts'
import { HttpUpstream } from '../../../edge/proxy/upstream.ts'

interface Seen { readonly outcome: BodyOutcome, readonly err: Error | undefined }

/** Wraps `source`, recording every call of the listener. */
function observed (source: Readable): { body: Readable, calls: Seen[] } {
  const calls: Seen[] = []
  const body = observeBody(source, (outcome, err) => { calls.push({ outcome, err }) })
  return { body, calls }
}

async function readAll (body: Readable): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const chunk of body) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks)
}

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))

t.test('end: every byte passes unchanged, the listener runs once with "end" and no error', async (t) => {
  const payload = Buffer.alloc(1024 * 1024 + 7)
  for (let i = 0; i < payload.length; i++) payload[i] = (i * 31 + 7) & 0xff
  const source = new PassThrough()
  const { body, calls } = observed(source)
  const reading = readAll(body)
  for (let at = 0; at < payload.length; at += 10_000) {
    if (!source.write(payload.subarray(at, at + 10_000))) await once(source, 'drain')
  }
  source.end()
  t.same(await reading, payload, 'same bytes, same order')
  await tick()
  t.same(calls, [{ outcome: 'end', err: undefined }])
  body.destroy()
  await tick()
  t.equal(calls.length, 1, 'destroying the wrapper after the end reports nothing more')
})

t.test('error: the source fails, the listener sees "error" with that error, the consumer sees it too', async (t) => {
  const source = new PassThrough()
  const { body, calls } = observed(source)
  const reading = readAll(body)
  source.write('part of a body')
  const boom = Object.assign(new Error('upstream reset'), { code: 'ECONNRESET' })
  source.destroy(boom)
  await t.rejects(reading, boom, 'the consumer gets the upstream error, not a short success')
  t.same(calls, [{ outcome: 'error', err: boom }])
  t.ok(body.destroyed)
})

t.test('error: a source closed without an error and without an end is a premature close, not an end', async (t) => {
  const source = new PassThrough()
  const { body, calls } = observed(source)
  const reading = readAll(body)
  source.write('half')
  source.destroy()
  await t.rejects(reading, { code: 'ERR_STREAM_PREMATURE_CLOSE' })
  t.equal(calls.length, 1)
  t.equal(calls[0]?.outcome, 'error')
  t.match(calls[0]?.err, { code: 'ERR_STREAM_PREMATURE_CLOSE', message: /closed before it ended/ })
})

t.test('cancel: the consumer drops the wrapper first; the source is destroyed; nothing more is reported', async (t) => {
  const source = new PassThrough()
  const { body, calls } = observed(source)
  source.write('some bytes')
  await tick()
  body.destroy()
  await tick()
  t.same(calls, [{ outcome: 'cancel', err: undefined }], '"cancel", not "error"')
  t.ok(source.destroyed, 'the upstream body is cut (its connection is freed)')

  const second = new PassThrough()
  const dropped = observed(second)
  const why = new Error('client went away')
  dropped.body.on('error', () => {})
  dropped.body.destroy(why)
  await tick()
  t.same(dropped.calls, [{ outcome: 'cancel', err: why }], 'a consumer destroying with an error is still a cancel, and says why')
  t.ok(second.destroyed)
  t.equal(second.listenerCount('error') > 0, true, 'the source keeps an error listener: a late error cannot crash the process')
  second.emit('error', new Error('late'))
  t.equal(dropped.calls.length, 1, 'a late source error after a cancel is not reported')
})

t.test('cancel through pipeline: a destination that fails cancels the body', async (t) => {
  const source = new PassThrough()
  const { body, calls } = observed(source)
  source.write('x'.repeat(1000))
  const failing = new Writable({ write (_chunk, _enc, cb) { cb(new Error('socket gone')) } })
  await t.rejects(pipeline(body, failing), /socket gone/)
  await tick()
  t.equal(calls.length, 1)
  t.equal(calls[0]?.outcome, 'cancel', 'our side failed, not the upstream')
  t.ok(source.destroyed)
})

t.test('backpressure: an unread wrapper pauses its source; reading resumes it, and nothing is lost', async (t) => {
  const chunk = Buffer.alloc(16 * 1024, 0x61)
  const source = new PassThrough({ highWaterMark: 16 * 1024 })
  const { body, calls } = observed(source)
  let written = 0
  let refused = false
  // Write until the source itself refuses: only possible once the wrapper stopped taking.
  for (let i = 0; i < 64 && !refused; i++) {
    refused = !source.write(chunk)
    written += chunk.length
    await tick()
  }
  t.ok(refused, 'the source filled up: the wrapper stopped pulling from it')
  t.ok(source.isPaused(), 'the source is paused')
  t.ok(body.readableLength <= 64 * 1024 + chunk.length, `the wrapper buffers about its high-water mark, not everything (${body.readableLength} bytes)`)
  t.ok(written > body.readableLength, 'bytes are waiting upstream, not in the wrapper')
  const reading = readAll(body)
  source.end()
  const got = await reading
  t.equal(got.length, written, 'every byte arrives once the consumer reads')
  t.ok(got.every((b) => b === 0x61))
  await tick()
  t.same(calls, [{ outcome: 'end', err: undefined }])
})

/** A 127.0.0.1 server whose handler the test scripts; counts connections. */
async function origin (t: Test, handler: http.RequestListener): Promise<{ url: string, connections: () => number, closed: Promise<void> }> {
  let connections = 0
  let markClosed: () => void = () => {}
  const closed = new Promise<void>((resolve) => { markClosed = resolve })
  const server = http.createServer(handler)
  server.on('connection', (socket: Socket) => {
    connections++
    socket.on('close', () => markClosed())
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => { server.closeAllConnections(); server.close() })
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, connections: () => connections, closed }
}

function upstream (t: Test, url: string): HttpUpstream {
  const up = new HttpUpstream({ url, name: 'origin-a', connectTimeoutMs: 2000, firstByteTimeoutMs: 5000, idleTimeoutMs: 5000, connections: 1, keepAliveTimeoutMs: 10_000 })
  t.teardown(() => up.close())
  return up
}

t.test('a real upstream body cut short (Content-Length not reached) is an "error", and the consumer fails', async (t) => {
  const o = await origin(t, (_req, res) => {
    res.writeHead(200, { 'content-length': '100000' })
    res.write(Buffer.alloc(1000))
    setImmediate(() => res.socket?.destroy())
  })
  const res = await upstream(t, o.url).request({ method: 'GET', path: '/seg.ts', headers: {} })
  const { body, calls } = observed(res.body)
  await t.rejects(readAll(body))
  await tick()
  t.equal(calls.length, 1)
  t.equal(calls[0]?.outcome, 'error', 'an upstream fault, not an end')
  t.ok(calls[0]?.err instanceof Error)
})

t.test('a real upstream body dropped by the consumer is a "cancel", and the origin sees the connection go', async (t) => {
  let sent = 0
  const o = await origin(t, (_req, res) => {
    res.writeHead(200, { 'content-length': String(64 * 1024 * 1024) })
    const more = (): void => {
      while (sent < 64 * 1024 * 1024) {
        sent += 64 * 1024
        if (!res.write(Buffer.alloc(64 * 1024))) {
          res.once('drain', more)
          return
        }
      }
    }
    more()
  })
  const res = await upstream(t, o.url).request({ method: 'GET', path: '/big.ts', headers: {} })
  const { body, calls } = observed(res.body)
  const first = await new Promise<Buffer>((resolve) => body.once('data', resolve))
  t.ok(first.length > 0)
  body.destroy()
  await o.closed
  t.same(calls, [{ outcome: 'cancel', err: undefined }])
  t.ok(sent < 64 * 1024 * 1024, 'the origin stopped sending before the whole body went out')
})

t.test('discardBody: a 5xx body nobody forwards is drained and the keep-alive connection is reused', async (t) => {
  const o = await origin(t, (req, res) => {
    const body = req.url === '/fail' ? 'x'.repeat(200_000) : 'ok'
    res.writeHead(req.url === '/fail' ? 503 : 200, { 'content-length': String(body.length) })
    res.end(body)
  })
  const up = upstream(t, o.url)
  const failed = await up.request({ method: 'GET', path: '/fail', headers: {} })
  t.equal(failed.status, 503)
  let done = 0
  const drained = new Promise<void>((resolve) => discardBody(failed.body, () => { done++; resolve() }))
  await drained
  const next = await up.request({ method: 'GET', path: '/ok', headers: {} })
  t.equal((await readAll(next.body)).toString(), 'ok')
  t.equal(o.connections(), 1, 'one connection served both: the discarded body left it reusable')
  await tick()
  t.equal(done, 1, 'onDone ran once (end and close both fired)')
})

t.test('discardBody: a body that fails while discarded calls onDone once and raises nothing', async (t) => {
  const source = new PassThrough()
  let done = 0
  discardBody(source, () => { done++ })
  source.write('abc')
  source.destroy(new Error('upstream reset mid-body'))
  await tick()
  t.equal(done, 1)
  const quiet = new PassThrough()
  discardBody(quiet)
  quiet.end('without an onDone')
  await once(quiet, 'end')
  t.ok(quiet.readableEnded, 'without onDone the body is still read to its end')
})
