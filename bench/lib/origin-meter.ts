/**
 * A byte meter between the caches and the origin: a TCP relay on 127.0.0.1 that counts
 * every byte the origin sends back. Caches are pointed at the meter, so "bytes pulled
 * from the origin" (cold range, byte hit ratio) is measured the same way for the edge,
 * nginx and Varnish, heads included (a few hundred bytes per response).
 */
import { once } from 'node:events'
import { connect, createServer, type AddressInfo, type Socket } from 'node:net'

/** A running meter. */
export interface OriginMeter {
  /** Base URL to give the caches instead of the origin's. */
  readonly url: string
  /** Bytes the origin has sent through the meter so far. */
  bytes (): number
  /** Connections opened through the meter so far. */
  connections (): number
  close (): Promise<void>
}

/** Starts a relay to `originUrl` (an http://127.0.0.1 URL). */
export async function startOriginMeter (originUrl: string): Promise<OriginMeter> {
  const origin = new URL(originUrl)
  if (origin.hostname !== '127.0.0.1') throw new TypeError(`Expected a 127.0.0.1 origin URL, got ${originUrl}`)
  let bytes = 0
  let connections = 0
  const sockets = new Set<Socket>()
  const track = (s: Socket): void => {
    sockets.add(s)
    s.once('close', () => sockets.delete(s))
  }
  const server = createServer({ noDelay: true }, (client) => {
    connections++
    const upstream = connect({ host: origin.hostname, port: Number(origin.port), noDelay: true })
    track(client)
    track(upstream)
    upstream.on('data', (chunk: Buffer) => { bytes += chunk.length })
    client.pipe(upstream)
    upstream.pipe(client)
    const destroyBoth = (): void => {
      client.destroy()
      upstream.destroy()
    }
    client.once('error', destroyBoth)
    upstream.once('error', destroyBoth)
    client.once('close', () => upstream.end())
    upstream.once('close', () => client.end())
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}`,
    bytes: () => bytes,
    connections: () => connections,
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve())
      for (const s of sockets) s.destroy()
    }),
  }
}
