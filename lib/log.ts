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
}

// Loggers made by createLogger: their line format is known, so infoLineWriter may render for them.
const OWN_LOGGERS = new WeakSet<Logger>()

/** Creates a pino logger; the default destination is an async stdout writer flushed on exit. */
export function createLogger (options: LoggerOptions = {}): Logger {
  const destination = options.destination ?? pino.destination({ dest: 1, sync: false })
  const logger = pino({
    level: options.level ?? 'info',
    base: options.bindings ?? null,
    timestamp: isoTime,
    formatters: { level: (label) => ({ level: label }) },
  }, destination)
  OWN_LOGGERS.add(logger)
  return logger
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
