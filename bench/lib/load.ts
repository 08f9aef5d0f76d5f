/**
 * The load generator: autocannon's programmatic API, run in the bench process.
 *
 * autocannon 9 turns every response body into a string as it arrives
 * (lib/pipelinedRequestsQueue.js `addBody`: `req.body += data`), only for the
 * expectBody / verifyBody / per-request onResponse options. For 2 MiB bodies that costs
 * tens of ms of CPU per response and caps one autocannon process at ~20 req/s, so the
 * bench would measure autocannon's UTF-8 decoder, not the servers. We use none of those
 * options, so {@link loadTest} swaps `addBody` for a no-op (in this process only; the
 * byte counts and latencies autocannon records are unaffected).
 */
import { createRequire } from 'node:module'
import autocannon from 'autocannon'
import { mulberry32 } from './seeded-random.ts'

const require = createRequire(import.meta.url)
let patched = false

/** Replaces autocannon's per-response body accumulation with a no-op (idempotent). */
export function skipAutocannonBodies (): void {
  if (patched) return
  const queue = require('autocannon/lib/pipelinedRequestsQueue.js') as { prototype: { addBody?: (data: unknown) => void } }
  if (typeof queue.prototype.addBody !== 'function') {
    throw new Error('autocannon/lib/pipelinedRequestsQueue.js has no addBody: autocannon changed, revisit bench/lib/load.ts')
  }
  queue.prototype.addBody = function addBody (): void {}
  patched = true
}

/** One load run. */
export interface LoadOptions {
  /** The URL, or with `paths` the base URL (`http://127.0.0.1:port`). */
  readonly url: string
  readonly connections: number
  readonly durationS: number
  readonly headers?: Readonly<Record<string, string>>
  /** Paths under `url`; each request picks one at random from a seeded sequence. */
  readonly paths?: readonly string[]
  readonly seed?: number
}

/** Runs autocannon (no pipelining, keep-alive, 30 s request timeout) and returns its result. */
export function loadTest (o: LoadOptions): Promise<autocannon.Result> {
  skipAutocannonBodies()
  const paths = o.paths ?? []
  const base = { connections: o.connections, duration: o.durationS, pipelining: 1, timeout: 30, ...(o.headers === undefined ? {} : { headers: { ...o.headers } }) }
  if (paths.length === 0) return autocannon({ url: o.url, ...base })
  if (paths.length === 1) return autocannon({ url: new URL(paths[0]!, o.url).href, ...base })
  // Seeded: the same request mix in every window and on every target.
  const random = mulberry32(o.seed ?? 1)
  return autocannon({
    url: new URL(paths[0]!, o.url).href,
    ...base,
    requests: [{ setupRequest: (req) => ({ ...req, path: paths[Math.floor(random() * paths.length)]! }) }],
  })
}
