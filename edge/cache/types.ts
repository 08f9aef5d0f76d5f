/**
 * The cache engine's vocabulary: what a stored object is, and the contract every
 * store (memory, disk, tiered) keeps. Stores only store; freshness, admission and
 * coalescing decisions live elsewhere.
 */
import type { Readable, Writable } from 'node:stream'

/**
 * Response headers as stored: lower-case names, hop-by-hop headers removed,
 * repeated headers joined with ", " (except set-cookie, which stays a list).
 * Framing headers (content-length, transfer-encoding) are not stored: the length
 * is `bodyBytes`.
 */
export type StoredHeaders = Readonly<Record<string, string | readonly string[]>>

/** Everything the cache keeps about an object besides its body bytes. */
export interface ObjectMeta {
  /** The cache key (see cache-key.ts). */
  readonly key: string
  readonly status: number
  readonly headers: StoredHeaders
  readonly bodyBytes: number
  /** Wall clock (ms) when the upstream request was sent (RFC 9111 §4.2.3 request_time). */
  readonly requestTimeMs: number
  /** Wall clock (ms) when the upstream response arrived (RFC 9111 §4.2.3 response_time). */
  readonly responseTimeMs: number
  /** RFC 9111 §4.2.3 corrected_initial_age, in seconds. */
  readonly initialAgeSeconds: number
  /** RFC 9111 §4.2.1 freshness_lifetime, in seconds. */
  readonly freshnessLifetimeSeconds: number
}

/** An object whose body is in memory: what a fill produces and the memory tier holds. */
export interface MemoryObject {
  readonly meta: ObjectMeta
  readonly body: Buffer
}

/**
 * An object whose body stays on disk and is streamed: the disk tier's answer for
 * objects larger than it is willing to read whole. The stream covers body bytes
 * `start..endInclusive` and is destroyed with a CDN_ERR_STORE_CORRUPT error if the
 * bytes read do not match the stored checksum, so a reader never completes a
 * response with corrupt bytes.
 */
export interface StreamedObject {
  readonly meta: ObjectMeta
  readonly body: null
  createReadStream (start: number, endInclusive: number): Readable
  /**
   * Sends body bytes `start..endInclusive` to `out` and ends it, then calls `done` once
   * with the bytes `out` accepted, and an error when it stopped early (damage, I/O, `out`
   * closed); `out` is then left to the caller to destroy. The cheap way to answer a disk
   * hit: reads go into pooled buffers, each reused after `out`'s write callback, so a
   * consumer that keeps chunks must use createReadStream instead.
   */
  writeTo (out: Writable, start: number, endInclusive: number, done: (err: Error | undefined, bytes: number) => void): void
}

export type StoredObject = MemoryObject | StreamedObject

/** What happened to an object inside a store; stores report, callers count. */
export interface StoreObserver {
  /** An object left the store to make room (not on explicit delete). */
  onEvict?(meta: ObjectMeta, store: StoreName): void
  /** A stored file failed its checks and was deleted. */
  onCorrupt?(detail: { path: string, reason: string, key?: string }): void
  /** Writing an object failed (full disk, I/O error); the object is not stored. */
  onWriteError?(err: Error, key: string): void
  /** Reading a stored object failed for a reason other than damage (EIO, EMFILE); the read was answered as a miss. */
  onReadError?(err: Error, detail: { path: string, key?: string }): void
}

export type StoreName = 'memory' | 'disk' | 'tiered'

/**
 * The store contract, shared by memory, disk and tiered stores
 * (tested once, in test/edge/cache/store.contract.ts).
 * `get` may answer synchronously (the memory tier does) so a hot hit costs no promise.
 */
export interface Store {
  readonly name: StoreName
  get (key: string): StoredObject | undefined | Promise<StoredObject | undefined>
  /** Stores a complete object, replacing any object under the same key. */
  put (object: MemoryObject): void | Promise<void>
  delete (key: string): void | Promise<void>
  /** Bytes held (bodies plus metadata estimate) and objects held. */
  readonly sizeBytes: number
  readonly count: number
  close (): Promise<void>
}
