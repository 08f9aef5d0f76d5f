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
  /**
   * Asked for with HEAD on every connection before the herd (the first connection first, so
   * the target has it cached): a connection counts as open once the server answered on it,
   * as a player's connection is by the time it asks for a segment (it fetched the playlist).
   * Without this, connect() resolves at the kernel's handshake and the server's accepting
   * of the connections falls inside the herd's times.
   */
  readonly warmPath: string
}

/** One client's outcome (ms since that client wrote its request). */
export type HerdClientResult = TimedClientResult

/** What this script prints. */
export interface HerdReport {
  /** Time to open all connections and get the HEAD of `warmPath` on each (not part of any client's times). */
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

/** Sends HEAD `path` on `socket` and waits for the whole answer (a head; a HEAD answer has no body). */
async function head (socket: Socket, host: string, path: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    let text = ''
    const onData = (chunk: Buffer): void => {
      text += chunk.toString('latin1')
      if (!text.includes('\r\n\r\n')) return
      socket.off('data', onData)
      socket.off('close', onClose)
      if (!text.startsWith('HTTP/1.1 200 ')) reject(new Error(`HEAD ${path}: ${text.slice(0, text.indexOf('\r\n'))}`))
      else resolve()
    }
    const onClose = (): void => reject(new Error(`HEAD ${path}: connection closed`))
    socket.on('data', onData)
    socket.once('close', onClose)
    socket.write(`HEAD ${path} HTTP/1.1\r\nHost: ${host}\r\nUser-Agent: streamedge-bench-herd\r\n\r\n`)
  })
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
  await head(sockets[0]!, url.host, config.warmPath)
  await Promise.all(sockets.slice(1).map((s) => head(s, url.host, config.warmPath)))
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
