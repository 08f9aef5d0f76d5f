/**
 * Adversarial cases for the disk tier's durability promises (design §3 "Disk durability"):
 * races between the background index rebuild and purges or cold hits, disk hits promoted
 * to memory while a purge or a newer fill lands, purge journals on a full disk, read-only
 * cache directories after a crash, foreign files, odd keys, two stores on one directory,
 * and readers that outlive the file they stream. Each case uses real files in temp dirs
 * (tmpfs and read-only bind mounts where the box allows mounting; skipped otherwise).
 */
import fs from 'node:fs'
import { execFileSync, spawn, spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdir, open, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises'
import { syncBuiltinESMExports } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import t from 'tap'
import { LOCK_FILE } from '../../../edge/cache/dir-lock.ts'
import { DiskStore } from '../../../edge/cache/disk-store.ts'
import { MemoryStore } from '../../../edge/cache/memory-store.ts'
import { TieredStore } from '../../../edge/cache/tiered-store.ts'
import { encodeObjectHead, hashKey, objectRelativePath } from '../../../edge/cache/object-file.ts'
import { PurgeJournal, ruleCovers, type PurgeRule } from '../../../edge/cache/purge-journal.ts'
import type { ObjectMeta } from '../../../edge/cache/types.ts'
import { makeObject, patternBody, readBody } from './store.contract.ts'
import type { Tap } from './store.contract.ts'
import { startTestNode } from '../../helpers/cache-node.ts'
import { objectFiles, objectPath, openStore, recorder, ROOMY_BYTES, tempDir } from './disk-fixture.ts'


/** Mounts a tmpfs of `sizeBytes` on a fresh temp dir, or returns undefined where mounting is not allowed. */
function mountTmpfs (t: Tap, sizeBytes: number): string | undefined {
  const dir = fs.mkdtempSync(join(tmpdir(), 'streamedge-disk-adv-fs-'))
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${sizeBytes}`, 'tmpfs', dir], { stdio: 'ignore' })
  } catch {
    fs.rmSync(dir, { recursive: true, force: true })
    return undefined
  }
  t.teardown(() => {
    execFileSync('umount', [dir])
    fs.rmSync(dir, { recursive: true, force: true })
  })
  return dir
}

/** A read-only view of `dir` (a read-only bind mount), or undefined where mounting is not allowed. */
function readOnlyView (t: Tap, dir: string): string | undefined {
  const view = fs.mkdtempSync(join(tmpdir(), 'streamedge-disk-adv-ro-'))
  try {
    execFileSync('mount', ['--bind', dir, view], { stdio: 'ignore' })
  } catch {
    fs.rmSync(view, { recursive: true, force: true })
    return undefined
  }
  t.teardown(() => {
    execFileSync('umount', [view])
    fs.rmSync(view, { recursive: true, force: true })
  })
  try {
    execFileSync('mount', ['-o', 'remount,ro,bind', view], { stdio: 'ignore' })
  } catch {
    return undefined
  }
  return view
}

/**
 * Holds back the callbacks of `fs.read` (the descriptor reads of cold hits; the rebuild
 * reads through FileHandles) until `gate` settles, so a test can order a lookup after
 * the rebuild without depending on timing.
 */
function holdFdReads (t: Tap, gate: Promise<unknown>): Promise<void> {
  const original = fs.read
  let issued = (): void => {}
  const firstRead = new Promise<void>((resolve) => { issued = resolve })
  const held = ((...args: unknown[]) => {
    issued()
    const callback = args.pop() as (...result: unknown[]) => void
    return (original as (...a: unknown[]) => void)(...args, (...result: unknown[]) => {
      void gate.then(() => callback(...result), () => callback(...result))
    })
  }) as typeof fs.read
  fs.read = held
  syncBuiltinESMExports()
  const restore = (): void => {
    if (fs.read !== held) return
    fs.read = original
    syncBuiltinESMExports()
  }
  void gate.then(restore, restore)
  t.teardown(restore)
  return firstRead
}

t.test('a purge recorded after the rebuild read a file, but before the index was merged, still holds', async (t) => {
  const dir = await tempDir(t)
  const first = await openStore(t, { dir, maxBytes: ROOMY_BYTES })
  const keys = ['example.com/vod/a/seg-1.ts', 'example.com/vod/a/seg-2.ts', 'example.com/vod/b/seg-1.ts']
  for (const [i, key] of keys.entries()) await first.put(makeObject(key, patternBody(3000, i)))
  await first.close()

  // The journal as the cache node wires it: the store asks isPurged about every file it finds.
  const rules: PurgeRule[] = []
  const isPurgedByRules = (meta: ObjectMeta): boolean => rules.some((r) => r.t > meta.requestTimeMs && ruleCovers(r, meta.key))
  let store: DiskStore | undefined
  let purged = false
  const isPurged = (meta: ObjectMeta): boolean => {
    const answer = isPurgedByRules(meta)
    if (!purged && store !== undefined && meta.key === keys[0]) {
      // The purge lands right after the rebuild read this file: recorded, then applied to what
      // the store lists (as the proxy's prefix purge does), while the rebuild still runs.
      purged = true
      rules.push({ t: Date.now(), kind: 'prefix', value: 'example.com/vod/a/' })
      for (const key of [...store.keys(), ...store.pendingKeys()]) if (key.startsWith('example.com/vod/a/')) void store.delete(key)
    }
    return answer
  }
  store = new DiskStore({ dir, maxBytes: ROOMY_BYTES, isPurged })
  t.teardown(() => store?.close())
  await store.open()
  await store.indexReady
  t.ok(purged, 'the purge landed during the rebuild')
  for (const key of keys.slice(0, 2)) t.equal(await store.get(key), undefined, `${key} is purged`)
  t.ok(await store.get(keys[2]!), 'objects the purge does not cover stay')
  t.equal(store.count, 1, 'only the uncovered object is indexed')
  await store.close()
  t.equal((await objectFiles(dir)).length, 1, 'the purged files are deleted')
})

t.test('a streamed cold hit that straddles the end of the rebuild can still be read', async (t) => {
  const dir = await tempDir(t)
  const options = { dir, maxBytes: ROOMY_BYTES, readWholeMaxBytes: 0 }
  const first = await openStore(t, options)
  const object = makeObject('example.com/vod/cold/seg-1.ts', patternBody(200_000, 5))
  await first.put(object)
  await first.close()

  const store = new DiskStore(options)
  await store.open()
  t.teardown(() => store.close())
  // The cold lookup's header read completes only after the rebuild has merged its index.
  holdFdReads(t, store.indexReady)
  const found = await store.get(object.meta.key, 'stream')
  t.equal(store.count, 1, 'the rebuild finished during the lookup')
  t.ok(found !== undefined && found.body === null, 'a streamed hit')
  if (found === undefined) return
  const body = await readBody(found).catch((err: unknown) => err)
  t.ok(Buffer.isBuffer(body) && body.equals(object.body), `the body streams (got ${Buffer.isBuffer(body) ? `${body.length} bytes` : String(body)})`)
})

t.test('a purge that failed half-written on a full disk does not swallow the next one', async (t) => {
  const mount = mountTmpfs(t, 4 * 4096)
  if (mount === undefined) return t.plan(0, 'cannot mount a tmpfs here')
  const path = join(mount, 'purge-journal.jsonl')
  const journal = await PurgeJournal.open(path)
  const first: PurgeRule = { t: 1000, kind: 'url', value: 'example.com/vod/first.ts' }
  await journal.record(first)
  // Fill the rest of the file system, so the next record only fits in the journal's last page.
  const filler = await open(join(mount, 'filler'), 'w')
  const page = Buffer.alloc(4096, 1)
  for (;;) {
    const written = await filler.write(page).then((r) => r.bytesWritten, () => 0)
    if (written < page.length) break
  }
  await filler.close()
  const large: PurgeRule = { t: 2000, kind: 'prefix', value: `example.com/vod/${'x'.repeat(6000)}/` }
  await t.rejects(journal.record(large), { code: 'ENOSPC' }, 'the purge is refused')
  const torn = await readFile(path, 'utf8')
  t.ok(torn.length > JSON.stringify(first).length + 1, `part of it was written (${torn.length} bytes)`)

  await rm(join(mount, 'filler'))
  const second: PurgeRule = { t: 3000, kind: 'url', value: 'example.com/vod/second.ts' }
  await journal.record(second)
  const reopened = await PurgeJournal.open(path)
  t.strictSame(reopened.rules, [first, second], 'the acknowledged purges survive a restart')
})

t.test('a read-only cache directory with crash leftovers still opens and serves; writes fail with a clear error', async (t) => {
  const dir = await tempDir(t)
  const first = await openStore(t, { dir, maxBytes: ROOMY_BYTES, readWholeMaxBytes: 0 })
  const kept = makeObject('example.com/vod/ro/seg-1.ts', patternBody(100_000, 1))
  await first.put(kept)
  await first.close()
  // A crash between write and rename left a temp file; then the file system went read-only (errors=remount-ro).
  await writeFile(join(dir, 'tmp', `${hashKey('example.com/vod/ro/seg-2.ts')}.0badc0ffee00`), Buffer.from('SEOBJ\0 half'))
  // And the purge journal's last append was torn by the same crash.
  const journalPath = join(dir, 'purge-journal.jsonl')
  const purge: PurgeRule = { t: 1000, kind: 'url', value: 'example.com/vod/ro/gone.ts' }
  await writeFile(journalPath, JSON.stringify(purge) + '\n{"t":2000,"kind":"pre')
  const view = readOnlyView(t, dir)
  if (view === undefined) return t.plan(0, 'cannot make a read-only bind mount here')

  const journal = await PurgeJournal.open(join(view, 'purge-journal.jsonl'))
  t.strictSame(journal.rules, [purge], 'the purge journal opens with its complete lines')
  await t.rejects(journal.record({ t: 3000, kind: 'url', value: 'example.com/vod/ro/x.ts' }), { code: 'EROFS' }, 'a new purge is refused, not lost silently')

  const { events, observer } = recorder()
  const store = await openStore(t, { dir: view, maxBytes: ROOMY_BYTES, readWholeMaxBytes: 0, observer })
  const found = await store.get(kept.meta.key)
  t.ok(found !== undefined && (await readBody(found)).equals(kept.body), 'committed objects are served')
  const fresh = makeObject('example.com/vod/ro/seg-3.ts', patternBody(1000, 3))
  await t.rejects(store.put(fresh), { code: 'CDN_ERR_STORE_WRITE', cause: { code: 'EROFS' } }, 'a write fails with CDN_ERR_STORE_WRITE caused by EROFS')
  t.strictSame(events.writeErrors.map((e) => e.key), [fresh.meta.key], 'and is reported')
  t.equal(store.count, 1, 'nothing else was lost')
})

t.test('foreign, zero-length, truncated and misplaced files in the cache dir are never served; real objects are kept', async (t) => {
  const good = Array.from({ length: 3 }, (_, i) => makeObject(`example.com/vod/foreign/good-${i}.ts`, patternBody(2500, i)))
  const victims = {
    zeroLength: 'example.com/vod/foreign/zero.ts',
    prefixOnly: 'example.com/vod/foreign/prefix-only.ts',
    headOnly: 'example.com/vod/foreign/head-only.ts',
    randomBytes: 'example.com/vod/foreign/random.ts',
    otherKeysHeader: 'example.com/vod/foreign/other-key.ts',
    longerThanHeaderSays: 'example.com/vod/foreign/longer.ts',
  }
  const plant = async (dir: string): Promise<void> => {
    const place = async (key: string, bytes: Buffer): Promise<void> => {
      const path = objectPath(dir, key)
      await mkdir(join(path, '..'), { recursive: true })
      await writeFile(path, bytes)
    }
    const sample = makeObject(victims.headOnly, patternBody(4000, 9))
    const head = encodeObjectHead(sample.meta, sample.body)
    await place(victims.zeroLength, Buffer.alloc(0))
    await place(victims.prefixOnly, head.subarray(0, 12))
    await place(victims.headOnly, head)
    await place(victims.randomBytes, patternBody(5000, 77))
    const other = makeObject('example.com/vod/foreign/elsewhere.ts', patternBody(100, 1))
    await place(victims.otherKeysHeader, Buffer.concat([encodeObjectHead(other.meta, other.body), other.body]))
    const longer = makeObject(victims.longerThanHeaderSays, patternBody(100, 2))
    await place(victims.longerThanHeaderSays, Buffer.concat([encodeObjectHead(longer.meta, longer.body), longer.body, Buffer.from('trailing')]))
    // Names the store never writes: a stray file in objects/, a non-hex name, a file in the wrong directory.
    await writeFile(join(dir, 'objects', 'README'), 'not an object')
    await mkdir(join(dir, 'objects', 'ab', 'cd'), { recursive: true })
    await writeFile(join(dir, 'objects', 'ab', 'cd', 'notes.txt'), 'x')
    const misplacedHash = hashKey(good[0]!.meta.key)
    await writeFile(join(dir, 'objects', 'ab', 'cd', misplacedHash), await readFile(objectPath(dir, good[0]!.meta.key)))
  }
  for (const mode of ['cold', 'restart'] as const) {
    t.test(mode === 'cold' ? 'found by cold gets' : 'found by the rebuild', async (t) => {
      const { events, observer } = recorder()
      const dir = await tempDir(t)
      const first = await openStore(t, { dir, maxBytes: ROOMY_BYTES })
      for (const object of good) await first.put(object)
      await first.close()
      await plant(dir)
      const store = await openStore(t, { dir, maxBytes: ROOMY_BYTES, observer }, { ready: mode === 'restart' })
      for (const [name, key] of Object.entries(victims)) t.equal(await store.get(key), undefined, `${name}: a miss`)
      await store.indexReady
      for (const object of good) {
        const found = await store.get(object.meta.key)
        t.ok(found !== undefined && (await readBody(found)).equals(object.body), `${object.meta.key} still served`)
      }
      t.equal(store.count, good.length, 'only the real objects are indexed')
      await store.close()
      for (const [name, key] of Object.entries(victims)) t.notOk(existsSync(objectPath(dir, key)), `${name}: deleted`)
      t.notOk(existsSync(join(dir, 'objects', 'ab', 'cd', 'notes.txt')), 'stray names are deleted')
      t.notOk(existsSync(join(dir, 'objects', 'ab', 'cd', hashKey(good[0]!.meta.key))), 'misplaced copies are deleted')
      t.ok(events.corrupt.length >= Object.keys(victims).length, 'each damaged file reported')
      t.strictSame((await objectFiles(dir)).length, good.length, 'what is left on disk is what is indexed')
    })
  }
})

t.test('keys with odd bytes round-trip, live, cold and after a rebuild, and stay inside objects/', async (t) => {
  const keys = [
    'example.com/' + 'a'.repeat(100_000) + '.ts',
    'example.com/vod/日本語/séance/🎬.ts?q=ü',
    'example.com/../../../etc/passwd',
    '../../escape',
    '/',
    'example.com/nul\u0000byte/and\nnewline\r\t"quote"\\backslash',
    'example.com/latin1/\u00ff\u00fe\u0080',
    '',
  ]
  const dir = await tempDir(t)
  const options = { dir, maxBytes: ROOMY_BYTES, readWholeMaxBytes: 1000 }
  const first = await openStore(t, options)
  const objects = keys.map((key, i) => makeObject(key, patternBody(i % 2 === 0 ? 500 : 5000, i)))
  for (const object of objects) await first.put(object)
  for (const object of objects) {
    const found = await first.get(object.meta.key)
    t.ok(found !== undefined && found.meta.key === object.meta.key && (await readBody(found)).equals(object.body), `live: ${JSON.stringify(object.meta.key.slice(0, 40))}`)
  }
  await first.close()
  t.equal((await objectFiles(dir)).length, keys.length, 'one file per key, all under objects/')
  t.strictSame((await readdir(dir)).sort(), ['objects', 'tmp'], 'nothing escaped the store directory')

  for (const ready of [false, true]) {
    const store = await openStore(t, options, { ready })
    for (const object of objects) {
      const found = await store.get(object.meta.key)
      t.ok(found !== undefined && found.meta.key === object.meta.key && (await readBody(found)).equals(object.body), `${ready ? 'rebuilt' : 'cold'}: ${JSON.stringify(object.meta.key.slice(0, 40))}`)
    }
    await store.indexReady
    t.equal(store.count, keys.length)
    await store.close()
  }
})

t.test('a reader streaming an object while it is evicted, purged or overwritten gets the old bytes or an error, never a mix', async (t) => {
  const bodyBytes = 600_000
  for (const event of ['evicted', 'purged', 'overwritten'] as const) {
    for (const trusted of [false, true]) {
      for (const api of ['createReadStream', 'writeTo'] as const) {
        t.test(`${event}, ${trusted ? 'trusted' : 'first read'}, ${api}`, async (t) => {
          const dir = await tempDir(t)
          const object = makeObject('example.com/vod/mid/seg.ts', patternBody(bodyBytes, 1))
          const fileBytes = encodeObjectHead(object.meta, object.body).length + bodyBytes
          // Room for one object: any other put evicts it.
          const store = await openStore(t, { dir, maxBytes: Math.floor(fileBytes * 1.5), readWholeMaxBytes: 0, readChunkBytes: 64 * 1024 })
          await store.put(object)
          if (trusted) await readBody((await store.get(object.meta.key))!)
          const found = await store.get(object.meta.key)
          if (found === undefined || found.body !== null) return t.fail('expected a streamed hit')
          const chunks: Buffer[] = []
          let act: (() => Promise<void>) | undefined = async () => {
            if (event === 'evicted') await store.put(makeObject('example.com/vod/mid/other.ts', patternBody(bodyBytes, 2)))
            if (event === 'purged') await store.delete(object.meta.key)
            if (event === 'overwritten') await store.put(makeObject(object.meta.key, patternBody(bodyBytes, 3)))
            t.equal(store.has(object.meta.key), event === 'overwritten', 'the event happened mid-stream')
          }
          const error = await new Promise<unknown>((resolve) => {
            const sink = new Writable({
              write (chunk: Buffer, _encoding, callback) {
                chunks.push(Buffer.from(chunk))
                const now = act
                act = undefined
                if (now === undefined) return callback()
                now().then(() => callback(), callback)
              },
            })
            if (api === 'writeTo') {
              found.writeTo(sink, 0, bodyBytes - 1, (err) => resolve(err))
            } else {
              const stream = found.createReadStream(0, bodyBytes - 1)
              stream.on('error', resolve)
              sink.on('finish', () => resolve(undefined))
              stream.pipe(sink)
            }
          })
          const got = Buffer.concat(chunks)
          if (error === undefined) t.ok(got.equals(object.body), 'completed with exactly the old bytes')
          else t.ok(object.body.subarray(0, got.length).equals(got), `failed (${String(error)}) after a prefix of the old bytes`)
          t.equal(act, undefined, 'the event ran while the reader was mid-body')
        })
      }
    }
  }
})

t.test('two stores on one directory: the second is refused while the first is open, so it never deletes the first one\'s temp files; a stale lock is taken over', async (t) => {
  const dir = await tempDir(t)
  let during: (() => Promise<void>) | undefined
  const a = await openStore(t, {
    dir,
    maxBytes: ROOMY_BYTES,
    io: {
      writev: async (fh, buffers, position) => {
        const hook = during
        during = undefined
        if (hook !== undefined) await hook()
        return await fh.writev(buffers, position)
      },
    },
  })
  const kept = makeObject('example.com/vod/two/kept.ts', patternBody(5000, 1))
  await a.put(kept)
  let refused: unknown
  during = async () => {
    const b = new DiskStore({ dir, maxBytes: ROOMY_BYTES })
    await b.open().catch((err: unknown) => { refused = err })
  }
  const written = makeObject('example.com/vod/two/written.ts', patternBody(5000, 2))
  await a.put(written)
  t.match(refused, { code: 'CDN_ERR_CONFIG_INVALID', message: /Cache directory .* is in use by another store of this process .*lock\): give each node its own directory/ }, 'the second store refuses to open, naming the lock')
  const found = await a.get(written.meta.key)
  t.ok(found !== undefined && (await readBody(found)).equals(written.body), 'the write it would have broken landed')
  await a.close()
  const c = await openStore(t, { dir, maxBytes: ROOMY_BYTES })
  const again = await c.get(kept.meta.key)
  t.ok(again !== undefined && (await readBody(again)).equals(kept.body), 'once the first closed, the directory opens again')
  await c.close()
  // a lock left by a process that is gone (a crash): taken over
  const gone = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' })
  await writeFile(join(dir, LOCK_FILE), `${gone.stdout}\n`)
  const d = await openStore(t, { dir, maxBytes: ROOMY_BYTES })
  t.ok(await d.get(kept.meta.key) !== undefined, 'a stale lock does not keep the node down')
  const mine = (await readFile(join(dir, LOCK_FILE), 'utf8')).trim()
  t.match(mine, new RegExp(`^${process.pid}( |$)`), 'and is ours now')
  await d.close()
  // a restarted container gets the same pid as the node that crashed: the lock names it, but not us
  await writeFile(join(dir, LOCK_FILE), `${process.pid} 00000000-0000-0000-0000-000000000000 1\n`)
  const e = await openStore(t, { dir, maxBytes: ROOMY_BYTES })
  t.pass('a lock naming our pid from an earlier life is taken over')
  await e.close()
  // a live process that is the owner is respected; the same pid with another start time is not
  const sleeper = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore' })
  t.teardown(() => { sleeper.kill('SIGKILL') })
  await new Promise((resolve) => sleeper.once('spawn', resolve))
  const stat = await readFile(`/proc/${sleeper.pid}/stat`, 'utf8').catch(() => undefined)
  const bootId = await readFile('/proc/sys/kernel/random/boot_id', 'utf8').catch(() => undefined)
  if (stat !== undefined && bootId !== undefined) {
    const startTime = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]
    await writeFile(join(dir, LOCK_FILE), `${sleeper.pid} ${bootId.trim()} ${startTime}\n`)
    await t.rejects(new DiskStore({ dir, maxBytes: ROOMY_BYTES }).open(), { code: 'CDN_ERR_CONFIG_INVALID', message: new RegExp(`in use by process ${sleeper.pid} `) }, 'a live owner keeps its directory')
    await writeFile(join(dir, LOCK_FILE), `${sleeper.pid} ${bootId.trim()} 1\n`)
    const f = await openStore(t, { dir, maxBytes: ROOMY_BYTES })
    t.pass('its pid with another start time is some other process: taken over')
    await f.close()
  }
})

t.test('concurrent puts of one key and others under a tight budget: the bound holds and accounting matches the disk', async (t) => {
  const dir = await tempDir(t)
  const sample = makeObject('example.com/vod/tight/x.ts', patternBody(10_000, 1))
  const fileBytes = encodeObjectHead(sample.meta, sample.body).length + sample.body.length
  const maxBytes = fileBytes * 3
  const store = await openStore(t, { dir, maxBytes })
  const puts: Array<Promise<void>> = []
  for (let i = 0; i < 24; i++) {
    const key = i % 3 === 0 ? 'example.com/vod/tight/same.ts' : `example.com/vod/tight/${i}.ts`
    puts.push(store.put(makeObject(key, patternBody(8_000 + (i % 5) * 500, i))))
  }
  await Promise.allSettled(puts)
  await store.close()
  let onDisk = 0
  for (const name of await objectFiles(dir)) onDisk += (await stat(join(dir, 'objects', name))).size
  t.ok(store.sizeBytes <= maxBytes, `within budget (${store.sizeBytes} <= ${maxBytes})`)
  t.equal(onDisk, store.sizeBytes, 'sizeBytes is the sum of the files on disk')
  t.equal((await objectFiles(dir)).length, store.count, 'one file per indexed object')
})

t.test('a disk hit read while the object is purged or replaced is not promoted over the purge or the newer object', async (t) => {
  for (const event of ['purged', 'replaced'] as const) {
    for (const indexed of [true, false]) {
      t.test(`${event}, ${indexed ? 'indexed' : 'cold hit'}`, async (t) => {
        const dir = await tempDir(t)
        const key = 'example.com/vod/promote/seg.ts'
        const old = makeObject(key, patternBody(20_000, 1))
        if (!indexed) {
          const first = await openStore(t, { dir, maxBytes: ROOMY_BYTES })
          await first.put(old)
          await first.close()
        }
        const disk = await openStore(t, { dir, maxBytes: ROOMY_BYTES }, { ready: indexed })
        if (indexed) await disk.put(old)
        let tiered: TieredStore | undefined
        const memory = new MemoryStore({ maxBytes: 1024 * 1024, onEvict: (o) => tiered?.demote(o) })
        tiered = new TieredStore({ memory, disk, promotion: 'always' })
        const store = tiered
        t.equal(memory.peek(key), undefined, 'only on disk')

        let release = (): void => {}
        const reading = holdFdReads(t, new Promise<void>((resolve) => { release = resolve }))
        const lookup = store.get(key)
        await reading
        const newer = makeObject(key, patternBody(20_000, 2), { requestTimeMs: old.meta.requestTimeMs + 1000, responseTimeMs: old.meta.responseTimeMs + 1000 })
        // While the disk read is in flight: a purge, or a newer fill stored.
        if (event === 'purged') await store.delete(key)
        else await store.put(newer)
        release()
        const found = await lookup
        t.ok(found !== undefined, 'the lookup that began first may still answer with the old object')

        const after = await store.get(key)
        if (event === 'purged') {
          t.equal(memory.peek(key), undefined, 'the purged object is not in memory')
          t.equal(after, undefined, 'and misses')
        } else {
          t.ok(after !== undefined && (await readBody(after)).equals(newer.body), 'the newer object is served')
        }
      })
    }
  }
})

t.test('concurrent cold hits of one streamed object after a restart can all be read', async (t) => {
  const dir = await tempDir(t)
  const options = { dir, maxBytes: ROOMY_BYTES, readWholeMaxBytes: 0 }
  const first = await openStore(t, options)
  const object = makeObject('example.com/vod/herd/seg-1.ts', patternBody(300_000, 8))
  await first.put(object)
  await first.close()

  // Many players ask for the same segment while the index is still cold.
  const store = await openStore(t, options, { ready: false })
  const found = await Promise.all(Array.from({ length: 4 }, () => store.get(object.meta.key, 'stream')))
  let readable = 0
  for (const hit of found) {
    if (hit === undefined) continue
    const body = await readBody(hit).catch(() => undefined)
    if (body?.equals(object.body) === true) readable++
  }
  t.equal(readable, found.length, `every hit streams the object (${readable} of ${found.length})`)
  await store.indexReady
  t.equal(store.count, 1)
})

type FsPromises = Record<string, (...args: unknown[]) => Promise<unknown>>

/**
 * Puts `intercept` in front of `fs.promises[name]` (the binding the store imports): for a
 * path it returns a promise for, the call waits for that promise first (a rejection is the
 * call's error). Restored by the returned function and at teardown.
 */
function interceptFs (t: Tap, name: 'readdir' | 'open', intercept: (path: string) => Promise<void> | undefined): () => void {
  const promises = fs.promises as unknown as FsPromises
  const original = promises[name]!
  const patched = async (...args: unknown[]): Promise<unknown> => {
    const before = intercept(String(args[0]))
    if (before !== undefined) await before
    return await original.apply(fs.promises, args)
  }
  promises[name] = patched
  syncBuiltinESMExports()
  const restore = (): void => {
    if (promises[name] !== patched) return
    promises[name] = original
    syncBuiltinESMExports()
  }
  t.teardown(restore)
  return restore
}

function ioError (code: string, path: string): Promise<never> {
  return Promise.reject(Object.assign(new Error(`${code}: injected, ${path}`), { code }))
}

/** Awaits `promise` with the event loop held open: the store's retry timer is unref'd, as a server keeps a node alive. */
async function keepingAlive<T> (promise: Promise<T>): Promise<T> {
  const timer = setInterval(() => {}, 60_000)
  try {
    return await promise
  } finally {
    clearInterval(timer)
  }
}

async function diskBytes (dir: string): Promise<number> {
  let bytes = 0
  for (const name of await objectFiles(dir)) bytes += (await stat(join(dir, 'objects', name))).size
  return bytes
}

t.test('a directory that cannot be listed is skipped, reported and retried: the rest is indexed at once, the budget holds once the retry reads it', async (t) => {
  // Keys of one length, so the files are about one size.
  const objects = Array.from({ length: 40 }, (_, i) => makeObject(`example.com/vod/readdir/seg-${String(i).padStart(2, '0')}.ts`, patternBody(2000, i), { requestTimeMs: 1_700_000_000_000 + i }))
  // Within a few bytes of each other (the checksum's digits vary): 25 fit in the budget below, 26 do not.
  const fileBytes = Math.max(...objects.map((o) => encodeObjectHead(o.meta, o.body).length + o.body.length))
  const victim = hashKey(objects[7]!.meta.key)
  const levels = {
    'objects/ itself': '',
    'a first-level directory': victim.slice(0, 2),
    'a second-level directory': `${victim.slice(0, 2)}/${victim.slice(2, 4)}`,
  }
  for (const [level, prefix] of Object.entries(levels)) {
    for (const retry of ['automatic', 'rescan()'] as const) {
      t.test(`${level}, ${retry === 'automatic' ? 'retried with backoff' : 'rescanned on demand'}`, async (t) => {
        const dir = await tempDir(t)
        const first = await openStore(t, { dir, maxBytes: ROOMY_BYTES })
        for (const object of objects) await first.put(object)
        await first.close()
        const under = (key: string): boolean => hashKey(key).startsWith(prefix.replace('/', ''))
        const hidden = objects.filter((o) => under(o.meta.key))
        t.ok(hidden.length > 0 && hidden.length < objects.length || prefix === '', `${hidden.length} of ${objects.length} objects under the failing directory`)

        // The failing directory fails its first listings (a transient EMFILE), the automatic case several times in a row.
        const failingPath = prefix === '' ? join(dir, 'objects') : join(dir, 'objects', prefix)
        let failuresLeft = retry === 'automatic' ? 3 : Number.POSITIVE_INFINITY
        interceptFs(t, 'readdir', (path) => {
          if (path !== failingPath || failuresLeft <= 0) return undefined
          failuresLeft--
          return ioError('EMFILE', path)
        })
        const { events, observer } = recorder()
        // The budget holds 25 of the 40 files: the rest must go once they are found.
        const maxBytes = fileBytes * 25 + Math.floor(fileBytes / 2)
        const store = await openStore(t, { dir, maxBytes, observer, indexRetryDelayMs: retry === 'automatic' ? 1 : 60_000 })
        t.equal(store.indexComplete, false, 'the index is known to be incomplete')
        t.ok(events.readErrors.some((e) => (e as NodeJS.ErrnoException).code === 'EMFILE'), 'the failure was reported')
        t.ok(store.sizeBytes <= maxBytes, `what was read is within budget (${store.sizeBytes} <= ${maxBytes})`)
        t.equal(store.count, Math.min(objects.length - hidden.length, 25), 'everything outside the failing directory is indexed (and evicted to budget)')
        for (const object of hidden) t.notOk(store.has(object.meta.key), 'nothing under the failing directory is indexed')
        // Not cold any more: an unindexed key misses without a disk lookup, and deletes are not remembered forever.
        t.equal(await store.get(hidden[0]!.meta.key), undefined, 'an unindexed file is a miss, never served unchecked')

        if (retry === 'rescan()') {
          t.equal(await store.rescan(), false, 'a rescan while the directory still fails leaves the index incomplete')
          failuresLeft = 0
          t.equal(await store.rescan(), true, 'a rescan after the fault cleared completes the index')
        }
        t.equal(await keepingAlive(store.indexCompleted), true, 'the index completes')
        t.equal(store.indexComplete, true)
        t.ok(store.sizeBytes <= maxBytes, `the budget holds over every file (${store.sizeBytes} <= ${maxBytes})`)
        t.equal(store.count, 25, 'the retry filled the budget')
        await store.close()
        t.equal(await diskBytes(dir), store.sizeBytes, 'files beyond the budget were deleted: sizeBytes is the sum of the files on disk')
        t.equal((await objectFiles(dir)).length, store.count, 'one file per indexed object')
      })
    }
  }
})

t.test('a file that fails to scan leaves the index incomplete until a retry reads it', async (t) => {
  const dir = await tempDir(t)
  const first = await openStore(t, { dir, maxBytes: ROOMY_BYTES })
  const objects = Array.from({ length: 5 }, (_, i) => makeObject(`example.com/vod/eio/seg-${i}.ts`, patternBody(1000, i)))
  for (const object of objects) await first.put(object)
  await first.close()
  const victim = objectPath(dir, objects[2]!.meta.key)
  let failing = true
  interceptFs(t, 'open', (path) => failing && path === victim ? ioError('EIO', path) : undefined)
  const { events, observer } = recorder()
  const store = await openStore(t, { dir, maxBytes: ROOMY_BYTES, observer, indexRetryDelayMs: 60_000 })
  t.equal(store.indexComplete, false)
  t.equal(store.count, 4, 'the other files are indexed')
  t.ok(events.readErrors.some((e) => (e as NodeJS.ErrnoException).code === 'EIO'), 'reported')
  failing = false
  t.equal(await store.rescan(), true)
  t.equal(store.count, 5)
  t.equal(await store.indexCompleted, true)
})

t.test('a rebuild cut short by close leaves the index incomplete', async (t) => {
  const dir = await tempDir(t)
  const first = await openStore(t, { dir, maxBytes: ROOMY_BYTES })
  await first.put(makeObject('example.com/vod/cut/seg-1.ts', patternBody(1000, 1)))
  await first.close()
  const store = new DiskStore({ dir, maxBytes: ROOMY_BYTES })
  await store.open()
  // Before the rebuild's first listing can complete.
  await store.close()
  await store.indexReady
  t.equal(store.indexComplete, false)
  t.equal(await store.indexCompleted, false)
})

t.test('the purge journal is compacted only after a complete index rebuild: purged files stay purged across restarts', async (t) => {
  const purgedKey = 'example.com/vod/purged/seg-1.ts'
  const keptKey = 'example.com/vod/kept/seg-1.ts'
  for (const incomplete of ['a file failed to scan', 'close cut the rebuild short'] as const) {
    t.test(incomplete, async (t) => {
      const dir = await tempDir(t)
      const journalPath = join(dir, 'purge-journal.jsonl')
      const fetchedMs = Date.now() - 2 * 3600_000
      const seed = await openStore(t, { dir, maxBytes: ROOMY_BYTES })
      for (const key of [purgedKey, keptKey]) await seed.put(makeObject(key, patternBody(3000, key.length), { requestTimeMs: fetchedMs, responseTimeMs: fetchedMs + 10 }))
      await seed.close()
      // An hour-old purge, recorded while the purged file was not indexed (old enough to be compacted away).
      const rule: PurgeRule = { t: Date.now() - 3600_000, kind: 'prefix', value: 'example.com/vod/purged/' }
      await writeFile(journalPath, JSON.stringify(rule) + '\n')
      const nodeOptions = { cacheDir: dir, origin: 'http://127.0.0.1:9', processMetrics: false }

      // Restart 1: the rebuild does not see the purged file.
      let restore: () => void = () => {}
      let release: () => void = () => {}
      if (incomplete === 'a file failed to scan') {
        const victim = objectPath(dir, purgedKey)
        restore = interceptFs(t, 'open', (path) => path === victim ? ioError('EIO', path) : undefined)
      } else {
        const held = new Promise<void>((resolve) => { release = resolve })
        restore = interceptFs(t, 'readdir', (path) => path === join(dir, 'objects') ? held : undefined)
      }
      const first = await startTestNode(t, nodeOptions)
      if (incomplete === 'a file failed to scan') {
        await first.store.disk.indexReady
        t.match(await first.metrics.render(), /streamedge_store_read_errors_total\{[^}]*tier="disk"[^}]*\} [1-9]/, 'the scan failure is counted')
        t.ok(first.logs.some((line) => line['path'] === objectPath(dir, purgedKey)), 'and logged with its path')
      } else {
        // The listing completes only once close has begun, so close cuts the rebuild short.
        const disk = first.store.disk
        const close = disk.close.bind(disk)
        disk.close = async () => {
          const closing = close()
          release()
          await closing
        }
      }
      t.equal(first.store.disk.indexComplete, false, 'the first rebuild is incomplete')
      await first.close()
      restore()
      t.equal(await first.store.disk.indexCompleted, false)
      t.strictSame((await PurgeJournal.open(journalPath)).rules, [rule], 'the purge is still in the journal')

      // Restart 2: a complete rebuild finds the file, and the purge still covers it.
      const second = await startTestNode(t, nodeOptions)
      t.equal(await second.store.disk.indexCompleted, true, 'the second rebuild is complete')
      t.equal(await second.store.get(purgedKey), undefined, 'the purged object is not served')
      t.ok(await second.store.get(keptKey), 'other objects are')
      await second.close()
      t.notOk(existsSync(objectPath(dir, purgedKey)), 'the purged file is deleted')
      t.ok(existsSync(objectPath(dir, keptKey)))
    })
  }
})

t.test('a delete that lands while a retry scans a directory sticks: the retry does not bring the object back', async (t) => {
  const dir = await tempDir(t)
  const first = await openStore(t, { dir, maxBytes: ROOMY_BYTES })
  const victim = makeObject('example.com/vod/retry/seg-1.ts', patternBody(3000, 1))
  await first.put(victim)
  await first.close()
  const victimDir = join(dir, 'objects', objectRelativePath(hashKey(victim.meta.key)).slice(0, 5))
  let failing = true
  interceptFs(t, 'readdir', (path) => failing && path === victimDir ? ioError('EIO', path) : undefined)
  let store: DiskStore | undefined
  let deleted: Promise<void> | undefined
  // Called by the scan right after it read the file's head, before the pass merges what it read.
  const isPurged = (meta: ObjectMeta): boolean => {
    if (!failing && deleted === undefined && store !== undefined && meta.key === victim.meta.key) deleted = store.delete(meta.key)
    return false
  }
  store = await openStore(t, { dir, maxBytes: ROOMY_BYTES, isPurged, indexRetryDelayMs: 60_000 })
  t.equal(store.indexComplete, false)
  failing = false
  t.equal(await store.rescan(), true)
  t.ok(deleted !== undefined, 'the delete landed during the retry')
  await deleted
  t.notOk(store.has(victim.meta.key), 'not indexed')
  t.equal(await store.get(victim.meta.key), undefined, 'a miss')
  t.equal(store.sizeBytes, 0)
  await store.close()
  t.notOk(existsSync(objectPath(dir, victim.meta.key)), 'the file is gone')
})
