/**
 * A pino destination for tests: every JSON line the logger writes is parsed into `logs`.
 */
import { PassThrough } from 'node:stream'

export interface CapturedLogs {
  /** Parsed JSON log lines, in order. */
  readonly logs: Array<Record<string, unknown>>
  /** Give this to createLogger({ destination }). */
  readonly destination: PassThrough
}

export function captureLogs (): CapturedLogs {
  const logs: Array<Record<string, unknown>> = []
  const destination = new PassThrough()
  let pending = ''
  destination.on('data', (chunk: Buffer) => {
    pending += chunk.toString('utf8')
    let nl
    while ((nl = pending.indexOf('\n')) >= 0) {
      logs.push(JSON.parse(pending.slice(0, nl)) as Record<string, unknown>)
      pending = pending.slice(nl + 1)
    }
  })
  return { logs, destination }
}
