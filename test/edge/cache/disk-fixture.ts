/**
 * What the disk store's tests share: a temp cache dir, an opened store closed at teardown, an
 * observer that records what the store reports, and where object files live.
 */
import { mkdtemp, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DiskStore, type DiskStoreOptions } from '../../../edge/cache/disk-store.ts'
import { hashKey, objectRelativePath } from '../../../edge/cache/object-file.ts'
import type { ObjectMeta, StoreObserver } from '../../../edge/cache/types.ts'
import type { Tap } from './store.contract.ts'

/** A budget no test fills. */
export const ROOMY_BYTES = 1024 * 1024 * 1024

/** A temp dir removed at teardown. */
export async function tempDir (t: Tap): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'streamedge-disk-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  return dir
}

/** An opened store, closed at teardown; `ready`: its index rebuilt first. */
export async function openStore (t: Tap, options: DiskStoreOptions, { ready = true } = {}): Promise<DiskStore> {
  const store = new DiskStore(options)
  await store.open()
  t.teardown(() => store.close())
  if (ready) await store.indexReady
  return store
}

/** What a store reported through its observer. */
export interface Recorded {
  readonly corrupt: Array<{ path: string, reason: string, key?: string }>
  readonly evicted: string[]
  readonly writeErrors: Array<{ err: Error, key: string }>
  readonly readErrors: Error[]
}

export function recorder (): { events: Recorded, observer: StoreObserver } {
  const events: Recorded = { corrupt: [], evicted: [], writeErrors: [], readErrors: [] }
  const observer: StoreObserver = {
    onCorrupt: (detail) => { events.corrupt.push(detail) },
    onEvict: (meta: ObjectMeta) => { events.evicted.push(meta.key) },
    onWriteError: (err, key) => { events.writeErrors.push({ err, key }) },
    onReadError: (err) => { events.readErrors.push(err) },
  }
  return { events, observer }
}

/** The object file of `key` under cache dir `dir`. */
export function objectPath (dir: string, key: string): string {
  return join(dir, 'objects', objectRelativePath(hashKey(key)))
}

/** Every object file under `dir` (relative paths). */
export async function objectFiles (dir: string): Promise<string[]> {
  const names = await readdir(join(dir, 'objects'), { recursive: true })
  return names.filter((name) => /[0-9a-f]{64}$/.test(name))
}
