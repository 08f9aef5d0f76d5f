/**
 * The byte meter in front of the origin, over real sockets.
 */
import t from 'tap'
import { startOrigin } from '../../../bench/origin/origin-server.ts'
import { httpGet } from '../../../bench/lib/http-get.ts'
import { startOriginMeter } from '../../../bench/lib/origin-meter.ts'

t.test('the meter relays requests and counts the bytes the origin sent', async (t) => {
  const origin = await startOrigin()
  t.teardown(() => origin.close())
  const meter = await startOriginMeter(origin.url)
  t.teardown(() => meter.close())
  t.equal(meter.bytes(), 0)
  const res = await httpGet(`${meter.url}/synthetic/meter-100000.bin`)
  t.equal(res.status, 200)
  t.equal(res.body.length, 100_000)
  t.equal(origin.count('/synthetic/meter-100000.bin'), 1)
  t.ok(meter.bytes() > 100_000 && meter.bytes() < 101_000, `body plus head: ${meter.bytes()}`)
  const ranged = await httpGet(`${meter.url}/synthetic/meter-100000.bin`, 5000, { range: 'bytes=0-99' })
  t.equal(ranged.status, 206)
  t.ok(meter.bytes() < 101_500, 'a range pulls only its bytes')
  t.equal(meter.connections(), 2)
  await t.rejects(startOriginMeter('http://localhost:1'), TypeError)
})
