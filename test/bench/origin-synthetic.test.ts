import t from 'tap'
import { crc32Mpeg, MAX_SYNTHETIC_BYTES, parseSyntheticPath, syntheticBody, SyntheticStore } from '../../bench/origin/synthetic-body.ts'
import { inspectTransportStream } from '../helpers/origin-media.ts'
import { originRequest, startTestOrigin } from '../helpers/origin-fixture.ts'

t.test('syntheticBody is deterministic and differs by name, size and extension', async (t) => {
  const a = syntheticBody('seg', 10_000, 'bin')
  t.equal(a.length, 10_000)
  t.ok(a.equals(syntheticBody('seg', 10_000, 'bin')), 'same inputs, same bytes')
  t.ok(a.equals(syntheticBody('seg', 10_000, '.bin')), 'a leading dot on ext is accepted')
  t.notOk(a.equals(syntheticBody('seh', 10_000, 'bin')), 'another name, other bytes')
  t.notOk(a.subarray(0, 5000).equals(syntheticBody('seg', 5000, 'bin')), 'another size is not a prefix of this one')
  t.notOk(a.equals(syntheticBody('seg', 10_000, 'dat')))
  const distinct = new Set(a.subarray(0, 4096)).size
  t.ok(distinct > 200, `bytes look random (${distinct} distinct values in 4 KiB)`)
  t.equal(syntheticBody('empty', 0, 'ts').length, 0)
  t.throws(() => syntheticBody('x', -1, 'bin'), TypeError)
  t.throws(() => syntheticBody('x', MAX_SYNTHETIC_BYTES + 1, 'bin'), TypeError)
  t.throws(() => syntheticBody('x/y', 1, 'bin'), TypeError)
  t.throws(() => syntheticBody('x', 1, 'b-n'), TypeError)
})

t.test('synthetic .ts bodies have MPEG-TS framing with PAT and PMT', async (t) => {
  const body = syntheticBody('frame', 188 * 200 + 50, 'ts')
  const info = inspectTransportStream(body)
  t.equal(info.packets, 201)
  t.same(info.badSyncOffsets, [], 'sync byte 0x47 every 188 bytes, including the partial last packet')
  t.ok(info.hasPat)
  t.same(info.pmtPids, [0x1000])
  t.same(info.streamTypes, [0x06], 'one private data stream')
  // The PAT for tsid 1 / program 1 / PMT PID 0x1000 is the well-known ffmpeg one, CRC 0x2AB104B2.
  t.equal(body.subarray(0, 21).toString('hex'), '474000100000b00d0001c100000001f0002ab104b2')
  t.equal(crc32Mpeg(body.subarray(5, 17)), 0x2ab104b2)
  const counters = [2, 3, 4, 19].map((packet) => (body[packet * 188 + 3] ?? 0) & 0x0f)
  t.same(counters, [0, 1, 2, 1], 'continuity counter runs on the data PID')
  t.ok(body.subarray(188 * 2 + 4, 188 * 3).some((byte) => byte !== 0xff), 'payload is not padding')
  t.notOk(body.subarray(188 * 2 + 4, 188 * 3).equals(syntheticBody('framf', 188 * 200 + 50, 'ts').subarray(188 * 2 + 4, 188 * 3)), 'payload depends on the name')
})

t.test('parseSyntheticPath', async (t) => {
  t.same(parseSyntheticPath('/synthetic/seg-2097152.ts'), { name: 'seg', bytes: 2097152, ext: 'ts' })
  t.same(parseSyntheticPath('/synthetic/my-seg-1-20.bin'), { name: 'my-seg-1', bytes: 20, ext: 'bin' })
  t.equal(parseSyntheticPath('/synthetic/seg.ts'), undefined)
  t.equal(parseSyntheticPath('/synthetic/a/b-1.ts'), undefined)
  t.equal(parseSyntheticPath(`/synthetic/big-${MAX_SYNTHETIC_BYTES + 1}.ts`), undefined)
})

t.test('SyntheticStore keeps bodies within its byte budget, least recently used out', async (t) => {
  const store = new SyntheticStore(25_000)
  const body = (path: string): Buffer => store.lookup(path)?.body() ?? Buffer.alloc(0)
  const a = body('/synthetic/a-10000.bin')
  body('/synthetic/b-10000.bin')
  t.equal(store.bytes, 20_000)
  t.equal(body('/synthetic/a-10000.bin'), a, 'a hit returns the same buffer')
  body('/synthetic/c-10000.bin')
  t.equal(store.bytes, 20_000, 'b was evicted, a was used more recently')
  t.equal(body('/synthetic/a-10000.bin'), a)
  body('/synthetic/huge-30000.bin')
  t.equal(store.bytes, 20_000, 'a body over the budget is not kept')
  t.equal(store.lookup('/synthetic/nope'), undefined)
})

t.test('synthetic route serves the same bytes with stable validators', async (t) => {
  const origin = await startTestOrigin(t)
  const size = 2 * 1024 * 1024
  const path = `/synthetic/seg-${size}.ts`
  const res = await originRequest(origin.url + path)
  t.equal(res.status, 200)
  t.equal(res.headers['content-type'], 'video/mp2t')
  t.equal(res.headers['cache-control'], 'public, max-age=3600')
  t.equal(res.headers['content-length'], String(size))
  t.match(res.headers.etag, /^"[A-Za-z0-9_-]{22}"$/)
  t.equal(res.headers['last-modified'], 'Mon, 01 Jan 2024 00:00:00 GMT')
  t.ok(res.body.equals(syntheticBody('seg', size, 'ts')))

  const other = await startTestOrigin(t)
  const again = await originRequest(other.url + path)
  t.equal(again.headers.etag, res.headers.etag, 'another origin process gives the same validator')
  t.not((await originRequest(origin.url + '/synthetic/seh-2097152.ts')).headers.etag, res.headers.etag)

  const ranged = await originRequest(origin.url + path, { headers: { range: 'bytes=1000000-1000187' } })
  t.equal(ranged.status, 206)
  t.ok(ranged.body.equals(syntheticBody('seg', size, 'ts').subarray(1_000_000, 1_000_188)))
  t.equal((await originRequest(origin.url + path, { headers: { 'if-none-match': res.headers.etag ?? '' } })).status, 304)
  t.equal((await originRequest(origin.url + '/synthetic/x-1.bin')).headers['content-type'], 'application/octet-stream')
  t.equal((await originRequest(origin.url + `/synthetic/too-big-${MAX_SYNTHETIC_BYTES + 1}.bin`)).status, 404)
})
