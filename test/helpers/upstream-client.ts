/**
 * Test glue for code that implements `Upstream` (the edge's shield chain, the shield's origin
 * pool): read a response body to its end, GET a path and read it, pick paths a chain ranks on one shield.
 */
import type { Readable } from 'node:stream'
import type { Upstream, UpstreamResponse } from '../../edge/proxy/upstream.ts'

/** Reads `body` to its end; a body that fails gives what arrived before and the error, instead of throwing. */
export async function readBody (body: Readable): Promise<{ bytes: Buffer, error: Error | undefined }> {
  const chunks: Buffer[] = []
  try {
    for await (const chunk of body) chunks.push(chunk as Buffer)
    return { bytes: Buffer.concat(chunks), error: undefined }
  } catch (err) {
    return { bytes: Buffer.concat(chunks), error: err as Error }
  }
}

/** GETs `path` (with cache key `key`, if given) from `upstream` and reads the whole body; rejects when the body fails. */
export async function upstreamGet (upstream: Upstream, path: string, key?: string): Promise<UpstreamResponse & { bytes: Buffer }> {
  const res = await upstream.request({ method: 'GET', path, headers: {}, ...(key === undefined ? {} : { key }) })
  const { bytes, error } = await readBody(res.body)
  if (error !== undefined) throw error
  return { ...res, bytes }
}

/** `n` demo-origin paths (`/synthetic/<tag>-<i>-<bytes>.ts`) whose first choice in `chain`'s ranking is `name`. */
export function pathsRankedFirst (chain: { rank (key: string): readonly string[] }, name: string, n: number, tag: string, bytes = 1880): string[] {
  const out: string[] = []
  for (let i = 0; out.length < n; i++) {
    const path = `/synthetic/${tag}-${i}-${bytes}.ts`
    if (chain.rank(path)[0] === name) out.push(path)
  }
  return out
}
