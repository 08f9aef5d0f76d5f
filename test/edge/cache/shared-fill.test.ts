/**
 * SharedFill's cursor and its fan-out to clients (pipeFill) through real sockets: readers
 * joining a slow fill at different times all get the exact body, a late joiner's first byte
 * is not queued behind the others' catch-up, a failed fill aborts every reader, a reader
 * that stops reading holds up nobody and has at most one slice buffered in user space.
 */
import { randomBytes } from 'node:crypto'
import http, { type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import t, { type Test } from 'tap'
import { FIRST_SLICE_BYTES, FillCursor, SharedFill, SLICE_BYTES, pipeFill, type FillHead, setPacerMaxDeferMs, MAX_DEFER_MS, RELEASED_WINDOW_BYTES } from '../../../edge/cache/shared-fill.ts'

const HEAD: FillHead = {
  status: 200,
  headers: {},
  declaredBytes: undefined,
  shareable: true,
  storable: true,
  requestTimeMs: 0,
  responseTimeMs: 0,
  upstream: 'test',
}

/** What the server saw of one reader. */
interface ServerSide {
  readonly name: string
  readonly res: ServerResponse
  /** Body bytes handed to the socket so far. */
  bytes: number
  failed: boolean
}

/**
 * An HTTP server answering every request from `fill` with pipeFill (the reader's name is
 * the path). `onBytes` sees each write as it happens, in server order.
 */
async function fillServer (t: Test, fill: SharedFill, total: number, onBytes?: (reader: ServerSide, bytes: number) => void) {
  const readers = new Map<string, ServerSide>()
  const server = http.createServer((req: IncomingMessage, res: ServerResponse) => {
    const reader: ServerSide = { name: req.url ?? '', res, bytes: 0, failed: false }
    readers.set(reader.name, reader)
    res.writeHead(200, { 'content-length': String(total) })
    pipeFill(fill, res, 0, total - 1, {
      onBytes: (bytes) => {
        reader.bytes += bytes
        onBytes?.(reader, bytes)
      },
      onFail: (err) => {
        reader.failed = true
        res.destroy(err)
      },
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => {
    server.closeAllConnections()
    server.close(() => resolve())
  }))
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, readers }
}

/** What a client received. */
interface Received {
  readonly body: Buffer
  readonly complete: boolean
  readonly error: Error | undefined
}

function get (url: string, onFirstByte?: () => void): Promise<Received> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = []
    const req = http.get(url, { agent: false }, (res) => {
      res.on('data', (chunk: Buffer) => {
        if (chunks.length === 0) onFirstByte?.()
        chunks.push(chunk)
      })
      res.once('end', () => resolve({ body: Buffer.concat(chunks), complete: res.complete, error: undefined }))
      res.once('error', (error) => resolve({ body: Buffer.concat(chunks), complete: false, error }))
    })
    req.once('error', (error) => resolve({ body: Buffer.concat(chunks), complete: false, error }))
  })
}

/** Appends `body` to `fill` in `chunkBytes` pieces, one per `everyMs`, then completes it. */
async function feed (fill: SharedFill, body: Buffer, chunkBytes: number, everyMs: number, from = 0): Promise<void> {
  for (let at = from; at < body.length; at += chunkBytes) {
    fill.append(body.subarray(at, Math.min(body.length, at + chunkBytes)))
    await sleep(everyMs)
  }
  fill.complete()
}

t.test('FillCursor hands out views of at most maxBytes, across chunk boundaries', async (t) => {
  const fill = new SharedFill('k', 0)
  fill.setHead(HEAD)
  const body = randomBytes(1000)
  fill.append(body.subarray(0, 300))
  fill.append(body.subarray(300, 1000))
  const cursor = new FillCursor(fill, 100, 899)
  const parts: Buffer[] = []
  for (let part = cursor.next(150); part !== undefined; part = cursor.next(150)) {
    t.ok(part.length <= 150, `slice of ${part.length} bytes`)
    parts.push(part)
  }
  t.ok(cursor.done)
  t.ok(Buffer.concat(parts).equals(body.subarray(100, 900)))
  t.equal(parts[1]!.buffer, body.buffer, 'views of the appended chunks, not copies')
})

t.test('readers joining a slow fill at different times each get the identical full body', async (t) => {
  const total = 3 * 1024 * 1024 + 4321
  const body = randomBytes(total)
  const fill = new SharedFill('staggered', 0)
  const { url } = await fillServer(t, fill, total)
  fill.setHead(HEAD)
  const fed = feed(fill, body, 48 * 1024, 3)
  const clients: Array<Promise<Received>> = []
  // Joiners before any byte, during the fill at several depths, and a burst at once.
  for (let i = 0; i < 40; i++) {
    clients.push(get(`${url}/r${i}`))
    if (i % 8 === 7) await sleep(25)
  }
  await fed
  clients.push(get(`${url}/after-complete`))
  const results = await Promise.all(clients)
  for (const [i, r] of results.entries()) {
    t.ok(r.complete && r.error === undefined && r.body.equals(body), `reader ${i}: ${r.body.length} of ${total} bytes, complete ${String(r.complete)}`)
  }
})

t.test("a late joiner's first byte is written while the others' catch-up is still in progress", async (t) => {
  // 8 readers join a fill that already holds 8 MiB: 64 MiB of catch-up between them. Then
  // one more client connects. Its first byte must not wait until the others are caught up:
  // the pacer writes catch-up a slice at a time, and the event loop accepts in between.
  const total = 16 * 1024 * 1024
  const body = randomBytes(total)
  const have = 8 * 1024 * 1024
  const fill = new SharedFill('late', 0)
  const order: string[] = []
  const early = new Set<string>()
  const { url, readers } = await fillServer(t, fill, total, (reader) => {
    if (reader.name === '/late' && !order.includes('late-first-byte')) order.push('late-first-byte')
    if (early.has(reader.name) && reader.bytes === have) order.push(`${reader.name} caught up`)
  })
  fill.setHead(HEAD)
  for (let at = 0; at < have; at += 64 * 1024) fill.append(body.subarray(at, at + 64 * 1024))
  const clients: Array<Promise<Received>> = []
  for (let i = 0; i < 8; i++) {
    early.add(`/early${i}`)
    clients.push(get(`${url}/early${i}`))
  }
  // The late client connects once every early reader has its first slice (their catch-up has begun).
  while ([...early].some((name) => (readers.get(name)?.bytes ?? 0) === 0)) await sleep(1)
  const late = get(`${url}/late`)
  while (!order.includes('late-first-byte')) await sleep(1)
  await feed(fill, body, 256 * 1024, 1, have)
  const results = await Promise.all([...clients, late])
  t.equal(order[0], 'late-first-byte', `server order: ${order.slice(0, 3).join(', ')}`)
  t.equal(order.filter((o) => o.endsWith('caught up')).length, 8, 'every early reader caught up afterwards')
  for (const [i, r] of results.entries()) t.ok(r.complete && r.body.equals(body), `reader ${i} got the whole body`)
})

t.test('a failed fill aborts every reader at once, wherever it is (waiting for bytes, queued, backpressured)', async (t) => {
  const total = 4 * 1024 * 1024
  const body = randomBytes(total)
  const fill = new SharedFill('fails', 0)
  const { url, readers } = await fillServer(t, fill, total)
  fill.setHead(HEAD)
  fill.append(body.subarray(0, 2 * 1024 * 1024))
  const clients = Array.from({ length: 6 }, (_, i) => get(`${url}/r${i}`))
  // One client that reads nothing: its response sits in backpressure when the fill fails.
  let resumeStalled = (): void => {}
  const stalled = new Promise<Received>((resolve) => {
    const chunks: Buffer[] = []
    const req = http.get(`${url}/stalled`, { agent: false }, (res) => {
      res.pause()
      resumeStalled = () => res.on('data', (chunk: Buffer) => chunks.push(chunk)).resume()
      res.once('end', () => resolve({ body: Buffer.concat(chunks), complete: res.complete, error: undefined }))
      res.once('error', (error) => resolve({ body: Buffer.concat(chunks), complete: false, error }))
    })
    req.once('error', (error) => resolve({ body: Buffer.concat(chunks), complete: false, error }))
  })
  while (readers.size < 7) await sleep(1)
  await sleep(20)
  fill.fail(new Error('upstream went away'))
  for (const [name, r] of readers) t.ok(r.failed && r.res.destroyed, `${name}: response destroyed when the fill failed (${r.bytes} bytes written)`)
  const results = await Promise.all(clients)
  for (const [i, r] of results.entries()) t.ok(!r.complete && r.body.length < total, `reader ${i} sees an aborted response after ${r.body.length} bytes`)
  // TCP delivers the close after the bytes already sent: the stalled client sees it once it reads them.
  resumeStalled()
  const s = await stalled
  t.ok(!s.complete && s.body.length < total, `the stalled reader sees an aborted response after ${s.body.length} bytes`)
})

t.test('a reader that stops reading holds up nobody and has at most one slice buffered in user space', async (t) => {
  const total = 24 * 1024 * 1024
  const body = randomBytes(total)
  const fill = new SharedFill('slow', 0)
  let maxBuffered = 0
  const { url, readers } = await fillServer(t, fill, total, (reader) => {
    if (reader.name === '/slow') maxBuffered = Math.max(maxBuffered, reader.res.writableLength)
  })
  fill.setHead(HEAD)
  let slowGot = 0
  const slowReq = http.get(`${url}/slow`, { agent: false }, (res) => {
    res.on('data', (chunk: Buffer) => {
      slowGot += chunk.length
      if (slowGot >= 1024 * 1024) res.pause()
    })
  })
  t.teardown(() => slowReq.destroy())
  const fast = Array.from({ length: 4 }, (_, i) => get(`${url}/fast${i}`))
  await feed(fill, body, 256 * 1024, 1)
  const results = await Promise.all(fast)
  for (const [i, r] of results.entries()) t.ok(r.complete && r.body.equals(body), `fast reader ${i} got the whole body`)
  const slow = readers.get('/slow')!
  t.ok(slow.bytes < total, `the stalled reader was written ${slow.bytes} of ${total} bytes`)
  t.ok(maxBuffered <= Math.max(FIRST_SLICE_BYTES, SLICE_BYTES) + 1024, `user-space buffer of the stalled reader peaked at ${maxBuffered} bytes`)
})

/** A sink that takes everything at once (a reader whose socket never pushes back). */
function nullSink (): FillSinkLike {
  return { destroyed: false, write: () => true, end: () => undefined, once: () => undefined }
}
type FillSinkLike = Parameters<typeof pipeFill>[1]

t.test("a plain miss's reader streams its bulk while other plain misses start every turn", async (t) => {
  // Steady miss traffic: every event-loop turn a new fill gets its first (only) reader. None
  // of them is a herd, so the pacer must not hold back bulk for them: the reader under test,
  // itself the one reader of its fill, makes progress turn after turn. (With deferral on
  // every join it waited MAX_DEFER_MS at a time: hundreds of turns without a byte.)
  const total = 8 * 1024 * 1024
  const body = randomBytes(total)
  const fill = new SharedFill('plain', 0)
  fill.attach()
  let turns = 0
  let lastProgressTurn = -1
  let maxGapTurns = 0
  const { url } = await fillServer(t, fill, total, () => {
    if (lastProgressTurn >= 0) maxGapTurns = Math.max(maxGapTurns, turns - lastProgressTurn)
    lastProgressTurn = turns
  })
  fill.setHead(HEAD)
  for (let at = 0; at < total; at += 256 * 1024) fill.append(body.subarray(at, at + 256 * 1024))
  let running = true
  const others: SharedFill[] = []
  const startMiss = (): void => {
    if (!running) return
    turns++
    const other = new SharedFill(`other-${turns}`, 0)
    other.setHead(HEAD)
    other.append(body.subarray(0, 1024))
    other.attach() // its one reader, as CacheProxy registers it
    pipeFill(other, nullSink(), 0, 4095, { onBytes: () => {}, onFail: () => {} })
    others.push(other)
    setImmediate(startMiss)
  }
  setImmediate(startMiss)
  t.teardown(() => {
    running = false
    for (const other of others) other.fail(new Error('test over'))
  })
  while (turns < 20) await sleep(1)
  const received = await get(`${url}/plain`)
  fill.complete()
  running = false
  t.ok(received.complete && received.body.equals(body), 'the reader got the whole body')
  t.ok(turns > 50, `other misses kept starting meanwhile (${turns} turns)`)
  t.ok(maxGapTurns < 50, `longest run of turns without a byte for the reader: ${maxGapTurns}`)
})

t.test('the pacer\'s benchmarking knob takes whole ms from 0 to 1000 and refuses anything else by name', async (t) => {
  t.teardown(() => setPacerMaxDeferMs(MAX_DEFER_MS))
  for (const bad of [-1, 1001, 2.5, Number.NaN]) {
    t.throws(() => setPacerMaxDeferMs(bad), { name: 'TypeError', message: /pacer's deferral .* got/ }, String(bad))
  }
  t.doesNotThrow(() => setPacerMaxDeferMs(0))
  t.doesNotThrow(() => setPacerMaxDeferMs(1000))
})

t.test('a released fill drops what every reader has passed, waits for readers that attached without a cursor, and has no whole body', async (t) => {
  const fill = new SharedFill('k', 0)
  fill.setHead(HEAD)
  fill.attach()
  fill.attach()
  const a = new FillCursor(fill, 0, Number.MAX_SAFE_INTEGER)
  for (let i = 0; i < 4; i++) fill.append(Buffer.alloc(100, i))
  fill.release()
  t.equal(fill.heldBytes, 400, 'the second reader has no cursor yet: it may start at byte 0, so nothing goes')
  const b = new FillCursor(fill, 0, Number.MAX_SAFE_INTEGER)
  t.equal(fill.heldBytes, 400, 'both at byte 0')
  t.equal(a.next(250)?.length, 100)
  t.equal(a.next(250)?.length, 100)
  t.equal(fill.heldBytes, 400, 'b has not moved: kept for it')
  t.same(b.next(150), Buffer.alloc(100, 0))
  t.same(b.next(50), Buffer.alloc(50, 1))
  t.equal(fill.heldBytes, 300, 'the first chunk is behind both readers: dropped')
  t.same(b.next(50), Buffer.alloc(50, 1), 'the rest of a chunk a reader is inside of is still there')
  t.equal(fill.heldBytes, 200)
  b.close()
  t.equal(fill.heldBytes, 200, 'a is at 200: the chunks after it stay')
  t.same(a.next(1000), Buffer.alloc(100, 2))
  t.same(a.next(1000), Buffer.alloc(100, 3))
  t.equal(fill.heldBytes, 0, 'every reader past everything: nothing held')
  fill.append(Buffer.alloc(10, 9))
  t.same(a.next(1000), Buffer.alloc(10, 9), 'a reader goes on past dropped chunks')
  fill.complete()
  t.throws(() => fill.body(), { code: 'CDN_ERR_INTERNAL' }, 'the whole body is gone')
  t.equal(fill.length, 410)
})

t.test('a released fill past its window says full until its readers catch up to half of it', async (t) => {
  const fill = new SharedFill('k', 0)
  fill.setHead(HEAD)
  fill.attach()
  const reader = new FillCursor(fill, 0, Number.MAX_SAFE_INTEGER)
  fill.release()
  const chunk = Buffer.alloc(1024 * 1024)
  while (!fill.full) fill.append(chunk)
  t.ok(fill.heldBytes > RELEASED_WINDOW_BYTES, 'full past the window')
  let resumed = 0
  fill.onRoom(() => { resumed++ })
  while (fill.heldBytes > RELEASED_WINDOW_BYTES / 2 + chunk.length) reader.next()
  t.equal(resumed, 0, 'not yet at half')
  reader.next()
  reader.next()
  t.equal(resumed, 1, 'resumed once at half')
  t.notOk(fill.full)
  const kept = new SharedFill('kept', 0)
  kept.setHead(HEAD)
  for (let i = 0; i < 20; i++) kept.append(chunk)
  t.notOk(kept.full, 'a fill that keeps its body is never full')
  kept.complete()
  t.equal(kept.body().length, 20 * chunk.length)
})

t.test('a released fill drops bytes once each reader that attached has a cursor or detached, and a second detach of one reader stands in for nobody', async (t) => {
  const fill = new SharedFill('k', 0)
  fill.setHead(HEAD)
  fill.attach()
  const a = new FillCursor(fill, 0, Number.MAX_SAFE_INTEGER)
  fill.attach()
  fill.detach() // b: its answer has no body (a HEAD, a 304)
  fill.detach() // b told twice: must not count for c below
  fill.attach() // c: no cursor yet
  for (let i = 0; i < 4; i++) fill.append(Buffer.alloc(100, i))
  fill.release()
  while (a.next(1000) !== undefined);
  t.equal(a.position, 400, 'a read everything')
  t.equal(fill.heldBytes, 400, 'c may still start at byte 0: nothing goes')
  fill.detach() // c: reads nothing after all
  t.equal(fill.heldBytes, 0, 'every reader has a cursor past it or detached: all of it goes')
  fill.detach()
  fill.append(Buffer.alloc(10, 9))
  t.same(a.next(1000), Buffer.alloc(10, 9), 'a goes on')
  t.equal(fill.heldBytes, 0)
  t.equal(fill.readers, 3, 'readers still counts every reader that attached')
})

t.test('a detach before the release: the release drops what the cursors passed at once', async (t) => {
  const fill = new SharedFill('k', 0)
  fill.setHead(HEAD)
  fill.attach()
  fill.attach()
  const a = new FillCursor(fill, 0, Number.MAX_SAFE_INTEGER)
  for (let i = 0; i < 3; i++) fill.append(Buffer.alloc(100, i))
  t.equal(a.next(150)?.length, 100)
  t.equal(a.next(50)?.length, 50)
  fill.detach()
  t.equal(fill.heldBytes, 300, 'not released: the fill keeps its body')
  fill.release()
  t.equal(fill.heldBytes, 200, 'released: the chunk behind the only cursor goes')
})

t.test('settledOrReleased: pending while the body grows, resolved by completion, failure or release', async (t) => {
  const outcome = async (fill: SharedFill): Promise<string> => await Promise.race([fill.settledOrReleased().then(() => 'resolved'), sleep(30).then(() => 'pending')])
  const growing = new SharedFill('growing', 0)
  growing.setHead(HEAD)
  const waiting = growing.settledOrReleased()
  growing.append(Buffer.alloc(100))
  t.equal(await outcome(growing), 'pending', 'a chunk is no end')
  growing.complete()
  await waiting
  t.equal(await outcome(growing), 'resolved', 'complete')
  const released = new SharedFill('released', 0)
  released.setHead(HEAD)
  released.attach()
  released.append(Buffer.alloc(100))
  const beforeRelease = released.settledOrReleased()
  released.release()
  await beforeRelease
  t.equal(released.state, 'streaming', 'released while still streaming')
  t.equal(await outcome(released), 'resolved', 'and at once after')
  const failed = new SharedFill('failed', 0)
  const beforeHead = failed.settledOrReleased()
  failed.fail(new Error('upstream reset'))
  await beforeHead
  t.pass('failed before its head')
})
