/**
 * One HTTP/1.1 response read off a raw socket, for the load clients that timestamp the
 * head and the first body byte without an HTTP client's buffering in between (the cold-herd
 * client, steady-misses' load). The body is counted, not kept; it ends at Content-Length.
 * @see RFC 9112 §6.3 (message body length)
 */
import { parseResponseHead, type ResponseHead } from './http-head.ts'

/**
 * Feeds one response's chunks in order and records when its parts arrived, in whatever
 * clock the caller passes (`performance.now()` in the bench). A response without
 * Content-Length never completes here (`doneAt` stays undefined). The times are set by
 * {@link ResponseReader.feed} alone; callers only read them.
 */
export class ResponseReader {
  readonly #sentAt: number
  #pending: Buffer[] = []
  #head: ResponseHead | undefined
  #body = 0
  #headAt: number | undefined
  #firstByteAt: number | undefined
  #doneAt: number | undefined

  /** `sentAt`: when the request was written, the origin of the caller's durations. */
  constructor (sentAt: number) {
    this.#sentAt = sentAt
  }

  /** When the request was written. */
  get sentAt (): number { return this.#sentAt }
  /** When the whole head had arrived. */
  get headAt (): number | undefined { return this.#headAt }
  /** When the first body byte arrived. */
  get firstByteAt (): number | undefined { return this.#firstByteAt }
  /** When the last body byte (per Content-Length) arrived. */
  get doneAt (): number | undefined { return this.#doneAt }
  get head (): ResponseHead | undefined { return this.#head }
  get bodyBytes (): number { return this.#body }

  /** Feeds a chunk that arrived at `now`; returns the body bytes it carried (throws TypeError on a malformed head). */
  feed (chunk: Buffer, now: number): number {
    let bytes = chunk.length
    if (this.#head === undefined) {
      this.#pending.push(chunk)
      const data = this.#pending.length === 1 ? chunk : Buffer.concat(this.#pending)
      const head = parseResponseHead(data)
      if (head === undefined) return 0
      this.#pending = []
      this.#head = head
      this.#headAt = now
      bytes = data.length - head.headBytes
    }
    if (bytes > 0) this.#firstByteAt ??= now
    this.#body += bytes
    if (this.#head.contentLength !== undefined && this.#body >= this.#head.contentLength) this.#doneAt ??= now
    return bytes
  }
}
