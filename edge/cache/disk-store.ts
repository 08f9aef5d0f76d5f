/**
 * The disk tier: one checksummed file per object (see object-file.ts), an in-memory
 * LRU index bounded in bytes, crash-safe writes (temp file, verify, rename) and an
 * index rebuilt from the files in the background after a restart, serving "cold"
 * hits from disk meanwhile (nginx's cache loader). Hot files stay open (open-files.ts)
 * and a file's body checksum is verified once per process: later hits on the same
 * file (same inode, size and mtime) are one pread or a stream, without a checksum.
 */
import { randomBytes } from 'node:crypto'
import { fstatSync, read as readFd, type Dirent, type Stats } from 'node:fs'
import { pipeline, type Writable } from 'node:stream'
import { lstat, mkdir, open, readdir, rename, rm, unlink } from 'node:fs/promises'
import type { FileHandle } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { inspect } from 'node:util'
import { crc32 } from 'node:zlib'
import { CdnError } from '../../lib/errors.ts'
import { zeroCopy } from '../../lib/native/zero-copy.ts'
import { writeBodyRange } from './body-writer.ts'
import { lockDir, type DirLock } from './dir-lock.ts'
import { BufferPool } from './buffer-pool.ts'
import {
  HEADER_PROBE_BYTES,
  encodeObjectHead,
  encodeObjectHeadFor,
  hashKey,
  isObjectFileName,
  objectRelativePath,
  readAt,
  readObjectHead,
  syncDir,
} from './object-file.ts'
import type { ObjectHeader } from './object-file.ts'
import { ObjectReadStream, READ_CHUNK_BYTES } from './object-read-stream.ts'
import { OpenFiles, type OpenFile } from './open-files.ts'
import type { MemoryObject, ObjectMeta, Store, StoredObject, StoreObserver, StreamedObject } from './types.ts'

/** Objects up to this many body bytes are read whole and returned as MemoryObject. */
export const DEFAULT_READ_WHOLE_MAX_BYTES = 16 * 1024 * 1024

/** Files whose headers the index rebuild reads at the same time. */
export const REBUILD_CONCURRENCY = 16

/** Object files kept open between hits by default (see DiskStoreOptions.maxOpenFiles). */
export const DEFAULT_MAX_OPEN_FILES = 256

/** Default bound on the pooled read buffers of streamed hits (see DiskStoreOptions.readBufferPoolBytes). */
export const DEFAULT_READ_BUFFER_POOL_BYTES = 32 * 1024 * 1024

/** First delay before directories that failed to scan are scanned again (see DiskStoreOptions.indexRetryDelayMs). */
export const DEFAULT_INDEX_RETRY_DELAY_MS = 1000

/** The retry delay doubles after each failed scan up to this bound. */
export const MAX_INDEX_RETRY_DELAY_MS = 5 * 60 * 1000

/**
 * How `get` answers: `whole` reads the body into a Buffer (a MemoryObject), `stream`
 * returns a StreamedObject (empty bodies still come whole), `auto` reads bodies up to
 * readWholeMaxBytes whole and streams larger ones.
 */
export type DiskReadMode = 'auto' | 'whole' | 'stream'

// A lookup that raced a put, delete or unlink starts over, a few times at most.
const MAX_LOOKUP_ATTEMPTS = 3
const RETRY: unique symbol = Symbol('retry')

/** The file-system calls a test may replace to inject write faults when it cannot mount a small file system. */
export interface DiskStoreIo {
  /** Writes `buffers` at `position` (default: `fh.writev`); may write fewer bytes than asked. */
  writev (fh: FileHandle, buffers: Buffer[], position: number): Promise<{ bytesWritten: number }>
}

/** Options for {@link DiskStore}; validated once by the constructor. */
export interface DiskStoreOptions {
  /** Directory the store owns (`objects/` and `tmp/` are created in it). One store per directory. */
  readonly dir: string
  /** Budget for the sum of object file sizes (headers included). */
  readonly maxBytes: number
  /** With get's `auto` mode, bodies up to this size are read whole; larger ones are streamed (default 16 MiB). */
  readonly readWholeMaxBytes?: number | undefined
  /** Object files kept open between hits (default DEFAULT_MAX_OPEN_FILES; 0: open per hit). */
  readonly maxOpenFiles?: number | undefined
  /** Bytes per read of a streamed body (default READ_CHUNK_BYTES, 512 KiB). */
  readonly readChunkBytes?: number | undefined
  /** Bound on the pooled read buffers StreamedObject.writeTo uses (default 32 MiB; 0: no pooling). */
  readonly readBufferPoolBytes?: number | undefined
  /** fsync each object file and its directory before it becomes visible (default false). */
  readonly fsync?: boolean | undefined
  /** Receives evictions, damaged files and I/O failures; the store never logs or counts by itself. */
  readonly observer?: StoreObserver | undefined
  /** Wall clock in ms (default Date.now), stamped as the file's mtime: it orders the LRU after a restart. */
  readonly now?: (() => number) | undefined
  /** Fault-injection seam for tests; production code leaves it out. */
  readonly io?: Partial<DiskStoreIo> | undefined
  /**
   * Purged before it was stored? Files it says yes to are deleted when the rebuild or a
   * cold lookup finds them, so a purge issued while they were not indexed still holds.
   */
  readonly isPurged?: ((meta: ObjectMeta) => boolean) | undefined
  /**
   * Delay before a directory (or file) the index scan could not read (EIO, EMFILE, EACCES)
   * is scanned again; it doubles per failure up to MAX_INDEX_RETRY_DELAY_MS (default 1 s).
   */
  readonly indexRetryDelayMs?: number | undefined
}

/** What identifies one version of a file: a rename, rewrite or truncation changes one of these. */
interface FileIdentity {
  readonly ino: number
  readonly size: number
  readonly mtimeMs: number
}

/** A file {@link DiskStore.lendFile} lent: its descriptor, and where the body starts in it. */
export interface LentFile {
  readonly file: OpenFile
  readonly bodyOffset: number
}

interface IndexEntry {
  readonly key: string
  readonly hash: string
  readonly fileBytes: number
  readonly meta: ObjectMeta
  /**
   * The file whose whole body matched its checksum in this process; undefined until the
   * first full read. A restart starts unverified, so a file a crash left damaged is
   * caught on its first read.
   */
  verifiedAs: FileIdentity | undefined
}

/** A body to copy into a new file from an open object file (a metadata rewrite). */
interface FileBody {
  readonly file: OpenFile
  /** File offset of the first body byte. */
  readonly offset: number
  readonly bytes: number
}

interface ScannedFile extends IndexEntry {
  readonly mtimeMs: number
}

interface FoundFile {
  readonly dirRel: string
  readonly name: string
  readonly isFile: boolean
}

type State = 'new' | 'opening' | 'open' | 'closed'

const HEX_PAIR = /^[0-9a-f]{2}$/

const defaultWritev: DiskStoreIo['writev'] = (fh, buffers, position) => fh.writev(buffers, position)

/**
 * Disk-backed Store. `open()` must be called (and awaited) before use; `indexReady`
 * settles when the background rebuild has scanned the directory. Until then `count`
 * and `sizeBytes` cover only objects written or read since open.
 *
 * A directory or file the scan cannot read does not stop it: the rest is indexed (and the
 * budget enforced on it), the failure goes to observer.onReadError, and the failed part is
 * scanned again with backoff. Its unindexed files are misses meanwhile, never served.
 */
export class DiskStore implements Store {
  readonly name = 'disk' as const
  /**
   * Resolves when the first index pass has merged what it could read, or was cut short
   * by close; rejects only when open() fails. Whether that index is whole: `indexComplete`.
   */
  readonly indexReady: Promise<void>
  /**
   * Resolves true once the index holds every file that was on disk at open (the first pass
   * or a later retry), false when the store closes first. Work that is only safe on a
   * complete index (compacting the purge journal) waits for true.
   */
  readonly indexCompleted: Promise<boolean>
  /** Read buffers of StreamedObject.writeTo, lent per chunk; the tiered store charges their size to the memory tier. */
  readonly readBuffers: BufferPool

  readonly #objectsDir: string
  readonly #tmpDir: string
  readonly #maxBytes: number
  readonly #readWholeMaxBytes: number
  readonly #fsync: boolean
  readonly #observer: StoreObserver
  readonly #now: () => number
  readonly #writev: DiskStoreIo['writev']
  readonly #isPurged: (meta: ObjectMeta) => boolean
  readonly #files: OpenFiles
  readonly #indexRetryDelayMs: number

  // Map order is the LRU order: first entry is the least recently used.
  #index = new Map<string, IndexEntry>()
  #sizeBytes = 0
  // Bytes of puts in flight, counted against the budget so concurrent puts make room too.
  #reservedBytes = 0
  #state: State = 'new'
  // True until the rebuild has merged what it found: a key missing from the index may still be on disk.
  #cold = true
  // Keys deleted or evicted while cold, or under a directory a scan pass is reading: their files
  // are gone even if the pass saw them. Cleared when each pass ends, so it never outgrows one pass.
  readonly #settled = new Set<string>()
  // Directories ('' for objects/ itself, 'ab', 'ab/cd') whose listing or one of whose files failed
  // to scan: the index lacks their files until a retry reads them.
  #unscanned = new Set<string>()
  // What the scan pass in progress reads, after the first (during the first, #cold covers every key).
  #scanning: ReadonlySet<string> | undefined
  #scanPassRunning = false
  #indexComplete = false
  #retryDelayMs = 0
  #retryTimer: NodeJS.Timeout | undefined
  readonly #knownDirs = new Set<string>()
  // Per-hash queue so renames and unlinks of one path never interleave.
  readonly #chains = new Map<string, Promise<void>>()
  readonly #inflight = new Set<Promise<unknown>>()
  // Puts in flight per key, and the sequence number of the last delete of a key with a put in flight:
  // a delete (purge, invalidation) wins over a put that started before it.
  readonly #writing = new Map<string, number>()
  readonly #deletedSeq = new Map<string, number>()
  #seq = 0
  #rebuildAborted = false
  readonly #dir: string
  #lock: DirLock | undefined
  #rebuild: Promise<void> = Promise.resolve()
  // Entries whose file lendFile has had checked (or is checking): once per entry.
  readonly #checkingForLend = new WeakSet<IndexEntry>()
  #settleReady: (err?: Error) => void = () => {}
  #settleCompleted: (complete: boolean) => void = () => {}

  constructor (options: DiskStoreOptions) {
    validateOptions(options)
    const dir = resolve(options.dir)
    this.#dir = dir
    this.#objectsDir = join(dir, 'objects')
    this.#tmpDir = join(dir, 'tmp')
    this.#maxBytes = options.maxBytes
    this.#readWholeMaxBytes = options.readWholeMaxBytes ?? DEFAULT_READ_WHOLE_MAX_BYTES
    this.#fsync = options.fsync ?? false
    this.#observer = options.observer ?? {}
    this.#now = options.now ?? Date.now
    this.#writev = options.io?.writev ?? defaultWritev
    this.#isPurged = options.isPurged ?? (() => false)
    this.#indexRetryDelayMs = options.indexRetryDelayMs ?? DEFAULT_INDEX_RETRY_DELAY_MS
    this.#retryDelayMs = this.#indexRetryDelayMs
    this.#files = new OpenFiles({ maxOpen: options.maxOpenFiles ?? DEFAULT_MAX_OPEN_FILES })
    this.readBuffers = new BufferPool({ chunkBytes: options.readChunkBytes ?? READ_CHUNK_BYTES, maxBytes: options.readBufferPoolBytes ?? DEFAULT_READ_BUFFER_POOL_BYTES })
    this.indexReady = new Promise<void>((resolve, reject) => {
      this.#settleReady = (err) => { if (err === undefined) resolve(); else reject(err) }
    })
    // A failed open leaves nothing to index; whoever cares awaits indexReady.
    this.indexReady.catch(() => {})
    this.indexCompleted = new Promise<boolean>((resolve) => { this.#settleCompleted = resolve })
  }

  /**
   * Whether the index holds every object file on disk: false until the first pass ends,
   * after a pass cut short by close, and while a directory or file that failed to scan
   * waits for its retry.
   */
  get indexComplete (): boolean { return this.#indexComplete }

  /** Bytes held: the sum of indexed object file sizes. */
  get sizeBytes (): number { return this.#sizeBytes }

  /** Objects indexed. */
  get count (): number { return this.#index.size }

  /** Whether `key` is indexed (no I/O; may say false for an unindexed file while the index is cold). */
  has (key: string): boolean {
    return this.#index.has(key)
  }

  /** Indexed keys, least recently used first (a snapshot is not taken: do not await while iterating). */
  keys (): IterableIterator<string> {
    return this.#index.keys()
  }

  /** The metadata of an indexed object, without I/O (the index keeps it). */
  peekMeta (key: string): ObjectMeta | undefined {
    return this.#index.get(key)?.meta
  }

  /** Keys with a write in flight (not indexed until it commits; a delete now still wins over it). */
  pendingKeys (): IterableIterator<string> {
    return this.#writing.keys()
  }

  /**
   * Marks an object as just used without reading it: the tiered store calls this on
   * memory hits, so the disk LRU follows real demand and a hot object is not the first
   * to leave the disk.
   */
  touch (key: string): void {
    const entry = this.#index.get(key)
    if (entry === undefined) return
    this.#index.delete(key)
    this.#index.set(key, entry)
  }

  /**
   * Creates the directories, deletes temp files left by a crash, and starts the index
   * rebuild without waiting for it (see `indexReady`).
   */
  async open (): Promise<void> {
    if (this.#state !== 'new') throw new Error('DiskStore.open() can only be called once')
    this.#state = 'opening'
    try {
      await mkdir(this.#dir, { recursive: true })
      // before anything is touched: another node's temp files are not leftovers
      this.#lock = await lockDir(this.#dir)
      await mkdir(this.#objectsDir, { recursive: true })
      await mkdir(this.#tmpDir, { recursive: true })
      for (const name of await readdir(this.#tmpDir)) {
        // A leftover that cannot go (a file system remounted read-only) is never read: serve what is committed;
        // writes then fail, each reported.
        await rm(join(this.#tmpDir, name), { recursive: true, force: true }).catch(() => {})
      }
    } catch (err) {
      this.#state = 'closed'
      await this.#lock?.release()
      this.#settleReady(asError(err))
      this.#settleCompleted(false)
      throw err
    }
    if (this.#state !== 'opening') return this.#settleReady()
    this.#state = 'open'
    this.#startScanPass([''])
  }

  /**
   * Scans the directories and files that failed to scan now, instead of at the next
   * retry (an operator fixed the disk); resolves `indexComplete` after the pass.
   */
  async rescan (): Promise<boolean> {
    while (this.#scanPassRunning) await this.#rebuild
    if (this.#state === 'open' && !this.#cold && this.#unscanned.size > 0) this.#startScanPass([...this.#unscanned])
    await this.#rebuild
    return this.#indexComplete
  }

  /**
   * Looks the object up and checks it before answering (see DiskReadMode for the
   * shape of the answer). The first read of a file in this process verifies its header
   * and body checksum (a streamed body as it streams); later reads of the same file
   * trust it. A damaged file is deleted and reported, and the answer is a miss.
   */
  async get (key: string, mode: DiskReadMode = 'auto'): Promise<StoredObject | undefined> {
    for (let attempt = 0; attempt < MAX_LOOKUP_ATTEMPTS; attempt++) {
      if (this.#state !== 'open') return undefined
      const entry = this.#index.get(key)
      if (entry !== undefined) {
        this.#index.delete(key)
        this.#index.set(key, entry)
      } else if (!this.#cold || this.#settled.has(key)) {
        return undefined
      }
      const hash = entry?.hash ?? hashKey(key)
      const path = this.#pathOf(hash)
      let file: OpenFile
      try {
        file = await this.#files.acquire(hash, path)
      } catch (err) {
        if (isNotFound(err)) this.#forget(key, hash, entry)
        else this.#observer.onReadError?.(asError(err), { path, key })
        return undefined
      }
      try {
        // A put, delete or eviction committed while the file was opening: the descriptor may be either file.
        if (this.#index.get(key) !== entry) continue
        const found = await this.#readOpenFile(file, key, hash, path, entry, mode)
        if (found !== RETRY) return found
      } catch (err) {
        this.#observer.onReadError?.(asError(err), { path, key })
        return undefined
      } finally {
        this.#files.release(file)
      }
    }
    return undefined
  }

  /**
   * Writes the object to a temp file in one writev, verifies its size, and renames it
   * into place, evicting least recently used objects first when the budget needs it.
   * Rejects with CDN_ERR_STORE_WRITE (after observer.onWriteError) when the write fails,
   * and without writing (or reporting) when the object alone exceeds maxBytes.
   */
  async put (object: MemoryObject): Promise<void> {
    const { meta, body } = object
    if (body.length !== meta.bodyBytes) {
      throw new TypeError(`Expected meta.bodyBytes to equal the body length ${body.length}, got ${meta.bodyBytes}`)
    }
    if (this.#state !== 'open') throw new CdnError('CDN_ERR_STORE_WRITE', `Disk store is ${this.#state === 'closed' ? 'closed' : 'not open'}`)
    let head: Buffer
    try {
      head = encodeObjectHead(meta, body)
    } catch (err) {
      throw new CdnError('CDN_ERR_STORE_WRITE', `Could not encode ${meta.key}: ${asError(err).message}`, { cause: err })
    }
    const fileBytes = head.length + body.length
    if (fileBytes > this.#maxBytes) {
      throw new CdnError('CDN_ERR_STORE_WRITE', `Object ${meta.key} needs ${fileBytes} bytes on disk, more than the disk store budget of ${this.#maxBytes} bytes`)
    }
    // A new file starts unverified: damage after the write is still caught by its first read.
    const task = this.#write({ key: meta.key, hash: hashKey(meta.key), fileBytes, meta, verifiedAs: undefined }, head, body)
    this.#track(task)
    await task
  }

  /**
   * Replaces an indexed object's metadata and keeps its body (a 304 freshened it, RFC 9111
   * §4.3.4) without the body passing through memory: a new file gets the new head and the
   * old file's body, copied file to file without a checksum pass (the body keeps its crc32,
   * and the new file is verified on its first read like any new file), and is renamed into
   * place like a put. Resolves false, writing nothing, when the object is not indexed, its
   * file is not the indexed one, or a put, delete or eviction commits first. Rejects like
   * put when the write fails.
   */
  async replaceMeta (key: string, meta: ObjectMeta): Promise<boolean> {
    if (meta.key !== key) throw new TypeError(`Expected meta.key to be ${JSON.stringify(key)}, got ${JSON.stringify(meta.key)}`)
    if (this.#state !== 'open') return false
    const entry = this.#index.get(key)
    if (entry === undefined) return false
    if (meta.bodyBytes !== entry.meta.bodyBytes) {
      throw new TypeError(`Expected meta.bodyBytes to equal the stored body length ${entry.meta.bodyBytes}, got ${meta.bodyBytes}`)
    }
    let file: OpenFile
    try {
      file = await this.#files.acquire(entry.hash, this.#pathOf(entry.hash))
    } catch {
      return false
    }
    try {
      const head = await this.#headOfIndexed(file, entry)
      if (head === undefined) return false
      const newHead = encodeObjectHeadFor(meta, meta.bodyBytes, head.header.bodyCrc32)
      const fileBytes = newHead.length + meta.bodyBytes
      if (fileBytes > this.#maxBytes) return false
      const task = this.#write({ key, hash: entry.hash, fileBytes, meta, verifiedAs: undefined }, newHead, { file, offset: head.headBytes, bytes: meta.bodyBytes }, entry)
      this.#track(task)
      return await task
    } finally {
      this.#files.release(file)
    }
  }

  /** Removes the object's file and index entry (fine if there is none); the removal survives a restart. */
  async delete (key: string): Promise<void> {
    if (this.#state !== 'open') return
    const entry = this.#index.get(key)
    if (entry !== undefined) this.#drop(entry)
    if (this.#writing.has(key)) this.#deletedSeq.set(key, ++this.#seq)
    // Unconditional: while cold the file may exist unindexed, and a purge must survive a restart.
    const hash = entry?.hash ?? hashKey(key)
    this.#settle(key, hash)
    const task = this.#unlinkUnlessReplaced(key, hash)
    this.#track(task)
    await task
  }

  /** Stops the rebuild early and waits for writes and deletions in flight. */
  async close (): Promise<void> {
    this.#state = 'closed'
    this.#rebuildAborted = true
    clearTimeout(this.#retryTimer)
    this.#retryTimer = undefined
    await this.#rebuild
    while (this.#inflight.size > 0) await Promise.allSettled([...this.#inflight])
    await this.#files.close()
    await this.#lock?.release()
    this.#lock = undefined
    this.#settleReady()
    this.#settleCompleted(false)
  }

  /**
   * The open file that holds exactly `meta`'s version of `key`, for a send straight from the
   * page cache (lib/http/fast-front.ts, sendFile): only a file whose whole body matched its
   * checksum in this process and has not changed since (fstat), whose descriptor is open now.
   * Never waits: otherwise undefined, and a file not checked yet is read and checked in the
   * background so a later hit may have it. Give the file back with {@link returnFile} before
   * anything else runs: its descriptor may be closed any time after.
   */
  lendFile (key: string, meta: ObjectMeta): LentFile | undefined {
    if (this.#state !== 'open') return undefined
    const entry = this.#index.get(key)
    if (entry === undefined || !sameVersion(entry.meta, meta)) return undefined
    if (entry.verifiedAs === undefined) {
      this.#checkForLend(entry)
      return undefined
    }
    const file = this.#files.tryAcquire(entry.hash)
    if (file === undefined) {
      // evicted from the descriptor cache: open it again for the next hit
      this.#reopen(entry)
      return undefined
    }
    const verified = entry.verifiedAs
    if (!unchangedSince(file.fd, verified)) {
      // replaced, unlinked or written to behind our back: the next disk read looks again
      this.#files.release(file)
      return undefined
    }
    return { file, bodyOffset: verified.size - meta.bodyBytes }
  }

  /** Gives back a file {@link lendFile} lent. */
  returnFile (lent: LentFile): void {
    this.#files.release(lent.file)
  }

  #reopen (entry: IndexEntry): void {
    const opened = this.#files.acquire(entry.hash, this.#pathOf(entry.hash))
    if (opened instanceof Promise) this.#track(opened.then((file) => { this.#files.release(file) }))
    else this.#files.release(opened)
  }

  /** Reads `entry`'s file once as a disk hit would (checking its body), so lendFile can lend it; damage is reported as on a read. */
  #checkForLend (entry: IndexEntry): void {
    if (this.#checkingForLend.has(entry) || entry.meta.bodyBytes > this.#readWholeMaxBytes) return
    this.#checkingForLend.add(entry)
    const task = (async () => {
      const path = this.#pathOf(entry.hash)
      const file = await this.#files.acquire(entry.hash, path)
      try {
        // the read path's own check (#checkedHit): crc, size, key; damage is reported and the file removed
        if (entry.verifiedAs === undefined) await this.#readOpenFile(file, entry.key, entry.hash, path, entry, 'whole')
      } finally {
        this.#files.release(file)
      }
    })()
    this.#track(task)
  }

  async #readOpenFile (file: OpenFile, key: string, hash: string, path: string, entry: IndexEntry | undefined, mode: DiskReadMode): Promise<StoredObject | undefined | typeof RETRY> {
    // fstat of an open descriptor is a syscall without I/O; it tells whether the file is still the one verified.
    const stat = fstatSync(file.fd)
    if (stat.nlink === 0) {
      // Unlinked or renamed over behind the cached descriptor: look at the path again.
      this.#files.invalidate(hash)
      return RETRY
    }
    if (entry !== undefined && sameFile(entry.verifiedAs, stat)) return this.#trustedHit(file, entry, stat, path, mode)
    return this.#checkedHit(file, key, hash, path, entry, stat, mode)
  }

  /** A file verified earlier in this process: no header parse, no checksum. */
  async #trustedHit (file: OpenFile, entry: IndexEntry, stat: Stats, path: string, mode: DiskReadMode): Promise<StoredObject | undefined> {
    const { meta } = entry
    const bodyOffset = stat.size - meta.bodyBytes
    if (!this.#wantsWhole(meta.bodyBytes, mode)) return this.#streamed(entry, identityOf(stat), bodyOffset, meta, 0, path, () => {})
    const body = await readAt(file.fd, bodyOffset, meta.bodyBytes)
    if (body.length !== meta.bodyBytes) return this.#corrupt({ path, hash: entry.hash, reason: 'file ended before its body did', key: entry.key, entry, ino: stat.ino })
    return { meta, body }
  }

  /** The first read of a file (or of a file that changed): header, size and body checksum are checked. */
  async #checkedHit (file: OpenFile, key: string, hash: string, path: string, entry: IndexEntry | undefined, stat: Stats, mode: DiskReadMode): Promise<StoredObject | undefined> {
    const corrupt = (reason: string): undefined => this.#corrupt({ path, hash, reason, key, entry, ino: stat.ino })
    const expectedBody = entry?.meta.bodyBytes ?? stat.size
    // Small objects come in with their header in one read.
    const probeBytes = this.#wantsWhole(expectedBody, mode) && stat.size <= expectedBody + HEADER_PROBE_BYTES ? stat.size : HEADER_PROBE_BYTES
    const head = await readObjectHead(file.fd, stat.size, probeBytes)
    if (head.status !== 'ok') return corrupt(head.reason)
    const { header, headBytes } = head
    if (header.key !== key) return corrupt('file holds another key')
    if (stat.size !== headBytes + header.bodyBytes) return corrupt(`file is ${stat.size} bytes, header says ${headBytes + header.bodyBytes}`)
    if (entry === undefined && this.#isPurged(header.meta)) return this.#purgedFile(key, hash)
    const identity = identityOf(stat)
    if (!this.#wantsWhole(header.bodyBytes, mode)) {
      const known = this.#adopt(header, hash, stat.size, entry)
      const onVerified = (): void => { this.#verified(known, header, identity) }
      return this.#streamed(known, identity, headBytes, header.meta, header.bodyCrc32, path, onVerified)
    }
    const body = head.bytes.length >= stat.size
      ? head.bytes.subarray(headBytes, stat.size)
      : await readAt(file.fd, headBytes, header.bodyBytes)
    if (body.length !== header.bodyBytes) return corrupt('file ended before its body did')
    if (crc32(body) !== header.bodyCrc32) return corrupt('body checksum mismatch')
    this.#verified(this.#adopt(header, hash, stat.size, entry), header, identity)
    return { meta: header.meta, body }
  }

  /** The checked head of `file` when it is the file `entry` indexes (damage is left for the next get to find). */
  async #headOfIndexed (file: OpenFile, entry: IndexEntry): Promise<{ header: ObjectHeader, headBytes: number } | undefined> {
    const stat = fstatSync(file.fd)
    if (stat.nlink === 0 || stat.size !== entry.fileBytes || this.#index.get(entry.key) !== entry) return undefined
    const head = await readObjectHead(file.fd, stat.size)
    if (head.status !== 'ok' || head.header.key !== entry.key || !sameVersion(head.header.meta, entry.meta)) return undefined
    if (stat.size !== head.headBytes + head.header.bodyBytes) return undefined
    return { header: head.header, headBytes: head.headBytes }
  }

  /** Remembers a verified file, but only on the entry it describes (a put may have renamed a newer file onto the path). */
  #verified (entry: IndexEntry, header: ObjectHeader, identity: FileIdentity): void {
    if (entry.fileBytes === identity.size && sameVersion(entry.meta, header.meta)) entry.verifiedAs = identity
  }

  #wantsWhole (bodyBytes: number, mode: DiskReadMode): boolean {
    return bodyBytes === 0 || mode === 'whole' || (mode === 'auto' && bodyBytes <= this.#readWholeMaxBytes)
  }

  /**
   * A body left on disk. Each stream takes its own reference on the open file, and only
   * while `entry` is still the indexed object: a stream created after a replace or
   * delete fails with CDN_ERR_STORE_CORRUPT before its first byte.
   */
  #streamed (entry: IndexEntry, identity: FileIdentity, bodyOffset: number, meta: ObjectMeta, bodyCrc32: number, path: string, onVerified: () => void): StreamedObject {
    const { key, hash } = entry
    const bodyBytes = meta.bodyBytes
    const release = (file: OpenFile): void => { this.#files.release(file) }
    const onCorrupt = (reason: string): void => { this.#corrupt({ path, hash, reason, key, entry, ino: identity.ino }) }
    const createReadStream = (start: number, endInclusive: number): ObjectReadStream => {
      checkRange(start, endInclusive, bodyBytes)
      return new ObjectReadStream({
        path,
        open: () => this.#openForStream(entry, identity, path),
        release,
        bodyOffset,
        bodyBytes,
        bodyCrc32,
        start,
        endInclusive,
        trusted: sameFile(entry.verifiedAs, identity),
        chunkBytes: this.readBuffers.chunkBytes,
        onVerified,
        onCorrupt,
      })
    }
    const writeTo = (out: Writable, start: number, endInclusive: number, done: (err: Error | undefined, bytes: number) => void): void => {
      checkRange(start, endInclusive, bodyBytes)
      if (!sameFile(entry.verifiedAs, identity)) {
        // First read of this file: the stream checks the body as it goes (once per file and process).
        let bytes = 0
        const stream = createReadStream(start, endInclusive)
        stream.on('data', (chunk: Buffer) => { bytes += chunk.length })
        pipeline(stream, out, (err) => { done(err ?? undefined, bytes) })
        return
      }
      const write = (file: OpenFile): void => {
        writeBodyRange(out, { file, release, pool: this.readBuffers, path, bodyOffset, start, endInclusive, onCorrupt }, done)
      }
      let opened: OpenFile | Promise<OpenFile>
      try {
        opened = this.#openForStream(entry, identity, path)
      } catch (err) {
        process.nextTick(done, asError(err), 0)
        return
      }
      if (opened instanceof Promise) opened.then(write, (err: unknown) => { done(asError(err), 0) })
      else write(opened)
    }
    return { meta, body: null, createReadStream, writeTo }
  }

  #openForStream (entry: IndexEntry, identity: FileIdentity, path: string): OpenFile | Promise<OpenFile> {
    const replaced = (): CdnError => new CdnError('CDN_ERR_STORE_CORRUPT', `Object file ${path} was replaced or deleted after lookup`)
    if (this.#state !== 'open' || this.#index.get(entry.key) !== entry) throw replaced()
    const check = (file: OpenFile): OpenFile => {
      if (file.ino === identity.ino) return file
      this.#files.release(file)
      throw replaced()
    }
    const cached = this.#files.tryAcquire(entry.hash)
    if (cached !== undefined) return check(cached)
    return Promise.resolve(this.#files.acquire(entry.hash, path)).then(check, (err: unknown) => {
      throw isNotFound(err) ? replaced() : err
    })
  }

  /**
   * The index entry for an object just read: the existing one, or, on a cold hit, a
   * new one inserted as most recently used (unless a delete or put settled the key).
   */
  #adopt (header: ObjectHeader, hash: string, fileBytes: number, entry: IndexEntry | undefined): IndexEntry {
    if (entry !== undefined) return entry
    // The rebuild merged this very file while it was being read: its entry is the one streams must find indexed.
    const merged = this.#index.get(header.key)
    if (merged !== undefined && merged.hash === hash && merged.fileBytes === fileBytes && sameVersion(merged.meta, header.meta)) return merged
    const fresh: IndexEntry = { key: header.key, hash, fileBytes, meta: header.meta, verifiedAs: undefined }
    if (this.#cold && this.#state === 'open' && !this.#settled.has(fresh.key) && !this.#index.has(fresh.key)) {
      this.#index.set(fresh.key, fresh)
      this.#sizeBytes += fileBytes
      this.#evictToBudget(fresh.key, 0)
    }
    return fresh
  }

  /**
   * Writes a new file for `entry` and commits it; resolves false when it did not commit: a
   * delete won, or `replaces` (the entry a metadata rewrite copied from) is no longer indexed.
   */
  async #write (entry: IndexEntry, head: Buffer, body: Buffer | FileBody, replaces?: IndexEntry): Promise<boolean> {
    const { key, hash, fileBytes } = entry
    const startSeq = ++this.#seq
    this.#writing.set(key, (this.#writing.get(key) ?? 0) + 1)
    let reserved = true
    this.#reservedBytes += fileBytes
    this.#evictToBudget(key, this.#index.get(key)?.fileBytes ?? 0)
    const tmpPath = join(this.#tmpDir, `${hash}.${randomBytes(6).toString('hex')}`)
    try {
      await this.#writeTempFile(tmpPath, head, body, fileBytes)
      return await this.#serial(hash, async () => {
        const superseded = replaces !== undefined && this.#index.get(key) !== replaces
        if (superseded || (this.#deletedSeq.get(key) ?? 0) > startSeq) {
          // Deleted after this write began (the delete wins, the object never appears), or the
          // object a rewrite copied changed meanwhile (the newer object stays).
          await unlink(tmpPath).catch(() => {})
          return false
        }
        await this.#renameIntoPlace(tmpPath, hash)
        // Descriptors opened on the old file must not serve the new object's entry.
        this.#files.invalidate(hash)
        if ((this.#deletedSeq.get(key) ?? 0) > startSeq) {
          // Deleted while the rename ran: take the file back out before anyone can index it.
          await unlink(this.#pathOf(hash)).catch(() => {})
          return false
        }
        this.#reservedBytes -= fileBytes
        reserved = false
        const old = this.#index.get(key)
        if (old !== undefined) this.#drop(old)
        this.#index.set(key, entry)
        this.#sizeBytes += fileBytes
        this.#evictToBudget(key, 0)
        return true
      })
    } catch (err) {
      await unlink(tmpPath).catch(() => {})
      const error = asError(err)
      this.#observer.onWriteError?.(error, key)
      throw new CdnError('CDN_ERR_STORE_WRITE', `Could not write ${key} to the disk store: ${error.message}`, { cause: err })
    } finally {
      if (reserved) this.#reservedBytes -= fileBytes
      const writers = (this.#writing.get(key) ?? 1) - 1
      if (writers > 0) this.#writing.set(key, writers)
      else {
        this.#writing.delete(key)
        this.#deletedSeq.delete(key)
      }
    }
  }

  async #writeTempFile (tmpPath: string, head: Buffer, body: Buffer | FileBody, fileBytes: number): Promise<void> {
    const fh = await open(tmpPath, 'wx')
    try {
      if (Buffer.isBuffer(body)) await this.#writeAll(fh, tmpPath, body.length > 0 ? [head, body] : [head], 0)
      else await this.#copyBody(fh, tmpPath, head, body)
      if (this.#fsync) await fh.sync()
      const mtimeSeconds = this.#now() / 1000
      await fh.utimes(mtimeSeconds, mtimeSeconds)
      const { size } = await fh.stat()
      if (size !== fileBytes) throw new Error(`Wrote ${size} bytes to ${tmpPath}, expected ${fileBytes}`)
    } catch (err) {
      await fh.close().catch(() => {})
      throw err
    }
    await fh.close()
  }

  /** Writes `buffers` at `position`, completing short writes. */
  async #writeAll (fh: FileHandle, tmpPath: string, buffers: Buffer[], position: number): Promise<void> {
    let bytes = 0
    for (const buffer of buffers) bytes += buffer.length
    for (const end = position + bytes; position < end;) {
      const { bytesWritten } = await this.#writev(fh, buffers, position)
      if (!(bytesWritten > 0)) throw new Error(`Write to ${tmpPath} made no progress`)
      position += bytesWritten
      buffers = skipBytes(buffers, bytesWritten)
    }
  }

  /** Writes `head`, then the body from another open file, one read chunk at a time. */
  async #copyBody (fh: FileHandle, tmpPath: string, head: Buffer, body: FileBody): Promise<void> {
    await this.#writeAll(fh, tmpPath, [head], 0)
    const chunk = Buffer.allocUnsafe(Math.min(this.readBuffers.chunkBytes, body.bytes))
    for (let done = 0; done < body.bytes;) {
      const bytesRead = await readInto(body.file.fd, chunk, Math.min(chunk.length, body.bytes - done), body.offset + done)
      if (bytesRead === 0) throw new Error(`Object file ended before its body did while copying it to ${tmpPath}`)
      await this.#writeAll(fh, tmpPath, [chunk.subarray(0, bytesRead)], head.length + done)
      done += bytesRead
    }
  }

  async #renameIntoPlace (tmpPath: string, hash: string): Promise<void> {
    const dirRel = objectRelativePath(hash).slice(0, 5)
    const finalPath = this.#pathOf(hash)
    await this.#ensureDir(dirRel)
    try {
      await rename(tmpPath, finalPath)
    } catch (err) {
      // The directory was removed behind our back; recreate it once.
      if (!isNotFound(err)) throw err
      this.#knownDirs.delete(dirRel)
      await this.#ensureDir(dirRel)
      await rename(tmpPath, finalPath)
    }
    if (!this.#fsync) return
    try {
      await syncDir(join(this.#objectsDir, dirRel))
    } catch (err) {
      await unlink(finalPath).catch(() => {})
      throw err
    }
  }

  async #ensureDir (dirRel: string): Promise<void> {
    if (this.#knownDirs.has(dirRel)) return
    await mkdir(join(this.#objectsDir, dirRel), { recursive: true })
    // A new directory's entry lives in its parent: make those durable too, once per directory.
    if (this.#fsync) {
      await syncDir(join(this.#objectsDir, dirRel.slice(0, 2)))
      await syncDir(this.#objectsDir)
    }
    this.#knownDirs.add(dirRel)
  }

  /** Evicts LRU entries (never `exceptKey`) until the committed bytes, less `creditBytes`, plus reservations fit. */
  #evictToBudget (exceptKey: string | undefined, creditBytes: number): void {
    for (const entry of this.#index.values()) {
      if (this.#sizeBytes - creditBytes + this.#reservedBytes <= this.#maxBytes) return
      if (entry.key === exceptKey) continue
      this.#drop(entry)
      this.#observer.onEvict?.(entry.meta, 'disk')
      this.#track(this.#unlinkUnlessReplaced(entry.key, entry.hash))
    }
  }

  /** Removes an entry from the index and the accounting at once, so no get can return it. */
  #drop (entry: IndexEntry): void {
    if (this.#index.get(entry.key) !== entry) return
    this.#files.invalidate(entry.hash)
    this.#index.delete(entry.key)
    this.#sizeBytes -= entry.fileBytes
    this.#settle(entry.key, entry.hash)
  }

  /**
   * Remembers a key whose file is going away while a scan pass may have read that file
   * (before the first pass ends, every key; later, keys under the directories being rescanned).
   */
  #settle (key: string, hash: string): void {
    if (this.#cold) {
      this.#settled.add(key)
      return
    }
    const scanning = this.#scanning
    if (scanning === undefined) return
    if (scanning.has('') || scanning.has(hash.slice(0, 2)) || scanning.has(`${hash.slice(0, 2)}/${hash.slice(2, 4)}`)) this.#settled.add(key)
  }

  /** A file found unindexed that a purge covers: delete it (a miss, not damage). */
  #purgedFile (key: string, hash: string): undefined {
    this.#files.invalidate(hash)
    this.#settle(key, hash)
    this.#track(this.#unlinkUnlessReplaced(key, hash))
    return undefined
  }

  /** The file vanished behind our back: a miss, and the entry goes. */
  #forget (key: string, hash: string, entry: IndexEntry | undefined): void {
    if (entry !== undefined) this.#drop(entry)
    else this.#settle(key, hash)
  }

  #unlinkUnlessReplaced (key: string, hash: string): Promise<void> {
    const path = this.#pathOf(hash)
    return this.#serial(hash, async () => {
      // A put that committed after the drop owns the path now.
      if (this.#index.has(key)) return
      this.#files.invalidate(hash)
      await unlink(path).catch(() => {})
    })
  }

  /**
   * A file failed its checks: drop its entry, report it, and delete the file, but only
   * the inode that was checked (a put may have renamed a good file onto the path since).
   */
  #corrupt (detail: { path: string, hash: string, reason: string, key?: string | undefined, entry?: IndexEntry | undefined, ino?: number | undefined }): undefined {
    const { path, hash, reason, key, entry, ino } = detail
    this.#files.invalidate(hash)
    if (entry !== undefined) this.#drop(entry)
    else if (key !== undefined) this.#settle(key, hash)
    this.#observer.onCorrupt?.(key === undefined ? { path, reason } : { path, reason, key })
    this.#track(this.#serial(hash, async () => {
      if (ino !== undefined) {
        const now = await lstat(path).catch(() => undefined)
        if (now === undefined || now.ino !== ino) return
      }
      await unlink(path).catch(() => {})
    }))
    return undefined
  }

  #startScanPass (prefixes: readonly string[]): void {
    clearTimeout(this.#retryTimer)
    this.#retryTimer = undefined
    this.#scanPassRunning = true
    this.#rebuild = this.#runScanPass(prefixes)
  }

  /**
   * One pass of the index scan over `prefixes` (the first pass: all of objects/). What it
   * read joins the index even when parts failed; the failed parts are retried with backoff.
   */
  async #runScanPass (prefixes: readonly string[]): Promise<void> {
    const first = this.#cold
    try {
      if (!first) {
        this.#scanning = new Set(prefixes)
        // Unlinks queued before this pass began (their keys are not settled) land before it lists.
        await Promise.all([...this.#chains.values()])
      }
      const failed = new Set<string>()
      const scanned = await this.#scan(prefixes, failed)
      // Cut short by close: the index stays incomplete, and nothing more is scanned.
      if (this.#rebuildAborted || this.#state !== 'open') return
      this.#mergeScanned(scanned)
      this.#unscanned = failed
      if (failed.size === 0) {
        this.#indexComplete = true
        this.#settleCompleted(true)
      } else {
        this.#scheduleRescan()
      }
    } finally {
      this.#scanning = undefined
      this.#settled.clear()
      this.#scanPassRunning = false
      if (first) this.#settleReady()
    }
  }

  async #scan (prefixes: readonly string[], failed: Set<string>): Promise<ScannedFile[]> {
    const scanned: ScannedFile[] = []
    const files = this.#walk(prefixes, failed)
    const worker = async (): Promise<void> => {
      try {
        for (;;) {
          const next = await files.next()
          if (next.done === true) return
          const found = await this.#scanFile(next.value, failed)
          if (found !== undefined) scanned.push(found)
        }
      } catch (err) {
        // Not an I/O failure the walk expects: nothing this pass covers counts as scanned.
        this.#observer.onReadError?.(asError(err), { path: this.#objectsDir })
        for (const prefix of prefixes) failed.add(prefix)
      }
    }
    await Promise.all(Array.from({ length: REBUILD_CONCURRENCY }, worker))
    return scanned
  }

  #scheduleRescan (): void {
    if (this.#state !== 'open') return
    const delayMs = this.#retryDelayMs
    this.#retryDelayMs = Math.min(delayMs * 2, Math.max(MAX_INDEX_RETRY_DELAY_MS, this.#indexRetryDelayMs))
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined
      if (this.#state === 'open' && !this.#scanPassRunning && this.#unscanned.size > 0) this.#startScanPass([...this.#unscanned])
    }, delayMs)
    this.#retryTimer.unref()
  }

  /** The object files under `prefixes`; a directory that cannot be listed is added to `failed` and skipped. */
  async * #walk (prefixes: readonly string[], failed: Set<string>): AsyncGenerator<FoundFile> {
    for (const prefix of outermostPrefixes(prefixes)) yield * this.#walkDir(prefix, failed)
  }

  async * #walkDir (prefix: string, failed: Set<string>): AsyncGenerator<FoundFile> {
    if (this.#rebuildAborted) return
    const path = prefix === '' ? this.#objectsDir : join(this.#objectsDir, prefix)
    let entries: Dirent[]
    try {
      entries = await readdirIfExists(path)
    } catch (err) {
      // One unreadable directory (EIO, EMFILE, EACCES) must not keep the rest out of the index and the budget.
      failed.add(prefix)
      this.#observer.onReadError?.(asError(err), { path })
      return
    }
    if (prefix.length === 5) {
      for (const file of entries) {
        if (this.#rebuildAborted) return
        yield { dirRel: prefix, name: file.name, isFile: file.isFile() }
      }
      return
    }
    for (const dir of entries) {
      if (!dir.isDirectory() || !HEX_PAIR.test(dir.name)) continue
      const child = prefix === '' ? dir.name : `${prefix}/${dir.name}`
      if (child.length === 5) this.#knownDirs.add(child)
      yield * this.#walkDir(child, failed)
    }
  }

  /** Reads and checks one file's head (not its body: that is verified on read). */
  async #scanFile (file: FoundFile, failed: Set<string>): Promise<ScannedFile | undefined> {
    const { dirRel, name } = file
    const path = join(this.#objectsDir, dirRel, name)
    if (!file.isFile) return undefined
    if (!isObjectFileName(name) || `${name.slice(0, 2)}/${name.slice(2, 4)}` !== dirRel) {
      return this.#corrupt({ path, hash: name, reason: 'unexpected file in the object directory' })
    }
    let fh: FileHandle
    try {
      fh = await open(path, 'r')
    } catch (err) {
      if (isNotFound(err)) return undefined
      // EMFILE, EIO: the file stays on disk unindexed, so its directory is scanned again.
      failed.add(dirRel)
      this.#observer.onReadError?.(asError(err), { path })
      return undefined
    }
    try {
      const stat = await fh.stat()
      const head = await readObjectHead(fh, stat.size)
      const corrupt = (reason: string, key?: string): undefined => this.#corrupt({ path, hash: name, reason, key, ino: stat.ino })
      if (head.status !== 'ok') return corrupt(head.reason)
      const { header, headBytes } = head
      if (hashKey(header.key) !== name) return corrupt('key hash does not match the file name', header.key)
      if (stat.size !== headBytes + header.bodyBytes) return corrupt(`file is ${stat.size} bytes, header says ${headBytes + header.bodyBytes}`, header.key)
      if (this.#isPurged(header.meta)) return this.#purgedFile(header.key, name)
      return { key: header.key, hash: name, fileBytes: stat.size, meta: header.meta, verifiedAs: undefined, mtimeMs: stat.mtimeMs }
    } catch (err) {
      failed.add(dirRel)
      this.#observer.onReadError?.(asError(err), { path })
      return undefined
    } finally {
      await fh.close().catch(() => {})
    }
  }

  /**
   * Files found by a scan pass join the index as older than anything touched since
   * open, ordered by mtime; then the budget is enforced (it may have been lowered, and
   * files a failed pass left out count now).
   */
  #mergeScanned (scanned: ScannedFile[]): void {
    scanned.sort((a, b) => a.mtimeMs - b.mtimeMs || (a.hash < b.hash ? -1 : 1))
    const merged = new Map<string, IndexEntry>()
    for (const { mtimeMs: _mtimeMs, ...entry } of scanned) {
      if (this.#index.has(entry.key) || this.#settled.has(entry.key)) continue
      // Asked again: a purge recorded after the scan read this file has not reached it (a prefix purge only sees indexed keys).
      if (this.#isPurged(entry.meta)) {
        this.#purgedFile(entry.key, entry.hash)
        continue
      }
      merged.set(entry.key, entry)
      this.#sizeBytes += entry.fileBytes
    }
    for (const [key, entry] of this.#index) merged.set(key, entry)
    this.#index = merged
    this.#cold = false
    this.#settled.clear()
    this.#evictToBudget(undefined, 0)
  }

  #serial<T> (hash: string, task: () => Promise<T>): Promise<T> {
    const run = (this.#chains.get(hash) ?? Promise.resolve()).then(task)
    const tail = run.then(() => {}, () => {})
    this.#chains.set(hash, tail)
    void tail.then(() => { if (this.#chains.get(hash) === tail) this.#chains.delete(hash) })
    return run
  }

  #track (task: Promise<unknown>): void {
    const settled = task.then(() => {}, () => {})
    this.#inflight.add(settled)
    void settled.then(() => this.#inflight.delete(settled))
  }

  #pathOf (hash: string): string {
    return join(this.#objectsDir, objectRelativePath(hash))
  }
}

function validateOptions (options: DiskStoreOptions): void {
  if (typeof options !== 'object' || options === null) {
    throw new TypeError(`Expected options to be an object, got ${inspect(options)}`)
  }
  const { dir, maxBytes, readWholeMaxBytes, maxOpenFiles, readChunkBytes, readBufferPoolBytes, fsync, observer, now, io, isPurged, indexRetryDelayMs } = options
  if (typeof dir !== 'string' || dir === '') fail('dir', 'a non-empty string', dir)
  if (!isNonNegativeInteger(maxBytes)) fail('maxBytes', 'a non-negative integer', maxBytes)
  if (readWholeMaxBytes !== undefined && !isNonNegativeInteger(readWholeMaxBytes)) {
    fail('readWholeMaxBytes', 'a non-negative integer', readWholeMaxBytes)
  }
  if (maxOpenFiles !== undefined && !isNonNegativeInteger(maxOpenFiles)) fail('maxOpenFiles', 'a non-negative integer', maxOpenFiles)
  if (readChunkBytes !== undefined && (!isNonNegativeInteger(readChunkBytes) || readChunkBytes === 0)) fail('readChunkBytes', 'a positive integer', readChunkBytes)
  if (readBufferPoolBytes !== undefined && !isNonNegativeInteger(readBufferPoolBytes)) fail('readBufferPoolBytes', 'a non-negative integer', readBufferPoolBytes)
  if (fsync !== undefined && typeof fsync !== 'boolean') fail('fsync', 'a boolean', fsync)
  if (observer !== undefined && (typeof observer !== 'object' || observer === null)) fail('observer', 'an object', observer)
  if (now !== undefined && typeof now !== 'function') fail('now', 'a function', now)
  if (io !== undefined && (typeof io !== 'object' || io === null)) fail('io', 'an object', io)
  if (isPurged !== undefined && typeof isPurged !== 'function') fail('isPurged', 'a function', isPurged)
  if (indexRetryDelayMs !== undefined && (!isNonNegativeInteger(indexRetryDelayMs) || indexRetryDelayMs === 0)) fail('indexRetryDelayMs', 'a positive integer', indexRetryDelayMs)
  if (io?.writev !== undefined && typeof io.writev !== 'function') fail('io.writev', 'a function', io.writev)
}

function fail (field: string, expected: string, got: unknown): never {
  throw new TypeError(`Expected options.${field} to be ${expected}, got ${inspect(got)}`)
}

function checkRange (start: number, endInclusive: number, bodyBytes: number): void {
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(endInclusive) || start < 0 || start > endInclusive || endInclusive >= bodyBytes) {
    throw new RangeError(`Expected a range within 0..${bodyBytes - 1}, got ${start}..${endInclusive}`)
  }
}

function identityOf (stat: Stats): FileIdentity {
  return { ino: stat.ino, size: stat.size, mtimeMs: stat.mtimeMs }
}

/**
 * `fd`'s file still has a link and is `identity`. One fstat either way: the native helper
 * compares in C, where fstatSync would build a Stats object on every hit sent from a file
 * (lendFile); fstatSync where the helper is missing.
 */
function unchangedSince (fd: number, identity: FileIdentity): boolean {
  if (zeroCopy !== undefined) return zeroCopy.unchanged(fd, identity.ino, identity.size, identity.mtimeMs) === 1
  const stat = fstatSync(fd)
  return stat.nlink > 0 && sameFile(identity, stat)
}

function sameFile (identity: FileIdentity | undefined, stat: FileIdentity): boolean {
  return identity !== undefined && identity.ino === stat.ino && identity.size === stat.size && identity.mtimeMs === stat.mtimeMs
}

/** Same stored response (a replace writes a new request and response time). */
export function sameVersion (a: ObjectMeta, b: ObjectMeta): boolean {
  return a.bodyBytes === b.bodyBytes && a.status === b.status && a.requestTimeMs === b.requestTimeMs && a.responseTimeMs === b.responseTimeMs
}

/** The prefixes no other one of them contains ('' contains all, 'ab' contains 'ab/cd'). */
function outermostPrefixes (prefixes: readonly string[]): string[] {
  const all = new Set(prefixes)
  if (all.has('')) return ['']
  return [...all].filter((prefix) => prefix.length !== 5 || !all.has(prefix.slice(0, 2))).sort()
}

function isNonNegativeInteger (value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0
}

/** The buffers that remain after the first `count` bytes were written. */
function skipBytes (buffers: Buffer[], count: number): Buffer[] {
  const rest: Buffer[] = []
  let skip = count
  for (const buf of buffers) {
    if (skip >= buf.length) {
      skip -= buf.length
      continue
    }
    rest.push(skip > 0 ? buf.subarray(skip) : buf)
    skip = 0
  }
  return rest
}

async function readdirIfExists (path: string): Promise<Dirent[]> {
  try {
    return await readdir(path, { withFileTypes: true })
  } catch (err) {
    if (isNotFound(err)) return []
    throw err
  }
}

function readInto (fd: number, buf: Buffer, length: number, position: number): Promise<number> {
  return new Promise((resolve, reject) => {
    readFd(fd, buf, 0, length, position, (err, bytesRead) => { if (err === null) resolve(bytesRead); else reject(err) })
  })
}

function isNotFound (err: unknown): boolean {
  return (err as NodeJS.ErrnoException | null)?.code === 'ENOENT'
}

function asError (err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err))
}
