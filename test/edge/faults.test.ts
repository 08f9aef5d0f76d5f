/**
 * Faults around the edge: a lying upstream (truncated body), clients that leave,
 * corrupted cache files, and a full disk. In every case no client gets a silently
 * short or corrupt response, and nothing bad is stored.
 */
import { execFileSync } from 'node:child_process'
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { startOrigin } from '../../bench/origin/origin-server.ts'
import { syntheticBody } from '../../bench/origin/synthetic-body.ts'
import { fetchRaw } from '../helpers/http-client.ts'
import { startTestNode, tempDir } from '../helpers/cache-node.ts'

async function objectFiles (cacheDir: string): Promise<string[]> {
  const out: string[] = []
  const walk = async (dir: string): Promise<void> => {
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      const p = join(dir, entry.name)
      if (entry.isDirectory()) await walk(p)
      else out.push(p)
    }
  }
  await walk(join(cacheDir, 'objects'))
  return out
}

async function waitFor (cond: () => boolean | Promise<boolean>, what: string, ms = 3000): Promise<void> {
  const until = Date.now() + ms
  while (!(await cond())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

t.test('origin truncates mid-body: every reader sees an aborted response, nothing cached, next request refetches', async (t) => {
  const origin = await startOrigin()
  t.teardown(() => origin.close())
  const edge = await startTestNode(t, { origin: origin.url })
  const size = 188 * 1395 // MPEG-TS bodies are whole 188-byte packets
  const path = `/synthetic/trunc-${size}.ts`
  // The fill lasts ~1.5 s and the other nine start once the origin has the first request, so all
  // ten share the one failing fill even on a loaded machine (at 1 MiB/s a late request could
  // arrive after the failure and start a second, healthy fill).
  origin.setFault(path, { truncateAtBytes: 100_000, bytesPerSecond: 64 * 1024, times: 1 })
  const first = fetchRaw(edge.url + path)
  await waitFor(() => origin.count(path) === 1, 'the origin to get the fill request')
  const results = await Promise.all([first, ...Array.from({ length: 9 }, () => fetchRaw(edge.url + path))])
  t.equal(origin.count(path), 1)
  for (const r of results) {
    t.ok(r.error !== undefined, 'response aborted, not ended')
    t.ok(r.body.length < size, 'short body was never presented as complete')
  }
  t.equal(edge.store.memory.count, 0, 'nothing in memory')
  t.equal(await edge.metrics.fills.value({ outcome: 'failed' }), 1)
  const again = await fetchRaw(edge.url + path)
  t.equal(again.status, 200)
  t.equal(again.error, undefined)
  t.ok(again.body.equals(syntheticBody('trunc', size, 'ts')))
  t.equal(origin.count(path), 2, 'the next request started a fresh fill')
})

t.test('origin closes a chunked body early: aborted, not stored', async (t) => {
  const origin = await startOrigin()
  t.teardown(() => origin.close())
  const edge = await startTestNode(t, { origin: origin.url })
  const path = '/synthetic/chunked-200000.bin'
  // Without Content-Length the only sign of a short body is the missing last chunk.
  origin.setFault(path, { truncateAtBytes: 50_000, headers: { 'transfer-encoding': 'chunked' }, times: 1 })
  const res = await fetchRaw(edge.url + path)
  t.ok(res.error !== undefined || res.status >= 500, 'no silently short 200')
  const again = await fetchRaw(edge.url + path)
  t.equal(again.body.length, 200_000)
  t.equal(origin.count(path), 2)
})

t.test('a client that leaves mid-fill cancels nothing: the others complete and the object is stored', async (t) => {
  const origin = await startOrigin()
  t.teardown(() => origin.close())
  const edge = await startTestNode(t, { origin: origin.url })
  const size = 188 * 2789
  const path = `/synthetic/leaver-${size}.ts`
  origin.setFault(path, { bytesPerSecond: 2 * 1024 * 1024, times: 1 })
  const leaver = fetchRaw(edge.url + path, { abortAfterBytes: 10_000 })
  await new Promise((resolve) => setTimeout(resolve, 10))
  const stayers = Array.from({ length: 3 }, () => fetchRaw(edge.url + path))
  t.ok((await leaver).error, 'the leaver left')
  for (const r of await Promise.all(stayers)) t.ok(r.body.equals(syntheticBody('leaver', size, 'ts')), 'stayer got every byte')
  const hit = await fetchRaw(edge.url + path)
  t.match(hit.headers['cache-status'], /; hit/)
  t.equal(origin.count(path), 1)
})

t.test('the first client leaving alone does not cancel the fill either', async (t) => {
  const origin = await startOrigin()
  t.teardown(() => origin.close())
  const edge = await startTestNode(t, { origin: origin.url })
  const path = '/synthetic/alone-300800.ts'
  origin.setFault(path, { bytesPerSecond: 2 * 1024 * 1024, times: 1 })
  await fetchRaw(edge.url + path, { abortAfterBytes: 1000 })
  await waitFor(() => edge.store.memory.count === 1, 'the fill to be stored')
  const hit = await fetchRaw(edge.url + path)
  t.match(hit.headers['cache-status'], /; hit/)
  t.ok(hit.body.equals(syntheticBody('alone', 300800, 'ts')))
  t.equal(origin.count(path), 1)
  t.equal(await edge.metrics.clientAborts.value({ phase: 'miss' }), 1)
})

t.test('a .ts body failing the MPEG-TS sync check is served but not stored', async (t) => {
  const origin = await startOrigin()
  t.teardown(() => origin.close())
  const edge = await startTestNode(t, { origin: origin.url })
  // A .bin synthetic body has no TS framing; serve it under a .ts name via the content type.
  const path = '/synthetic/notts-18800.bin'
  origin.setFault(path, { headers: { 'content-type': 'video/mp2t' } })
  const a = await fetchRaw(edge.url + path)
  t.equal(a.status, 200)
  t.equal(a.body.length, 18800)
  await fetchRaw(edge.url + path)
  t.equal(origin.count(path), 2, 'not stored')
  t.equal(await edge.metrics.admissionRejections.value({ reason: 'integrity' }), 2)
})

t.test('a corrupted cache file is deleted and refetched, never served', async (t) => {
  const origin = await startOrigin()
  t.teardown(() => origin.close())
  const cacheDir = await tempDir(t)
  const path = '/synthetic/corrupt-100016.ts'
  const first = await startTestNode(t, { origin: origin.url, cacheDir })
  await fetchRaw(first.url + path)
  await waitFor(() => first.store.disk.count === 1, 'the disk write')
  await first.close()
  const [file] = await objectFiles(cacheDir)
  const bytes = await readFile(file!)
  const at = bytes.length - 5_000
  bytes[at] = bytes[at]! ^ 0xff // flip one body byte
  await writeFile(file!, bytes)

  const second = await startTestNode(t, { origin: origin.url, cacheDir })
  const res = await fetchRaw(second.url + path)
  t.equal(res.status, 200)
  t.ok(res.body.equals(syntheticBody('corrupt', 100016, 'ts')), 'correct bytes, from the origin')
  t.equal(origin.count(path), 2, 'refetched')
  t.equal(await second.metrics.storeCorrupt.value(), 1, 'counted')
  // Indexed and on disk. The index alone is not the signal: in one loaded CI run it named the
  // key while no object file was in place (not reproduced alone; a cold read adopts an entry
  // before its body is checked, and the refetch's rename comes later). A lasting gap fails here.
  await waitFor(async () => second.store.disk.has(path) && (await objectFiles(cacheDir)).length === 1, 'the refetched object to be written to disk')
  const files = await objectFiles(cacheDir)
  t.equal(files.length, 1)
  t.notOk((await readFile(files[0]!)).equals(bytes), 'the corrupt file was replaced')
  second.store.memory.delete(path)
  const fromDisk = await fetchRaw(second.url + path)
  t.match(fromDisk.headers['cache-status'], /; hit/, 'the new copy serves from disk')
  t.ok(fromDisk.body.equals(syntheticBody('corrupt', 100016, 'ts')))
})

t.test('a full disk: requests are still served, the object is not stored, the error is counted', async (t) => {
  const origin = await startOrigin()
  t.teardown(() => origin.close())
  const base = await tempDir(t)
  const cacheDir = join(base, 'tiny')
  await mkdir(cacheDir)
  // A real 256 KiB file system (we run as root here and in CI).
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=256k', 'tmpfs', cacheDir])
  t.teardown(() => { execFileSync('umount', ['-l', cacheDir]) })
  const edge = await startTestNode(t, { origin: origin.url, cacheDir, memoryMaxObjectBytes: 1024 })
  const path = '/synthetic/big-600096.ts'
  const a = await fetchRaw(edge.url + path)
  t.equal(a.status, 200)
  t.ok(a.body.equals(syntheticBody('big', 600096, 'ts')), 'served in full')
  await waitFor(async () => await edge.metrics.storeWriteErrors.value({ tier: 'disk' }) === 1, 'the write error to be counted')
  const b = await fetchRaw(edge.url + path)
  t.ok(b.body.equals(syntheticBody('big', 600096, 'ts')), 'served again')
  t.equal(origin.count(path), 2, 'not stored, so fetched again')
  t.equal(edge.store.disk.count, 0)
  // The second big write fails too; only then is the disk empty again for a small object.
  await waitFor(async () => await edge.metrics.storeWriteErrors.value({ tier: 'disk' }) === 2, 'the second write error')
  const small = await fetchRaw(edge.url + '/synthetic/small-18800.ts')
  t.equal(small.status, 200)
  await waitFor(() => edge.store.disk.count === 1, 'a small object to fit on the disk that failed a big write')
})
