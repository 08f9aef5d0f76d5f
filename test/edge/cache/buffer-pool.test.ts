/**
 * The disk tier's read buffer pool: buffers are reused after give, the pool never
 * grows past its bound (then it hands out unpooled buffers), and stray gives are harmless.
 */
import t from 'tap'
import { gc } from '../../helpers/gc.ts'
import { BufferPool } from '../../../edge/cache/buffer-pool.ts'

t.test('options are validated once, naming the field and the value', async (t) => {
  t.throws(() => new BufferPool({ chunkBytes: 0, maxBytes: 10 }), { name: 'TypeError', message: /options\.chunkBytes .* got 0/ })
  t.throws(() => new BufferPool({ chunkBytes: 8, maxBytes: -1 }), { name: 'TypeError', message: /options\.maxBytes .* got -1/ })
})

t.test('a buffer given back is the next one taken', async (t) => {
  const pool = new BufferPool({ chunkBytes: 1024, maxBytes: 4096 })
  const a = pool.take()
  t.equal(a.length, 1024)
  t.equal(pool.lentBytes, 1024)
  pool.give(a)
  t.equal(pool.lentBytes, 0)
  t.equal(pool.take(), a, 'reused, not reallocated')
  t.equal(pool.sizeBytes, 1024)
})

t.test('the pool stops growing at maxBytes and lends unpooled buffers beyond it', async (t) => {
  const sizes: number[] = []
  const pool = new BufferPool({ chunkBytes: 1024, maxBytes: 2048 })
  pool.onResize((bytes) => { sizes.push(bytes) })
  const lent = [pool.take(), pool.take(), pool.take()]
  t.equal(pool.sizeBytes, 2048, 'two pooled buffers')
  t.equal(pool.lentBytes, 2048, 'the third is not counted: it is not pooled')
  t.strictSame(sizes, [1024, 2048], 'resizes reported')
  for (const buf of lent) pool.give(buf)
  t.equal(pool.lentBytes, 0)
  const again = [pool.take(), pool.take()]
  t.ok(again.includes(lent[0]!) && again.includes(lent[1]!), 'the pooled ones come back')
  t.notOk(again.includes(lent[2]!), 'the unpooled one was dropped')
})

t.test('giving back twice, or a foreign buffer, does not lend one buffer twice', async (t) => {
  const pool = new BufferPool({ chunkBytes: 64, maxBytes: 1024 })
  const a = pool.take()
  pool.give(a)
  pool.give(a)
  pool.give(Buffer.alloc(64))
  const first = pool.take()
  const second = pool.take()
  t.not(first, second, 'two takes, two different buffers')
  t.equal(pool.lentBytes, 128)
})

t.test('maxBytes 0 disables pooling', async (t) => {
  const pool = new BufferPool({ chunkBytes: 64, maxBytes: 0 })
  const a = pool.take()
  pool.give(a)
  t.not(pool.take(), a)
  t.equal(pool.sizeBytes, 0)
})

t.test('a lent buffer the GC collects frees its place in the pool', async (t) => {
  const pool = new BufferPool({ chunkBytes: 1024, maxBytes: 1024 })
  ;(() => { pool.take() })()
  t.equal(pool.sizeBytes, 1024)
  for (let i = 0; i < 50 && pool.sizeBytes !== 0; i++) {
    gc()
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
  t.equal(pool.sizeBytes, 0, 'the lost buffer no longer counts')
  t.equal(pool.lentBytes, 0)
})

t.test('limit lowers the bound; buffers over it are dropped as they come back', async (t) => {
  const sizes: number[] = []
  const pool = new BufferPool({ chunkBytes: 100, maxBytes: 400 })
  pool.onResize((bytes) => { sizes.push(bytes) })
  const lent = [pool.take(), pool.take(), pool.take()]
  pool.give(lent[0]!)
  pool.limit(150)
  t.equal(pool.maxBytes, 100, 'a whole number of buffers')
  t.equal(pool.sizeBytes, 200, 'the free one went at once; lent ones stay lent')
  pool.give(lent[1]!)
  t.equal(pool.sizeBytes, 100, 'one given back over the bound is dropped')
  pool.give(lent[2]!)
  t.equal(pool.sizeBytes, 100, 'the last one stays pooled')
  t.equal(pool.take(), lent[2])
  t.strictSame(sizes, [100, 200, 300, 200, 100])
  t.throws(() => pool.limit(-1), TypeError)
})
