/**
 * The Store contract, tested once for every store (memory, disk, tiered): each store's
 * test file calls runStoreContract with a factory, then adds its own cases. Not a
 * `.test.ts` file, so tap never runs it alone (hono's `*.case.test.ts`, undici's
 * `cacheStoreTests`).
 */
import { Writable, type Readable } from 'node:stream'
import type tap from 'tap'
import { isCdnError } from '../../../lib/errors.ts'
import type { MemoryObject, ObjectMeta, Store, StoredObject, StoreObserver } from '../../../edge/cache/types.ts'

/** The test object tap hands to a subtest callback. */
export type Tap = Parameters<Parameters<typeof tap.test>[0]>[0]

/** What the contract asks of a store it makes. */
export interface ContractStoreOptions {
  /** Byte budget, in the store's own accounting (the store's sizeBytes). */
  readonly maxBytes: number
  /** Observer the store reports to; the eviction case checks onEvict. */
  readonly observer: StoreObserver
}

/**
 * Builds a fresh, ready store for one case and registers its cleanup (close, temp
 * dirs) on `t.teardown`.
 */
export type MakeStore = (t: Tap, options: ContractStoreOptions) => Promise<Store>

/** The cases runStoreContract runs, by name (for `skip`). */
export type StoreContractCase =
  | 'empty' | 'roundtrip' | 'large' | 'replace' | 'delete' | 'accounting' | 'eviction'
  | 'too-large' | 'zero-length' | 'binary' | 'keys' | 'many'

/** Tuning for one store's run of the contract. */
export interface StoreContractOptions {
  /** Cases this store does not honour, each with the reason tap prints. */
  readonly skip?: Partial<Record<StoreContractCase, string>>
  /** Body size of the "large" case; make it exceed the size above which the store streams (default 256 KiB). */
  readonly largeBodyBytes?: number
}

const ROOMY_BYTES = 64 * 1024 * 1024

/** Runs the Store contract as subtests of `t`, naming them after `name`. */
export function runStoreContract (t: Tap, name: string, makeStore: MakeStore, options: StoreContractOptions = {}): void {
  const { skip = {}, largeBodyBytes = 256 * 1024 } = options
  const roomy = (t: Tap, observer: StoreObserver = {}): Promise<Store> => makeStore(t, { maxBytes: ROOMY_BYTES, observer })
  const test = (id: StoreContractCase, title: string, fn: (t: Tap) => Promise<void>): void => {
    const reason = skip[id]
    void t.test(`${name}: ${title}`, reason === undefined ? {} : { skip: reason }, fn)
  }

  test('empty', 'an empty store misses and holds nothing', async (t) => {
    const store = await roomy(t)
    t.equal(await store.get('example.com/missing.ts'), undefined)
    t.equal(store.count, 0)
    t.equal(store.sizeBytes, 0)
    t.equal(store.name.length > 0, true, 'has a name')
  })

  test('roundtrip', 'put then get returns identical meta and body bytes', async (t) => {
    const store = await roomy(t)
    const object = makeObject('example.com/vod/t1/720p/seg-1.ts', patternBody(4000, 1), {
      headers: { 'content-type': 'video/mp2t', etag: '"abc"', 'set-cookie': ['a=1', 'b=2'] },
    })
    await store.put(object)
    const found = await store.get(object.meta.key)
    t.ok(found, 'hit')
    if (found === undefined) return
    t.strictSame(found.meta, object.meta)
    t.ok((await readBody(found)).equals(object.body), 'same body bytes')
    t.equal(store.count, 1)
  })

  test('large', 'large bodies round-trip, whole and by range when streamed', async (t) => {
    const store = await roomy(t)
    const object = makeObject('example.com/vod/t1/1080p/seg-9.ts', patternBody(largeBodyBytes, 7))
    await store.put(object)
    const found = await store.get(object.meta.key)
    t.ok(found, 'hit')
    if (found === undefined) return
    t.strictSame(found.meta, object.meta)
    t.ok((await readBody(found)).equals(object.body), 'whole body identical')
    if (found.body !== null) return
    const ranges: Array<[number, number]> = [[0, 0], [1000, 70_000], [largeBodyBytes - 1, largeBodyBytes - 1], [0, largeBodyBytes - 2]]
    for (const [start, end] of ranges) {
      const got = await collect(found.createReadStream(start, end))
      t.ok(got.equals(object.body.subarray(start, end + 1)), `range ${start}-${end} identical`)
    }
    // Twice: the first read of a file checks it, later ones take the pooled path.
    for (const round of [1, 2]) {
      for (const [start, end] of ranges) {
        const got = await writeToBuffer(found, start, end)
        t.ok(got.equals(object.body.subarray(start, end + 1)), `writeTo ${start}-${end} identical (round ${round})`)
      }
    }
  })

  test('replace', 'a second put under the same key replaces the object', async (t) => {
    const store = await roomy(t)
    const key = 'example.com/live/t2/720p.m3u8'
    await store.put(makeObject(key, Buffer.from('#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:1\n')))
    const second = makeObject(key, Buffer.from('#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:2\n#EXTINF:4,\nseg-2.ts\n'), {
      status: 203,
      headers: { 'content-type': 'application/vnd.apple.mpegurl', 'cache-control': 'max-age=2' },
    })
    await store.put(second)
    const found = await store.get(key)
    t.ok(found, 'hit')
    if (found === undefined) return
    t.strictSame(found.meta, second.meta)
    t.ok((await readBody(found)).equals(second.body), 'second body')
    t.equal(store.count, 1)
  })

  test('delete', 'delete removes the object; deleting a missing key is fine', async (t) => {
    const store = await roomy(t)
    const a = makeObject('example.com/a.ts', patternBody(500, 2))
    const b = makeObject('example.com/b.ts', patternBody(500, 3))
    await store.put(a)
    await store.put(b)
    await store.delete(a.meta.key)
    t.equal(await store.get(a.meta.key), undefined, 'deleted key misses')
    t.ok(await store.get(b.meta.key), 'other key still hits')
    await store.delete('example.com/never-stored.ts')
    await store.delete(a.meta.key)
    t.equal(store.count, 1)
  })

  test('accounting', 'sizeBytes and count follow puts, replaces and deletes', async (t) => {
    const store = await roomy(t)
    const a = makeObject('example.com/acct/a.ts', patternBody(3000, 4))
    const b = makeObject('example.com/acct/b.ts', patternBody(5000, 5))
    await store.put(a)
    const aBytes = store.sizeBytes
    t.ok(aBytes >= a.body.length, 'counts at least the body')
    await store.put(b)
    const bBytes = store.sizeBytes - aBytes
    t.ok(bBytes >= b.body.length, 'second object adds at least its body')
    t.equal(store.count, 2)
    await store.put(makeObject(a.meta.key, patternBody(9000, 6)))
    t.equal(store.count, 2, 'replace keeps the count')
    t.ok(store.sizeBytes >= aBytes + bBytes + 6000 - 64, 'replace with a larger body grows by about the difference')
    t.ok(store.sizeBytes <= aBytes + bBytes + 6000 + 64, 'the replaced object is no longer counted')
    await store.delete(a.meta.key)
    t.equal(store.count, 1)
    t.equal(store.sizeBytes, bBytes, 'delete subtracts exactly what the object cost')
    await store.delete(b.meta.key)
    t.equal(store.count, 0)
    t.equal(store.sizeBytes, 0)
  })

  test('eviction', 'over budget, the least recently used objects go first and the budget holds', async (t) => {
    const probe = await roomy(t)
    const keys = ['example.com/lru/a.ts', 'example.com/lru/b.ts', 'example.com/lru/c.ts', 'example.com/lru/d.ts', 'example.com/lru/e.ts']
    const objects = keys.map((key, i) => makeObject(key, patternBody(2000, 10 + i)))
    await probe.put(objects[0]!)
    const costBytes = probe.sizeBytes
    const maxBytes = Math.floor(costBytes * 3.5)
    const evicted: string[] = []
    const store = await makeStore(t, { maxBytes, observer: { onEvict: (meta) => evicted.push(meta.key) } })
    const [a, b, c, d, e] = objects as [MemoryObject, MemoryObject, MemoryObject, MemoryObject, MemoryObject]
    for (const object of [a, b, c]) {
      await store.put(object)
      t.ok(store.sizeBytes <= maxBytes, 'within budget')
    }
    t.equal(store.count, 3, 'three fit')
    t.ok(await store.get(a.meta.key), 'a hits (and becomes most recently used)')
    await store.put(d)
    t.ok(store.sizeBytes <= maxBytes, 'within budget after eviction')
    t.equal(store.count, 3)
    t.strictSame(evicted, [b.meta.key], 'b, the least recently used, was evicted and reported')
    t.equal(await store.get(b.meta.key), undefined, 'b misses')
    // Order now (oldest first): c, a, d; these hits make it d, c, a.
    t.ok(await store.get(d.meta.key), 'd hits')
    t.ok(await store.get(c.meta.key), 'c hits')
    t.ok(await store.get(a.meta.key), 'a hits')
    await store.put(e)
    t.strictSame(evicted, [b.meta.key, d.meta.key], 'd, now the least recently used, was evicted')
    t.equal(await store.get(d.meta.key), undefined, 'd misses')
    t.ok(store.sizeBytes <= maxBytes, 'within budget')
  })

  test('too-large', 'an object larger than the whole budget is not stored', async (t) => {
    const store = await makeStore(t, { maxBytes: 4096, observer: {} })
    const big = makeObject('example.com/too-big.ts', patternBody(64 * 1024, 8))
    try {
      await store.put(big)
    } catch (err) {
      t.ok(isCdnError(err, 'CDN_ERR_STORE_WRITE'), 'a rejection says CDN_ERR_STORE_WRITE')
    }
    t.equal(await store.get(big.meta.key), undefined, 'misses')
    t.ok(store.sizeBytes <= 4096, 'within budget')
  })

  test('zero-length', 'a zero-length body round-trips', async (t) => {
    const store = await roomy(t)
    const object = makeObject('example.com/empty-204', Buffer.alloc(0), { status: 204 })
    await store.put(object)
    const found = await store.get(object.meta.key)
    t.ok(found, 'hit')
    if (found === undefined) return
    t.strictSame(found.meta, object.meta)
    t.equal((await readBody(found)).length, 0)
  })

  test('binary', 'bodies with every byte value round-trip exactly', async (t) => {
    const store = await roomy(t)
    const every = Buffer.alloc(256 * 4)
    for (let i = 0; i < every.length; i++) every[i] = i % 256
    const reversed = Buffer.from(every).reverse()
    const objects = [makeObject('example.com/bin/every', every), makeObject('example.com/bin/reversed', reversed)]
    for (const object of objects) await store.put(object)
    for (const object of objects) {
      const found = await store.get(object.meta.key)
      t.ok(found !== undefined && (await readBody(found)).equals(object.body), `${object.meta.key} identical`)
    }
  })

  test('keys', 'keys with unicode, query strings and odd characters are kept apart', async (t) => {
    const store = await roomy(t)
    const keys = [
      'example.com/vod/é/ß/日本語/seg 1.ts',
      'example.com/live/x.m3u8?a=1&b=%20&c=ü',
      'example.com/live/x.m3u8?a=1&b=%20&c=u',
      'example.com/live/x.m3u8',
      'example.com/🎬/../%2e%2e/seg.ts',
      `example.com/long/${'k'.repeat(3000)}`,
      'example.com/null\u0000byte',
    ]
    for (const [i, key] of keys.entries()) await store.put(makeObject(key, patternBody(300 + i, 20 + i)))
    t.equal(store.count, keys.length)
    for (const [i, key] of keys.entries()) {
      const found = await store.get(key)
      t.ok(found !== undefined && found.meta.key === key && (await readBody(found)).equals(patternBody(300 + i, 20 + i)), `key ${i} hits its own object`)
    }
    t.equal(await store.get('example.com/live/x.m3u8?a=1'), undefined, 'a near-miss key misses')
  })

  test('many', 'many keys, written concurrently, all round-trip', async (t) => {
    const store = await roomy(t)
    const objects = Array.from({ length: 200 }, (_, i) => makeObject(`example.com/many/seg-${i}.ts`, patternBody(100 + i * 37, i)))
    await Promise.all(objects.map((object) => store.put(object)))
    t.equal(store.count, objects.length)
    let identical = 0
    for (const object of objects) {
      const found = await store.get(object.meta.key)
      if (found !== undefined && (await readBody(found)).equals(object.body)) identical++
    }
    t.equal(identical, objects.length, 'every object identical')
  })
}

/** A complete object for `key` with `body`; meta fields can be overridden. */
export function makeObject (key: string, body: Buffer, overrides: Partial<Omit<ObjectMeta, 'key' | 'bodyBytes'>> = {}): MemoryObject {
  const meta: ObjectMeta = {
    key,
    status: 200,
    headers: { 'content-type': 'video/mp2t' },
    bodyBytes: body.length,
    requestTimeMs: 1_700_000_000_000,
    responseTimeMs: 1_700_000_000_120,
    initialAgeSeconds: 3,
    freshnessLifetimeSeconds: 86_400,
    ...overrides,
  }
  return { meta, body }
}

/** `length` deterministic pseudo-random bytes; different seeds give different bodies. */
export function patternBody (length: number, seed: number): Buffer {
  const buf = Buffer.allocUnsafe(length)
  let x = (seed * 2654435761 + 1) >>> 0 || 1
  for (let i = 0; i < length; i++) {
    x ^= x << 13; x >>>= 0
    x ^= x >>> 17
    x ^= x << 5; x >>>= 0
    buf[i] = x & 0xff
  }
  return buf
}

/** The whole body of a stored object, reading the stream when the store streams it. */
export async function readBody (object: StoredObject): Promise<Buffer> {
  if (object.body !== null) return object.body
  if (object.meta.bodyBytes === 0) return Buffer.alloc(0)
  return collect(object.createReadStream(0, object.meta.bodyBytes - 1))
}

/** What StreamedObject.writeTo sends, copied as it arrives (its buffers are reused after each write). */
export function writeToBuffer (object: StoredObject, start: number, end: number): Promise<Buffer> {
  if (object.body !== null) return Promise.resolve(object.body.subarray(start, end + 1))
  const chunks: Buffer[] = []
  const sink = new Writable({
    write (chunk: Buffer, _encoding, callback) {
      chunks.push(Buffer.from(chunk))
      setImmediate(callback)
    },
  })
  return new Promise((resolve, reject) => {
    object.writeTo(sink, start, end, (err, bytes) => {
      if (err !== undefined) return reject(err)
      const body = Buffer.concat(chunks)
      if (body.length !== bytes) return reject(new Error(`writeTo reported ${bytes} bytes, sent ${body.length}`))
      if (!sink.writableEnded) return reject(new Error('writeTo did not end its destination'))
      resolve(body)
    })
  })
}

/** Everything a stream emits; rejects with the stream's error. */
export async function collect (stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const chunk of stream) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks)
}
