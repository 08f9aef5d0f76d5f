/**
 * A fast path in front of node:http for the requests a server answers most: plain GET and
 * HEAD requests it can answer synchronously (a cached object in memory, a steering 302).
 *
 * node:http costs ~60 µs of JavaScript per request on a small VM (IncomingMessage and
 * ServerResponse objects, header validation, stream machinery), more than a cache hit
 * itself. The front reads a connection's bytes first: while every request on it is simple
 * (request line `GET|HEAD <origin-form> HTTP/1.1`, well-formed fields, no body, no upgrade,
 * no Expect) and the handler answers it, the front writes the pre-rendered response with one
 * corked write. At the first request that is anything else, or that the handler declines,
 * the socket with every unread byte is handed to node:http's own connection listener and
 * stays there; node:http then parses and answers everything on it, including malformed
 * input (400, 431), exactly as without the front. So the front never has to be a complete
 * HTTP/1.1 implementation: it only has to recognise the easy case (RFC 9112 §3, §5).
 *
 * Responses on one connection stay in request order: the front reads no further request
 * while one is being answered, and it hands over only between requests. Most answers are
 * synchronous (a whole body in memory); a handler may also stream a body it does not have
 * yet (`FastResponse.pipe`: a shared fill's bytes as they arrive) or answer later
 * ({@link FastPending}: a fill's head still on its way), and a later answer may still
 * decline, handing the request to node:http as if declined at once.
 *
 * Answers leave together at the end of the event-loop turn (cork, then uncork in the check
 * phase that follows the poll phase, as uWebSockets does): every request that arrived in
 * one turn is answered, then all the answers are written back to back. One write syscall per
 * answer either way, but a client is then woken once for a burst rather than once per
 * answer with a request's JavaScript in between; on a loaded 2-core box the system CPU of a
 * hot playlist hit fell from about 20 to 12-14 µs (bench/RESULTS.md, hot-playlist windows).
 * The cost is a few µs of latency for the first answers of a busy turn.
 *
 * A large body may also leave from a file instead of memory (FastFrontOptions.sendFile,
 * FastResponse.sendFile: sendfile(2) from the page cache, lib/native/zero-copy.c), when
 * nothing is queued on the connection ahead of it. When the socket fills, the body goes on
 * from the file in parts: a small write from memory waits in libuv for room, and the next
 * part follows it, so the connection's bytes stay in order.
 */
import type { Server } from 'node:http'
import { constants } from 'node:os'
import type { Socket } from 'node:net'

/** A request the fast path may answer. */
export interface FastRequest {
  readonly method: 'GET' | 'HEAD'
  /** The request-target as sent (origin-form: starts with `/`). */
  readonly target: string
  /**
   * Header fields by lower-case name (no Object.prototype in its chain, so any field name is
   * safe). Repeated fields are joined with `, ` (RFC 9110 §5.3), as node:http does for most fields.
   */
  readonly headers: Readonly<Record<string, string>>
  readonly remoteAddress: string | undefined
  /** The client asked to close the connection after this response (`Connection: close`). */
  readonly close: boolean
  /**
   * The connection's identity: the net.Socket that node:http's request carries as
   * `req.socket` should this request be handed over (so a handler can leave a note for
   * its node:http path). Undefined outside a FastFront.
   */
  readonly connection?: object | undefined
}

/**
 * Where a streamed body goes ({@link FastResponse.pipe}): the client's connection, which
 * stays open for the next request once the body has ended.
 */
export interface FastBodySink {
  /** The connection is gone: stop writing. */
  readonly destroyed: boolean
  /** False when the caller should wait for 'drain' before writing more. */
  write (chunk: Buffer): boolean
  /** The body is complete (exactly Content-Length bytes were written). */
  end (): void
  once (event: 'drain', listener: () => void): unknown
  /** The body cannot be completed: the connection is destroyed, never ended short. */
  destroy (): void
}

/** A complete answer. */
export interface FastResponse {
  /**
   * The status line and header fields, each ending in CRLF, without `Connection` and the
   * empty line (the front adds those) and without `Date` unless `ownDate`. Must carry
   * Content-Length.
   */
  readonly head: string
  /** The body (not sent for HEAD). */
  readonly body?: Buffer | undefined
  /**
   * `head` carries a Date field of its own (a cache passes a stored response's Date on,
   * with Age, RFC 9111 §4.2.3): the front adds none, as node:http adds none when a
   * response sets one. Default false: the front adds the current date (RFC 9110 §6.6.1).
   */
  readonly ownDate?: boolean | undefined
  /**
   * The whole response as the front would write it for a small `body` (at most
   * {@link SMALL_BODY_BYTES}): `date` is the Date value the front adds ('' with `ownDate`),
   * `close` whether it adds `Connection: close`. A responder may keep these bytes from one
   * request to the next ({@link wireResponse}), so a hot small hit allocates and copies
   * nothing; undefined lets the front build them.
   */
  wire? (date: string, close: boolean): Buffer | undefined
  /**
   * The head as the front would write it before a larger body ({@link fullHead}: `head`
   * completed with Date `date` and Connection: close when `close`). A responder may keep
   * this string from one request to the next, so a hot hit builds no head and the native
   * sender finds it flat already; undefined lets the front build it.
   */
  fullHead? (date: string, close: boolean): string
  /**
   * Streams the body instead of `body`: called once, right after the head is queued (not
   * for HEAD); the response lasts until the handler calls `sink.end()` or `sink.destroy()`.
   */
  pipe? (sink: FastBodySink): void
  /**
   * Sends `body` from a file instead (FastFrontOptions.sendFile): calls `send(fileFd, offset)`
   * with a descriptor whose bytes at `offset` are exactly `body`, open for the duration of the
   * call, and returns what `send` returned; undefined when no such file is at hand now (the
   * rest of the body is written from memory). Only for bodies of at least
   * {@link SENDFILE_MIN_BYTES}; called again, each time for a fresh descriptor, for each part
   * of the body a full socket did not take at once.
   */
  sendFile? (send: (fileFd: number, offset: number) => number): number | undefined
  /**
   * Called once, as a method of this response (so a class can answer without a closure per
   * request), when the response is done: `true` when all of it was handed to the kernel,
   * `false` when the connection ended first (node:http's `res.writableFinished` at 'close').
   * For access logs and request metrics, which the node:http path writes at that point.
   */
  onDone? (completed: boolean): void
}

/** How a {@link FastPending} answer is given, exactly once. */
export interface FastReply {
  /** Sends `res` (on a connection that is gone, only its onDone(false) runs). */
  answer (res: FastResponse): void
  /**
   * Hands the connection, this request's bytes first, to node:http: as if declined at once.
   * False when the connection is gone: nothing will see the request, so the caller accounts
   * for it (an answer's onDone(false) does that for `answer`).
   */
  decline (): boolean
}

/** An answer that is not ready yet: the front reads no further request until it comes. */
export interface FastPending {
  readonly pending: true
  /** Called once, right away; the handler calls `reply.answer` or `reply.decline` later (or at once). */
  wait (reply: FastReply): void
}

/**
 * Answers a request (synchronously, or later through {@link FastPending}), or returns
 * undefined to let node:http take the connection (the handler then sees the same request
 * again through node:http).
 */
export type FastHandler = (req: FastRequest) => FastResponse | FastPending | undefined

/** Options of {@link FastFront}. */
export interface FastFrontOptions {
  readonly handler: FastHandler
  /** Idle keep-alive connections are closed after this long (node:http's keepAliveTimeout). */
  readonly keepAliveTimeoutMs: number
  /** A request head longer than this is handed to node:http (which answers 431). Default 16 KiB. */
  readonly maxHeadBytes?: number
  /**
   * Sends a response head and then file bytes on a socket without copying them through the
   * process (lib/native/zero-copy.ts ZeroCopyAddon.sendHeadFile: never blocks, returns the
   * bytes sent or a negative errno); used for responses that offer {@link FastResponse.sendFile}.
   * Undefined: every body is written from memory.
   */
  readonly sendFile?: SendHeadFile | undefined
  /**
   * Which connections send from files ({@link sendFile}): asked once per connection with its
   * peer's address (net.Socket#remoteAddress). Undefined: all of them.
   */
  readonly sendFileTo?: ((remoteAddress: string | undefined) => boolean) | undefined
  /**
   * Sends a head (latin1) and a body from memory in one sendmsg(2) on a socket without
   * queuing anything (lib/native/zero-copy.ts ZeroCopyAddon.sendHeadBody: never blocks,
   * returns the bytes sent or a negative errno); used for bodies over {@link SMALL_BODY_BYTES}
   * and up to {@link DIRECT_MAX_BYTES} when nothing is queued on the socket. Undefined: they
   * are written through the socket, with the turn's other answers.
   */
  readonly sendHeadBody?: SendHeadBody | undefined
}

/** See {@link FastFrontOptions.sendFile}. */
export type SendHeadFile = (socketFd: number, head: string, fileFd: number, offset: number, length: number) => number
/** See {@link FastFrontOptions.sendHeadBody}. */
export type SendHeadBody = (socketFd: number, head: string, body: Buffer) => number

/**
 * Largest body sent with {@link FastFrontOptions.sendHeadBody}. For 64 KiB ranges node's
 * Writable and StreamBase layers, the head string's flattening and the write request cost
 * more than the send: bench/ (`--only ranges --peers nginx`, alternating --edge-ref before
 * and after) measured 64-68k against 54-57k range req/s. The bound comes from hand runs, not
 * bench/: at 128 KiB the two paths measured alike within noise and at 2 MiB the socket's was
 * faster (the body rarely fits the socket at once, and the rest goes through libuv either way).
 */
export const DIRECT_MAX_BYTES = 64 * 1024

/**
 * Smallest body sent from a file. A judgement, not a measurement: a send from a file costs
 * fstat, a page-cache check, send and sendfile where a copy costs one writev, and small
 * bodies save too little copying to pay for them (bench/ measures 2 MiB only).
 */
export const SENDFILE_MIN_BYTES = 128 * 1024

/**
 * When a socket is full in the middle of a body sent from a file, this much of the body is
 * written from memory through libuv, whose write callback says the socket takes bytes again;
 * the file sends the next part from there. Small, so nearly all of the body leaves from the
 * file; a remainder this small is written from memory at once. A judgement, not a measurement.
 */
export const SENDFILE_PROBE_BYTES = 16 * 1024

/** Counters for /metrics and tests. */
export interface FastFrontStats {
  /** Requests answered by the fast path. */
  readonly answered: number
  /** Connections handed to node:http. */
  readonly handedOff: number
  /** Connections the front holds now. */
  readonly open: number
  /** Event-loop turns whose answers were written together (answered / flushes: answers per burst). */
  readonly flushes: number
  /** Body bytes the kernel sent straight from a file (FastFrontOptions.sendFile), not copied from memory. */
  readonly sentFromFileBytes: number
  /** Answers whose head and body went out in one direct send (FastFrontOptions.sendHeadBody). */
  readonly sentDirect: number
}

const CRLF2 = '\r\n\r\n'
const DEFAULT_MAX_HEAD_BYTES = 16 * 1024
// Buffered, unprocessed bytes while a response waits for the client to read (pipelining).
const MAX_PENDING_BYTES = 64 * 1024

/** The fast path of one or more node:http servers. */
export class FastFront {
  readonly #handler: FastHandler
  readonly #keepAliveTimeoutMs: number
  readonly #maxHeadBytes: number
  readonly #connections = new Set<FastConnection>()
  #closing = false
  #answered = 0
  #handedOff = 0
  #flushes = 0
  #sentFromFileBytes = 0
  #sentDirect = 0
  readonly #sendFile: SendHeadFile | undefined
  readonly #sendFileTo: ((remoteAddress: string | undefined) => boolean) | undefined
  readonly #sendHeadBody: SendHeadBody | undefined
  // Connections whose answers of this turn wait, corked, for #flush (see the file comment).
  #held: FastConnection[] = []
  readonly #flush = (): void => {
    const held = this.#held
    this.#held = []
    this.#flushes++
    for (const connection of held) connection.release()
  }

  constructor (options: FastFrontOptions) {
    if (typeof options.handler !== 'function') throw new TypeError(`Expected options.handler to be a function, got ${typeof options.handler}`)
    if (!Number.isSafeInteger(options.keepAliveTimeoutMs) || options.keepAliveTimeoutMs < 1) throw new TypeError(`Expected options.keepAliveTimeoutMs to be a positive integer, got ${String(options.keepAliveTimeoutMs)}`)
    const maxHead = options.maxHeadBytes ?? DEFAULT_MAX_HEAD_BYTES
    if (!Number.isSafeInteger(maxHead) || maxHead < 64) throw new TypeError(`Expected options.maxHeadBytes to be an integer of at least 64, got ${String(maxHead)}`)
    this.#handler = options.handler
    this.#keepAliveTimeoutMs = options.keepAliveTimeoutMs
    this.#maxHeadBytes = maxHead
    if (options.sendFile !== undefined && typeof options.sendFile !== 'function') throw new TypeError(`Expected options.sendFile to be a function, got ${typeof options.sendFile}`)
    this.#sendFile = options.sendFile
    if (options.sendFileTo !== undefined && typeof options.sendFileTo !== 'function') throw new TypeError(`Expected options.sendFileTo to be a function, got ${typeof options.sendFileTo}`)
    this.#sendFileTo = options.sendFileTo
    if (options.sendHeadBody !== undefined && typeof options.sendHeadBody !== 'function') throw new TypeError(`Expected options.sendHeadBody to be a function, got ${typeof options.sendHeadBody}`)
    this.#sendHeadBody = options.sendHeadBody
  }

  /**
   * Puts the front before `server`'s own connection listener (call right after creating the
   * server, before adding other `connection` listeners: those keep seeing every connection).
   * Plain HTTP only: a TLS server's requests arrive decrypted on another event.
   */
  attach (server: Server): void {
    const original = server.listeners('connection') as Array<(socket: Socket) => void>
    if (original.length !== 1) throw new TypeError(`Expected a fresh node:http server with one connection listener, got ${original.length}`)
    const listener = original[0]!
    server.removeListener('connection', listener)
    server.on('connection', (socket: Socket) => {
      if (this.#closing) {
        listener.call(server, socket)
        return
      }
      const connection = new FastConnection(socket, this, () => listener.call(server, socket))
      this.#connections.add(connection)
    })
  }

  /** Counters. */
  get stats (): FastFrontStats {
    return { answered: this.#answered, handedOff: this.#handedOff, open: this.#connections.size, flushes: this.#flushes, sentFromFileBytes: this.#sentFromFileBytes, sentDirect: this.#sentDirect }
  }

  /** Stops keeping connections alive: idle ones close now, busy ones after their response. */
  closeIdle (): void {
    this.#closing = true
    for (const connection of this.#connections) connection.closeWhenIdle()
  }

  /** Destroys every connection the front holds. */
  closeAll (): void {
    this.#closing = true
    for (const connection of this.#connections) connection.destroy()
  }

  // ---- used by FastConnection ----

  get handler (): FastHandler { return this.#handler }
  get keepAliveTimeoutMs (): number { return this.#keepAliveTimeoutMs }
  get maxHeadBytes (): number { return this.#maxHeadBytes }
  get closing (): boolean { return this.#closing }
  /** The file sender for a connection from `remoteAddress` (FastFrontOptions.sendFileTo), or undefined. */
  sendFileFor (remoteAddress: string | undefined): SendHeadFile | undefined {
    return this.#sendFile !== undefined && (this.#sendFileTo === undefined || this.#sendFileTo(remoteAddress)) ? this.#sendFile : undefined
  }
  get sendHeadBody (): SendHeadBody | undefined { return this.#sendHeadBody }
  noteAnswered (): void { this.#answered++ }
  noteSentFromFile (bytes: number): void { this.#sentFromFileBytes += bytes }
  noteSentDirect (): void { this.#sentDirect++ }
  /** `connection` has corked its socket for this turn's answers: uncorked once the turn's I/O is done. */
  hold (connection: FastConnection): void {
    if (this.#held.push(connection) === 1) setImmediate(this.#flush)
  }
  release (connection: FastConnection, handedOff: boolean): void {
    if (this.#connections.delete(connection) && handedOff) this.#handedOff++
  }
}

/** Bodies up to this size go out in one buffer with their head ({@link FastResponse.wire}). */
export const SMALL_BODY_BYTES = 2048

/** `head` completed as the front writes it: Date `date` unless '', Connection: close when `close`, the empty line. */
export function fullHead (head: string, date: string, close: boolean): string {
  return `${head}${date === '' ? '' : `Date: ${date}\r\n`}${close ? 'Connection: close\r\n' : ''}\r\n`
}

/**
 * The bytes the front writes for a response with a small body: `head` completed as the
 * front completes it (Date `date` unless '', Connection: close when `close`), then `body`.
 * `keep` allocates a buffer of its own (one kept across requests must not pin a slab of
 * Node's shared pool); otherwise a pooled one.
 */
export function wireResponse (head: string, body: Buffer, date: string, close: boolean, keep: boolean): Buffer {
  const text = fullHead(head, date, close)
  const bytes = keep ? Buffer.allocUnsafeSlow(text.length + body.length) : Buffer.allocUnsafe(text.length + body.length)
  bytes.write(text, 0, 'latin1')
  body.copy(bytes, text.length)
  return bytes
}

/** A request answered later ({@link FastPending}): the request, and its bytes for a hand-over. */
interface Waiting {
  readonly req: FastRequest
  readonly bytes: Buffer
}

/** The handle a {@link FastPending} answers through; only the first call counts. */
class Reply implements FastReply {
  readonly #connection: FastConnection
  readonly #waiting: Waiting

  constructor (connection: FastConnection, waiting: Waiting) {
    this.#connection = connection
    this.#waiting = waiting
  }

  answer (res: FastResponse): void {
    this.#connection.answer(this.#waiting, res)
  }

  decline (): boolean {
    return this.#connection.decline(this.#waiting)
  }
}

/** A body being streamed into the connection ({@link FastResponse.pipe}). */
class BodyStream implements FastBodySink {
  readonly res: FastResponse
  /** Close the connection once the body is out (`Connection: close`, or the server closing). */
  close = false
  over = false
  readonly #connection: FastConnection
  readonly #socket: Socket

  constructor (connection: FastConnection, socket: Socket, res: FastResponse) {
    this.#connection = connection
    this.#socket = socket
    this.res = res
  }

  get destroyed (): boolean { return this.over || this.#socket.destroyed }

  write (chunk: Buffer): boolean {
    return this.#socket.write(chunk)
  }

  end (): void {
    if (!this.over) this.#connection.streamEnded(this)
  }

  once (event: 'drain', listener: () => void): this {
    this.#socket.once(event, listener)
    return this
  }

  destroy (): void {
    if (!this.over) this.#connection.streamAborted(this)
  }
}

const EMPTY = Buffer.alloc(0)

/** A body leaving from a file in parts (FastConnection#sendFromFile): how far it got. */
interface FileSend {
  readonly res: FastResponse
  readonly body: Buffer
  /** Body bytes already handed to the kernel. */
  at: number
  /** Close the connection once the body is out (its head says `Connection: close`). */
  readonly close: boolean
}

/** One client connection while the fast path owns it. */
class FastConnection {
  readonly #socket: Socket
  readonly #front: FastFront
  readonly #handOff: () => void
  readonly #remoteAddress: string | undefined
  // FastFrontOptions.sendFile for this connection's peer, or undefined (FastFrontOptions.sendFileTo)
  readonly #sendFile: SendHeadFile | undefined
  #pending: Buffer | undefined
  // Responses in progress: written and not yet flushed, or streaming
  #writes = 0
  // Responses written and not yet flushed, in write order (write callbacks come in order)
  readonly #done: FastResponse[] = []
  // Of those, answers the kernel took whole past the socket (#finish), done at the next release
  #sentWhole = 0
  #waitingForDrain = false
  // The request whose answer is pending (FastPending), if any: nothing after it is read meanwhile.
  #waiting: Waiting | undefined
  // The response whose body is streaming (FastResponse.pipe), if any.
  #streaming: BodyStream | undefined
  // The response whose body is leaving from a file in parts (FastResponse.sendFile), if any.
  #sendingFile: FileSend | undefined
  // #process is on the stack: an answer given synchronously from inside it must not re-enter it.
  #processing = false
  // A FastResponse.pipe call is on the stack: a body that ends inside it continues from #respond.
  #inPipe = false
  // The idle timer fired while a response was still being written (a slow reader): re-armed once it is out.
  #timedOutBusy = false
  #ended = false
  // The socket is corked until the front's end-of-turn flush (FastFront.hold).
  #held = false
  #closeWhenIdle = false
  // The client half-closed (FIN): it sends nothing more, so the connection ends once every request it sent is answered.
  #peerEnded = false
  readonly #onData = (chunk: Buffer): void => this.#data(chunk)
  // Reads into the shared READ_BUFFER (readInto): called with the length read; true keeps the handle reading (pause() stops it).
  readonly #onRead = (bytes: number): boolean => this.#read(bytes)
  // The socket reads into READ_BUFFER (true) or emits a Buffer of its own per read (false: 'data').
  readonly #intoShared: boolean
  readonly #onDrain = (): void => this.#drained()
  readonly #onWritten = (err?: Error | null): void => this.#written(err)
  readonly #onProbed = (err?: Error | null): void => this.#probed(err)
  readonly #onTimeout = (): void => this.#timedOut()
  readonly #onClose = (): void => this.#closed()
  readonly #onEnd = (): void => this.#peerEnd()
  readonly #onError = (): void => this.destroy()

  constructor (socket: Socket, front: FastFront, handOff: () => void) {
    this.#socket = socket
    this.#front = front
    this.#handOff = handOff
    this.#remoteAddress = socket.remoteAddress
    this.#sendFile = front.sendFileFor(this.#remoteAddress)
    this.#intoShared = readInto(socket, this.#onRead)
    if (!this.#intoShared) socket.on('data', this.#onData)
    socket.on('error', this.#onError)
    socket.on('close', this.#onClose)
    socket.on('end', this.#onEnd)
    // Listening for good rather than once per response: every body above the socket's
    // highWaterMark waits for a 'drain', and once() costs a wrapper each time.
    socket.on('drain', this.#onDrain)
    // Armed once: every read and write restarts it (net.Socket refreshes its timer on activity),
    // so answering costs no timer work; one listener for the connection's life (setTimeout(ms,
    // callback) would add one per call).
    socket.on('timeout', this.#onTimeout)
    socket.setTimeout(front.keepAliveTimeoutMs)
  }

  /** Nothing to write, nothing unread, nothing being answered. */
  #idle (): boolean {
    return this.#writes === 0 && this.#pending === undefined && this.#waiting === undefined
  }

  #timedOut (): void {
    if (this.#writes > 0 || this.#waiting !== undefined) {
      // a slow reader of a big body, or a request whose answer is on its way, is not idle
      this.#timedOutBusy = true
      return
    }
    this.destroy()
  }

  destroy (): void {
    this.#ended = true
    // a destroy drops what is still corked: the complete answers of this turn go out first
    this.release()
    this.#socket.destroy()
  }

  closeWhenIdle (): void {
    this.#closeWhenIdle = true
    if (this.#idle()) this.#end()
  }

  #peerEnd (): void {
    this.#peerEnded = true
    if (this.#idle()) this.#end()
  }

  #closed (): void {
    this.#front.release(this, false)
    const stream = this.#streaming
    if (stream !== undefined) this.#abandon(stream)
    const file = this.#sendingFile
    if (file !== undefined) {
      this.#sendingFile = undefined
      this.#writes--
      file.res.onDone?.(false)
    }
  }

  /** `bytes` new bytes at the start of READ_BUFFER: none of them may be kept past this call, so what is left unanswered is copied. */
  #read (bytes: number): boolean {
    if (this.#ended) return true // after #end or destroy() nobody here reads (as with the 'data' listener removed); a hand-over replaced this callback
    this.#data(READ_BUFFER.subarray(0, bytes))
    if (this.#pending !== undefined) this.#pending = owned(this.#pending)
    return true
  }

  #data (chunk: Buffer): void {
    this.#pending = this.#pending === undefined ? chunk : Buffer.concat([this.#pending, chunk])
    if (this.#waitingForDrain || this.#waiting !== undefined || this.#streaming !== undefined || this.#sendingFile !== undefined) {
      if (this.#pending.length > MAX_PENDING_BYTES) this.#socket.pause()
      return
    }
    this.#process()
  }

  /** Answers every complete request in the buffer, in order, until one needs node:http or waits. */
  #process (): void {
    this.#processing = true
    while (this.#pending !== undefined && !this.#ended && this.#waiting === undefined && this.#streaming === undefined && this.#sendingFile === undefined) {
      const buf = this.#pending
      const end = buf.indexOf(CRLF2, 0, 'latin1')
      if (end < 0 || end > this.#front.maxHeadBytes) {
        // An incomplete head (rare: clients send small GETs in one segment) or an oversized
        // one: node:http applies its header timeout and size limit from here on.
        this.#giveAway()
        break
      }
      const req = parseHead(buf.toString('latin1', 0, end), this.#remoteAddress, this.#socket)
      const res = req === undefined ? undefined : this.#front.handler(req)
      if (req === undefined || res === undefined) {
        // a request the front parsed (no body) that is the last one read: see #giveAway
        this.#giveAway(req !== undefined && end + 4 === buf.length)
        break
      }
      this.#pending = end + 4 === buf.length ? undefined : buf.subarray(end + 4)
      if (isPending(res)) {
        const waiting: Waiting = { req, bytes: owned(buf.subarray(0, end + 4)) }
        this.#waiting = waiting
        // may answer (or decline) at once: the loop's condition sees the outcome
        res.wait(new Reply(this, waiting))
        continue
      }
      if (!this.#respond(req, res)) break
    }
    this.#processing = false
  }

  /** Writes one answer; true when the next request may be read now. */
  #respond (req: FastRequest, res: FastResponse): boolean {
    const close = req.close || this.#front.closing || this.#closeWhenIdle
    this.#write(req, res, close)
    this.#front.noteAnswered()
    const stream = this.#streaming
    if (stream !== undefined) {
      // its end goes on from here (streamEnded)
      stream.close = close
      return false
    }
    // a body leaving from a file in parts goes on from #probed
    if (this.#sendingFile !== undefined) return false
    return this.#next(close)
  }

  /** After an answer is out of the handler's hands: close, wait for 'drain', or true when the next request may be read now. */
  #next (close: boolean): boolean {
    if (close) {
      this.#end()
      return false
    }
    if (this.#socket.writableNeedDrain) {
      this.#waitingForDrain = true
      return false
    }
    return true
  }

  #write (req: FastRequest, res: FastResponse, close: boolean): void {
    const socket = this.#socket
    if (!this.#held) {
      this.#held = true
      socket.cork()
      this.#front.hold(this)
    }
    const date = res.ownDate === true ? '' : httpDate()
    this.#writes++
    if (res.pipe !== undefined && req.method === 'GET') {
      const stream = new BodyStream(this, socket, res)
      this.#streaming = stream
      // corked: the head and the first bytes the handler has go out in one writev
      socket.write(fullHead(res.head, date, close), 'latin1')
      this.#inPipe = true
      res.pipe(stream)
      this.#inPipe = false
      return
    }
    const body = res.body
    if (req.method === 'HEAD' || body === undefined || body.length === 0) {
      this.#done.push(res)
      socket.write(fullHead(res.head, date, close), 'latin1', this.#onWritten)
      return
    }
    if (body.length <= SMALL_BODY_BYTES) {
      // one small buffer beats a writev of two
      this.#done.push(res)
      socket.write(res.wire?.(date, close) ?? wireResponse(res.head, body, date, close, false), this.#onWritten)
      return
    }
    const head = res.fullHead?.(date, close) ?? fullHead(res.head, date, close)
    if (this.#sendFromFile(res, head, body, close) || this.#sendDirect(res, head, body)) return
    // corked: head and body go out in one writev
    this.#done.push(res)
    socket.write(head, 'latin1')
    socket.write(body, this.#onWritten)
  }

  /**
   * Sends a large body from the responder's file (FastResponse.sendFile) when nothing is
   * queued on the socket ahead of it: the kernel takes the bytes from the page cache, as
   * nginx's sendfile does, instead of copying them out of `body`. When the socket fills up,
   * the body goes on in parts (#sendRest, #probed): the response holds the connection as a
   * streamed body does. False when nothing was sent: the caller writes it all.
   */
  #sendFromFile (res: FastResponse, head: string, body: Buffer, close: boolean): boolean {
    const send = this.#sendFile
    if (send === undefined || res.sendFile === undefined || body.length < SENDFILE_MIN_BYTES) return false
    const fd = this.#idleFd()
    if (fd === undefined) return false
    const sent = res.sendFile((fileFd, offset) => send(fd, head, fileFd, offset, body.length))
    if (sent === undefined || sent <= 0) return false
    if (this.#headCut(res, head, sent, body)) return true
    const file: FileSend = { res, body, at: sent - head.length, close }
    this.#front.noteSentFromFile(file.at)
    // #respond goes on from here, unless the rest holds the connection (#sendingFile)
    this.#sendRest(file)
    return true
  }

  /**
   * A medium body (FastFrontOptions.sendHeadBody) when nothing is queued on the socket: head
   * and body leave now in one sendmsg, not corked until the end of the turn. What the socket
   * did not take goes through it as usual. False when nothing was sent (a full socket, an
   * error the socket's own write then meets and reports, a head too long for the helper):
   * the caller writes it all.
   */
  #sendDirect (res: FastResponse, head: string, body: Buffer): boolean {
    const send = this.#front.sendHeadBody
    if (send === undefined || body.length > DIRECT_MAX_BYTES) return false
    const fd = this.#idleFd()
    if (fd === undefined) return false
    const sent = send(fd, head, body)
    if (sent <= 0) return false
    this.#front.noteSentDirect()
    if (!this.#headCut(res, head, sent, body)) this.#finish(res, body.subarray(sent - head.length))
    return true
  }

  /**
   * The socket's descriptor when nothing is queued on it, so bytes sent past libuv now keep
   * the connection's order (an earlier answer of this turn is corked until the turn ends);
   * undefined otherwise.
   */
  #idleFd (): number | undefined {
    return this.#socket.writableLength === 0 ? socketFd(this.#socket) : undefined
  }

  /**
   * A direct send (#sendFromFile, #sendDirect) that stopped inside the head: the rest of it,
   * then the whole body, go through the socket. False when the head went whole (a latin1 head
   * is one byte a character).
   */
  #headCut (res: FastResponse, head: string, sent: number, body: Buffer): boolean {
    if (sent >= head.length) return false
    this.#socket.write(head.slice(sent), 'latin1')
    this.#finish(res, body)
    return true
  }

  /**
   * After a part went from the file: a small rest (often nothing) from memory, which ends the
   * answer; else a probe ({@link SENDFILE_PROBE_BYTES}) whose write callback (#probed) says
   * the socket has room for the next part. True when the answer is ended.
   */
  #sendRest (file: FileSend): boolean {
    const end = file.at + SENDFILE_PROBE_BYTES
    if (end >= file.body.length) {
      this.#sendingFile = undefined
      this.#finish(file.res, file.body.subarray(file.at))
      return true
    }
    this.#sendingFile = file
    const probe = file.body.subarray(file.at, end)
    file.at = end
    this.#socket.write(probe, this.#onProbed)
    return false
  }

  /**
   * The answer's last bytes (may be none): its write callback accounts for it as for any
   * answer. With none left and nothing queued there is nothing to write (a zero-length
   * write(2) is a syscall, and on TCP it pushes whatever the socket still holds).
   */
  #finish (res: FastResponse, rest: Buffer): void {
    this.#done.push(res)
    if (rest.length === 0 && this.#socket.writableLength === 0) {
      // All of it is with the kernel: in a held turn it is done when the turn's answers are
      // flushed (release), in #done's order, without a tick of its own; else (the end of a
      // file send, from a write callback) after this callback, as a write's would be
      if (this.#held) this.#sentWhole++
      else process.nextTick(this.#onWritten, null)
    } else {
      this.#socket.write(rest, this.#onWritten)
    }
  }

  /** The socket took the probe: the file sends what it takes of the rest, and the connection goes on once all of it is out. */
  #probed (err: Error | null | undefined): void {
    const file = this.#sendingFile
    if (file === undefined) return // the connection closed meanwhile (#closed accounted for it)
    if ((err !== undefined && err !== null) || this.#socket.destroyed) {
      this.destroy()
      return
    }
    const send = this.#sendFile
    const fd = this.#idleFd()
    const left = file.body.length - file.at
    // nothing else writes during a file send; should anything be queued, memory keeps the order
    const sent = send === undefined || fd === undefined
      ? undefined
      : file.res.sendFile?.((fileFd, offset) => send(fd, '', fileFd, offset + file.at, left))
    if (sent !== undefined && sent > 0) {
      this.#front.noteSentFromFile(sent)
      file.at += sent
    }
    // no file now, or its pages were evicted: the rest from memory
    const fromMemory = sent === undefined || (sent < 0 && sent !== -constants.errno.EAGAIN)
    if (fromMemory) {
      this.#sendingFile = undefined
      this.#finish(file.res, file.body.subarray(file.at))
    }
    if ((fromMemory || this.#sendRest(file)) && this.#next(file.close)) this.#goOn()
  }

  /**
   * The end of the turn: this turn's answers go out (node:http's too, if it took the socket
   * meanwhile). Also called early, before anything that may destroy the socket; then the
   * turn's flush finds nothing held.
   */
  release (): void {
    if (!this.#held) return
    this.#held = false
    // Answers sent whole past the socket (#finish) come before anything the uncork writes.
    for (; this.#sentWhole > 0; this.#sentWhole--) this.#written(null, true)
    this.#socket.uncork()
  }

  /** A FastPending's answer. */
  answer (waiting: Waiting, res: FastResponse): void {
    if (this.#waiting !== waiting) return
    this.#waiting = undefined
    if (this.#ended || this.#socket.destroyed) {
      res.onDone?.(false)
      return
    }
    if (this.#respond(waiting.req, res)) this.#goOn()
  }

  /** A FastPending declined after all: node:http gets the request as if declined at once; false when the connection is gone. */
  decline (waiting: Waiting): boolean {
    if (this.#waiting !== waiting) return true // answered or declined already: that call counted
    this.#waiting = undefined
    if (this.#ended || this.#socket.destroyed) return false
    const behind = this.#pending
    this.#pending = behind === undefined ? waiting.bytes : Buffer.concat([waiting.bytes, behind])
    this.#giveAway(behind === undefined)
    return true
  }

  /** The streamed body is complete: its onDone runs once all of it is flushed. */
  streamEnded (stream: BodyStream): void {
    stream.over = true
    if (this.#streaming !== stream) return
    this.#streaming = undefined
    this.#done.push(stream.res)
    this.#socket.write(EMPTY, this.#onWritten)
    if (this.#inPipe) return // #respond goes on
    if (this.#next(stream.close)) this.#goOn()
  }

  /** The streamed body cannot be completed: the client must see an aborted transfer. */
  streamAborted (stream: BodyStream): void {
    this.#abandon(stream)
    this.destroy()
  }

  #abandon (stream: BodyStream): void {
    stream.over = true
    if (this.#streaming !== stream) return
    this.#streaming = undefined
    this.#writes--
    stream.res.onDone?.(false)
  }

  /** Reads on after an answer that came later than its request. */
  #goOn (): void {
    if (this.#processing) return // the loop on the stack goes on
    if (this.#socket.isPaused()) this.#socket.resume()
    if (this.#pending !== undefined) {
      this.#process()
      return
    }
    if ((this.#closeWhenIdle || this.#peerEnded) && this.#idle()) this.#end()
  }

  #written (err: Error | null | undefined, sentWhole = false): void {
    // Every write's callback runs, after a hand-over too (node:http owns the socket then, the
    // write was ours). A write cut short by a destroyed socket reports no error
    // (stream_base_commons onWriteComplete), so a destroyed socket means not completed; an
    // answer the kernel took whole before (sentWhole) is complete whatever came after.
    const res = this.#done.shift()
    if (res?.onDone !== undefined) res.onDone(sentWhole || ((err === undefined || err === null) && !this.#socket.destroyed))
    this.#writes--
    if (this.#writes > 0 || this.#ended) return
    if ((this.#closeWhenIdle || this.#peerEnded) && this.#idle()) {
      this.#end()
      return
    }
    if (this.#timedOutBusy) {
      this.#timedOutBusy = false
      this.#socket.setTimeout(this.#front.keepAliveTimeoutMs)
    }
  }

  #drained (): void {
    if (!this.#waitingForDrain) return
    this.#waitingForDrain = false
    if (this.#socket.isPaused()) this.#socket.resume()
    this.#process()
  }

  #end (): void {
    if (this.#ended) return
    this.#ended = true
    if (!this.#intoShared) this.#socket.removeListener('data', this.#onData)
    this.#socket.end()
  }

  /**
   * Hands the socket and every byte not yet answered to node:http. `oneHead`: those bytes are
   * one request head the front parsed (a GET or HEAD, no body). If the client half-closed
   * before it, node:http never sees that FIN (the front read it), so that request reaches it
   * with `Connection: close` added and node:http closes after its answer, as the front would
   * have. Behind other bytes the FIN is left to node:http's keep-alive timeout.
   */
  #giveAway (oneHead = false): void {
    const socket = this.#socket
    if (this.#intoShared) handBackReads(socket)
    else socket.removeListener('data', this.#onData)
    socket.removeListener('error', this.#onError)
    socket.removeListener('close', this.#onClose)
    socket.removeListener('end', this.#onEnd)
    socket.removeListener('drain', this.#onDrain)
    socket.setTimeout(0)
    socket.removeListener('timeout', this.#onTimeout)
    socket.pause()
    // bytes the stream buffered while we were paused for backpressure (none when reading into READ_BUFFER)
    let unread = this.#pending === undefined ? undefined : owned(this.#pending)
    if (!this.#intoShared) {
      for (let more = socket.read() as Buffer | null; more !== null; more = socket.read() as Buffer | null) {
        unread = unread === undefined ? more : Buffer.concat([unread, more])
        oneHead = false
      }
    }
    if (oneHead && this.#peerEnded && unread !== undefined) unread = closeAfter(unread)
    this.#pending = undefined
    this.#ended = true
    this.#front.release(this, true)
    // Our held answers go out now: node:http may destroy the socket at once (400 or 431 for a
    // malformed request behind them, a CONNECT nobody listens for), which drops corked bytes.
    this.release()
    this.#handOff()
    // node:http's listener is attached now (it reads the socket's handle directly from here on):
    // feed it what was already read, in order. resume() first: whatever pause node:http decides
    // while parsing those bytes must win.
    socket.resume()
    if (unread !== undefined) socket.emit('data', unread)
  }
}

/**
 * The header table's class: instances have no Object.prototype in their chain (a field
 * named `__proto__` or `constructor` is just a field) yet stay fast-mode objects;
 * Object.create(null) makes dictionary-mode ones, whose keyed stores cost ~1 µs each.
 * (The pattern of node's querystring.)
 */
function Fields (): void {}
Fields.prototype = Object.create(null) as object

const TCHAR = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/
// field-value: VCHAR, SP, HTAB and obs-text; no CR, LF, NUL or other controls (RFC 9110 §5.5)
const BAD_VALUE = /[\x00-\x08\x0a-\x1f\x7f]/
// origin-form request-target characters (RFC 3986, printable ASCII without space)
const BAD_TARGET = /[^\x21-\x7e]/

/**
 * Parses a request head (without the final CRLF CRLF). Undefined when it is not a simple
 * request: other methods or versions, absolute-form targets, malformed or folded fields, a
 * body (Content-Length other than 0, Transfer-Encoding), Upgrade, Expect, a repeated Host.
 */
export function parseHead (head: string, remoteAddress: string | undefined, connection?: object): FastRequest | undefined {
  const lineEnd = head.indexOf('\r\n')
  const line = lineEnd < 0 ? head : head.slice(0, lineEnd)
  let method: 'GET' | 'HEAD'
  let targetStart: number
  if (line.startsWith('GET /')) {
    method = 'GET'
    targetStart = 4
  } else if (line.startsWith('HEAD /')) {
    method = 'HEAD'
    targetStart = 5
  } else {
    return undefined
  }
  const targetEnd = line.length - 9
  if (targetEnd <= targetStart || !line.endsWith(' HTTP/1.1')) return undefined
  const target = line.slice(targetStart, targetEnd)
  if (BAD_TARGET.test(target)) return undefined
  const headers = new (Fields as unknown as new () => Record<string, string>)()
  let close = false
  let hosts = 0
  let at = lineEnd < 0 ? head.length : lineEnd + 2
  while (at < head.length) {
    let next = head.indexOf('\r\n', at)
    if (next < 0) next = head.length
    const colon = head.indexOf(':', at)
    if (colon <= at || colon >= next) return undefined
    const name = head.slice(at, colon)
    if (!TCHAR.test(name)) return undefined // also refuses obs-fold and space before the colon
    const value = trimOws(head, colon + 1, next)
    if (BAD_VALUE.test(value)) return undefined
    const key = name.toLowerCase()
    switch (key) {
      case 'host':
        if (++hosts > 1) return undefined
        break
      case 'content-length':
        if (value !== '0') return undefined
        break
      case 'transfer-encoding':
      case 'upgrade':
      case 'expect':
        return undefined
      case 'connection':
        for (const token of value.toLowerCase().split(',')) {
          const option = token.trim()
          if (option === 'upgrade') return undefined
          if (option === 'close') close = true
        }
        break
    }
    const seen = headers[key]
    headers[key] = seen === undefined ? value : `${seen}, ${value}`
    at = next + 2
  }
  if (hosts === 0) return undefined // node:http answers 400 (RFC 9112 §3.2)
  return { method, target, headers, remoteAddress, close, connection }
}

/**
 * Where connections read (readInto). Node's net.Socket reads each chunk into memory of its
 * own: a malloc'd buffer, an ArrayBuffer and a Buffer around it, then Readable.push and a
 * 'data' event. Its `onread` option reads into one buffer the caller supplies instead and
 * calls back with the length; a read's bytes are answered (or copied) before the next read
 * of any connection, so one buffer serves them all. Its own allocation (allocUnsafeSlow), so
 * `buffer === READ_BUFFER.buffer` tells a view of it from any other Buffer.
 */
const READ_BUFFER = Buffer.allocUnsafeSlow(64 * 1024)

interface UserBufferHandle {
  useUserBuffer (buffer: Uint8Array): void
}

/** net.Socket's own slots for the `onread` option, found once on the first socket; null where this Node has none. */
let onreadSlots: { buffer: symbol, callback: symbol } | null | undefined

/**
 * Makes `socket` read into READ_BUFFER and call `onRead(bytes)` instead of emitting 'data',
 * as net.Socket does for `new Socket({ onread })`; node:http's server creates accepted sockets
 * without that option, so this sets it up the way the constructor does (the socket's two
 * slots, then the handle's useUserBuffer, before its first read). pause(), resume() and 'end'
 * work as before (net.Socket stops and starts the handle's reads for this mode). False, and
 * nothing changed, when this Node's sockets lack those slots: then read 'data'.
 */
function readInto (socket: Socket, onRead: (bytes: number) => boolean): boolean {
  if (onreadSlots === undefined) {
    const symbols = Object.getOwnPropertySymbols(socket)
    const buffer = symbols.find((s) => s.description === 'kBuffer')
    const callback = symbols.find((s) => s.description === 'kBufferCb')
    onreadSlots = buffer !== undefined && callback !== undefined ? { buffer, callback } : null
  }
  const slots = onreadSlots
  const handle = (socket as unknown as { _handle?: Partial<UserBufferHandle> | null })._handle
  const own = socket as unknown as Record<symbol, unknown>
  if (slots === null || typeof handle?.useUserBuffer !== 'function' || own[slots.buffer] !== null || own[slots.callback] !== null) return false
  own[slots.buffer] = READ_BUFFER
  own[slots.callback] = onRead
  handle.useUserBuffer(READ_BUFFER)
  return true
}

/**
 * After a hand-over: node:http's parser reads the handle itself (it consumes the stream),
 * but a connection it lets go of (an upgrade, CONNECT) reads through net.Socket again, which
 * then must see ordinary chunks: each read is copied out of READ_BUFFER and pushed.
 */
function handBackReads (socket: Socket): void {
  const own = socket as unknown as Record<symbol, unknown>
  own[onreadSlots!.callback] = (bytes: number): boolean => socket.push(Buffer.from(READ_BUFFER.subarray(0, bytes)))
}

const CLOSE_AND_END = Buffer.from('Connection: close\r\n\r\n', 'latin1')

/**
 * A request head (ending in the empty line) with `Connection: close` added as its last field:
 * node:http then closes the connection after answering it (in HTTP/1.1 `close` wins over any
 * `keep-alive` the client also sent, RFC 9112 §9.6).
 */
function closeAfter (head: Buffer): Buffer {
  return Buffer.concat([head.subarray(0, head.length - 2), CLOSE_AND_END])
}

/** `bytes` itself, or a copy when it is a view of READ_BUFFER (which the next read overwrites). */
function owned (bytes: Buffer): Buffer {
  return bytes.buffer === READ_BUFFER.buffer ? Buffer.from(bytes) : bytes
}

/** The descriptor of a plain TCP socket (libuv's TCPWrap exposes it on Unix); undefined for anything else. */
function socketFd (socket: Socket): number | undefined {
  const fd = (socket as unknown as { _handle?: { fd?: unknown } | null })._handle?.fd
  return typeof fd === 'number' && fd >= 0 ? fd : undefined
}

function isPending (res: FastResponse | FastPending): res is FastPending {
  return (res as Partial<FastPending>).pending === true
}

/** `head[from, to)` without leading and trailing SP and HTAB (OWS, RFC 9110 §5.6.3). */
function trimOws (head: string, from: number, to: number): string {
  let a = from
  let b = to
  while (a < b && (head.charCodeAt(a) === 0x20 || head.charCodeAt(a) === 0x09)) a++
  while (b > a && (head.charCodeAt(b - 1) === 0x20 || head.charCodeAt(b - 1) === 0x09)) b--
  return head.slice(a, b)
}

let dateSecond = -1
let dateText = ''

/** The IMF-fixdate for now, rendered once per second. */
function httpDate (): string {
  const now = Date.now()
  const second = Math.floor(now / 1000)
  if (second !== dateSecond) {
    dateSecond = second
    dateText = new Date(second * 1000).toUTCString()
  }
  return dateText
}
