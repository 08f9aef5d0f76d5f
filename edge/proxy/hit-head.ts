/**
 * Pre-rendered response heads for answers given below node:http (the fast path,
 * edge/proxy/fast-hit.ts): memory hits, and requests joining a fill in flight. The fields
 * are deliver.ts's `storedObjectFields` and `fillFields`, the lists the node:http path hands
 * to `writeHead`, rendered to text once per object (or fill) for as long as its Age and
 * Cache-Status ttl stay the same whole numbers (about a second), so a hot hit builds no
 * header at all, and a herd joining one fill builds one.
 */
import { STATUS_CODES } from 'node:http'
import { fullHead, wireResponse } from '../../lib/http/fast-front.ts'
import { formatContentRange } from '../../lib/http/range.ts'
import { ageHeaderSeconds, initialAgeSeconds } from '../cache/freshness.ts'
import type { FillHead } from '../cache/shared-fill.ts'
import type { MemoryObject } from '../cache/types.ts'
import { acceptRanges, fillFields, storedObjectFields, type Responder, type StatusFields } from './deliver.ts'

// What node:http refuses in writeHead (ERR_INVALID_HTTP_TOKEN, ERR_INVALID_CHAR): the
// fast path declines such an object rather than send what node:http would not.
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/
const BAD_VALUE = /[^\t\x20-\x7e\x80-\xff]/

/** A stored response's head for one (Age, ttl) pair. */
export class HitHead {
  #ageSeconds = -1
  #ttlSeconds = Number.NaN
  #whole = ''
  #fields = ''
  #ownDate = false
  #sendable = false
  // The last single-range head (byte-range HLS: every player asks for the same ranges)
  #partialStart = -1
  #partialEnd = -1
  #partial = ''
  // The last head completed for the wire (fullHead), and what it was completed from
  #wireOf = ''
  #wireDate = ''
  #wireClose = false
  #wire = ''

  /** Status line, fields and Content-Length of the whole object. */
  get whole (): string { return this.#whole }
  /** The fields carry a Date (the stored response's): nothing may add another (RFC 9110 §6.6.1). */
  get ownDate (): boolean { return this.#ownDate }
  /** Every field can be sent as is (node:http would accept it). */
  get sendable (): boolean { return this.#sendable }

  /** Rendered for this Age and ttl already? */
  holds (ageSeconds: number, ttlSeconds: number): boolean {
    return this.#ageSeconds === ageSeconds && this.#ttlSeconds === ttlSeconds
  }

  /** The head of a single-range answer (RFC 9110 §14.4): 206 with Content-Range. */
  partial (start: number, end: number, size: number): string {
    if (start === this.#partialStart && end === this.#partialEnd) return this.#partial
    this.#partialStart = start
    this.#partialEnd = end
    this.#partial = `HTTP/1.1 206 ${STATUS_CODES[206]!}\r\n${this.#fields}content-range: ${formatContentRange(start, end, size)}\r\ncontent-length: ${end - start + 1}\r\n`
    return this.#partial
  }

  /**
   * `head` (this object's {@link whole} or {@link partial}) completed for the wire as the fast
   * front completes it, the same string as long as head, date and close stay the same.
   */
  wireHead (head: string, date: string, close: boolean): string {
    if (head !== this.#wireOf || date !== this.#wireDate || close !== this.#wireClose) {
      this.#wireOf = head
      this.#wireDate = date
      this.#wireClose = close
      this.#wire = fullHead(head, date, close)
    }
    return this.#wire
  }

  /** Renders `list` ([name, value, ...], as writeHead takes it) for a response of `status` with `bodyBytes`. */
  render (list: readonly string[], status: number, bodyBytes: number, ageSeconds: number, ttlSeconds: number): void {
    let fields = ''
    let ownDate = false
    let sendable = true
    for (let i = 0; i < list.length; i += 2) {
      const name = list[i]!
      const value = list[i + 1]!
      if (!TOKEN.test(name) || BAD_VALUE.test(value)) sendable = false
      if (name.length === 4 && name.toLowerCase() === 'date') ownDate = true
      fields += `${name}: ${value}\r\n`
    }
    this.#ageSeconds = ageSeconds
    this.#ttlSeconds = ttlSeconds
    this.#fields = fields
    this.#partialStart = -1
    this.#partialEnd = -1
    this.#whole = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'unknown'}\r\n${fields}content-length: ${bodyBytes}\r\n`
    this.#ownDate = ownDate
    this.#sendable = sendable
  }
}

/** The heads of the objects hit through the fast path (kept while the object lives). */
export class HitHeads {
  readonly #responder: Responder
  readonly #heads = new WeakMap<MemoryObject, HitHead>()

  constructor (responder: Responder) {
    this.#responder = responder
  }

  /**
   * The head of a fresh hit on `object` at `nowMs` whose Cache-Status ttl is `ttlSeconds`
   * (RFC 9211: `hit; ttl=N`), or undefined when a stored field cannot be sent as is.
   */
  get (object: MemoryObject, ttlSeconds: number, nowMs: number): HitHead | undefined {
    const meta = object.meta
    const ageSeconds = ageHeaderSeconds(meta, nowMs)
    let head = this.#heads.get(object)
    if (head === undefined) {
      head = new HitHead()
      this.#heads.set(object, head)
    }
    if (!head.holds(ageSeconds, ttlSeconds)) {
      head.render(storedObjectFields(this.#responder, meta, { hit: true, ttl: ttlSeconds }, nowMs), meta.status, meta.bodyBytes, ageSeconds, ttlSeconds)
    }
    return head.sendable ? head : undefined
  }
}

/**
 * The head every joiner of one fill gets on the fast path: the fill's whole 200 of
 * `totalBytes`, with Cache-Status `status` (the same for all of them), re-rendered when
 * its Age moves.
 */
export class JoinHead {
  readonly #head = new HitHead()
  readonly #responder: Responder
  readonly #fill: FillHead
  readonly #status: StatusFields
  readonly #totalBytes: number
  // RFC 9111 §4.2.3's age at receipt, from the fill head's Date and Age (parsed once)
  readonly #basis: { readonly initialAgeSeconds: number, readonly responseTimeMs: number }

  constructor (responder: Responder, fill: FillHead, status: StatusFields, totalBytes: number) {
    this.#responder = responder
    this.#fill = fill
    this.#status = status
    this.#totalBytes = totalBytes
    this.#basis = { initialAgeSeconds: initialAgeSeconds(fill), responseTimeMs: fill.responseTimeMs }
  }

  /** The head at `nowMs`, or undefined when an upstream field cannot be sent as is. */
  get (nowMs: number): HitHead | undefined {
    const head = this.#head
    const ageSeconds = ageHeaderSeconds(this.#basis, nowMs)
    if (!head.holds(ageSeconds, 0)) {
      const list = fillFields(this.#responder, this.#fill, this.#status, nowMs)
      acceptRanges(list, this.#fill)
      head.render(list, this.#fill.status, this.#totalBytes, ageSeconds, 0)
    }
    return head.sendable ? head : undefined
  }
}

/** Most answers {@link HitWires} keeps (each at most a small body and its head: a few MB in all). */
export const MAX_HIT_WIRES = 4096

/**
 * The bytes of the small answers hit this wall-clock second (FastResponse.wire): a hot small
 * hit (a playlist) is then written from the same buffer by every request, with no
 * allocation or copy. Kept for the current second only, and at most {@link MAX_HIT_WIRES}
 * of them, so memory stays bounded whatever the memory tier holds.
 */
export class HitWires {
  // by body (an object's own Buffer): two objects may render the same head, never share a body
  readonly #wires = new Map<Buffer, { readonly whole: string, readonly date: string, readonly bytes: Buffer }>()
  #second = 0

  /** The keep-alive answer with rendered head `whole`, `body` and Date `date` ('' when the head has its own). */
  get (whole: string, body: Buffer, date: string, nowMs: number): Buffer {
    const second = Math.floor(nowMs / 1000)
    if (second !== this.#second) {
      this.#wires.clear()
      this.#second = second
    }
    const kept = this.#wires.get(body)
    if (kept !== undefined && kept.date === date && kept.whole === whole) return kept.bytes
    const keep = kept !== undefined || this.#wires.size < MAX_HIT_WIRES
    const bytes = wireResponse(whole, body, date, false, keep)
    if (keep) this.#wires.set(body, { whole, date, bytes })
    return bytes
  }
}
