/**
 * Memory over disk. Writes go through to disk (so a restart keeps every complete
 * object) and into memory when the object is small enough; memory evictions demote
 * to disk when the disk copy is missing (its write failed or disk evicted it);
 * disk hits are promoted to memory.
 */
import type { DiskStore } from './disk-store.ts'
import type { MemoryStore } from './memory-store.ts'
import type { Readable } from 'node:stream'
import type { MemoryObject, ObjectMeta, Store, StoredObject, StoreObserver } from './types.ts'

export interface TieredStoreOptions {
  readonly memory: MemoryStore
  readonly disk: DiskStore
  readonly observer?: StoreObserver
}

export class TieredStore implements Store {
  readonly name = 'tiered' as const
  readonly memory: MemoryStore
  readonly disk: DiskStore
  readonly #observer: StoreObserver | undefined

  constructor (options: TieredStoreOptions) {
    this.memory = options.memory
    this.disk = options.disk
    this.#observer = options.observer
  }

  /** Memory first (synchronously), then disk; a disk hit is promoted. */
  get (key: string): StoredObject | undefined | Promise<StoredObject | undefined> {
    return this.getFromMemory(key) ?? this.getFromDisk(key)
  }

  /** The synchronous half of a lookup (the hot path); a hit also refreshes the disk copy's recency. */
  getFromMemory (key: string): MemoryObject | undefined {
    const hit = this.memory.get(key)
    if (hit !== undefined) this.disk.touch(key)
    return hit
  }

  /** The disk half of a lookup, promoting what it finds. */
  async getFromDisk (key: string): Promise<StoredObject | undefined> {
    const found = await this.disk.get(key)
    if (found?.body != null && this.memory.accepts(found.meta.bodyBytes)) this.memory.put(found)
    return found
  }

  /**
   * Stores in memory now (when it fits) and on disk in the background. The promise
   * settles when the disk write does; a failed disk write is reported to the observer
   * by the disk store and does not reject here.
   */
  put (object: MemoryObject): Promise<void> {
    this.memory.put(object)
    return this.disk.put(object).catch(() => {})
  }

  /**
   * Replaces a stored object's metadata, keeping its body (a 304 or HEAD response
   * freshened it, RFC 9111 §4.3.4). Returns the object as now stored in memory; the disk
   * copy is rewritten in the background. A body held only on disk is read back first.
   */
  async freshen (object: StoredObject, meta: ObjectMeta): Promise<StoredObject> {
    // TODO(perf): rewrite only the header of large disk objects instead of copying the body.
    const body = object.body ?? await collect(object.createReadStream(0, Math.max(0, object.meta.bodyBytes - 1)), object.meta.bodyBytes)
    const updated: MemoryObject = { meta, body }
    // The memory copy is updated now; readers waiting on the revalidation need not wait for the disk.
    void this.put(updated)
    return updated
  }

  /** Called by the memory store for each evicted object. */
  demote (object: MemoryObject): void {
    if (this.disk.has(object.meta.key)) return
    this.disk.put(object).catch(() => {})
  }

  async delete (key: string): Promise<void> {
    this.memory.delete(key)
    await this.disk.delete(key)
  }

  /** Every stored object has its full copy on disk; memory holds copies of the hot ones. */
  get sizeBytes (): number { return this.disk.sizeBytes }
  get count (): number { return this.disk.count }
  get observer (): StoreObserver | undefined { return this.#observer }

  async close (): Promise<void> {
    await this.memory.close()
    await this.disk.close()
  }
}

async function collect (stream: Readable, bytes: number): Promise<Buffer> {
  if (bytes === 0) return Buffer.alloc(0)
  const chunks: Buffer[] = []
  for await (const chunk of stream) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks)
}
