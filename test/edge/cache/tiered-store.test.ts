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
import type { StoreObserver } from '../../../edge/cache/types.ts'
import { makeObject, runStoreContract, type Tap } from './store.contract.ts'

async function makeTiered (t: Tap, opts: { memoryMaxBytes: number, memoryMaxObjectBytes?: number, diskMaxBytes: number, observer?: StoreObserver }): Promise<TieredStore> {
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
  tiered = new TieredStore({ memory, disk })
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
