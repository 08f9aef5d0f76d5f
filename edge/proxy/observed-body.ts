/**
 * A response body that reports how it ended: the upstream sent all of it, the upstream
 * failed it, or the consumer dropped it. Listening on the source alone cannot tell the last
 * two apart (`destroy(err)` by a consumer also emits 'error'), and health accounting and
 * concurrency slots need exactly that distinction, so the source is wrapped.
 */
import { Readable } from 'node:stream'

/** How an observed body ended. */
export type BodyOutcome = 'end' | 'error' | 'cancel'

/** Called once: `end` when the source ended, `error` when it failed, `cancel` when the consumer destroyed the wrapper first. */
export type BodyOutcomeListener = (outcome: BodyOutcome, err: Error | undefined) => void

const HIGH_WATER_MARK_BYTES = 64 * 1024

class ObservedBody extends Readable {
  readonly #source: Readable
  readonly #onDone: BodyOutcomeListener
  #done = false

  constructor (source: Readable, onDone: BodyOutcomeListener) {
    super({ highWaterMark: HIGH_WATER_MARK_BYTES })
    this.#source = source
    this.#onDone = onDone
    source.on('data', (chunk: Buffer) => {
      if (!this.push(chunk)) source.pause()
    })
    source.once('end', () => {
      this.#finish('end', undefined)
      this.push(null)
    })
    source.once('error', (err: Error) => {
      this.#finish('error', err)
      this.destroy(err)
    })
    // A source destroyed without an error and without 'end' (premature close) is a failure too.
    source.once('close', () => {
      if (this.#done) return
      const err = Object.assign(new Error('upstream body closed before it ended'), { code: 'ERR_STREAM_PREMATURE_CLOSE' })
      this.#finish('error', err)
      this.destroy(err)
    })
  }

  override _read (): void {
    this.#source.resume()
  }

  override _destroy (err: Error | null, callback: (error?: Error | null) => void): void {
    if (!this.#done) {
      this.#finish('cancel', err ?? undefined)
      this.#source.destroy()
    }
    callback(err)
  }

  #finish (outcome: BodyOutcome, err: Error | undefined): void {
    if (this.#done) return
    this.#done = true
    this.#onDone(outcome, err)
  }
}

/** Wraps `source` so `onDone` runs exactly once when the body ends, fails or is dropped; the bytes pass through unchanged. */
export function observeBody (source: Readable, onDone: BodyOutcomeListener): Readable {
  return new ObservedBody(source, onDone)
}

/** Reads and discards a body we will not forward (a 5xx we fail over from), keeping its connection reusable. */
export function discardBody (body: Readable, onDone?: () => void): void {
  let called = false
  const done = (): void => {
    if (called) return
    called = true
    onDone?.()
  }
  body.on('error', done)
  body.once('end', done)
  body.once('close', done)
  body.resume()
}
