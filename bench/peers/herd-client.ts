/**
 * The cold-herd load: opens N raw TCP connections to the target, waits until all are
 * connected, then sends the same GET on every one of them back to back and times each
 * client: head received, first body byte, last body byte. Runs as its own process so
 * the origin's throttled writer (in the bench process) cannot delay its timestamps,
 * and stays alive between rounds so its code is warm.
 *
 * Protocol (IPC, see startIpcWorker in bench/lib/child-server.ts): each message is a
 * {@link HerdConfig}, each reply a {@link HerdReport}; the process exits when the
 * channel closes.
 */
import { connect, type Socket } from 'node:net'
import { TimedClient, type TimedClientResult } from '../lib/timed-client.ts'

/** The JSON argument of this script. */
export interface HerdConfig {
  /** Base URL of the server under test (`http://127.0.0.1:port`). */
  readonly url: string
  readonly path: string
  readonly clients: number
  /** Everything (connect + all responses) must finish within this, or the rest count as errors. */
  readonly timeoutMs: number
}

/** One client's outcome (ms since that client wrote its request). */
export type HerdClientResult = TimedClientResult

/** What this script prints. */
export interface HerdReport {
  /** Time to open all connections (not part of any client's times). */
  readonly connectMs: number
  /** Spread between the first and the last request write. */
  readonly sendSpreadMs: number
  readonly clients: readonly HerdClientResult[]
}

async function connectAll (url: URL, count: number): Promise<Socket[]> {
  const port = Number(url.port)
  return await Promise.all(Array.from({ length: count }, () => new Promise<Socket>((resolve, reject) => {
    const socket = connect({ host: url.hostname, port, noDelay: true })
    socket.once('connect', () => {
      socket.off('error', reject)
      resolve(socket)
    })
    socket.once('error', reject)
  })))
}

async function run (config: HerdConfig): Promise<HerdReport> {
  const url = new URL(config.url)
  if (url.hostname !== '127.0.0.1') throw new TypeError(`Expected config.url on 127.0.0.1, got ${config.url}`)
  let clients: TimedClient[] = []
  const deadline = setTimeout(() => {
    for (const c of clients) c.abort(`no complete response within ${config.timeoutMs} ms`)
    // A connect that never completes leaves nothing to abort: give up on the whole run.
    setTimeout(() => process.exit(2), 1000).unref()
  }, config.timeoutMs)
  const connectStart = performance.now()
  const sockets = await connectAll(url, config.clients)
  const connectMs = performance.now() - connectStart
  clients = sockets.map((s) => new TimedClient(s))
  const request = Buffer.from(`GET ${config.path} HTTP/1.1\r\nHost: ${url.host}\r\nUser-Agent: streamedge-bench-herd\r\nConnection: close\r\n\r\n`, 'latin1')
  const firstSend = performance.now()
  for (const c of clients) c.send(request)
  const sendSpreadMs = performance.now() - firstSend
  await Promise.all(clients.map((c) => c.done))
  clearTimeout(deadline)
  return { connectMs, sendSpreadMs, clients: clients.map((c) => c.result()) }
}

process.on('message', (message) => {
  run(message as HerdConfig).then((report) => process.send!(report), (err: unknown) => {
    process.stderr.write(`herd client failed: ${String(err)}\n`)
    process.exit(1)
  })
})
process.once('disconnect', () => process.exit(0))
