/**
 * One request on one raw TCP connection, timed from the write to the head, the first body
 * byte and the last (bench/lib/response-reader.ts): a cold-herd client, a steady-misses
 * live viewer. No HTTP client library in between, so nothing buffers before the timestamps.
 */
import type { Socket } from 'node:net'
import { ResponseReader } from './response-reader.ts'

/** One client's outcome; times are ms since it wrote its request. */
export interface TimedClientResult {
  readonly status: number | undefined
  readonly headMs: number | undefined
  readonly firstByteMs: number | undefined
  readonly totalMs: number | undefined
  readonly bodyBytes: number
  readonly error: string | undefined
}

/**
 * Reads the response to the one request {@link TimedClient.send} writes on `socket` (connected
 * or still connecting), and settles `done` when the body is complete (per Content-Length)
 * or the first failure: a socket error, a close before the end, a malformed head, {@link TimedClient.abort}.
 * The socket is destroyed once the body is complete.
 */
export class TimedClient {
  readonly #socket: Socket
  #reader: ResponseReader | undefined
  #error: string | undefined
  /** Settles (never rejects) when the response is complete or the client failed. */
  readonly done: Promise<void>
  #finish!: () => void

  constructor (socket: Socket) {
    this.#socket = socket
    this.done = new Promise((resolve) => { this.#finish = resolve })
    socket.on('data', (chunk: Buffer) => this.#onData(chunk))
    socket.on('error', (err) => this.#fail(err.message))
    socket.on('close', () => this.#fail('connection closed before the body was complete'))
  }

  /** Writes the request; its times count from now (`performance.now()`). */
  send (request: Buffer | string): void {
    this.#reader = new ResponseReader(performance.now())
    this.#socket.write(request)
  }

  /** Fails the client with `reason` (unless it is already done) and closes the connection. */
  abort (reason: string): void {
    this.#fail(reason)
    this.#socket.destroy()
  }

  /** When the body was complete, in `performance.now()` time (undefined until then). */
  get doneAt (): number | undefined { return this.#reader?.doneAt }

  /** The outcome so far. */
  result (): TimedClientResult {
    const r = this.#reader
    const since = (at: number | undefined): number | undefined => at === undefined || r === undefined ? undefined : at - r.sentAt
    return { status: r?.head?.status, headMs: since(r?.headAt), firstByteMs: since(r?.firstByteAt), totalMs: since(r?.doneAt), bodyBytes: r?.bodyBytes ?? 0, error: this.#error }
  }

  #onData (chunk: Buffer): void {
    const r = this.#reader
    if (r === undefined || r.doneAt !== undefined) return
    try {
      r.feed(chunk, performance.now())
    } catch (err) {
      this.abort((err as Error).message)
      return
    }
    if (r.doneAt === undefined) return
    this.#socket.destroy()
    this.#finish()
  }

  #fail (reason: string): void {
    if (this.#reader?.doneAt !== undefined || this.#error !== undefined) return
    this.#error = reason
    this.#finish()
  }
}
