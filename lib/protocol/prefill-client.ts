/**
 * Client side of a node's prefill and inventory endpoints (lib/protocol/prefill.ts), for the
 * `streamedge prefill` command and the control plane. Every call has a timeout and answers
 * a value: a parsed body, or an error that says what went wrong.
 */
import {
  NODE_INVENTORY_PATH, NODE_PREFILL_PATH, parseInventoryReport, parsePrefillJobStatus,
  type InventoryReport, type PrefillJobStatus, type PrefillRequest,
} from './prefill.ts'

/** Where a node's admin API is and how to authenticate. */
export interface NodeAdmin {
  /** The node's base URL (its admin endpoints live under `/admin/`). */
  readonly url: string
  readonly token: string
  readonly timeoutMs: number
}

/** An answer, or why there is none (`status` when the node answered with an error). */
export type AdminResult<T> =
  | { readonly ok: true, readonly value: T }
  | { readonly ok: false, readonly error: string, readonly status?: number }

/** `POST /admin/prefill`: starts a job. */
export async function startPrefill (node: NodeAdmin, request: PrefillRequest): Promise<AdminResult<PrefillJobStatus>> {
  return await call(node, 'POST', NODE_PREFILL_PATH, request, parsePrefillJobStatus)
}

/** `GET /admin/prefill/<id>`: a job's progress. */
export async function getPrefillJob (node: NodeAdmin, id: string): Promise<AdminResult<PrefillJobStatus>> {
  return await call(node, 'GET', `${NODE_PREFILL_PATH}/${encodeURIComponent(id)}`, undefined, parsePrefillJobStatus)
}

/** `DELETE /admin/prefill/<id>`: cancels a job. */
export async function cancelPrefillJob (node: NodeAdmin, id: string): Promise<AdminResult<PrefillJobStatus>> {
  return await call(node, 'DELETE', `${NODE_PREFILL_PATH}/${encodeURIComponent(id)}`, undefined, parsePrefillJobStatus)
}

/** `GET /admin/inventory`: the titles a node holds. */
export async function getInventory (node: NodeAdmin): Promise<AdminResult<InventoryReport>> {
  return await call(node, 'GET', NODE_INVENTORY_PATH, undefined, parseInventoryReport)
}

async function call<T> (
  node: NodeAdmin, method: string, path: string, body: unknown,
  parse: (value: unknown) => { ok: true, value: T } | { ok: false, error: string },
): Promise<AdminResult<T>> {
  let res: Response
  try {
    res = await fetch(new URL(path, node.url), {
      method,
      headers: { authorization: `Bearer ${node.token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      signal: AbortSignal.timeout(node.timeoutMs),
    })
  } catch (err) {
    const e = err as { name?: string, message?: string, cause?: { code?: string } }
    return { ok: false, error: e.name === 'TimeoutError' ? `no answer within ${node.timeoutMs} ms` : e.cause?.code ?? e.message ?? String(err) }
  }
  let json: unknown
  try {
    json = await res.json()
  } catch (err) {
    // the timeout and a dropped connection also end the body early: only a SyntaxError means "not JSON"
    const e = err as { name?: string, message?: string, cause?: { code?: string } }
    if (e.name === 'TimeoutError') return { ok: false, status: res.status, error: `HTTP ${res.status} but the body did not arrive within ${node.timeoutMs} ms` }
    if (e.name !== 'SyntaxError') return { ok: false, status: res.status, error: `HTTP ${res.status} but the body broke off: ${e.cause?.code ?? e.message ?? String(err)}` }
    return { ok: false, status: res.status, error: `HTTP ${res.status} with a body that is not JSON` }
  }
  if (res.status < 200 || res.status >= 300) {
    const message = (json as { error?: unknown } | null)?.error
    return { ok: false, status: res.status, error: `HTTP ${res.status}${typeof message === 'string' ? `: ${message}` : ''}` }
  }
  const parsed = parse(json)
  return parsed.ok ? parsed : { ok: false, status: res.status, error: `unexpected answer: ${parsed.error}` }
}
