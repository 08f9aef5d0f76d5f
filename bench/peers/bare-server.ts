/**
 * The baseline for the hot-cache benchmarks: a bare node:http server that answers every
 * request with one preallocated body and a fixed status and header list (the edge's own
 * response, so both send the same bytes). Same server options as the edge's NodeServer.
 * With `fast`, lib/http/fast-front.ts answers below node:http, as it answers the edge's
 * memory hits: the floor of the edge's own architecture, no cache work at all. Prints
 * `{"msg":"bare listening","url":...}` when ready.
 *
 * Usage: node --import tsx bench/peers/bare-server.ts '<json BareServerConfig>'
 */
import { readFileSync } from 'node:fs'
import { STATUS_CODES } from 'node:http'
import { FastFront } from '../../lib/http/fast-front.ts'
import { syntheticBody } from '../origin/synthetic-body.ts'
import { serveBaseline } from './baseline-server.ts'

/** The JSON argument of this script. */
export interface BareServerConfig {
  /** Body = syntheticBody(name, bytes, ext), the bytes the origin would serve for it... */
  readonly name: string
  readonly bytes: number
  readonly ext: string
  /** ...or the contents of this file (a playlist), when set. */
  readonly bodyFile?: string
  /** Status of every answer (default 200; 206 for a range's floor, with the edge's Content-Range). */
  readonly status?: number
  /** Flat [name, value, ...] header list sent with every answer (must carry Content-Length with `fast`). */
  readonly headers: readonly string[]
  /** Answer through lib/http/fast-front.ts instead of node:http's request objects. */
  readonly fast?: boolean
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
const status = config.status ?? 200

const server = serveBaseline('bare', config, (req, res) => {
  res.writeHead(status, headers)
  res.end(req.method === 'HEAD' ? undefined : body)
}, { bodyBytes: body.length, fast: config.fast === true })
if (config.fast === true) {
  let head = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Unknown'}\r\n`
  for (let i = 0; i + 1 < headers.length; i += 2) head += `${headers[i]!}: ${headers[i + 1]!}\r\n`
  const response = { head, body }
  new FastFront({ keepAliveTimeoutMs: config.keepAliveTimeoutMs, handler: () => response }).attach(server)
}
