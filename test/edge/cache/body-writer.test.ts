/**
 * Disk hits sent through pooled read buffers (StreamedObject.writeTo, body-writer.ts),
 * over real sockets on 127.0.0.1: every client gets exact bytes even when a tiny pool
 * is shared by many readers and one client stops reading mid-body (its socket write
 * then holds a pooled buffer for a long time), ranges are exact, and a client that goes
 * away mid-body ends the write with an error and gives its buffer back.
 */
import { once } from 'node:events'
import { mkdtemp, open, rm } from 'node:fs/promises'
import { request, createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Writable } from 'node:stream'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { DiskStore } from '../../../edge/cache/disk-store.ts'
import { hashKey, objectRelativePath } from '../../../edge/cache/object-file.ts'
import type { StreamedObject } from '../../../edge/cache/types.ts'
import { makeObject, patternBody, readBody, type Tap } from './store.contract.ts'

const CHUNK_BYTES = 64 * 1024

interface Served { err: Error | undefined, bytes: number }

interface Setup {
  readonly dir: string
  readonly store: DiskStore
  readonly url: string
  /** Outcomes of finished writeTo calls, in order. */
  readonly served: Served[]
  /** The server's response objects by request path. */
  readonly responses: Map<string, ServerResponse>
}

/** A store with a pool of four 64 KiB buffers, and a server answering `/<key>?range=a-b` through writeTo. */
async function setup (t: Tap): Promise<Setup> {
  const dir = await mkdtemp(join(tmpdir(), 'streamedge-body-writer-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const store = new DiskStore({ dir, maxBytes: 1024 ** 3, readWholeMaxBytes: 0, readChunkBytes: CHUNK_BYTES, readBufferPoolBytes: 4 * CHUNK_BYTES })
  await store.open()
  await store.indexReady
  t.teardown(() => store.close())
  const served: Served[] = []
  const responses = new Map<string, ServerResponse>()
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x')
    responses.set(url.pathname, res)
    void store.get(url.pathname.slice(1)).then((found) => {
      if (found === undefined || found.body !== null) {
        res.writeHead(404).end()
        return
      }
      const [start, end] = (url.searchParams.get('range') ?? `0-${found.meta.bodyBytes - 1}`).split('-').map(Number) as [number, number]
      res.writeHead(200, { 'content-length': String(end - start + 1) })
      found.writeTo(res, start, end, (err, bytes) => {
        served.push({ err, bytes })
        if (err !== undefined && !res.destroyed) res.destroy(err)
      })
    })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()) }))
  return { dir, store, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, served, responses }
}

/** Starts a GET and resolves with the response once its head arrived. */
function get (url: string): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent: false }, resolve)
    req.once('error', reject)
    req.end()
  })
}

async function bodyOf (res: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const chunk of res) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks)
}

/** Puts the object and reads it once, so the file is verified and later hits take the pooled path. */
async function putVerified (store: DiskStore, key: string, body: Buffer): Promise<void> {
  await store.put(makeObject(key, body))
  const found = await store.get(key)
  if (found === undefined) throw new Error(`${key} missing`)
  if (!(await readBody(found)).equals(body)) throw new Error(`${key} read back wrong`)
}

async function until (what: string, test: () => boolean): Promise<void> {
  for (let i = 0; i < 1000 && !test(); i++) await new Promise((resolve) => setTimeout(resolve, 5))
  if (!test()) throw new Error(`timed out waiting for ${what}`)
}

/** Waits until the response to `path` has bytes the kernel would not take, and still has 100 ms later. */
async function stalled (responses: Map<string, ServerResponse>, path: string): Promise<void> {
  const pending = (): boolean => (responses.get(path)?.writableLength ?? 0) > 0
  for (let i = 0; i < 50; i++) {
    await until(`a pending write to ${path}`, pending)
    await new Promise((resolve) => setTimeout(resolve, 100))
    if (pending()) return
  }
  throw new Error(`${path} never stalled`)
}

t.test('many readers share a tiny pool while one client stalls: every body is exact', async (t) => {
  const { store, url, served, responses } = await setup(t)
  // Large enough that the stalled client's kernel buffers fill and a socket write stays pending.
  const slowBody = patternBody(48 * 1024 * 1024, 99)
  await putVerified(store, 'slow', slowBody)
  const bodies = Array.from({ length: 12 }, (_, i) => patternBody(300_000 + i * 1000, i + 1))
  for (const [i, body] of bodies.entries()) await putVerified(store, `k${i}`, body)

  const slow = await get(`${url}/slow`)
  slow.pause()
  await stalled(responses, '/slow')
  t.equal(served.length, 0)
  const got = await Promise.all(Array.from({ length: 36 }, async (_, n) => {
    const i = n % bodies.length
    return { i, body: await bodyOf(await get(`${url}/k${i}`)) }
  }))
  const wrong = got.filter(({ i, body }) => !body.equals(bodies[i]!)).map(({ i }) => i)
  t.strictSame(wrong, [], '36 concurrent responses through 4 pooled buffers, all exact')
  t.equal(store.readBuffers.lentBytes, CHUNK_BYTES, 'the stalled response still holds one buffer (its write is pending)')
  t.equal(store.readBuffers.sizeBytes, 4 * CHUNK_BYTES, 'the pool stayed within its bound')

  slow.resume()
  t.ok((await bodyOf(slow)).equals(slowBody), 'the stalled client, resumed, gets exact bytes: its buffer was not reused under it')
  await until('every write to finish', () => served.length === 37)
  t.ok(served.every((s) => s.err === undefined), 'no write failed')
  t.equal(served.reduce((sum, s) => sum + s.bytes, 0), slowBody.length + got.reduce((sum, g) => sum + g.body.length, 0), 'bytes reported')
  t.equal(store.readBuffers.lentBytes, 0, 'every buffer given back')
})

t.test('ranges are exact at chunk boundaries and inside one chunk', async (t) => {
  const { store, url } = await setup(t)
  const body = patternBody(5 * CHUNK_BYTES + 123, 7)
  await putVerified(store, 'r', body)
  const ranges: Array<[number, number]> = [[0, 0], [CHUNK_BYTES - 1, CHUNK_BYTES], [10, 20], [CHUNK_BYTES, 3 * CHUNK_BYTES - 1], [body.length - 5, body.length - 1], [0, body.length - 1]]
  for (const [start, end] of ranges) {
    const got = await bodyOf(await get(`${url}/r?range=${start}-${end}`))
    t.ok(got.equals(body.subarray(start, end + 1)), `${start}-${end}`)
  }
  const found = await store.get('r') as StreamedObject
  t.throws(() => found.writeTo(null as never, 5, 4, () => {}), RangeError)
  t.throws(() => found.writeTo(null as never, 0, body.length, () => {}), RangeError)
})

t.test('a client that goes away mid-body ends the write with an error and frees its buffer', async (t) => {
  const { store, url, served, responses } = await setup(t)
  const body = patternBody(48 * 1024 * 1024, 5)
  await putVerified(store, 'gone', body)
  const res = await get(`${url}/gone`)
  res.pause()
  await stalled(responses, '/gone')
  res.destroy()
  await until('the write to end', () => served.length === 1)
  t.ok(served[0]!.err !== undefined, `ended with an error (${served[0]!.err?.message ?? ''})`)
  t.ok(served[0]!.bytes < body.length, 'short, and said so')
  t.equal(store.readBuffers.lentBytes, 0, 'its buffer is back in the pool')
})

t.test('the first read of a file is checked as it streams: damage ends the response, never cleanly', async (t) => {
  const { store, url, served, dir } = await setup(t)
  const body = patternBody(400_000, 3)
  await store.put(makeObject('fresh', body))
  // Not read yet, so not verified: damage the body behind the store.
  const fh = await open(join(dir, 'objects', objectRelativePath(hashKey('fresh'))), 'r+')
  const size = (await fh.stat()).size
  await fh.write(Buffer.from([0xff ^ body[body.length - 10]!]), 0, 1, size - 10)
  await fh.close()
  const res = await get(`${url}/fresh`)
  const received = await bodyOf(res).then((b) => b.length, () => -1)
  t.ok(received < body.length, `the client never sees a complete body (${received === -1 ? 'aborted' : `${received} bytes`})`)
  await until('the write to end', () => served.length === 1)
  t.match(served[0]!.err, { code: 'CDN_ERR_STORE_CORRUPT' })
  t.equal(await store.get('fresh'), undefined, 'then misses')
})

t.test('a destination that closes without calling back a write still ends the write', async (t) => {
  const { store } = await setup(t)
  const body = patternBody(300_000, 8)
  await putVerified(store, 'deaf', body)
  const found = await store.get('deaf') as StreamedObject
  let writes = 0
  // Like node:http when the socket is already gone: the write is accepted and never called back.
  const deaf = new Writable({ write () { writes++ } })
  const outcome = new Promise<Served>((resolve) => { found.writeTo(deaf, 0, body.length - 1, (err, bytes) => { resolve({ err, bytes }) }) })
  await until('the first write', () => writes === 1)
  deaf.destroy()
  const { err, bytes } = await outcome
  t.match(err, { code: 'ERR_STREAM_PREMATURE_CLOSE' })
  t.equal(bytes, 0)
  t.ok(await store.get('deaf'), 'the store still serves the object')
})
