/**
 * Filling a target's cache before a warm-cache measurement, and checking that it serves
 * the origin's bytes: a benchmark of a cache that answers misses or wrong bytes measures nothing.
 */
import { createHash } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import type { BenchTarget } from './bench-target.ts'
import { httpGet, type FetchedResponse } from './http-get.ts'

/** GETs `path` until the target answers it from its cache (a store may admit a body only once its fill ended). */
export async function warmUntilHit (target: BenchTarget, path: string, headers: Readonly<Record<string, string>> = {}, attempts = 50): Promise<FetchedResponse> {
  let last: FetchedResponse | undefined
  for (let i = 0; i < attempts; i++) {
    last = await httpGet(target.url + path, 30_000, headers)
    if (last.status >= 200 && last.status < 300 && target.isHit(last)) return last
    await sleep(i === 0 ? 0 : 100)
  }
  throw new Error(`${target.name}: ${path} never became a cache hit (last status ${last?.status ?? 'none'}, headers ${JSON.stringify(last?.headers ?? {})})`)
}

/** Throws unless `res` is `status` with exactly `expected` as its body. */
export function checkBody (target: BenchTarget, what: string, res: FetchedResponse, status: number, expected: Buffer): void {
  const digest = (b: Buffer): string => createHash('sha256').update(b).digest('hex')
  if (res.status !== status || res.body.length !== expected.length || digest(res.body) !== digest(expected)) {
    throw new Error(`${target.name}: ${what} answered ${res.status} with ${res.body.length} bytes that differ from the origin's (${status}, ${expected.length} bytes)`)
  }
}
