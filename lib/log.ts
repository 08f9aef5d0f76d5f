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

/** Creates a pino logger; the default destination is an async stdout writer flushed on exit. */
export function createLogger (options: LoggerOptions = {}): Logger {
  const destination = options.destination ?? pino.destination({ dest: 1, sync: false })
  const logger = pino({
    level: options.level ?? 'info',
    base: options.bindings ?? null,
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
  }, destination)
  return logger
}

/** A logger that drops everything: the default for library code built without one. */
export function silentLogger (): Logger {
  return pino({ level: 'silent' })
}
