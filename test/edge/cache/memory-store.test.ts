/**
 * The memory tier: the shared store contract, plus what only the memory tier does
 * (objects over the size limit are refused, evictions are handed to the demote hook).
 */
import t from 'tap'
import { MemoryStore } from '../../../edge/cache/memory-store.ts'
import type { MemoryObject } from '../../../edge/cache/types.ts'
import { makeObject, runStoreContract } from './store.contract.ts'

runStoreContract(t, 'MemoryStore', async (t, { maxBytes, observer }) => {
  const store = new MemoryStore({ maxBytes, observer })
  t.teardown(() => store.close())
  return store
})

t.test('options are validated once, naming the field and the value', async (t) => {
  t.throws(() => new MemoryStore({ maxBytes: 0 }), /options\.maxBytes to be a positive integer, got 0/)
  t.throws(() => new MemoryStore({ maxBytes: 10, maxObjectBytes: -1 }), /options\.maxObjectBytes .* got -1/)
})

t.test('objects larger than maxObjectBytes skip the memory tier', async (t) => {
  const store = new MemoryStore({ maxBytes: 1024 * 1024, maxObjectBytes: 1000 })
  store.put(makeObject('small', Buffer.alloc(1000, 1)))
  store.put(makeObject('big', Buffer.alloc(1001, 1)))
  t.ok(store.get('small'))
  t.equal(store.get('big'), undefined)
  t.ok(store.accepts(1000))
  t.notOk(store.accepts(1001))
  store.put(makeObject('small', Buffer.alloc(5000, 1)))
  t.equal(store.get('small'), undefined, 'a replacement too big for memory drops the old copy')
})

t.test('evicted objects are handed to onEvict (the tiered store demotes them); deletes and replaces are not', async (t) => {
  const evicted: MemoryObject[] = []
  const store = new MemoryStore({ maxBytes: 10_000, onEvict: (o) => evicted.push(o) })
  store.put(makeObject('a', Buffer.alloc(4000)))
  store.put(makeObject('b', Buffer.alloc(4000)))
  store.get('a') // a is now more recent than b
  store.put(makeObject('c', Buffer.alloc(4000)))
  t.same(evicted.map((o) => o.meta.key), ['b'])
  store.delete('a')
  store.put(makeObject('c', Buffer.alloc(100)))
  t.same(evicted.map((o) => o.meta.key), ['b'], 'delete and replace do not demote')
  t.same([...store.keys()], ['c'])
})

t.test('a hit returns the stored Buffer itself, not a copy', async (t) => {
  const store = new MemoryStore({ maxBytes: 1024 * 1024 })
  const object = makeObject('k', Buffer.alloc(100, 7))
  store.put(object)
  t.equal(store.get('k')?.body, object.body)
})

t.test('victimsFor names what a put would evict, least recently used first', async (t) => {
  const store = new MemoryStore({ maxBytes: 10_000 })
  for (const key of ['a', 'b', 'c']) store.put(makeObject(key, Buffer.alloc(2000)))
  store.get('a') // now b is the least recently used
  t.strictSame(store.victimsFor(1000, 8), [], 'fits in the free space')
  t.strictSame(store.victimsFor(5000, 8), ['b'])
  t.strictSame(store.victimsFor(7000, 8), ['b', 'c'])
  t.equal(store.victimsFor(7000, 1), undefined, 'more victims than allowed')
  t.equal(store.victimsFor(20_000, 8), undefined, 'more than the whole tier')
  t.ok(store.peek('b'), 'asking evicts nothing')
})

t.test('reserve takes bytes out of the budget and evicts to fit', async (t) => {
  const evicted: string[] = []
  const store = new MemoryStore({ maxBytes: 10_000, onEvict: (o: MemoryObject) => { evicted.push(o.meta.key) } })
  for (const key of ['a', 'b', 'c', 'd']) store.put(makeObject(key, Buffer.alloc(2000)))
  store.reserve(4000)
  t.equal(store.reservedBytes, 4000)
  t.ok(store.sizeBytes <= 6000, `objects fit in what is left (${store.sizeBytes} bytes)`)
  t.strictSame(evicted, ['a', 'b'], 'least recently used first, handed to onEvict')
  store.put(makeObject('e', Buffer.alloc(2000)))
  t.ok(store.sizeBytes <= 6000, 'puts respect the reservation')
  store.put(makeObject('huge', Buffer.alloc(7000)))
  t.equal(store.get('huge'), undefined, 'an object larger than the unreserved budget is not kept')
  store.reserve(0)
  store.put(makeObject('f', Buffer.alloc(2000)))
  t.ok(store.get('e') && store.get('f'), 'released room is used again')
  t.throws(() => store.reserve(-1), TypeError)
})
