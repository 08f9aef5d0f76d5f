/**
 * The edge's wait for a shield (edge.shield.firstByteTimeoutMs) against the shield's wait for
 * its origins (shield.origin.firstByteTimeoutMs), both roles started from config on 127.0.0.1
 * port 0. The edge's wait for an origin is set equal to the shield's on purpose: that was the
 * inversion, an edge giving up on a shield that was about to fail over or serve stale, and
 * going to the origin around it. Timeouts are a few hundred ms, never the 10 s defaults.
 */
import t, { type Test } from 'tap'
import { loadConfig } from '../../config/load.ts'
import { startEdge } from '../../edge/main.ts'
import type { RunningCacheNode } from '../../edge/cache-node.ts'
import { startShield } from '../../shield/main.ts'
import { tempDir } from '../helpers/cache-node.ts'
import { fetchRaw } from '../helpers/http-client.ts'
import { startScriptedOrigin, type ScriptedResponse } from '../helpers/scripted-origin.ts'

/** Both hops' origin timeout; the edge's own wait for the origin is the same. */
const ORIGIN_TIMEOUT_MS = '300'

const never = new Promise<never>(() => {})
const hang: ScriptedResponse = { waitFor: never }

function text (body: string, cacheControl = 'max-age=60'): ScriptedResponse {
  return { status: 200, headers: { 'content-type': 'text/plain', 'cache-control': cacheControl }, body }
}

async function shieldAndEdge (t: Test, shieldArgs: Record<string, string>, directOrigin: string): Promise<{ shield: RunningCacheNode, edge: RunningCacheNode }> {
  const dir = await tempDir(t)
  const shield = await startShield(loadConfig({
    env: {},
    cwd: dir,
    argv: { 'log.level': 'silent', 'shield.id': 'sh', 'shield.listen': '127.0.0.1:0', 'shield.cacheDir': 'sh', 'shield.origin.firstByteTimeoutMs': ORIGIN_TIMEOUT_MS, ...shieldArgs },
  }), { processMetrics: false, reloadOnSighup: false })
  t.teardown(() => shield.close())
  const edge = await startEdge(loadConfig({
    env: {},
    cwd: dir,
    argv: {
      'log.level': 'silent',
      'edge.id': 'ed',
      'edge.listen': '127.0.0.1:0',
      'edge.cacheDir': 'ed',
      'edge.origin': directOrigin,
      'edge.shields': shield.url,
      'edge.upstream.firstByteTimeoutMs': ORIGIN_TIMEOUT_MS,
      'edge.shield.firstByteTimeoutMs': '10000',
    },
  }), { processMetrics: false })
  t.teardown(() => edge.close())
  return { shield, edge }
}

t.test('the edge waits while its shield fails over past a hung origin', async (t) => {
  const hung = await startScriptedOrigin(t, { fallback: () => hang })
  const second = await startScriptedOrigin(t, { fallback: () => text('from the second origin') })
  const direct = await startScriptedOrigin(t, { fallback: () => text('from the origin, around the shield') })
  const { edge } = await shieldAndEdge(t, { 'shield.origins': `${hung.url},${second.url}` }, direct.url)

  const res = await fetchRaw(`${edge.url}/files/failover.txt`)
  t.equal(res.status, 200)
  t.equal(res.body.toString(), 'from the second origin', "the shield's answer")
  t.match(res.headers['cache-status'], /^streamedge-sh; fwd=uri-miss; fwd-status=200[^,]*, streamedge-ed; fwd=uri-miss/)
  t.equal(hung.count(), 1, 'the shield tried the first origin')
  t.equal(second.count(), 1, 'and failed over to the second')
  t.equal(direct.count(), 0, 'the edge never went around its shield')
})

t.test('the edge waits while its shield serves stale for a hung origin', async (t) => {
  const path = '/files/stale.txt'
  const origin = await startScriptedOrigin(t)
  // Stored already stale, then the origin hangs: only stale-if-error can answer.
  origin.script(path, text('v1', 'max-age=0'), hang)
  const direct = await startScriptedOrigin(t, { fallback: () => text('from the origin, around the shield') })
  const { edge } = await shieldAndEdge(t, { 'shield.origins': origin.url, 'shield.cache.staleIfErrorSeconds': '600' }, direct.url)

  const first = await fetchRaw(`${edge.url}${path}`)
  t.equal(first.body.toString(), 'v1')
  const again = await fetchRaw(`${edge.url}${path}`)
  t.equal(again.status, 200)
  t.equal(again.body.toString(), 'v1', "the shield's stale copy")
  t.equal(origin.count(path), 2, 'the shield asked its origin again, which hung')
  t.equal(direct.count(), 0, 'the edge never went around its shield')
})
