/**
 * A small LRU of open object files, shared by the disk tier's readers: a disk hit on
 * a hot file costs one pread instead of open + fstat + read + close (nginx's
 * open_file_cache, varnish's file storage keeps its fds open too). The store that owns
 * the paths invalidates a file whenever it renames onto or unlinks its path; an
 * invalidated or evicted file is closed when its last reader releases it.
 */
import { close, fstat, open } from 'node:fs'

/** One open file; `refs` readers hold it. Never close `fd` yourself: release the file. */
export interface OpenFile {
  readonly fd: number
  /** Inode the descriptor refers to (fixed: the path may since point elsewhere). */
  readonly ino: number
}

interface Slot extends OpenFile {
  fd: number
  ino: number
  refs: number
  /** Left the cache (invalidated, evicted, closed): closed when refs reaches 0. */
  detached: boolean
  /** Set while the open is in flight. */
  opening: Promise<void> | undefined
  error: Error | undefined
}

/** Options of {@link OpenFiles}. */
export interface OpenFilesOptions {
  /** Descriptors kept open when no reader holds them (readers may hold more for a while). */
  readonly maxOpen: number
}

/** LRU of open files keyed by a caller's name for the path (the object hash). */
export class OpenFiles {
  readonly #maxOpen: number
  // Map order is the LRU order: first entry is the least recently used.
  readonly #slots = new Map<string, Slot>()
  #closed = false
  // close(2) calls issued and not yet done (the thread pool runs them), and who waits for none
  #closing = 0
  #whenClosed: Array<() => void> = []

  constructor (options: OpenFilesOptions) {
    const { maxOpen } = options
    if (!Number.isSafeInteger(maxOpen) || maxOpen < 0) {
      throw new TypeError(`Expected options.maxOpen to be a non-negative integer, got ${String(maxOpen)}`)
    }
    this.#maxOpen = maxOpen
  }

  /** Files cached now (open or opening). */
  get size (): number { return this.#slots.size }

  /**
   * The open file for `name`, opening `path` read-only when it is not cached. Each call
   * takes a reference the caller must give back with {@link release}. Rejects with the
   * open's error (ENOENT when the path is gone).
   */
  acquire (name: string, path: string): OpenFile | Promise<OpenFile> {
    const cached = this.tryAcquire(name)
    if (cached !== undefined) return cached
    const slot = this.#slots.get(name) ?? this.#openSlot(name, path)
    slot.refs++
    return (slot.opening ?? Promise.resolve()).then(() => {
      if (slot.error === undefined) return slot
      this.release(slot)
      throw slot.error
    })
  }

  /** The cached, already open file for `name` with a new reference, or undefined. */
  tryAcquire (name: string): OpenFile | undefined {
    const slot = this.#slots.get(name)
    if (slot === undefined || slot.opening !== undefined) return undefined
    slot.refs++
    this.#slots.delete(name)
    this.#slots.set(name, slot)
    return slot
  }

  /** Gives back a reference taken by acquire or tryAcquire. */
  release (file: OpenFile): void {
    const slot = file as Slot
    slot.refs--
    if (slot.refs === 0 && slot.detached) this.#closeSlot(slot)
  }

  /** The path behind `name` changed or went away: readers holding the old file keep it, new ones reopen. */
  invalidate (name: string): void {
    const slot = this.#slots.get(name)
    if (slot === undefined) return
    this.#slots.delete(name)
    this.#detach(slot)
  }

  /**
   * Closes every idle file now and the others when released; later acquires still work,
   * uncached. Resolves once the descriptors closed so far are closed (a file system can then
   * be unmounted), not waiting for files readers still hold.
   */
  async close (): Promise<void> {
    this.#closed = true
    for (const slot of this.#slots.values()) this.#detach(slot)
    this.#slots.clear()
    if (this.#closing > 0) await new Promise<void>((resolve) => { this.#whenClosed.push(resolve) })
  }

  #openSlot (name: string, path: string): Slot {
    const slot: Slot = { fd: -1, ino: 0, refs: 0, detached: this.#closed, opening: undefined, error: undefined }
    slot.opening = new Promise<void>((resolve) => {
      open(path, 'r', (err, fd) => {
        if (err !== null) return this.#failed(name, slot, err, resolve)
        slot.fd = fd
        fstat(fd, (err, stat) => {
          if (err !== null) return this.#failed(name, slot, err, resolve)
          slot.ino = stat.ino
          slot.opening = undefined
          if (slot.detached && slot.refs === 0) this.#closeSlot(slot)
          resolve()
        })
      })
    })
    if (!this.#closed) {
      this.#slots.set(name, slot)
      this.#trim()
    }
    return slot
  }

  #failed (name: string, slot: Slot, err: Error, resolve: () => void): void {
    slot.error = err
    slot.opening = undefined
    if (this.#slots.get(name) === slot) this.#slots.delete(name)
    slot.detached = true
    this.#closeSlot(slot)
    resolve()
  }

  #trim (): void {
    for (const [name, slot] of this.#slots) {
      if (this.#slots.size <= this.#maxOpen) return
      this.#slots.delete(name)
      this.#detach(slot)
    }
  }

  #detach (slot: Slot): void {
    slot.detached = true
    if (slot.refs === 0 && slot.opening === undefined) this.#closeSlot(slot)
  }

  #closeSlot (slot: Slot): void {
    if (slot.fd < 0) return
    const fd = slot.fd
    slot.fd = -1
    this.#closing++
    close(fd, () => {
      if (--this.#closing > 0) return
      const waiting = this.#whenClosed
      this.#whenClosed = []
      for (const resolve of waiting) resolve()
    })
  }
}
