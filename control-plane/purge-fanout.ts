/**
 * Purge fan-out: one purge request to the control plane becomes a `POST /admin/purge` to every
 * node (edges and shields, whatever their health: a node that is down now serves stale content
 * when it comes back), in parallel, each with its own timeout. The answer lists every node.
 */
import { NODE_PURGE_PATH, type PurgeFanoutResult, type PurgeNodeResult, type PurgeRequest } from '../lib/protocol/purge.ts'
import type { NodeSpec } from './health/node-inventory.ts'

/** Options of {@link fanOutPurge}. */
export interface PurgeFanoutOptions {
  /** Bearer token for a node's purge endpoint (its own, or the shared one). */
  readonly tokenFor: (node: NodeSpec) => string | undefined
  readonly timeoutMs: number
}

/** Purges on every node and reports each result; never rejects. */
export async function fanOutPurge (nodes: readonly NodeSpec[], request: PurgeRequest, options: PurgeFanoutOptions): Promise<PurgeFanoutResult> {
  const results = await Promise.all(nodes.map((node) => purgeOne(node, request, options)))
  return { ok: results.every((r) => r.ok), request, results }
}

async function purgeOne (node: NodeSpec, request: PurgeRequest, options: PurgeFanoutOptions): Promise<PurgeNodeResult> {
  const started = performance.now()
  const elapsed = (): number => Math.round(performance.now() - started)
  const token = options.tokenFor(node)
  if (token === undefined) return { node: node.id, ok: false, error: 'no admin token for this node', durationMs: 0 }
  try {
    const res = await fetch(node.url + NODE_PURGE_PATH, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify(request),
      // a redirect is no purge: followed, a 302 to a login page would answer 200 for a node that purged nothing
      redirect: 'manual',
      signal: AbortSignal.timeout(options.timeoutMs),
    })
    const text = await res.text()
    const purged = purgedCount(text)
    if (res.status >= 200 && res.status < 300) return { node: node.id, ok: true, status: res.status, ...(purged === undefined ? {} : { purged }), durationMs: elapsed() }
    return { node: node.id, ok: false, status: res.status, error: `HTTP ${res.status}`, durationMs: elapsed() }
  } catch (err) {
    const e = err as { name?: string, message?: string, cause?: { code?: string } }
    const error = e.name === 'TimeoutError' ? `no answer within ${options.timeoutMs} ms` : e.cause?.code ?? e.message ?? String(err)
    return { node: node.id, ok: false, error, durationMs: elapsed() }
  }
}

function purgedCount (text: string): number | undefined {
  try {
    const body = JSON.parse(text) as { purged?: unknown }
    return typeof body.purged === 'number' ? body.purged : undefined
  } catch {
    return undefined
  }
}
