/**
 * ObjectReadStream over real object files, written by the DiskStore itself (then read back,
 * damaged or truncated here): byte ranges, chunking, the checksum rule (a damaged body never
 * ends cleanly, a partial range is served only after the whole body matched), trusted files,
 * failures to open, aborts mid-read (the file reference is given back exactly once) and
 * backpressure.
 */
import { once } from 'node:events'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { mkdtemp, open, rm, stat, truncate } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pipeline } from 'node:stream'
import t from 'tap'
import { DiskStore } from '../../../edge/cache/disk-store.ts'
import { hashKey, objectRelativePath, readObjectHead } from '../../../edge/cache/object-file.ts'
import { ObjectReadStream, READ_CHUNK_BYTES, type ObjectReadStreamOptions } from '../../../edge/cache/object-read-stream.ts'
import { OpenFiles, type OpenFile } from '../../../edge/cache/open-files.ts'
import { CdnError, isCdnError } from '../../../lib/errors.ts'
import { makeObject, patternBody, type Tap } from './store.contract.ts'
import { flipByte } from '../../helpers/flip-byte.ts'

const KEY = 'example.com/vod/title/720p/seg-7.ts'

interface StoredFile {
  readonly path: string
  readonly body: Buffer
  readonly headBytes: number
  readonly bodyCrc32: number
}

/** Puts `body` through a real DiskStore and returns where its file is and what its head says. */
async function storedFile (t: Tap, body: Buffer): Promise<StoredFile> {
  const dir = await mkdtemp(join(tmpdir(), 'streamedge-ors-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const store = new DiskStore({ dir, maxBytes: 1024 * 1024 * 1024 })
  await store.open()
  await store.put(makeObject(KEY, body))
  await store.close()
  const path = join(dir, 'objects', objectRelativePath(hashKey(KEY)))
  const fh = await open(path, 'r')
  try {
    const head = await readObjectHead(fh, (await stat(path)).size)
    if (head.status !== 'ok') throw new Error(`the store wrote an invalid file: ${head.reason}`)
    t.equal(head.header.bodyBytes, body.length, 'the file holds the whole body')
    return { path, body, headBytes: head.headBytes, bodyCrc32: head.header.bodyCrc32 }
  } finally {
    await fh.close()
  }
}

interface Probe {
  readonly stream: ObjectReadStream
  readonly events: { released: number, verified: number, corrupt: string[], opened: number }
}

/** An ObjectReadStream over `file` through a real OpenFiles cache, counting what it reports. */
function readStream (t: Tap, file: StoredFile, overrides: Partial<ObjectReadStreamOptions> = {}): Probe {
  const files = new OpenFiles({ maxOpen: 4 })
  t.teardown(() => files.close())
  const events = { released: 0, verified: 0, corrupt: [] as string[], opened: 0 }
  const stream = new ObjectReadStream({
    path: file.path,
    open: () => { events.opened++; return files.acquire('f', file.path) },
    release: (f: OpenFile) => { events.released++; files.release(f) },
    bodyOffset: file.headBytes,
    bodyBytes: file.body.length,
    bodyCrc32: file.bodyCrc32,
    start: 0,
    endInclusive: file.body.length - 1,
    trusted: false,
    onVerified: () => { events.verified++ },
    onCorrupt: (reason) => { events.corrupt.push(reason) },
    ...overrides,
  })
  return { stream, events }
}

interface Drained {
  readonly chunks: Buffer[]
  readonly data: Buffer
  readonly ended: boolean
  readonly error: unknown
}

async function drain (stream: ObjectReadStream): Promise<Drained> {
  const chunks: Buffer[] = []
  let ended = false
  stream.on('end', () => { ended = true })
  try {
    for await (const chunk of stream) chunks.push(chunk as Buffer)
    return { chunks, data: Buffer.concat(chunks), ended, error: undefined }
  } catch (error) {
    return { chunks, data: Buffer.concat(chunks), ended, error }
  }
}

/** Waits (bounded, not timed) until `check` holds: a release may come after 'close' when a read was in flight. */
async function until (check: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 2000 && !check(); i++) await new Promise((resolve) => setTimeout(resolve, 1))
  if (!check()) throw new Error(`timed out waiting for ${what}`)
}

function isCorrupt (err: unknown, path: string, reason: string): boolean {
  return isCdnError(err, 'CDN_ERR_STORE_CORRUPT') && err.message.includes(path) && err.message.includes(reason)
}

t.test('a whole body streams in chunks of chunkBytes, is verified once and released once', async (t) => {
  const file = await storedFile(t, patternBody(10 * 4096 + 17, 1))
  const { stream, events } = readStream(t, file, { chunkBytes: 4096 })
  t.equal(stream.readableHighWaterMark, 4096, 'one chunk is buffered')
  const got = await drain(stream)
  t.equal(got.error, undefined)
  t.ok(got.ended, 'the stream ended cleanly')
  t.ok(got.data.equals(file.body), 'every body byte, in order')
  t.same(got.chunks.map((c) => c.length), [...Array(10).fill(4096), 17], 'chunks of chunkBytes, then the rest')
  t.same(events, { released: 1, verified: 1, corrupt: [], opened: 1 })
})

t.test('without chunkBytes, reads are READ_CHUNK_BYTES', async (t) => {
  const file = await storedFile(t, patternBody(2 * READ_CHUNK_BYTES + 1000, 2))
  const { stream, events } = readStream(t, file)
  const got = await drain(stream)
  t.ok(got.data.equals(file.body))
  t.same(got.chunks.map((c) => c.length), [READ_CHUNK_BYTES, READ_CHUNK_BYTES, 1000])
  t.equal(events.verified, 1)
})

t.test('a partial range is served only after the whole body matched its checksum', async (t) => {
  const file = await storedFile(t, patternBody(50_000, 3))
  const { stream, events } = readStream(t, file, { start: 1000, endInclusive: 20_999, chunkBytes: 4096 })
  let verifiedBeforeFirstByte: boolean | undefined
  stream.once('data', () => { verifiedBeforeFirstByte = events.verified === 1 })
  const got = await drain(stream)
  t.equal(got.error, undefined)
  t.ok(got.data.equals(file.body.subarray(1000, 21_000)), 'exactly bytes 1000..20999')
  t.equal(verifiedBeforeFirstByte, true, 'onVerified came before the first byte')
  t.same(events, { released: 1, verified: 1, corrupt: [], opened: 1 })
})

t.test('one-byte ranges at either end of the body', async (t) => {
  const file = await storedFile(t, patternBody(9000, 4))
  for (const at of [0, 8999]) {
    const { stream, events } = readStream(t, file, { start: at, endInclusive: at, trusted: true })
    const got = await drain(stream)
    t.ok(got.data.equals(file.body.subarray(at, at + 1)), `byte ${at}`)
    t.equal(events.released, 1)
  }
})

t.test('a damaged whole body fails with CDN_ERR_STORE_CORRUPT and withholds its last chunk', async (t) => {
  for (const where of ['first chunk', 'last chunk']) {
    t.test(where, async (t) => {
      const file = await storedFile(t, patternBody(10 * 4096 + 500, 5))
      await flipByte(file.path, file.headBytes + (where === 'first chunk' ? 10 : file.body.length - 3))
      const { stream, events } = readStream(t, file, { chunkBytes: 4096 })
      const got = await drain(stream)
      t.ok(isCorrupt(got.error, file.path, 'body checksum mismatch'), String(got.error))
      t.notOk(got.ended, 'no clean end')
      t.equal(got.data.length, 10 * 4096, 'everything but the last chunk went out')
      t.same(events.corrupt, ['body checksum mismatch'], 'the owner is told once, with the reason')
      t.equal(events.verified, 0)
      await until(() => events.released === 1, 'release')
      t.equal(events.released, 1)
    })
  }
})

t.test('a damaged body fails a partial range before its first byte', async (t) => {
  const file = await storedFile(t, patternBody(30_000, 6))
  // Damage outside the requested range: the range alone would look fine.
  await flipByte(file.path, file.headBytes + 29_000)
  const { stream, events } = readStream(t, file, { start: 0, endInclusive: 999 })
  const got = await drain(stream)
  t.ok(isCorrupt(got.error, file.path, 'body checksum mismatch'), String(got.error))
  t.equal(got.data.length, 0, 'not one byte was served')
  t.same(events.corrupt, ['body checksum mismatch'])
  t.equal(events.verified, 0)
  await until(() => events.released === 1, 'release')
})

t.test('a truncated file fails with "file ended before its body did", whole or partial, trusted or not', async (t) => {
  const body = patternBody(20_000, 7)
  const cases: Array<{ name: string, opts: Partial<ObjectReadStreamOptions>, maxBytes: number }> = [
    { name: 'whole body, untrusted', opts: {}, maxBytes: 12_000 },
    { name: 'partial range, untrusted', opts: { start: 100, endInclusive: 199 }, maxBytes: 0 },
    { name: 'whole body, trusted', opts: { trusted: true }, maxBytes: 12_000 },
    { name: 'range past the cut, trusted', opts: { trusted: true, start: 15_000, endInclusive: 19_999 }, maxBytes: 0 },
  ]
  for (const c of cases) {
    t.test(c.name, async (t) => {
      const file = await storedFile(t, body)
      // A crash or a disk full cut the file 12000 bytes into the body.
      await truncate(file.path, file.headBytes + 12_000)
      const { stream, events } = readStream(t, file, { chunkBytes: 5000, ...c.opts })
      const got = await drain(stream)
      t.ok(isCorrupt(got.error, file.path, 'file ended before its body did'), String(got.error))
      t.notOk(got.ended)
      t.ok(got.data.length <= c.maxBytes, `${got.data.length} bytes went out before the failure`)
      t.ok(got.data.equals(body.subarray(c.opts.start ?? 0, (c.opts.start ?? 0) + got.data.length)), 'and those were right')
      t.same(events.corrupt, ['file ended before its body did'])
      t.equal(events.verified, 0)
      await until(() => events.released === 1, 'release')
    })
  }
})

t.test('a trusted file is streamed without checks (verified once per process by its owner)', async (t) => {
  const file = await storedFile(t, patternBody(16_000, 8))
  await flipByte(file.path, file.headBytes + 15_999)
  const { stream, events } = readStream(t, file, { trusted: true, chunkBytes: 4000 })
  const got = await drain(stream)
  t.equal(got.error, undefined)
  t.ok(got.ended)
  t.equal(got.data.length, 16_000)
  t.equal(got.data[15_999], (file.body[15_999] ?? 0) ^ 0xff, 'the bytes on disk, unchecked')
  t.same(events, { released: 1, verified: 0, corrupt: [], opened: 1 })
})

t.test('a failed open fails the stream with its error and releases nothing', async (t) => {
  const file = await storedFile(t, patternBody(1000, 9))
  const replaced = new CdnError('CDN_ERR_STORE_CORRUPT', `Object file ${file.path} was replaced or deleted after lookup`)
  const throwing = readStream(t, file, { open: () => { throw replaced } })
  const rejecting = readStream(t, file, { open: () => Promise.reject(replaced) })
  const missing = readStream(t, { ...file, path: `${file.path}.gone` })
  for (const [name, probe] of [['throws', throwing], ['rejects', rejecting]] as const) {
    const got = await drain(probe.stream)
    t.equal(got.error, replaced, `open ${name}: the stream fails with the open's error`)
    t.equal(got.data.length, 0)
    t.same(probe.events.corrupt, [], 'not reported as damage by the stream')
    t.equal(probe.events.released, 0)
  }
  const gone = await drain(missing.stream)
  t.equal((gone.error as NodeJS.ErrnoException).code, 'ENOENT', 'a file deleted before open: ENOENT')
  t.equal(missing.events.released, 0)
})

t.test('a consumer that stops mid-read: the file is released once, nothing is reported', async (t) => {
  const file = await storedFile(t, patternBody(64 * 4096, 10))
  for (const trusted of [false, true]) {
    t.test(trusted ? 'trusted' : 'untrusted', async (t) => {
      const { stream, events } = readStream(t, file, { chunkBytes: 4096, trusted })
      let bytes = 0
      for await (const chunk of stream) {
        bytes += (chunk as Buffer).length
        if (bytes >= 3 * 4096) break
      }
      t.ok(stream.destroyed)
      await until(() => events.released === 1, 'release')
      await new Promise((resolve) => setTimeout(resolve, 20))
      t.equal(events.released, 1, 'released exactly once')
      t.same(events.corrupt, [], 'an abort is not damage')
      t.equal(events.verified, 0, 'a partial read verifies nothing')
    })
  }
})

t.test('destroyed while still opening and verifying: the reference taken is still given back', async (t) => {
  const file = await storedFile(t, patternBody(200_000, 11))
  const files = new OpenFiles({ maxOpen: 4 })
  t.teardown(() => files.close())
  let resolveOpen: (() => void) | undefined
  const gate = new Promise<void>((resolve) => { resolveOpen = resolve })
  const { stream, events } = readStream(t, file, {
    start: 10,
    endInclusive: 100,
    open: async () => { await gate; return files.acquire('late', file.path) },
    release: (f) => { events.released++; files.release(f) },
  })
  stream.destroy()
  resolveOpen!()
  await once(stream, 'close')
  await until(() => events.released === 1, 'release')
  t.equal(events.released, 1)
  t.same(events.corrupt, [])
})

t.test('a client that disconnects mid-response ends the pipeline and releases the file', async (t) => {
  const file = await storedFile(t, patternBody(256 * 4096, 12))
  const probes: Probe[] = []
  let pipelineError: Error | null | undefined
  const finished = new Promise<void>((resolve) => {
    const server = http.createServer((req, res) => {
      const probe = readStream(t, file, { chunkBytes: 4096 })
      probes.push(probe)
      res.writeHead(200, { 'content-length': file.body.length })
      pipeline(probe.stream, res, (err) => { pipelineError = err; resolve() })
    })
    t.teardown(() => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()) }))
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo
      const req = http.get({ host: '127.0.0.1', port, agent: false }, (res) => {
        res.once('data', () => { req.destroy() })
      })
      req.on('error', () => {})
    })
  })
  await finished
  const probe = probes[0]!
  t.ok(pipelineError instanceof Error, 'the pipeline failed (premature close), it did not finish')
  t.ok(probe.stream.destroyed)
  await until(() => probe.events.released === 1, 'release')
  t.equal(probe.events.released, 1)
  t.same(probe.events.corrupt, [])
  t.equal(probe.events.verified, 0)
})

t.test('backpressure: a reader that does not read holds about one chunk, not the file', async (t) => {
  const file = await storedFile(t, patternBody(128 * 4096, 13))
  const { stream, events } = readStream(t, file, { chunkBytes: 4096 })
  await once(stream, 'readable')
  // Give any runaway read loop ample room to run ahead (a settle, not a timing assertion).
  await new Promise((resolve) => setTimeout(resolve, 50))
  t.ok(stream.readableLength <= 2 * 4096, `${stream.readableLength} bytes buffered`)
  const chunks: Buffer[] = []
  stream.on('data', (c: Buffer) => chunks.push(c))
  await once(stream, 'end')
  t.ok(Buffer.concat(chunks).equals(file.body), 'and then everything arrives')
  t.equal(events.verified, 1)
})
