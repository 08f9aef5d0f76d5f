/**
 * The baseline for the hot-segment benchmark: a bare node:http server that answers
 * every request with one preallocated body and a fixed header list (the edge's own
 * response headers, so both send the same bytes). Same server options as the edge's
 * NodeServer. Prints `{"msg":"bare listening","url":...}` when ready.
 *
 * Usage: node --import tsx bench/peers/bare-server.ts '<json BareServerConfig>'
 */
import { readFileSync } from 'node:fs'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { syntheticBody } from '../origin/synthetic-body.ts'

/** The JSON argument of this script. */
export interface BareServerConfig {
  /** Body = syntheticBody(name, bytes, ext), the bytes the origin would serve for it... */
  readonly name: string
  readonly bytes: number
  readonly ext: string
  /** ...or the contents of this file (a playlist), when set. */
  readonly bodyFile?: string
  /** Flat [name, value, ...] header list sent with every 200. */
  readonly headers: readonly string[]
  readonly keepAliveTimeoutMs: number
  readonly headersTimeoutMs: number
}

function parseConfig (raw: string | undefined): BareServerConfig {
  if (raw === undefined) throw new TypeError('Expected a JSON config as the first argument, got nothing')
  const config = JSON.parse(raw) as BareServerConfig
  if (!Array.isArray(config.headers) || config.headers.length % 2 !== 0) {
    throw new TypeError(`Expected config.headers to be a flat [name, value, ...] list, got ${JSON.stringify(config.headers)}`)
  }
  return config
}

const config = parseConfig(process.argv[2])
const body = config.bodyFile === undefined ? syntheticBody(config.name, config.bytes, config.ext) : readFileSync(config.bodyFile)
const headers = [...config.headers]

const server = http.createServer({
  keepAliveTimeout: config.keepAliveTimeoutMs,
  headersTimeout: config.headersTimeoutMs,
  requestTimeout: 0,
  noDelay: true,
}, (req, res) => {
  res.writeHead(200, headers)
  res.end(req.method === 'HEAD' ? undefined : body)
})

server.listen(0, '127.0.0.1', () => {
  const { port } = server.address() as AddressInfo
  process.stdout.write(`${JSON.stringify({ msg: 'bare listening', url: `http://127.0.0.1:${port}`, bodyBytes: body.length })}\n`)
})

const stop = (): void => {
  server.close(() => process.exit(0))
  server.closeAllConnections()
}
process.once('SIGTERM', stop)
process.once('SIGINT', stop)
