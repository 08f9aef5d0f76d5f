import { execFileSync, spawn } from 'node:child_process'
import { existsSync, readSync } from 'node:fs'
import type { FileHandle } from 'node:fs/promises'
import { mkdir, mkdtemp, open, readdir, rename, rm, stat, truncate, unlink, utimes, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import type { Readable } from 'node:stream'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { DiskStore } from '../../../edge/cache/disk-store.ts'
import type { DiskStoreOptions } from '../../../edge/cache/disk-store.ts'
import { encodeObjectHead, hashKey } from '../../../edge/cache/object-file.ts'
import type { ObjectMeta } from '../../../edge/cache/types.ts'
import { isCdnError } from '../../../lib/errors.ts'
import { derivedObject } from './fixtures/derived-object.ts'
import { makeObject, patternBody, readBody, runStoreContract } from './store.contract.ts'
import { flipByte } from '../../helpers/flip-byte.ts'
import { objectFiles, objectPath, openStore, recorder, ROOMY_BYTES, tempDir } from './disk-fixture.ts'

const ROOT = fileURLToPath(new URL('../../../', import.meta.url))
const WRITER = fileURLToPath(new URL('./fixtures/disk-store-writer.ts', import.meta.url))

/** Collects what a stream emits before it ends or fails; `error` is the failure, if any. */
async function drain (stream: Readable): Promise<{ bytes: number, error: unknown }> {
  let bytes = 0
  try {
    for await (const chunk of stream) bytes += (chunk as Buffer).length
    return { bytes, error: undefined }
  } catch (error) {
    return { bytes, error }
  }
}

runStoreContract(t, 'DiskStore', async (t, { maxBytes, observer }) => {
  // A small read-whole limit so the contract's large case exercises the streamed path.
  return openStore(t, { dir: await tempDir(t), maxBytes, observer, readWholeMaxBytes: 64 * 1024 })
})

t.test('options are validated once, naming the field and the value', async (t) => {
  const base = { dir: '/tmp/streamedge-never-created', maxBytes: 1024 }
  const cases: Array<[Record<string, unknown>, RegExp]> = [
    [{ dir: '' }, /options\.dir to be a non-empty string, got ''/],
    [{ maxBytes: -1 }, /options\.maxBytes to be a non-negative integer, got -1/],
    [{ maxBytes: 1.5 }, /options\.maxBytes to be a non-negative integer, got 1\.5/],
    [{ readWholeMaxBytes: Number.NaN }, /options\.readWholeMaxBytes .* got NaN/],
    [{ fsync: 'yes' }, /options\.fsync to be a boolean, got 'yes'/],
    [{ observer: 5 }, /options\.observer to be an object, got 5/],
    [{ now: 'soon' }, /options\.now to be a function/],
    [{ io: { writev: 1 } }, /options\.io\.writev to be a function, got 1/],
    [{ indexRetryDelayMs: 0 }, /options\.indexRetryDelayMs to be a positive integer, got 0/],
  ]
  for (const [override, message] of cases) {
    t.throws(() => new DiskStore({ ...base, ...override } as unknown as DiskStoreOptions), { name: 'TypeError', message })
  }
  t.throws(() => new DiskStore(null as unknown as DiskStoreOptions), { name: 'TypeError', message: /options to be an object, got null/ })
  t.ok(new DiskStore(base), 'valid options construct without touching the disk')
  t.notOk(existsSync(base.dir))
})

t.test('open creates the layout and deletes leftover temp files', async (t) => {
  const dir = await tempDir(t)
  const first = await openStore(t, { dir, maxBytes: ROOMY_BYTES })
  const kept = makeObject('example.com/kept.ts', patternBody(5000, 1))
  await first.put(kept)
  await first.close()
  // What a crash mid-write leaves behind: partial temp files (and, from older builds, anything else).
  await writeFile(join(dir, 'tmp', `${hashKey('example.com/partial.ts')}.a1b2c3`), Buffer.from('SEOBJ\0 half a file'))
  await writeFile(join(dir, 'tmp', 'stray'), 'x')
  await mkdir(join(dir, 'tmp', 'nested'))
  await writeFile(join(dir, 'tmp', 'nested', 'deep'), 'y')

  const store = await openStore(t, { dir, maxBytes: ROOMY_BYTES })
  t.strictSame(await readdir(join(dir, 'tmp')), [], 'tmp/ is empty after open')
  const found = await store.get(kept.meta.key)
  t.ok(found !== undefined && (await readBody(found)).equals(kept.body), 'committed objects survive')
  t.equal(await store.get('example.com/partial.ts'), undefined, 'a partial write is never an object')
  await t.rejects(store.open(), /only be called once/)
})

t.test('a restart keeps every object, small and streamed', async (t) => {
  const dir = await tempDir(t)
  const options = { dir, maxBytes: ROOMY_BYTES, readWholeMaxBytes: 64 * 1024 }
  const first = await openStore(t, options)
  const objects = Array.from({ length: 16 }, (_, i) => derivedObject(`example.com/restart/${i}.ts`))
  t.ok(objects.some((o) => o.body.length > 64 * 1024) && objects.some((o) => o.body.length <= 64 * 1024), 'both read paths covered')
  for (const object of objects) await first.put(object)
  const { sizeBytes, count } = first
  await first.close()

  const store = await openStore(t, options)
  t.equal(store.count, count)
  t.equal(store.sizeBytes, sizeBytes)
  let identical = 0
  for (const object of objects) {
    const found = await store.get(object.meta.key)
    if (found === undefined) continue
    t.strictSame(found.meta, object.meta)
    if ((await readBody(found)).equals(object.body)) identical++
  }
  t.equal(identical, objects.length, 'every object identical after the restart')
})

t.test('before the index is rebuilt, gets are served from disk ("cold" hits)', async (t) => {
  const dir = await tempDir(t)
  const first = await openStore(t, { dir, maxBytes: ROOMY_BYTES })
  const total = 400
  for (let i = 0; i < total; i++) await first.put(makeObject(`cold/${i}`, patternBody(64, i)))
  await first.close()

  const store = new DiskStore({ dir, maxBytes: ROOMY_BYTES })
  let ready = false
  void store.indexReady.then(() => { ready = true })
  await store.open()
  t.teardown(() => store.close())
  t.equal(store.count, 0, 'nothing indexed yet')
  const found = await store.get('cold/399')
  t.equal(ready, false, 'the get finished before the rebuild did (ordering check)')
  t.ok(found !== undefined && (await readBody(found)).equals(patternBody(64, 399)), 'served from disk')
  t.equal(store.count, 1, 'the cold hit joined the index')
  t.equal(await store.get('cold/never-stored'), undefined, 'a key with no file misses')
  // Deletes interleaved with the rebuild: some land before the rebuild reads a file, some after.
  for (let i = 0; i < total; i += 2) await store.delete(`cold/${i}`)

  await store.indexReady
  t.equal(store.count, total / 2, 'the rebuild found the rest, once each, and none of the deleted')
  let diskBytes = 0
  for (let i = 1; i < total; i += 2) diskBytes += (await stat(objectPath(dir, `cold/${i}`))).size
  t.equal(store.sizeBytes, diskBytes, 'sizeBytes is the sum of the files')
  let deletedHits = 0
  for (let i = 0; i < total; i += 2) if (await store.get(`cold/${i}`) !== undefined) deletedHits++
  t.equal(deletedHits, 0, 'deletes during the rebuild stick')
  t.ok(await store.get('cold/1'), 'objects found by the rebuild hit')
  await store.close()
  t.equal((await objectFiles(dir)).length, total / 2, 'and the deleted files are gone')
})

t.test('damaged files are deleted, reported, and never served', async (t) => {
  const victim = 'example.com/corrupt/victim.ts'
  const other = 'example.com/corrupt/other.ts'
  const bystander = 'example.com/corrupt/bystander.ts'
  const kinds: Record<string, (dir: string) => Promise<void>> = {
    'truncated file': async (dir) => {
      const path = objectPath(dir, victim)
      await truncate(path, (await stat(path)).size - 10)
    },
    'flipped body byte': async (dir) => {
      const path = objectPath(dir, victim)
      await flipByte(path, (await stat(path)).size - 100)
    },
    'flipped header byte': (dir) => flipByte(objectPath(dir, victim), 30),
    'file of another format version': async (dir) => {
      const fh = await open(objectPath(dir, victim), 'r+')
      await fh.write(Buffer.from([0, 0]), 0, 2, 6)
      await fh.close()
    },
    'file renamed onto another key': (dir) => rename(objectPath(dir, other), objectPath(dir, victim)),
  }
  for (const [kind, damage] of Object.entries(kinds)) {
    for (const mode of ['live', 'restart', 'cold'] as const) {
      t.test(`${kind}, found ${mode === 'live' ? 'by a get' : mode === 'restart' ? 'after a restart' : 'by a cold get'}`, async (t) => {
        const { events, observer } = recorder()
        const dir = await tempDir(t)
        const options = { dir, maxBytes: ROOMY_BYTES, observer }
        let store = await openStore(t, options)
        for (const key of [victim, other, bystander]) await store.put(makeObject(key, patternBody(2000, key.length)))
        if (mode !== 'live') await store.close()
        await damage(dir)
        if (mode !== 'live') store = await openStore(t, options, { ready: mode === 'restart' })

        t.equal(await store.get(victim), undefined, 'the damaged object misses')
        const found = await store.get(bystander)
        t.ok(found !== undefined && (await readBody(found)).equals(patternBody(2000, bystander.length)), 'other objects still hit')
        const renamed = kind === 'file renamed onto another key'
        if (renamed) t.equal(await store.get(other), undefined, 'the moved object misses too')
        await store.indexReady
        const reports = events.corrupt.filter((c) => c.path === objectPath(dir, victim))
        if (mode === 'cold') t.ok(reports.length >= 1, 'reported (by the get, the rebuild, or both)')
        else t.equal(reports.length, 1, 'reported once')
        t.ok(reports.every((r) => r.reason.length > 0), 'with a reason')
        t.equal(store.count, renamed ? 1 : 2, 'only the damaged object left the index')
        t.equal(await store.get(victim), undefined, 'still a miss')
        await store.close()
        t.notOk(existsSync(objectPath(dir, victim)), 'the damaged file is deleted')
        t.ok(existsSync(objectPath(dir, bystander)), 'other files are left alone')
      })
    }
  }
})

t.test('a file deleted behind the store is a plain miss', async (t) => {
  const { events, observer } = recorder()
  const dir = await tempDir(t)
  const store = await openStore(t, { dir, maxBytes: ROOMY_BYTES, observer })
  const object = makeObject('example.com/gone.ts', patternBody(100, 1))
  await store.put(object)
  await unlink(objectPath(dir, object.meta.key))
  t.equal(await store.get(object.meta.key), undefined)
  t.equal(store.count, 0)
  t.equal(store.sizeBytes, 0)
  t.strictSame(events.corrupt, [], 'not reported as corruption')
})

t.test('streamed reads of a damaged large object end in an error, never a clean end', async (t) => {
  const { events, observer } = recorder()
  const dir = await tempDir(t)
  const store = await openStore(t, { dir, maxBytes: ROOMY_BYTES, readWholeMaxBytes: 16 * 1024, observer })
  const bodyBytes = 300 * 1024
  const full = makeObject('example.com/big/full.ts', patternBody(bodyBytes, 1))
  const partial = makeObject('example.com/big/partial.ts', patternBody(bodyBytes, 2))
  for (const object of [full, partial]) {
    await store.put(object)
    const path = objectPath(dir, object.meta.key)
    await flipByte(path, (await stat(path)).size - bodyBytes + 150_000)
  }

  const big = await store.get(full.meta.key)
  t.equal(big?.body, null, 'large objects are streamed')
  if (big === undefined || big.body !== null) return
  const whole = await drain(big.createReadStream(0, bodyBytes - 1))
  t.ok(isCdnError(whole.error, 'CDN_ERR_STORE_CORRUPT'), 'the whole-body stream fails with CDN_ERR_STORE_CORRUPT')
  t.ok(whole.bytes < bodyBytes, `the last chunk was held back (${whole.bytes} of ${bodyBytes} bytes)`)
  t.equal(await store.get(full.meta.key), undefined, 'then misses')

  const ranged = await store.get(partial.meta.key)
  if (ranged === undefined || ranged.body !== null) return t.fail('expected a streamed object')
  const range = await drain(ranged.createReadStream(10, 20))
  t.ok(isCdnError(range.error, 'CDN_ERR_STORE_CORRUPT'), 'a partial range of an unverified file fails too')
  t.equal(range.bytes, 0, 'before sending a single byte')
  t.equal(await store.get(partial.meta.key), undefined, 'then misses')

  t.strictSame(events.corrupt.map((c) => c.key).sort(), [full.meta.key, partial.meta.key].sort(), 'both reported')
  t.throws(() => ranged.createReadStream(5, 4), RangeError)
  t.throws(() => ranged.createReadStream(0, bodyBytes), RangeError)
  await store.close()
  t.strictSame(await objectFiles(dir), [], 'both files deleted')
})

t.test('a streamed object replaced after lookup is not served from the new file', async (t) => {
  const { events, observer } = recorder()
  const dir = await tempDir(t)
  const store = await openStore(t, { dir, maxBytes: ROOMY_BYTES, readWholeMaxBytes: 1024, observer })
  const key = 'example.com/replaced.ts'
  await store.put(makeObject(key, patternBody(100_000, 1)))
  const old = await store.get(key)
  const replacement = makeObject(key, patternBody(100_000, 2))
  await store.put(replacement)
  if (old === undefined || old.body !== null) return t.fail('expected a streamed object')
  const result = await drain(old.createReadStream(0, 99_999))
  t.ok(isCdnError(result.error, 'CDN_ERR_STORE_CORRUPT'), 'the stale handle fails')
  t.equal(result.bytes, 0, 'without sending bytes of the other object')
  t.strictSame(events.corrupt, [], 'the new file is not reported or deleted')
  const current = await store.get(key)
  t.ok(current !== undefined && (await readBody(current)).equals(replacement.body), 'the new object is served')
})

t.test('a full disk (ENOSPC) is reported and leaves no object and no temp file', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'streamedge-enospc-'))
  let mounted = false
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=256k', 'tmpfs', dir], { stdio: 'ignore' })
    mounted = true
  } catch {
    t.comment('cannot mount a tmpfs here; injecting ENOSPC through options.io instead')
  }
  let failWrites = false
  const { events, observer } = recorder()
  const store = new DiskStore({
    dir,
    maxBytes: 64 * 1024 * 1024,
    observer,
    ...(mounted
      ? {}
      : {
          io: {
            writev: async (fh, buffers, position) => {
              if (failWrites) throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' })
              return fh.writev(buffers, position)
            },
          },
        }),
  })
  t.teardown(async () => {
    await store.close()
    if (mounted) execFileSync('umount', [dir])
    await rm(dir, { recursive: true, force: true })
  })
  await store.open()
  await store.indexReady

  const [a, b, c] = ['a', 'b', 'c'].map((name, i) => makeObject(`example.com/full/${name}.ts`, patternBody(100 * 1024, i))) as [
    ReturnType<typeof makeObject>, ReturnType<typeof makeObject>, ReturnType<typeof makeObject>,
  ]
  await store.put(a)
  await store.put(b)
  failWrites = true
  const err = await store.put(c).then(() => undefined, (err: unknown) => err)
  t.ok(isCdnError(err, 'CDN_ERR_STORE_WRITE'), 'the put rejects with CDN_ERR_STORE_WRITE')
  t.equal(((err as Error | undefined)?.cause as NodeJS.ErrnoException | undefined)?.code, 'ENOSPC', 'caused by ENOSPC')
  t.strictSame(events.writeErrors.map((e) => e.key), [c.meta.key], 'observer.onWriteError fired')
  t.equal(await store.get(c.meta.key), undefined, 'the object is absent')
  t.strictSame(await readdir(join(dir, 'tmp')), [], 'the temp file is gone')
  t.equal(store.count, 2)
  for (const object of [a, b]) {
    const found = await store.get(object.meta.key)
    t.ok(found !== undefined && (await readBody(found)).equals(object.body), 'earlier objects intact')
  }

  failWrites = false
  await store.delete(a.meta.key)
  await store.put(c)
  const found = await store.get(c.meta.key)
  t.ok(found !== undefined && (await readBody(found)).equals(c.body), 'writes work again once there is room')
})

t.test('short writes are completed and I/O errors are reported (options.io)', async (t) => {
  const { events, observer } = recorder()
  const dir = await tempDir(t)
  let fault: 'short' | 'eio' = 'short'
  let calls = 0
  const store = await openStore(t, {
    dir,
    maxBytes: ROOMY_BYTES,
    observer,
    io: {
      writev: async (fh, buffers, position) => {
        calls++
        if (fault === 'eio') throw Object.assign(new Error('EIO: i/o error, write'), { code: 'EIO' })
        const first = buffers[0] ?? Buffer.alloc(0)
        return fh.writev([first.subarray(0, 1000)], position)
      },
    },
  })
  const object = makeObject('example.com/short.ts', patternBody(10_000, 1))
  await store.put(object)
  t.ok(calls > 10, `a put made of short writes (${calls} calls)`)
  const found = await store.get(object.meta.key)
  t.ok(found !== undefined && (await readBody(found)).equals(object.body), 'and the object is intact')

  fault = 'eio'
  const failed = makeObject('example.com/eio.ts', patternBody(10_000, 2))
  await t.rejects(store.put(failed), { code: 'CDN_ERR_STORE_WRITE', cause: { code: 'EIO' } })
  t.strictSame(events.writeErrors.map((e) => e.key), [failed.meta.key])
  t.equal(await store.get(failed.meta.key), undefined)
  t.strictSame(await readdir(join(dir, 'tmp')), [], 'no temp file left')
})

t.test('concurrent puts of one key: one object wins and accounting matches the disk', async (t) => {
  const dir = await tempDir(t)
  const store = await openStore(t, { dir, maxBytes: ROOMY_BYTES })
  const key = 'example.com/race.m3u8'
  const bodies = Array.from({ length: 8 }, (_, i) => patternBody(1000 + i * 500, 100 + i))
  await Promise.all(bodies.map((body) => store.put(makeObject(key, body))))
  t.equal(store.count, 1)
  const found = await store.get(key)
  const body = found === undefined ? undefined : await readBody(found)
  t.ok(body !== undefined && bodies.some((candidate) => candidate.equals(body)), 'one of the bodies, intact')
  t.equal(store.sizeBytes, (await stat(objectPath(dir, key))).size, 'sizeBytes is the size of the file in place')
  t.equal(body?.length, found?.meta.bodyBytes, 'meta and body belong together')
  t.strictSame(await readdir(join(dir, 'tmp')), [])
  t.equal((await objectFiles(dir)).length, 1)
})

t.test('an object larger than the budget is rejected without writing', async (t) => {
  const { events, observer } = recorder()
  const dir = await tempDir(t)
  const store = await openStore(t, { dir, maxBytes: 1000, observer })
  await t.rejects(store.put(makeObject('example.com/huge.ts', patternBody(2000, 1))), {
    code: 'CDN_ERR_STORE_WRITE',
    message: /more than the disk store budget of 1000 bytes/,
  })
  t.strictSame(events.writeErrors, [], 'not an I/O failure, so not reported as one')
  t.strictSame(await objectFiles(dir), [])
  t.strictSame(await readdir(join(dir, 'tmp')), [])
  const object = makeObject('example.com/huge.ts', patternBody(10, 1))
  await t.rejects(store.put({ meta: { ...object.meta, bodyBytes: 11 }, body: object.body }), TypeError, 'meta and body disagree')
})

t.test('a rebuild over budget evicts the files with the oldest mtime first', async (t) => {
  const dir = await tempDir(t)
  // The clock runs backwards, so mtime order is the reverse of write order: the rebuild must use mtimes.
  let clockMs = 1_800_000_000_000
  const first = await openStore(t, { dir, maxBytes: ROOMY_BYTES, now: () => (clockMs -= 60_000) })
  const keys = Array.from({ length: 10 }, (_, i) => `example.com/budget/${i}.ts`)
  for (const key of keys) await first.put(makeObject(key, patternBody(2000, 1)))
  const costBytes = first.sizeBytes / keys.length
  await first.close()

  const { events, observer } = recorder()
  const maxBytes = Math.floor(costBytes * 4.5)
  const store = await openStore(t, { dir, maxBytes, observer })
  t.equal(store.count, 4, 'four fit the lowered budget')
  t.ok(store.sizeBytes <= maxBytes, 'within budget')
  t.strictSame(events.evicted, keys.slice(4).reverse(), 'the oldest by mtime went first, each reported')
  for (const key of keys.slice(0, 4)) t.ok(await store.get(key), `${key} kept`)
  await store.close()
  t.equal((await objectFiles(dir)).length, 4, 'evicted files are deleted')
})

t.test('evicted objects are gone at once, their files soon after', async (t) => {
  const dir = await tempDir(t)
  const objects = Array.from({ length: 10 }, (_, i) => makeObject(`example.com/evict/${i}.ts`, patternBody(4000, i)))
  const fileBytes = Math.max(...objects.map((o) => encodeObjectHead(o.meta, o.body).length + o.body.length))
  const maxBytes = Math.floor(fileBytes * 2.5)
  const { events, observer } = recorder()
  const store = await openStore(t, { dir, maxBytes, observer })
  for (const object of objects) {
    await store.put(object)
    t.ok(store.sizeBytes <= maxBytes, 'within budget after each put')
  }
  t.equal(store.count, 2)
  t.equal(events.evicted.length, 8)
  for (const key of events.evicted) t.equal(await store.get(key), undefined, `${key} misses`)
  await store.close()
  t.equal((await objectFiles(dir)).length, 2, 'only the indexed objects remain on disk')
})

t.test('fsync mode round-trips', async (t) => {
  const dir = await tempDir(t)
  const store = await openStore(t, { dir, maxBytes: ROOMY_BYTES, fsync: true })
  const object = makeObject('example.com/durable.ts', patternBody(3000, 1))
  await store.put(object)
  const found = await store.get(object.meta.key)
  t.ok(found !== undefined && (await readBody(found)).equals(object.body))
})

t.test('close waits for writes in flight; a closed store misses and refuses writes', async (t) => {
  const dir = await tempDir(t)
  const store = await openStore(t, { dir, maxBytes: ROOMY_BYTES })
  const object = makeObject('example.com/in-flight.ts', patternBody(500_000, 1))
  const put = store.put(object)
  await store.close()
  t.ok(existsSync(objectPath(dir, object.meta.key)), 'the write finished before close resolved')
  await put
  t.equal(await store.get(object.meta.key), undefined, 'a closed store misses')
  await t.rejects(store.put(object), { code: 'CDN_ERR_STORE_WRITE' })
  await store.close()

  const reopened = await openStore(t, { dir, maxBytes: ROOMY_BYTES })
  const found = await reopened.get(object.meta.key)
  t.ok(found !== undefined && (await readBody(found)).equals(object.body), 'and the object is there after a restart')
})

t.test('SIGKILL mid-write leaves only complete objects and no temp files', async (t) => {
  const dir = await tempDir(t)
  const child = spawn(process.execPath, ['--import', 'tsx', WRITER, dir], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] })
  t.teardown(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL') })
  let stderr = ''
  child.stderr.setEncoding('utf8').on('data', (text: string) => { stderr += text })
  const completed = new Set<number>()
  const lines = createInterface({ input: child.stdout })
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  const linesDone = new Promise<void>((resolve) => lines.once('close', () => resolve()))
  lines.on('line', (line) => {
    completed.add(Number(line))
    if (completed.size === 40) child.kill('SIGKILL')
  })
  await Promise.all([exited, linesDone])
  t.equal(child.signalCode, 'SIGKILL', `the writer was killed, not crashed${stderr === '' ? '' : `: ${stderr}`}`)
  t.ok(completed.size >= 40, `${completed.size} puts completed before the kill`)
  t.comment(`${(await readdir(join(dir, 'tmp'))).length} temp file(s) left behind by the kill`)

  const { events, observer } = recorder()
  const store = await openStore(t, { dir, maxBytes: ROOMY_BYTES, readWholeMaxBytes: 64 * 1024, observer })
  t.strictSame(await readdir(join(dir, 'tmp')), [], 'open deleted every temp file')
  // At most four puts were in flight, so no object can lie beyond the last completed index + 4.
  const lastIndex = Math.max(...completed) + 8
  const missing: number[] = []
  const wrong: number[] = []
  let present = 0
  for (let i = 0; i <= lastIndex; i++) {
    const key = `sigkill/${i}`
    const found = await store.get(key)
    if (found === undefined) {
      if (completed.has(i)) missing.push(i)
      continue
    }
    present++
    const expected = derivedObject(key)
    const body = await readBody(found)
    if (!body.equals(expected.body) || JSON.stringify(found.meta) !== JSON.stringify(expected.meta)) wrong.push(i)
  }
  t.strictSame(missing, [], 'every completed put survived')
  t.strictSame(wrong, [], 'every object present is complete and correct')
  t.equal(store.count, present, 'nothing else was indexed')
  t.strictSame(events.corrupt, [], 'no damaged file was found')
})

t.test('a delete wins over a put that started before it, at every point of the write (purge/invalidation races)', async (t) => {
  const dir = await tempDir(t)
  const store = await openStore(t, { dir, maxBytes: ROOMY_BYTES })
  for (let i = 0; i < 120; i++) {
    const key = `race/${i}`
    const writing = store.put(makeObject(key, patternBody(20_000 + i, i)))
    // Let the write get to a different stage each round (temp file, rename, commit).
    for (let j = 0; j < i % 40; j++) await new Promise((resolve) => setImmediate(resolve))
    await store.delete(key)
    await writing.catch(() => {})
    t.equal(await store.get(key), undefined, `round ${i}: gone after the delete`)
  }
  await store.close()
  const reopened = await openStore(t, { dir, maxBytes: ROOMY_BYTES })
  for (let i = 0; i < 120; i++) t.equal(await reopened.get(`race/${i}`), undefined, `round ${i}: still gone after a restart`)
})

t.test('new options are validated too', async (t) => {
  const base = { dir: '/tmp/streamedge-never-created', maxBytes: 1024 }
  const cases: Array<[Record<string, unknown>, RegExp]> = [
    [{ maxOpenFiles: -1 }, /options\.maxOpenFiles to be a non-negative integer, got -1/],
    [{ readChunkBytes: 0 }, /options\.readChunkBytes to be a positive integer, got 0/],
    [{ readBufferPoolBytes: 'lots' }, /options\.readBufferPoolBytes to be a non-negative integer, got 'lots'/],
  ]
  for (const [override, message] of cases) {
    t.throws(() => new DiskStore({ ...base, ...override } as unknown as DiskStoreOptions), { name: 'TypeError', message })
  }
})

/** A damaged object is a miss, or a stream that fails with CDN_ERR_STORE_CORRUPT and a miss after it. */
async function damageCaught (store: DiskStore, key: string): Promise<boolean> {
  const found = await store.get(key)
  if (found === undefined) return true
  const outcome = await readBody(found).then(() => undefined, (err: unknown) => err)
  return isCdnError(outcome, 'CDN_ERR_STORE_CORRUPT') && await store.get(key) === undefined
}

t.test('a file is verified once per process: trusted while inode, size and mtime hold, checked again when one changes or after a restart', async (t) => {
  const FIXED_MS = 1_700_000_000_000
  for (const shape of ['whole', 'streamed'] as const) {
    t.test(shape, async (t) => {
      const { events, observer } = recorder()
      const dir = await tempDir(t)
      const options = { dir, maxBytes: ROOMY_BYTES, readWholeMaxBytes: shape === 'whole' ? ROOMY_BYTES : 0, now: () => FIXED_MS, observer }
      let store = await openStore(t, options)
      const body = patternBody(200_000, 11)
      const key = `example.com/verify-once/${shape}.ts`
      await store.put(makeObject(key, body))
      const path = objectPath(dir, key)
      const first = await store.get(key)
      t.ok(first !== undefined && (await readBody(first)).equals(body), 'the first read verifies and serves')

      // Damage that keeps inode, size and mtime: the trusted file is not checksummed again in this process.
      await flipByte(path, (await stat(path)).size - 1000)
      await utimes(path, FIXED_MS / 1000, FIXED_MS / 1000)
      const trusted = await store.get(key)
      t.ok(trusted !== undefined, 'still a hit')
      if (trusted === undefined) return
      t.notOk((await readBody(trusted)).equals(body), 'served without a second checksum (this is what verify-once means)')
      t.strictSame(events.corrupt, [])

      // A restart forgets what was verified: the first read after it catches the damage.
      await store.close()
      store = await openStore(t, options)
      t.ok(await damageCaught(store, key), 'caught after a restart')
      t.equal(events.corrupt.length, 1, 'and reported')

      // A file that changes under a trusted entry (new mtime) is checked again at once.
      await store.put(makeObject(key, body))
      const again = await store.get(key)
      t.ok(again !== undefined && (await readBody(again)).equals(body), 'rewritten and verified')
      await flipByte(path, (await stat(path)).size - 1000)
      t.ok(await damageCaught(store, key), 'a changed mtime means a fresh check')
      t.equal(events.corrupt.length, 2, 'reported')
    })
  }
})

t.test('a cached descriptor does not outlive its file: unlinked or replaced behind the store', async (t) => {
  const { events, observer } = recorder()
  const dir = await tempDir(t)
  const store = await openStore(t, { dir, maxBytes: ROOMY_BYTES, observer })
  const gone = makeObject('example.com/fd/gone.ts', patternBody(3000, 1))
  const moved = makeObject('example.com/fd/moved.ts', patternBody(3000, 2))
  const victim = makeObject('example.com/fd/victim.ts', patternBody(3000, 3))
  for (const object of [gone, moved, victim]) {
    await store.put(object)
    t.ok(await store.get(object.meta.key), 'read once, so its file is open')
  }
  await unlink(objectPath(dir, gone.meta.key))
  t.equal(await store.get(gone.meta.key), undefined, 'unlinked: a plain miss')
  t.strictSame(events.corrupt, [], 'not reported as damage')
  await rename(objectPath(dir, moved.meta.key), objectPath(dir, victim.meta.key))
  t.equal(await store.get(victim.meta.key), undefined, 'replaced by another key\'s file: caught')
  t.equal(events.corrupt.length, 1)
  t.equal(store.count, 1, 'only the moved object is left indexed')
})

t.test('get modes: whole, stream, auto', async (t) => {
  const dir = await tempDir(t)
  const store = await openStore(t, { dir, maxBytes: ROOMY_BYTES, readWholeMaxBytes: 10_000 })
  const small = makeObject('example.com/modes/small.ts', patternBody(5000, 1))
  const large = makeObject('example.com/modes/large.ts', patternBody(50_000, 2))
  const empty = makeObject('example.com/modes/empty.ts', Buffer.alloc(0))
  for (const object of [small, large, empty]) await store.put(object)
  for (const round of ['first read', 'trusted']) {
    t.not((await store.get(small.meta.key, 'auto'))?.body, null, `${round}: auto reads small bodies whole`)
    t.equal((await store.get(large.meta.key, 'auto'))?.body, null, `${round}: auto streams large ones`)
    const whole = await store.get(large.meta.key, 'whole')
    t.ok(whole?.body?.equals(large.body), `${round}: whole reads any size whole`)
    const streamed = await store.get(small.meta.key, 'stream')
    t.ok(streamed !== undefined && streamed.body === null && (await readBody(streamed)).equals(small.body), `${round}: stream streams any size`)
    t.ok((await store.get(empty.meta.key, 'stream'))?.body?.equals(Buffer.alloc(0)), `${round}: an empty body is always whole`)
  }
})

t.test('replaceMeta: a new header over the same body, copied file to file; the body is still checked on its first read', async (t) => {
  const { events, observer } = recorder()
  const dir = await tempDir(t)
  // Small copy chunks, so the body goes over in several reads.
  const options = { dir, maxBytes: ROOMY_BYTES, readWholeMaxBytes: 0, readChunkBytes: 64 * 1024, observer }
  let store = await openStore(t, options)
  const key = 'example.com/replace-meta/seg.ts'
  const body = patternBody(300_000, 7)
  const stale = makeObject(key, body)
  await store.put(stale)
  const meta: ObjectMeta = {
    ...stale.meta,
    headers: { ...stale.meta.headers, etag: '"v1"', 'x-freshened': 'yes' },
    requestTimeMs: stale.meta.requestTimeMs + 60_000,
    responseTimeMs: stale.meta.responseTimeMs + 60_000,
  }
  t.equal(await store.replaceMeta(key, meta), true, 'rewritten')
  const got = await store.get(key, 'stream')
  t.same(got?.meta, meta, 'served with the new metadata')
  t.ok(got !== undefined && (await readBody(got)).equals(body), 'and the same body')
  t.equal(store.count, 1)
  t.equal(store.sizeBytes, (await stat(objectPath(dir, key))).size, 'accounting follows the new file')
  t.strictSame(await readdir(join(dir, 'tmp')), [], 'no temp file left')

  await store.close()
  store = await openStore(t, options)
  const reopened = await store.get(key, 'stream')
  t.same(reopened?.meta, meta, 'the new header survives a restart')
  t.ok(reopened !== undefined && (await readBody(reopened)).equals(body))

  t.equal(await store.replaceMeta('example.com/replace-meta/none.ts', { ...meta, key: 'example.com/replace-meta/none.ts' }), false, 'nothing stored: nothing written')
  await t.rejects(store.replaceMeta(key, { ...meta, bodyBytes: 1 }), TypeError, 'another body length is a caller bug')
  await t.rejects(store.replaceMeta(key, { ...meta, key: 'other' }), TypeError, 'so is another key')

  // Damage in a body not yet verified is copied as it is, under the old checksum: the first read of the new file catches it.
  await store.put(stale)
  await flipByte(objectPath(dir, key), (await stat(objectPath(dir, key))).size - 1000)
  t.equal(await store.replaceMeta(key, meta), true)
  t.ok(await damageCaught(store, key), 'damage caught after the rewrite')
  t.equal(events.corrupt.length, 1, 'and reported')
})

t.test('replaceMeta loses to a put or a delete that commits while it copies', async (t) => {
  const dir = await tempDir(t)
  let during: (() => Promise<void>) | undefined
  const io = {
    writev: async (fh: FileHandle, buffers: Buffer[], position: number) => {
      const hook = during
      during = undefined
      if (hook !== undefined) await hook()
      return await fh.writev(buffers, position)
    },
  }
  const store = await openStore(t, { dir, maxBytes: ROOMY_BYTES, readWholeMaxBytes: 0, io })
  const key = 'example.com/replace-meta/race.ts'
  const stale = makeObject(key, patternBody(100_000, 1))
  const newer = makeObject(key, patternBody(100_000, 2), { responseTimeMs: stale.meta.responseTimeMs + 5000 })
  const meta: ObjectMeta = { ...stale.meta, responseTimeMs: stale.meta.responseTimeMs + 1000 }

  await store.put(stale)
  during = async () => { await store.put(newer) }
  t.equal(await store.replaceMeta(key, meta), false, 'a put committed first')
  const got = await store.get(key)
  t.same(got?.meta, newer.meta, 'the newer object stays')
  t.ok(got !== undefined && (await readBody(got)).equals(newer.body))

  during = async () => { await store.delete(key) }
  t.equal(await store.replaceMeta(key, { ...newer.meta, responseTimeMs: newer.meta.responseTimeMs + 1000 }), false, 'a delete committed first')
  t.equal(await store.get(key), undefined, 'the deleted object does not come back')
  t.strictSame(await objectFiles(dir), [], 'no object file')
  t.strictSame(await readdir(join(dir, 'tmp')), [], 'no temp file')
  t.equal(store.sizeBytes, 0)
})

t.test('lendFile: only a checked file of the same version, open now; never waits', async (t) => {
  const dir = await tempDir(t)
  const { events, observer } = recorder()
  const store = await openStore(t, { dir, maxBytes: ROOMY_BYTES, observer })
  const key = 'example.com/lend/seg.ts'
  const object = makeObject(key, patternBody(300_000, 9))
  await store.put(object)
  t.equal(store.lendFile(key, object.meta), undefined, 'a file this process wrote but never read is not lent yet')
  // the refusal started a check in the background
  let lent = store.lendFile(key, object.meta)
  for (let i = 0; lent === undefined && i < 200; i++) {
    await new Promise((resolve) => setTimeout(resolve, 5))
    lent = store.lendFile(key, object.meta)
  }
  if (lent === undefined) throw new Error('never lent')
  const bytes = Buffer.alloc(object.body.length)
  t.equal(readSync(lent.file.fd, bytes, 0, bytes.length, lent.bodyOffset), bytes.length)
  store.returnFile(lent)
  t.ok(bytes.equals(object.body), 'the descriptor at bodyOffset holds exactly the body')

  t.equal(store.lendFile(key, { ...object.meta, responseTimeMs: object.meta.responseTimeMs + 1 }), undefined, 'another version of the key: not lent')
  t.equal(store.lendFile('example.com/lend/other.ts', object.meta), undefined, 'an unknown key: not lent')

  await flipByte(objectPath(dir, key), (await stat(objectPath(dir, key))).size - 10)
  t.equal(store.lendFile(key, object.meta), undefined, 'written to behind the store (mtime): not lent')
  t.equal(events.corrupt.length, 0, 'a lend does not judge the file: the next read does')

  await store.delete(key)
  t.equal(store.lendFile(key, object.meta), undefined, 'deleted: not lent')
})

t.test('lendFile: a damaged file found by the background check is reported and removed, never lent', async (t) => {
  const dir = await tempDir(t)
  const { events, observer } = recorder()
  const store = await openStore(t, { dir, maxBytes: ROOMY_BYTES, observer })
  const key = 'example.com/lend/damaged.ts'
  const object = makeObject(key, patternBody(200_000, 4))
  await store.put(object)
  await flipByte(objectPath(dir, key), (await stat(objectPath(dir, key))).size - 100)
  t.equal(store.lendFile(key, object.meta), undefined)
  for (let i = 0; events.corrupt.length === 0 && i < 200; i++) await new Promise((resolve) => setTimeout(resolve, 5))
  t.match(events.corrupt, [{ reason: 'body checksum mismatch', key }], 'the check caught it')
  t.equal(store.lendFile(key, object.meta), undefined)
  t.equal(await store.get(key), undefined, 'and it is gone')
})
