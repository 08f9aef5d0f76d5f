/**
 * The baseline for the hot-segment benchmark: a bare node:http server that answers
 * every request with one preallocated body and a fixed header list (the edge's own
 * response headers, so both send the same bytes). Same server options as the edge's
 * NodeServer. Prints `{"msg":"bare listening","url":...}` when ready.
 *
 * Usage: node --import tsx bench/peers/bare-server.ts '<json BareServerConfig>'
 */
import { readFileSync } from 'node:fs'
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

serveBaseline('bare', config, (req, res) => {
  res.writeHead(200, headers)
  res.end(req.method === 'HEAD' ? undefined : body)
}, { bodyBytes: body.length })
