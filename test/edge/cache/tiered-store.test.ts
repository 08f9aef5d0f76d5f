/**
 * Memory over disk: the shared store contract, plus the tier rules (write-through to
 * disk, small objects in memory, promotion on disk hits, demotion of evicted objects
 * whose disk copy is missing).
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { DiskStore } from '../../../edge/cache/disk-store.ts'
import { MemoryStore } from '../../../edge/cache/memory-store.ts'
import { TieredStore } from '../../../edge/cache/tiered-store.ts'
import type { ObjectMeta, StoredObject, StoreObserver } from '../../../edge/cache/types.ts'
import { makeObject, patternBody, readBody, runStoreContract, writeToBuffer, type Tap } from './store.contract.ts'

interface TieredOptions {
  memoryMaxBytes: number
  memoryMaxObjectBytes?: number
  diskMaxBytes: number
  observer?: StoreObserver
  promotionBytesPerSecond?: number
  now?: () => number
}

async function makeTiered (t: Tap, opts: TieredOptions): Promise<TieredStore> {
  const dir = await mkdtemp(join(tmpdir(), 'streamedge-tiered-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const disk = new DiskStore({ dir, maxBytes: opts.diskMaxBytes, readWholeMaxBytes: 64 * 1024, ...(opts.observer === undefined ? {} : { observer: opts.observer }) })
  await disk.open()
  await disk.indexReady
  let tiered: TieredStore | undefined
  const memory = new MemoryStore({
    maxBytes: opts.memoryMaxBytes,
    maxObjectBytes: opts.memoryMaxObjectBytes ?? 64 * 1024,
    onEvict: (o) => tiered?.demote(o),
  })
  const { promotionBytesPerSecond, now } = opts
  tiered = new TieredStore({ memory, disk, ...(promotionBytesPerSecond === undefined ? {} : { promotionBytesPerSecond }), ...(now === undefined ? {} : { now }) })
  const store = tiered
  t.teardown(() => store.close())
  return store
}

runStoreContract(t, 'TieredStore', (t, { maxBytes, observer }) => makeTiered(t, { memoryMaxBytes: maxBytes, diskMaxBytes: maxBytes, observer }))

t.test('writes go through to disk; small objects also to memory, large ones only to disk', async (t) => {
  const store = await makeTiered(t, { memoryMaxBytes: 1024 * 1024, memoryMaxObjectBytes: 1000, diskMaxBytes: 1024 * 1024 })
  await store.put(makeObject('small', Buffer.alloc(1000, 1)))
  await store.put(makeObject('large', Buffer.alloc(5000, 2)))
  t.ok(store.memory.get('small'))
  t.equal(store.memory.get('large'), undefined)
  t.ok(store.disk.has('small'))
  t.ok(store.disk.has('large'))
  const large = await store.get('large')
  t.equal(large?.meta.bodyBytes, 5000)
  t.equal(store.memory.get('large'), undefined, 'a disk hit too large for memory is not promoted')
})

t.test('a disk hit is promoted to memory', async (t) => {
  const store = await makeTiered(t, { memoryMaxBytes: 1024 * 1024, diskMaxBytes: 1024 * 1024 })
  await store.put(makeObject('k', Buffer.alloc(2000, 3)))
  store.memory.delete('k')
  t.equal(store.memory.get('k'), undefined)
  const hit = await store.get('k')
  t.ok(hit?.body?.equals(Buffer.alloc(2000, 3)))
  t.ok(store.memory.get('k'), 'promoted')
})

t.test('a memory eviction demotes to disk when the disk copy is missing', async (t) => {
  const store = await makeTiered(t, { memoryMaxBytes: 5000, diskMaxBytes: 1024 * 1024 })
  await store.put(makeObject('a', Buffer.alloc(2500, 1)))
  await store.disk.delete('a') // e.g. its disk write had failed, or disk evicted it
  t.notOk(store.disk.has('a'))
  await store.put(makeObject('b', Buffer.alloc(2500, 2))) // memory full: 'a' is evicted and demoted
  t.equal(store.memory.get('a'), undefined)
  for (let i = 0; i < 100 && !store.disk.has('a'); i++) await new Promise((resolve) => setTimeout(resolve, 5))
  t.ok(store.disk.has('a'), 'demoted to disk')
  t.ok((await store.get('a'))?.body?.equals(Buffer.alloc(2500, 1)))
})

t.test('options are validated once, naming the field and the value', async (t) => {
  const store = await makeTiered(t, { memoryMaxBytes: 1024 * 1024, diskMaxBytes: 1024 * 1024 })
  const base = { memory: store.memory, disk: store.disk }
  t.throws(() => new TieredStore({ ...base, promotion: 'sometimes' as 'always' }), /options\.promotion to be 'frequency' or 'always', got sometimes/)
  t.throws(() => new TieredStore({ ...base, streamMinBytes: -1 }), /options\.streamMinBytes to be a non-negative integer, got -1/)
  t.throws(() => new TieredStore({ ...base, promotionBytesPerSecond: 0 }), /options\.promotionBytesPerSecond to be a positive number, got 0/)
  t.throws(() => new TieredStore({ ...base, promotionBytesPerSecond: Number.NaN }), /options\.promotionBytesPerSecond to be a positive number, got NaN/)
})

t.test('disk hits: large media is streamed, small bodies and playlists come back whole', async (t) => {
  const store = await makeTiered(t, { memoryMaxBytes: 4096, memoryMaxObjectBytes: 1000, diskMaxBytes: 16 * 1024 * 1024 })
  const segment = makeObject('example.com/vod/t1/seg-1.ts', patternBody(300_000, 1), { headers: { 'content-type': 'video/mp2t' } })
  const small = makeObject('example.com/vod/t1/init.mp4', patternBody(20_000, 2), { headers: { 'content-type': 'video/mp4' } })
  const playlist = makeObject('example.com/vod/t1/720p.m3u8', Buffer.from(`#EXTM3U\n${'#EXTINF:4,\nseg.ts\n'.repeat(20_000)}`), { headers: { 'content-type': 'application/octet-stream' } })
  const json = makeObject('example.com/api/titles', Buffer.from(JSON.stringify({ pad: 'x'.repeat(200_000) })), { headers: { 'content-type': 'application/json' } })
  for (const object of [segment, small, playlist, json]) await store.put(object)
  t.ok(playlist.body.length > 128 * 1024 && json.body.length > 128 * 1024, 'the text bodies are over the streaming threshold')
  const got = async (key: string): Promise<StoredObject | undefined> => store.get(key)
  const seg = await got(segment.meta.key)
  t.ok(seg !== undefined && seg.body === null, 'a large segment is streamed')
  t.ok(seg !== undefined && (await readBody(seg)).equals(segment.body))
  t.ok((await got(small.meta.key))?.body?.equals(small.body), 'a small body is read whole')
  t.ok((await got(playlist.meta.key))?.body?.equals(playlist.body), 'a playlist is read whole, whatever its size and type')
  t.ok((await got(json.meta.key))?.body?.equals(json.body), 'so is text')
})

t.test('admission: equally popular objects do not evict each other; a more popular one gets in', async (t) => {
  const body = (i: number): Buffer => patternBody(10_000, i)
  // No bound on promotions per second here: this is about which objects get in, not how fast (next test).
  const store = await makeTiered(t, { memoryMaxBytes: 4 * 10_600, memoryMaxObjectBytes: 20_000, diskMaxBytes: 16 * 1024 * 1024, promotionBytesPerSecond: Infinity })
  const keys = Array.from({ length: 12 }, (_, i) => `example.com/set/${i}.ts`)
  for (const [i, key] of keys.entries()) await store.put(makeObject(key, body(i)))
  const resident = (): string[] => [...store.memory.keys()].sort()
  // Every key looked up as often as every other, a few rounds.
  for (let round = 0; round < 3; round++) {
    for (const key of keys) {
      const found = await store.get(key)
      if (found !== undefined && found.body === null) await readBody(found)
    }
  }
  const settled = resident()
  t.equal(settled.length, 4, 'memory is full')
  let promotions = 0
  const put = store.memory.put.bind(store.memory)
  store.memory.put = (object) => { promotions++; put(object) }
  for (let round = 0; round < 3; round++) {
    for (const key of keys) if (store.getFromMemory(key) === undefined) await store.getFromDisk(key)
  }
  t.equal(promotions, 0, 'no disk hit displaced an equally popular object')
  t.strictSame(resident(), settled)

  const hot = keys.find((k) => !settled.includes(k))!
  for (let i = 0; i < 10; i++) if (store.getFromMemory(hot) === undefined) await store.getFromDisk(hot)
  t.ok(store.memory.peek(hot), 'a key looked up more than the least recently used one is promoted')
  t.equal(promotions, 1)
})

t.test('promotions that evict are bounded in bytes per second, with one second of credit after a quiet spell', async (t) => {
  let nowMs = 0
  // 10 slots of ~10.6 kB; 25 kB of promotions a second: about two and a half bodies.
  const store = await makeTiered(t, {
    memoryMaxBytes: 10 * 10_600,
    memoryMaxObjectBytes: 20_000,
    diskMaxBytes: 16 * 1024 * 1024,
    promotionBytesPerSecond: 25_000,
    now: () => nowMs,
  })
  const keys = Array.from({ length: 30 }, (_, i) => `example.com/hot/${i}.ts`)
  for (const [i, key] of keys.entries()) await store.put(makeObject(key, patternBody(10_000, i)))
  // Memory holds the last ten; each looked up five times.
  const resident = keys.filter((key) => store.memory.peek(key) !== undefined)
  const onDisk = keys.filter((key) => store.memory.peek(key) === undefined)
  t.equal(onDisk.length, 20)
  for (let i = 0; i < 5; i++) for (const key of resident) store.getFromMemory(key)
  const lookUp = async (): Promise<number> => {
    let promoted = 0
    for (const key of onDisk) {
      if (store.memory.peek(key) !== undefined) continue
      const found = await store.getFromDisk(key)
      if (found === undefined) throw new Error(`${key} not found`)
      if (store.memory.peek(key) !== undefined) promoted++
      if (found.body === null) await readBody(found)
    }
    return promoted
  }
  // Five lookups each: never more popular than a resident, so none is promoted.
  for (let i = 0; i < 5; i++) t.equal(await lookUp(), 0, `lookup ${i + 1}: not more popular than the residents`)
  // From here each disk object is more popular than every resident, but not clearly
  // (6-10 lookups against 5): the byte bound decides.
  t.equal(await lookUp(), 3, 'one second of credit: 25 kB buys three (the last one overdraws)')
  t.equal(await lookUp(), 0, 'no credit left and no time passed')
  nowMs += 200
  t.equal(await lookUp(), 0, 'after 0.2 s the overdraft is not paid off yet')
  nowMs += 1000
  t.equal(await lookUp(), 3, '25 kB more a second later')
  nowMs += 60_000
  t.equal(await lookUp(), 3, 'credit saves up to one second only, however long the quiet')
  t.equal(store.memory.count, 10, 'memory stayed full')
})

t.test('a clear winner (at least twice as popular as each object it evicts, plus two) is promoted without credit', async (t) => {
  const store = await makeTiered(t, {
    memoryMaxBytes: 4 * 10_600,
    memoryMaxObjectBytes: 20_000,
    diskMaxBytes: 16 * 1024 * 1024,
    promotionBytesPerSecond: 1, // one byte a second: no bounded promotion after the first
    now: () => 0,
  })
  const keys = Array.from({ length: 8 }, (_, i) => `example.com/clear/${i}.ts`)
  for (const [i, key] of keys.entries()) await store.put(makeObject(key, patternBody(10_000, i)))
  const resident = keys.filter((key) => store.memory.peek(key) !== undefined)
  const [first, second] = keys.filter((key) => store.memory.peek(key) === undefined)
  for (const key of resident) store.getFromMemory(key) // each looked up once
  await store.getFromDisk(first!)
  t.equal(store.memory.peek(first!), undefined, 'one lookup against one: not more popular')
  await store.getFromDisk(first!)
  t.ok(store.memory.peek(first!), 'two against one: promoted on the byte credit, which it overdraws')
  const seen: boolean[] = []
  for (let i = 0; i < 4; i++) {
    await store.getFromDisk(second!)
    seen.push(store.memory.peek(second!) !== undefined)
  }
  t.same(seen, [false, false, false, true], 'no credit: only at four lookups against one (2 × 1 + 2) is it a clear winner, and in')
})

t.test('promotions into free room are not bounded (they evict nothing)', async (t) => {
  const store = await makeTiered(t, { memoryMaxBytes: 10 * 10_600, memoryMaxObjectBytes: 20_000, diskMaxBytes: 16 * 1024 * 1024, promotionBytesPerSecond: 1, now: () => 0 })
  for (let i = 0; i < 5; i++) await store.put(makeObject(`k${i}`, patternBody(10_000, i)))
  for (let i = 0; i < 5; i++) store.memory.delete(`k${i}`)
  for (let i = 0; i < 5; i++) {
    await store.getFromDisk(`k${i}`)
    t.ok(store.memory.peek(`k${i}`), `k${i} promoted`)
  }
})

t.test('with promotion "always", every disk hit is promoted (the old behaviour)', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'streamedge-tiered-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const disk = new DiskStore({ dir, maxBytes: 16 * 1024 * 1024 })
  await disk.open()
  const memory = new MemoryStore({ maxBytes: 25_000 })
  const store = new TieredStore({ memory, disk, promotion: 'always' })
  t.teardown(() => store.close())
  for (let i = 0; i < 5; i++) await store.put(makeObject(`k${i}`, patternBody(10_000, i)))
  for (let i = 0; i < 5; i++) {
    memory.delete(`k${i}`)
    await store.getFromDisk(`k${i}`)
    t.ok(memory.peek(`k${i}`), `k${i} promoted`)
  }
})

t.test('read buffers lent to disk readers come out of the memory budget', async (t) => {
  const store = await makeTiered(t, { memoryMaxBytes: 1024 * 1024, memoryMaxObjectBytes: 100_000, diskMaxBytes: 64 * 1024 * 1024 })
  for (let i = 0; i < 10; i++) await store.put(makeObject(`small/${i}`, patternBody(90_000, i)))
  t.ok(store.memory.sizeBytes > 800_000, 'memory nearly full')
  const big = makeObject('big.ts', patternBody(2_000_000, 99), { headers: { 'content-type': 'video/mp2t' } })
  await store.put(big)
  const first = await store.get('big.ts')
  if (first === undefined || first.body !== null) return t.fail('expected a streamed hit')
  await readBody(first) // verifies the file
  const sinks = await Promise.all([1, 2, 3].map(async () => {
    const found = await store.get('big.ts')
    if (found === undefined) throw new Error('miss')
    return writeToBuffer(found, 0, big.body.length - 1)
  }))
  t.ok(sinks.every((b) => b.equals(big.body)), 'three concurrent pooled reads, exact')
  const pooled = store.disk.readBuffers.sizeBytes
  t.ok(pooled > 0, `the pool grew to ${pooled} bytes`)
  t.equal(store.memory.reservedBytes, pooled, 'and the memory tier set that much aside')
  t.ok(store.memory.sizeBytes + pooled <= 1024 * 1024, 'objects plus read buffers stay within the memory budget')
})

t.test('freshen of a body streamed from disk rewrites the disk header and keeps the body out of memory', async (t) => {
  const store = await makeTiered(t, { memoryMaxBytes: 1024 * 1024, memoryMaxObjectBytes: 64 * 1024, diskMaxBytes: 8 * 1024 * 1024 })
  const key = 'example.com/freshen/seg.ts'
  const body = patternBody(300_000, 5)
  await store.put(makeObject(key, body))
  const stale = await store.get(key)
  t.equal(stale?.body, null, 'a disk hit too large for memory is streamed')
  if (stale === undefined) return
  const meta: ObjectMeta = { ...stale.meta, headers: { ...stale.meta.headers, etag: '"v2"' }, responseTimeMs: stale.meta.responseTimeMs + 60_000 }
  const updated = await store.freshen(stale, meta)
  t.equal(updated.body, null, 'the answer still streams from disk (the body was not read into memory)')
  t.same(updated.meta, meta, 'with the new metadata')
  t.ok((await readBody(updated)).equals(body), 'and the same body')
  t.same(store.disk.peekMeta(key), meta, 'the disk copy carries the new header')
  t.equal(store.memory.get(key), undefined, 'memory was left alone')
  const again = await store.get(key)
  t.ok(again !== undefined && again.meta.responseTimeMs === meta.responseTimeMs && (await readBody(again)).equals(body), 'later hits read the rewritten file')
})

t.test('freshen of a memory object updates memory at once and the disk copy in the background', async (t) => {
  const store = await makeTiered(t, { memoryMaxBytes: 1024 * 1024, diskMaxBytes: 8 * 1024 * 1024 })
  const key = 'example.com/freshen/small.ts'
  const body = patternBody(2000, 6)
  await store.put(makeObject(key, body))
  const stale = await store.get(key)
  if (stale === undefined) return t.fail('stored')
  const meta: ObjectMeta = { ...stale.meta, responseTimeMs: stale.meta.responseTimeMs + 60_000 }
  const updated = await store.freshen(stale, meta)
  t.ok(updated.body?.equals(body), 'answered from memory')
  t.same(store.memory.get(key)?.meta, meta)
  await until(() => store.disk.peekMeta(key)?.responseTimeMs === meta.responseTimeMs)
  t.pass('the disk copy follows')
})

async function until (check: () => boolean): Promise<void> {
  for (let i = 0; i < 2000 && !check(); i++) await new Promise((resolve) => setTimeout(resolve, 5))
}
