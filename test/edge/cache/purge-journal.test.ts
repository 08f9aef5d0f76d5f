/**
 * The purge journal on real files: record/open round trips, which rules cover which keys
 * (variants, prefixes, the time rule), files damaged by a crash (a torn last line, garbage,
 * a leftover compaction temp file) that must neither lose acknowledged purges nor stop the
 * restart, compaction, purges recorded while a compaction runs, and the directory syncs that
 * make the journal's name durable.
 */
import fs from 'node:fs'
import { mkdtemp, readFile, readdir, rm, writeFile, appendFile, mkdir } from 'node:fs/promises'
import type { FileHandle } from 'node:fs/promises'
import { syncBuiltinESMExports } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { PurgeJournal, ruleCovers, type PurgeRule } from '../../../edge/cache/purge-journal.ts'
import type { ObjectMeta } from '../../../edge/cache/types.ts'
import { variantKey } from '../../../edge/cache/vary.ts'
import type { Tap } from './store.contract.ts'

async function tempDir (t: Tap): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'streamedge-journal-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  return dir
}

function meta (key: string, requestTimeMs: number): ObjectMeta {
  return {
    key,
    status: 200,
    headers: {},
    bodyBytes: 0,
    requestTimeMs,
    responseTimeMs: requestTimeMs + 5,
    initialAgeSeconds: 0,
    freshnessLifetimeSeconds: 60,
  }
}

const A: PurgeRule = { t: 1000, kind: 'url', value: 'example.com/vod/a/master.m3u8' }
const B: PurgeRule = { t: 2000, kind: 'prefix', value: 'example.com/vod/b/' }
const C: PurgeRule = { t: 3000, kind: 'url', value: 'example.com/vod/c/seg-1.ts?x=1' }

t.test('a missing journal is empty; its directory is created; recorded rules survive a reopen in order', async (t) => {
  const path = join(await tempDir(t), 'deep', 'cache', 'purge-journal.jsonl')
  const journal = await PurgeJournal.open(path)
  t.same(journal.rules, [])
  for (const rule of [A, B, C]) await journal.record(rule)
  t.same(journal.rules, [A, B, C])
  t.equal(await readFile(path, 'utf8'), [A, B, C].map((r) => JSON.stringify(r) + '\n').join(''), 'one JSON line per purge')
  t.same((await PurgeJournal.open(path)).rules, [A, B, C], 'a restart sees every acknowledged purge')
})

t.test('keys with odd characters round-trip', async (t) => {
  const path = join(await tempDir(t), 'j.jsonl')
  const odd: PurgeRule = { t: 5, kind: 'prefix', value: 'example.com/vod/"quoted"\\back\nslash/ünï/' }
  await (await PurgeJournal.open(path)).record(odd)
  t.same((await PurgeJournal.open(path)).rules, [odd])
})

t.test('isPurged: a rule covers a key (URL with all its variants, or prefix) and must be newer than the fetch', async (t) => {
  const journal = await PurgeJournal.open(join(await tempDir(t), 'j.jsonl'))
  await journal.record(A)
  await journal.record(B)
  const variant = variantKey(A.value, ['accept-language'], { 'accept-language': 'fr' })
  t.ok(journal.isPurged(meta(A.value, 999)), 'the URL, fetched before the purge')
  t.ok(journal.isPurged(meta(variant, 999)), 'a variant of the URL')
  t.notOk(journal.isPurged(meta(A.value, 1000)), 'fetched in the purge\'s millisecond: not purged')
  t.notOk(journal.isPurged(meta(A.value, 1001)), 'fetched after the purge: a new copy')
  t.notOk(journal.isPurged(meta(A.value + '?x=1', 0)), 'another query string is another URL')
  t.notOk(journal.isPurged(meta('example.com/vod/a/master.m3u8x', 0)), 'a URL purge is not a prefix')
  t.ok(journal.isPurged(meta('example.com/vod/b/720p/seg-9.ts', 1999)), 'under the prefix')
  t.notOk(journal.isPurged(meta('example.com/vod/bb/seg-9.ts', 0)), 'a sibling of the prefix')
  t.notOk(journal.isPurged(meta('example.com/vod/b/seg-9.ts', 2000)))

  t.ok(ruleCovers(A, variant))
  t.notOk(ruleCovers(A, 'example.com/vod/a/'))
  t.ok(ruleCovers(B, B.value), 'a prefix covers itself')
})

t.test('a torn last line (crash mid-append) is skipped; earlier purges are kept and later ones too', async (t) => {
  for (const torn of ['{"t":4000,"kind":"pre', '{"t":4000,"kind":"prefix","value":"example.com/vod/d/"}', '{', '{"t":4000,"kind":"url","value":"example.com/\u00e9']) {
    t.test(JSON.stringify(torn), async (t) => {
      const path = join(await tempDir(t), 'j.jsonl')
      const journal = await PurgeJournal.open(path)
      await journal.record(A)
      await journal.record(B)
      await appendFile(path, torn)
      const restarted = await PurgeJournal.open(path)
      const tornRule = torn.endsWith('}') ? [JSON.parse(torn) as PurgeRule] : []
      t.same(restarted.rules, [A, B, ...tornRule], 'the restart keeps every complete line')
      await restarted.record(C)
      t.same(restarted.rules, [A, B, ...tornRule, C])
      const again = await PurgeJournal.open(path)
      t.same(again.rules, [A, B, ...tornRule, C], 'a purge acknowledged after the restart survives the next one')
      t.ok(again.isPurged(meta('example.com/vod/c/seg-1.ts?x=1', 0)))
    })
  }
})

t.test('unreadable lines anywhere are skipped, never fatal', async (t) => {
  const path = join(await tempDir(t), 'j.jsonl')
  const lines = [
    JSON.stringify(A),
    'garbage',
    '',
    'null',
    '42',
    '"a string"',
    '[1,2]',
    JSON.stringify({ t: '1000', kind: 'url', value: 'x' }),
    JSON.stringify({ t: 1000, kind: 'host', value: 'x' }),
    JSON.stringify({ t: 1000, kind: 'url' }),
    JSON.stringify({ t: 1000, kind: 'url', value: 7 }),
    JSON.stringify(B) + '\r',
    '\u0000\u0000\u0000\u0000',
    JSON.stringify(C),
  ]
  await writeFile(path, lines.join('\n') + '\n')
  const journal = await PurgeJournal.open(path)
  t.same(journal.rules, [A, B, C])
})

t.test('a journal path that cannot be read fails the open instead of silently forgetting purges', async (t) => {
  const dir = await tempDir(t)
  const path = join(dir, 'j.jsonl')
  await mkdir(path)
  await t.rejects(PurgeJournal.open(path), { code: 'EISDIR' })
})

t.test('a record that cannot be written rejects and is not applied', async (t) => {
  const dir = await tempDir(t)
  const path = join(dir, 'sub', 'j.jsonl')
  const journal = await PurgeJournal.open(path)
  await journal.record(A)
  await rm(join(dir, 'sub'), { recursive: true })
  await t.rejects(journal.record(B), { code: 'ENOENT' })
  t.same(journal.rules, [A], 'an unacknowledged purge is not in force')
  t.notOk(journal.isPurged(meta('example.com/vod/b/seg.ts', 0)))
})

t.test('compact keeps rules newer than the cut, rewrites the file and leaves no temp file', async (t) => {
  const dir = await tempDir(t)
  const path = join(dir, 'j.jsonl')
  const journal = await PurgeJournal.open(path)
  for (const rule of [A, B, C]) await journal.record(rule)
  await journal.compact(2000)
  t.same(journal.rules, [C], 'rules at or before the cut go')
  t.equal(await readFile(path, 'utf8'), JSON.stringify(C) + '\n')
  t.same(await readdir(dir), ['j.jsonl'])
  t.notOk(journal.isPurged(meta(A.value, 0)), 'a compacted rule no longer applies')
  await journal.record(A)
  t.same((await PurgeJournal.open(path)).rules, [C, A], 'records after a compaction append to the new file')
  await journal.compact(Number.MAX_SAFE_INTEGER)
  t.equal(await readFile(path, 'utf8'), '', 'everything compacted away: an empty journal')
  t.same((await PurgeJournal.open(path)).rules, [])
})

t.test('a crash mid-compaction leaves the journal intact; the next compaction overwrites the leftover', async (t) => {
  const dir = await tempDir(t)
  const path = join(dir, 'j.jsonl')
  const journal = await PurgeJournal.open(path)
  for (const rule of [A, B]) await journal.record(rule)
  await writeFile(`${path}.tmp`, '{"t":9,"kind":"url","val')
  const restarted = await PurgeJournal.open(path)
  t.same(restarted.rules, [A, B], 'the temp file is not read')
  await restarted.compact(1000)
  t.same((await PurgeJournal.open(path)).rules, [B])
  t.same(await readdir(dir), ['j.jsonl'])
})

t.test('a purge recorded while a compaction runs is kept, in memory and on disk', async (t) => {
  // The node compacts in the background once the disk index is rebuilt, while purges keep coming.
  for (let round = 0; round < 5; round++) {
    t.test(`round ${round}`, async (t) => {
      const path = join(await tempDir(t), 'j.jsonl')
      const journal = await PurgeJournal.open(path)
      for (const rule of [A, B]) await journal.record(rule)
      const late: PurgeRule = { t: 5000 + round, kind: 'url', value: `example.com/live/${round}.m3u8` }
      const compacted = journal.compact(1500)
      const recorded = round % 2 === 0 ? journal.record(late) : Promise.resolve().then(() => journal.record(late))
      await Promise.all([compacted, recorded])
      t.same(journal.rules, [B, late], 'in memory')
      t.ok(journal.isPurged(meta(late.value, 0)))
      t.same((await PurgeJournal.open(path)).rules, [B, late], 'after a restart')
    })
  }
})

t.test('many concurrent records all land, each on its own line', async (t) => {
  const path = join(await tempDir(t), 'j.jsonl')
  const journal = await PurgeJournal.open(path)
  const rules = Array.from({ length: 50 }, (_, i): PurgeRule => ({ t: i + 1, kind: 'prefix', value: `example.com/p${i}/` }))
  await Promise.all(rules.map((r) => journal.record(r)))
  const byT = (a: PurgeRule, b: PurgeRule): number => a.t - b.t
  t.same([...journal.rules].sort(byT), rules)
  const reopened = await PurgeJournal.open(path)
  t.same([...reopened.rules].sort(byT), rules)
  t.equal((await readFile(path, 'utf8')).split('\n').length, 51)
})

t.test('the journal\'s directory is synced before the first purge and the first purge after a compaction are acknowledged', async (t) => {
  const root = await tempDir(t)
  const path = join(root, 'deep', 'cache', 'j.jsonl')
  const synced: string[] = []
  let hold: Promise<void> | undefined
  let failNext = false
  let reached = (): void => {}
  const syncDir = async (dir: string): Promise<void> => {
    synced.push(dir)
    reached()
    if (hold !== undefined) await hold
    if (failNext) {
      failNext = false
      throw Object.assign(new Error('EIO: injected directory fsync failure'), { code: 'EIO' })
    }
  }
  const journal = await PurgeJournal.open(path, { syncDir })
  t.same(synced, [], 'opening syncs nothing (a read-only journal still opens)')

  // The first record creates the file: its name, and the directories open() created, must be durable before the ack.
  let release = (): void => {}
  hold = new Promise<void>((resolve) => { release = resolve })
  let acknowledged = false
  const atSync = new Promise<void>((resolve) => { reached = resolve })
  const first = journal.record(A).then(() => { acknowledged = true })
  // the append and its fsync run on the threadpool first: however long a loaded box takes
  await atSync
  t.equal(synced.length, 1, 'the record reached its directory sync')
  t.equal(acknowledged, false, 'the purge is not acknowledged while its directory sync is pending')
  hold = undefined
  release()
  await first
  t.same(synced, [join(root, 'deep', 'cache'), join(root, 'deep'), root], 'the journal\'s directory, then each directory open() created, up to the one that existed')
  synced.length = 0
  await journal.record(B)
  t.same(synced, [], 'later appends to the same file need no directory sync')

  // A compaction renames a new file into place: synced after the rename.
  await journal.compact(1500)
  t.same(synced, [join(root, 'deep', 'cache')], 'the compaction\'s rename is synced')
  synced.length = 0

  // The compaction's directory sync fails: the compaction rejects, and the next purge is only acknowledged once the sync succeeded.
  failNext = true
  await t.rejects(journal.compact(1500), { code: 'EIO' })
  t.same(synced, [join(root, 'deep', 'cache')])
  synced.length = 0
  await journal.record(C)
  t.same(synced, [join(root, 'deep', 'cache')], 'the next record synced the directory before its ack')
  t.same((await PurgeJournal.open(path)).rules, [B, C])
})

t.test('by default the journal fsyncs its directory through a real directory handle', async (t) => {
  const dir = await tempDir(t)
  const path = join(dir, 'j.jsonl')
  const promises = fs.promises as unknown as Record<string, (...args: unknown[]) => Promise<unknown>>
  const original = promises['open']!
  const syncedDirs: string[] = []
  promises['open'] = async (...args: unknown[]) => {
    const fh = await original.apply(fs.promises, args) as FileHandle
    if (args[0] !== dir) return fh
    const sync = fh.sync.bind(fh)
    fh.sync = async () => {
      await sync()
      syncedDirs.push(String(args[0]))
    }
    return fh
  }
  syncBuiltinESMExports()
  t.teardown(() => {
    promises['open'] = original
    syncBuiltinESMExports()
  })
  const journal = await PurgeJournal.open(path)
  await journal.record(A)
  t.same(syncedDirs, [dir], 'the directory was opened and fsynced once the file was created')
  await journal.compact(0)
  t.same(syncedDirs, [dir, dir], 'and again after the compaction\'s rename')
})
