/**
 * The project's logger: pino JSON lines on stdout (the only pino import).
 * Log keys are camelCase and stable: reqId, tier, cacheKey, cachePhase, noCacheReason, upstream.
 */
import { pino, type Logger as PinoLogger, type DestinationStream } from 'pino'

export type Logger = PinoLogger
export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent'

export interface LoggerOptions {
  readonly level?: LogLevel
  /** Bindings added to every line, e.g. `{ role: 'edge', node: 'edge-1' }`. */
  readonly bindings?: Record<string, unknown>
  /** Where lines go; stdout (asynchronously buffered) by default. Tests pass a stream to read lines back. */
  readonly destination?: DestinationStream
  /**
   * Several processes share this stdout (cluster workers): writes to it are whole lines, at
   * most PIPE_BUF bytes each where the lines allow, so a line of up to PIPE_BUF bytes is never
   * interleaved with another writer's (pipe(7)); a longer line is written whole and may be.
   */
  readonly sharedStdout?: boolean
}

/** Writes of at most this many bytes to a pipe are atomic on Linux (pipe(7) PIPE_BUF). */
const PIPE_BUF_BYTES = 4096
/** Bytes per write to a stdout of its own (a file, a terminal): at 25,000 steering lines a second, about 140 writes. */
const BATCH_BYTES = 64 * 1024
/** The longest a line waits for its batch to fill before it is written. */
const HOLD_MS = 20

// Loggers made by createLogger: their line format is known, so infoLineWriter may render for them.
const OWN_LOGGERS = new WeakSet<Logger>()

/** Creates a pino logger; the default destination is an async stdout writer flushed on exit. */
export function createLogger (options: LoggerOptions = {}): Logger {
  const destination = options.destination ?? new LineBatcher(pino.destination(options.sharedStdout === true ? { dest: 1, sync: false, contentMode: 'buffer', maxWrite: PIPE_BUF_BYTES } : { dest: 1, sync: false, contentMode: 'buffer', maxWrite: BATCH_BYTES }))
  const logger = pino({
    level: options.level ?? 'info',
    base: options.bindings ?? null,
    timestamp: isoTime,
    formatters: { level: (label) => ({ level: label }) },
  }, destination)
  OWN_LOGGERS.add(logger)
  return logger
}

type SonicBoom = ReturnType<typeof pino.destination>

/**
 * The default destination's front: a turn's lines are encoded together into one byte
 * buffer, which reaches SonicBoom as one write when it is full or {@link HOLD_MS} after its
 * first line, like nginx's `access_log ... buffer= flush=` (commit 13e31ed has the
 * before/after CPU per line).
 *
 * - Few writes: every asynchronous write to stdout is a threadpool round trip, and the
 *   wake-up of its completion splits the event loop's batches of answers.
 * - Bytes, not strings: SonicBoom's string mode measures the chunk it appends every write to
 *   (`Buffer.byteLength`, which flattens a concatenated string), and a pending batch held as
 *   a string was most of what scavenges copied and promoted to the old generation
 *   (`bench/scenarios/steering.ts --gc` and `--heap-promoted DIR` show it). Encoded once
 *   into the buffer, a pending line is off the JS heap.
 * - A write is whole lines of at most `maxWrite` bytes, so on a shared stdout lines of up to
 *   PIPE_BUF bytes are never interleaved (a single longer line is written whole, and may be).
 *
 * Pending lines are written synchronously at process exit, like SonicBoom's own buffer
 * (pino's exit hook); none is lost, but if an asynchronous write is still in flight then (a
 * slow pipe), its lines can land after the ones written at exit: SonicBoom's flushSync
 * cannot wait for it. A process killed outright loses at most the last {@link HOLD_MS}.
 * Exported for its tests; createLogger makes the one a logger uses.
 */
export class LineBatcher {
  readonly #target: SonicBoom
  readonly #batch: Buffer
  #length = 0
  // this turn's lines, encoded into the batch at the turn's end (one call, not one a line)
  #pending = ''
  #scheduled = false
  #timer: NodeJS.Timeout | undefined
  readonly #onImmediate = (): void => {
    this.#scheduled = false
    this.#encode()
  }

  readonly #onTimer = (): void => {
    this.#timer = undefined
    this.#push()
  }

  constructor (target: SonicBoom) {
    this.#target = target
    // SonicBoom always sets maxWrite (its default, 16 KiB, when not given); its typings omit it
    this.#batch = Buffer.allocUnsafeSlow((target as unknown as { maxWrite: number }).maxWrite)
    flushedAtExit(this)
  }

  write (line: string): boolean {
    // 3 bytes per UTF-16 unit is UTF-8's worst case: pending lines always fit an empty batch
    if (3 * (this.#pending.length + line.length) > this.#batch.length) {
      this.#encode()
      if (3 * line.length > this.#batch.length) {
        this.#push()
        this.#target.write(Buffer.from(line, 'utf8') as unknown as string)
        return true
      }
    }
    this.#pending += line
    if (!this.#scheduled) {
      this.#scheduled = true
      setImmediate(this.#onImmediate)
    }
    return true
  }

  /** pino's `logger.flush(cb)`. */
  flush (cb?: (err?: Error) => void): void {
    this.#push()
    this.#target.flush(cb)
  }

  flushSync (): void {
    this.#push()
    this.#target.flushSync()
  }

  end (): void {
    this.#push()
    this.#target.end()
  }

  /** Everything pending out to SonicBoom, in order. */
  #push (): void {
    this.#encode()
    this.#send()
  }

  #encode (): void {
    if (this.#pending === '') return
    const room = this.#batch.length - this.#length
    // the exact byte count only when the worst case might not fit
    if (3 * this.#pending.length > room && Buffer.byteLength(this.#pending, 'utf8') > room) this.#send()
    this.#length += this.#batch.write(this.#pending, this.#length, 'utf8')
    this.#pending = ''
    this.#timer ??= setTimeout(this.#onTimer, HOLD_MS).unref()
  }

  #send (): void {
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer)
      this.#timer = undefined
    }
    if (this.#length === 0) return
    // a copy: SonicBoom keeps what it is given until written, and the batch is refilled now
    const bytes = Buffer.allocUnsafe(this.#length)
    this.#batch.copy(bytes, 0, 0, this.#length)
    this.#length = 0
    // buffer mode: SonicBoom's write takes the bytes (its typings only know strings)
    this.#target.write(bytes as unknown as string)
  }
}

// Batchers still alive, flushed synchronously at exit: one 'exit' listener for all of them
// (one per logger would pile up listeners in a process that makes many).
const BATCHERS = new Set<WeakRef<LineBatcher>>()
const FORGET = new FinalizationRegistry<WeakRef<LineBatcher>>((ref) => BATCHERS.delete(ref))
let exitHooked = false

function flushedAtExit (batcher: LineBatcher): void {
  const ref = new WeakRef(batcher)
  BATCHERS.add(ref)
  FORGET.register(batcher, ref)
  if (exitHooked) return
  exitHooked = true
  process.on('exit', () => {
    for (const live of BATCHERS) {
      try {
        live.deref()?.flushSync()
      } catch {
        // a destroyed or never-opened destination: nothing more can be written to it
      }
    }
  })
}

/**
 * A writer of `info` lines with message `msg` whose fields the caller has rendered as JSON
 * members itself (`,"a":1,"b":"x"`, strings through {@link jsonString}): for a per-request
 * line at thousands a second, where pino's generic per-key serialisation is most of a
 * line's cost. The bytes are those `logger.info(fields, msg)` writes (level, time, the
 * logger's bindings, the fields, msg), and the logger's level is honoured. For a logger not
 * made by {@link createLogger} (a child, a test's own pino), whose format may differ, the
 * fields are parsed back and logged through pino.
 */
export function infoLineWriter (logger: Logger, msg: string): (fields: string) => void {
  if (!OWN_LOGGERS.has(logger)) {
    return (fields) => {
      if (logger.isLevelEnabled('info')) logger.info(JSON.parse(`{${fields.slice(1)}}`) as object, msg)
    }
  }
  const internals = logger as unknown as Record<symbol, unknown>
  const { streamSym, chindingsSym, endSym, lsCacheSym, timeSym } = pino.symbols
  const stream = internals[streamSym] as DestinationStream
  const time = internals[timeSym] as () => string
  const tail = `,"msg":${jsonString(msg)}${internals[endSym] as string}`
  return (fields) => {
    if (!logger.isLevelEnabled('info')) return
    // read per line: the level cache and bindings change with logger.level and setBindings()
    const start = (internals[lsCacheSym] as Record<number, string>)[INFO]
    stream.write(`${start}${time()}${internals[chindingsSym] as string}${fields}${tail}`)
  }
}

const INFO = 30

/**
 * A string as a JSON string literal, exactly as pino renders string fields (on Node < 25:
 * a fast path for strings with no control characters, else JSON.stringify).
 */
export function jsonString (text: string): string {
  const length = text.length
  if (length > 100) return JSON.stringify(text)
  let escaped = ''
  let last = 0
  for (let i = 0; i < length; i++) {
    const c = text.charCodeAt(i)
    if (c < 32) return JSON.stringify(text)
    if (c === 34 || c === 92) {
      escaped += `${text.slice(last, i)}\\`
      last = i
    }
  }
  return escaped === '' ? `"${text}"` : `"${escaped}${text.slice(last)}"`
}

let isoTimeMs = Number.NaN
let isoTimeField = ''

/**
 * pino's `stdTimeFunctions.isoTime`, rendered once per millisecond: at thousands of lines a
 * second, `Date#toISOString` was a visible share of a log line's cost. Same bytes.
 */
export function isoTime (): string {
  const now = Date.now()
  if (now !== isoTimeMs) {
    isoTimeMs = now
    isoTimeField = `,"time":"${new Date(now).toISOString()}"`
  }
  return isoTimeField
}

/** A logger that drops everything: the default for library code built without one. */
export function silentLogger (): Logger {
  return pino({ level: 'silent' })
}
