/**
 * A free TCP port on 127.0.0.1 for servers that cannot listen on port 0 and report the
 * port back (nginx, varnishd): bind port 0, read the port, close. Another process could
 * take it in between; on a bench box that race is rare, and the peer then fails to start
 * with a clear error.
 */
import { once } from 'node:events'
import { createServer, type AddressInfo } from 'node:net'

/** Resolves with a port that was free a moment ago. */
export async function freePort (host = '127.0.0.1'): Promise<number> {
  const server = createServer()
  server.listen(0, host)
  await once(server, 'listening')
  const { port } = server.address() as AddressInfo
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return port
}
