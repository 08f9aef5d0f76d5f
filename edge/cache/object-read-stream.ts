/**
 * Streams a byte range of an object file's body, so the disk tier can serve objects
 * too large to read whole without ever completing a response with damaged bytes.
 */
import { open } from 'node:fs/promises'
import type { FileHandle } from 'node:fs/promises'
import { Readable } from 'node:stream'
import { crc32 } from 'node:zlib'
import { CdnError } from '../../lib/errors.ts'
import { readAt } from './object-file.ts'

/** Bytes per chunk pushed downstream (and per read while verifying). */
export const READ_CHUNK_BYTES = 64 * 1024

const VERIFY_CHUNK_BYTES = 1024 * 1024

/** What ObjectReadStream needs to know about the file it reads. */
export interface ObjectReadStreamOptions {
  readonly path: string
  /** The file's head (everything before the body) as seen at lookup. */
  readonly head: Buffer
  readonly bodyBytes: number
  readonly bodyCrc32: number
  /** First and last body byte to stream, inclusive. */
  readonly start: number
  readonly endInclusive: number
  /** Check the whole body's checksum before the first byte (for a partial range of an unverified file). */
  readonly verifyFirst: boolean
  /** The whole body matched its checksum. */
  readonly onVerified: () => void
  /** The file is damaged; `ino` identifies the inode that was read, so the caller deletes only that file. */
  readonly onCorrupt: (reason: string, ino: number) => void
}

/**
 * Readable over `start..endInclusive` of an object's body. A full-body stream checks
 * the crc32 as it goes and fails with CDN_ERR_STORE_CORRUPT instead of pushing its
 * last chunk when the checksum does not match; a partial range is served only after
 * the whole body was verified (once per file, see `verifyFirst`). The file is reopened
 * by path and must still start with the head seen at lookup.
 */
export class ObjectReadStream extends Readable {
  #opts: ObjectReadStreamOptions
  #fh: FileHandle | undefined
  #ino = 0
  #position: number
  #crc: number | undefined

  constructor (opts: ObjectReadStreamOptions) {
    super({ highWaterMark: READ_CHUNK_BYTES })
    this.#opts = opts
    this.#position = opts.start
    const wholeBody = opts.start === 0 && opts.endInclusive === opts.bodyBytes - 1
    this.#crc = wholeBody ? 0 : undefined
  }

  override _construct (callback: (error?: Error | null) => void): void {
    this.#openChecked().then(() => callback(), (err: unknown) => callback(asError(err)))
  }

  override _read (): void {
    this.#readChunk().then(undefined, (err: unknown) => this.destroy(asError(err)))
  }

  override _destroy (err: Error | null, callback: (error?: Error | null) => void): void {
    const fh = this.#fh
    this.#fh = undefined
    if (fh === undefined) return callback(err)
    fh.close().then(() => callback(err), () => callback(err))
  }

  async #openChecked (): Promise<void> {
    const { path, head, bodyBytes } = this.#opts
    try {
      this.#fh = await open(path, 'r')
    } catch (err) {
      throw new CdnError('CDN_ERR_STORE_CORRUPT', `Object file ${path} vanished after lookup`, { cause: err })
    }
    const stat = await this.#fh.stat()
    this.#ino = stat.ino
    const seen = await readAt(this.#fh, 0, head.length)
    if (!seen.equals(head)) {
      // Replaced by a newer put (or deleted and rewritten) since lookup: not damage, but not ours to serve.
      throw new CdnError('CDN_ERR_STORE_CORRUPT', `Object file ${path} was replaced after lookup`)
    }
    if (stat.size !== head.length + bodyBytes) throw this.#corrupt(`file is ${stat.size} bytes, header says ${head.length + bodyBytes}`)
    if (this.#opts.verifyFirst) await this.#verifyWholeBody()
  }

  async #verifyWholeBody (): Promise<void> {
    const fh = this.#fh
    if (fh === undefined) return
    const { head, bodyBytes, bodyCrc32 } = this.#opts
    const buf = Buffer.allocUnsafe(Math.min(VERIFY_CHUNK_BYTES, bodyBytes))
    let crc = 0
    for (let done = 0; done < bodyBytes;) {
      const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, bodyBytes - done), head.length + done)
      if (bytesRead === 0) throw this.#corrupt('file ended before its body did')
      crc = crc32(buf.subarray(0, bytesRead), crc)
      done += bytesRead
    }
    if (crc !== bodyCrc32) throw this.#corrupt('body checksum mismatch')
    this.#opts.onVerified()
  }

  async #readChunk (): Promise<void> {
    const fh = this.#fh
    if (fh === undefined) return
    const { head, endInclusive } = this.#opts
    const wanted = Math.min(READ_CHUNK_BYTES, endInclusive + 1 - this.#position)
    const buf = Buffer.allocUnsafe(wanted)
    const { bytesRead } = await fh.read(buf, 0, wanted, head.length + this.#position)
    if (this.destroyed) return
    if (bytesRead === 0) throw this.#corrupt('file ended before its body did')
    const chunk = bytesRead === wanted ? buf : buf.subarray(0, bytesRead)
    this.#position += bytesRead
    const last = this.#position > endInclusive
    if (this.#crc !== undefined) {
      this.#crc = crc32(chunk, this.#crc)
      // Checked before the last chunk goes out, so a reader never sees a clean end of bad bytes.
      if (last && this.#crc !== this.#opts.bodyCrc32) throw this.#corrupt('body checksum mismatch')
      if (last) this.#opts.onVerified()
    }
    this.push(chunk)
    if (last) this.push(null)
  }

  #corrupt (reason: string): CdnError {
    this.#opts.onCorrupt(reason, this.#ino)
    return new CdnError('CDN_ERR_STORE_CORRUPT', `Object file ${this.#opts.path} failed its checks: ${reason}`)
  }
}

function asError (err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err))
}
