/**
 * The TinyLFU frequency sketch: estimates never undercount before aging, saturate at
 * 15, keep keys apart, and halve after the sample size so old popularity fades.
 */
import t from 'tap'
import { FrequencySketch, MAX_FREQUENCY } from '../../../edge/cache/frequency-sketch.ts'

t.test('options are validated once, naming the field and the value', async (t) => {
  t.throws(() => new FrequencySketch({ width: 0 }), { name: 'TypeError', message: /options\.width .* got 0/ })
  t.throws(() => new FrequencySketch({ width: 1.5 }), { name: 'TypeError', message: /options\.width .* got 1\.5/ })
  t.throws(() => new FrequencySketch({ width: 16, sampleSize: 0 }), { name: 'TypeError', message: /options\.sampleSize .* got 0/ })
})

t.test('counts accesses per key, without undercounting, up to the cap', async (t) => {
  const sketch = new FrequencySketch({ width: 1024, sampleSize: 1_000_000 })
  t.equal(sketch.frequency('never'), 0)
  for (let i = 0; i < 5; i++) sketch.increment('five')
  for (let i = 0; i < 2; i++) sketch.increment('two')
  for (let i = 0; i < 40; i++) sketch.increment('hot')
  t.ok(sketch.frequency('five') >= 5, 'never less than the true count')
  t.ok(sketch.frequency('two') >= 2)
  t.equal(sketch.frequency('hot'), MAX_FREQUENCY, 'saturates at the cap')
  t.ok(sketch.frequency('two') < sketch.frequency('five'), 'keeps the order of different keys')
})

t.test('with a width fit for the keys, estimates are close to exact', async (t) => {
  const sketch = new FrequencySketch({ width: 1024, sampleSize: 1_000_000 })
  const keys = Array.from({ length: 200 }, (_, i) => `example.com/vod/t${i % 7}/720p/seg-${i}.ts`)
  keys.forEach((key, i) => { for (let n = 0; n < i % 4; n++) sketch.increment(key) })
  const exact = keys.filter((key, i) => sketch.frequency(key) === i % 4).length
  t.ok(exact >= 190, `${exact} of 200 estimates exact`)
})

t.test('after sampleSize increments every count is halved', async (t) => {
  const sketch = new FrequencySketch({ width: 64, sampleSize: 100 })
  for (let i = 0; i < 12; i++) sketch.increment('old')
  t.equal(sketch.frequency('old'), 12)
  // Saturated or not, every access moves the clock: 88 more reach the sample size.
  for (let i = 0; i < 88; i++) sketch.increment('other')
  t.equal(sketch.frequency('old'), 6, 'halved')
  t.equal(sketch.frequency('other'), 7, '15 (capped) halved')
  for (let i = 0; i < 100; i++) sketch.increment('other')
  t.equal(sketch.frequency('old'), 3, 'and again, so a key nobody asks for fades')
})
