/**
 * Reloading the shield's origin table while it serves: OriginPool.replaceOrigins (what stays,
 * what drains, what a bad table leaves alone), startShield's reloadOrigins with a real origins
 * file (the function SIGHUP calls), and a real SIGHUP to `streamedge shield` as a child process.
 */
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import t, { type Test } from 'tap'
import { loadConfig } from '../../config/load.ts'
import type { BreakerSettings } from '../../edge/proxy/circuit-breaker.ts'
import { HttpUpstream, type Upstream } from '../../edge/proxy/upstream.ts'
import { createLogger } from '../../lib/log.ts'
import { OriginPool, type OriginSpec } from '../../shield/origin-pool.ts'
import { startShield } from '../../shield/main.ts'
import { tempDir } from '../helpers/cache-node.ts'
import { fetchRaw } from '../helpers/http-client.ts'
import { captureLogs } from '../helpers/log-capture.ts'
import { startScriptedOrigin, type ScriptedOrigin, type ScriptedResponse } from '../helpers/scripted-origin.ts'
import { readBody, upstreamGet } from '../helpers/upstream-client.ts'

const BIN = fileURLToPath(new URL('../../bin/streamedge.js', import.meta.url))
const BREAKER: BreakerSettings = { failureThreshold: 2, errorRatePercent: 0, minRequests: 0, windowMs: 10_000, coolDownMs: 60_000 }
const TIMEOUTS = { connectTimeoutMs: 1000, firstByteTimeoutMs: 5000, idleTimeoutMs: 5000, keepAliveTimeoutMs: 1000 }

/** An origin that answers every path with its own name, cacheable. */
function namedOrigin (t: Test, name: string): Promise<ScriptedOrigin> {
  return startScriptedOrigin(t, { fallback: () => text(`from ${name}`) })
}

function text (body: string): ScriptedResponse {
  return { status: 200, headers: { 'content-type': 'text/plain', 'cache-control': 'max-age=60' }, body }
}

async function waitFor (what: string, cond: () => boolean, ms = 10_000): Promise<void> {
  const until = Date.now() + ms
  while (!cond()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

/** A gate a scripted response waits for. */
function gate (): { promise: Promise<void>, open: () => void } {
  let open!: () => void
  const promise = new Promise<void>((resolve) => { open = resolve })
  return { promise, open }
}

t.test('OriginPool.replaceOrigins: new requests use the new table, a request in flight finishes on its origin, which then closes', async (t) => {
  const a = await namedOrigin(t, 'a')
  const b = await namedOrigin(t, 'b')
  const c = await namedOrigin(t, 'c')
  const slow = gate()
  a.script('/slow', async () => { await slow.promise; return text('slow from a') })
  const closed: string[] = []
  const pool = new OriginPool({
    origins: [{ url: a.url, name: 'a' }, { url: c.url, name: 'c', priority: 1 }],
    timeouts: TIMEOUTS,
    maxConcurrent: 4,
    maxQueue: 4,
    queueTimeoutMs: 5000,
    retries: 2,
    breaker: BREAKER,
    createUpstream: (o): Upstream => {
      const http = new HttpUpstream(o)
      return { name: http.name, request: (req) => http.request(req), close: async () => { closed.push(o.name); await http.close() } }
    },
  })
  t.teardown(() => pool.close())

  const inFlight = pool.request({ method: 'GET', path: '/slow', headers: {} })
  await a.waitForRequests('/slow', 1)
  const change = pool.replaceOrigins([{ url: b.url, name: 'b' }, { url: c.url, name: 'c', priority: 1 }])
  t.same(change, { added: ['b'], removed: ['a'], kept: ['c'] })
  t.same(pool.health().map((h) => h.name), ['b', 'c'], 'health lists the new table')

  const fresh = await upstreamGet(pool, '/after')
  t.equal(fresh.bytes.toString(), 'from b', 'a new request goes to the new origin')
  t.equal(a.count('/after'), 0)
  t.same(closed, [], 'the removed origin stays open while a request runs on it')

  slow.open()
  const res = await inFlight
  t.equal(res.upstream, 'a')
  t.equal((await readBody(res.body)).bytes.toString(), 'slow from a', 'the request in flight finished on the origin it started on')
  await waitFor('the drained origin to close', () => closed.includes('a'))
  t.same(closed, ['a'], 'only the removed origin closed; the kept one kept its connections')

  // Same URL, new name: a new origin (names label logs and metrics).
  t.same(pool.replaceOrigins([{ url: b.url, name: 'b2' }]), { added: ['b2'], removed: ['b', 'c'], kept: [] })
  t.equal((await upstreamGet(pool, '/renamed')).upstream, 'b2')
})

t.test('OriginPool.replaceOrigins: a bad table throws and changes nothing', async (t) => {
  const a = await namedOrigin(t, 'a')
  const pool = new OriginPool({ origins: [{ url: a.url, name: 'a' }], timeouts: TIMEOUTS, maxConcurrent: 2, maxQueue: 2, queueTimeoutMs: 5000, retries: 0, breaker: BREAKER })
  t.teardown(() => pool.close())
  const bad: Array<[readonly OriginSpec[], RegExp]> = [
    [[], /^Expected origins to be a non-empty array/],
    [[{ url: 'http://x:1', name: 'x' }, { url: 'ftp://y' }], /^Expected origins\[1\]\.url to be an http\(s\) URL/],
    [[{ url: 'http://x:1', name: 'o' }, { url: 'http://y:1', name: 'o' }], /^Expected origins\[1\]\.name to be unique/],
  ]
  for (const [origins, message] of bad) t.throws(() => pool.replaceOrigins(origins), { name: 'TypeError', message })
  t.same(pool.health().map((h) => h.name), ['a'])
  t.equal((await upstreamGet(pool, '/still')).bytes.toString(), 'from a')
  await pool.close()
  t.throws(() => pool.replaceOrigins([{ url: a.url }]), { name: 'TypeError', message: /closed/ })
})

t.test('startShield: reloadOrigins re-reads shield.originsFile; a broken file keeps the current table and logs one error', async (t) => {
  const a = await namedOrigin(t, 'a')
  const b = await namedOrigin(t, 'b')
  const slow = gate()
  a.script('/files/slow.txt', async () => { await slow.promise; return text('slow from a') })
  const dir = await tempDir(t)
  const file = join(dir, 'origins.yaml')
  await writeFile(file, `origins:\n  - { url: "${a.url}", name: a }\n`)
  const { logs, destination } = captureLogs()
  const shield = await startShield(loadConfig({
    env: {},
    cwd: dir,
    argv: { 'shield.id': 'sh', 'shield.listen': '127.0.0.1:0', 'shield.cacheDir': 'cache', 'shield.originsFile': 'origins.yaml', 'log.access': 'false' },
  }), { logger: createLogger({ level: 'info', destination }), processMetrics: false, reloadOnSighup: false })
  t.teardown(() => shield.close())

  t.equal((await fetchRaw(`${shield.url}/files/1.txt`)).body.toString(), 'from a')
  const before = (await fetchRaw(`${shield.url}/metrics`)).body.toString()
  t.match(before, /^streamedge_upstream_up\{upstream="a",[^}]*\} 1$/m, 'a scrape before the reload sees origin a')
  const inFlight = fetchRaw(`${shield.url}/files/slow.txt`)
  await a.waitForRequests('/files/slow.txt', 1)

  await writeFile(file, `origins:\n  - { url: "${b.url}", name: b }\n`)
  t.equal(shield.reloadOrigins(), true)
  const after = await fetchRaw(`${shield.url}/files/2.txt`)
  t.equal(after.body.toString(), 'from b', 'a new request goes to the new origin')
  const reloaded = logs.filter((l) => l['msg'] === 'origins file reloaded')
  t.equal(reloaded.length, 1, 'the reload is logged')
  t.match(reloaded[0], { level: 'info', file, added: ['b'], removed: ['a'], kept: [] })
  t.equal(a.count('/files/2.txt'), 0)
  slow.open()
  const slowRes = await inFlight
  t.equal(slowRes.status, 200)
  t.equal(slowRes.body.toString(), 'slow from a', 'the request in flight finished on the old origin')

  // Half-edited (unparsable), then valid YAML with a bad entry: each keeps the table.
  const cases = [
    ['origins:\n  - { url: "http://c\n', /^Cannot parse origins file .*origins\.yaml:\d+:\d+: /],
    [`origins:\n  - { url: "${a.url}", weight: 0 }\n`, /^Invalid origins file:\norigins\[0\]\.weight must be a positive integer, got 0 \(from file .*origins\.yaml\)$/],
  ] as const
  for (const [i, [broken, problem]] of cases.entries()) {
    await writeFile(file, broken)
    t.equal(shield.reloadOrigins(), false)
    const still = await fetchRaw(`${shield.url}/files/kept-${i}.txt`)
    t.equal(still.body.toString(), 'from b', 'the current table is kept')
    const errors = logs.filter((l) => l['level'] === 'error')
    t.equal(errors.length, i + 1, 'one error line per refused reload')
    t.match(errors.at(-1), { msg: 'origins file refused; keeping the current origins', file, err: { message: problem } })
  }
  t.equal(a.count() - a.count('/files/1.txt') - a.count('/files/slow.txt'), 0, 'the removed origin got nothing new')

  const metrics = (await fetchRaw(`${shield.url}/metrics`)).body.toString()
  t.match(metrics, /^streamedge_reloads_total\{file="origins",outcome="ok",role="shield",node="sh"\} 1$/m)
  t.match(metrics, /^streamedge_reloads_total\{file="origins",outcome="refused",role="shield",node="sh"\} 2$/m)
  for (const gauge of ['upstream_up', 'upstream_active_requests', 'upstream_queued_requests']) {
    t.match(metrics, new RegExp(`^streamedge_${gauge}\\{upstream="b",`, 'm'), `${gauge}: the new origin is reported`)
    t.notMatch(metrics, new RegExp(`^streamedge_${gauge}\\{upstream="a",`, 'm'), `${gauge}: the removed origin no longer is`)
  }
})

t.test('startShield with shield.origins (no file): a reload has nothing to read, and SIGHUP is left alone', async (t) => {
  const a = await namedOrigin(t, 'a')
  const dir = await tempDir(t)
  const { logs, destination } = captureLogs()
  const listeners = process.listenerCount('SIGHUP')
  const shield = await startShield(loadConfig({
    env: {},
    cwd: dir,
    argv: { 'shield.listen': '127.0.0.1:0', 'shield.cacheDir': 'cache', 'shield.origins': a.url, 'log.access': 'false' },
  }), { logger: createLogger({ level: 'info', destination }), processMetrics: false })
  t.teardown(() => shield.close())
  t.equal(process.listenerCount('SIGHUP'), listeners, 'no listener: nothing to reload')
  t.equal(shield.reloadOrigins(), false)
  t.match(logs.at(-1), { level: 'warn', msg: /shield\.originsFile is not set/ })
  t.equal((await fetchRaw(`${shield.url}/x.txt`)).body.toString(), 'from a')
})

t.test('startShield with an origins file listens for SIGHUP until it closes', async (t) => {
  const a = await namedOrigin(t, 'a')
  const dir = await tempDir(t)
  await writeFile(join(dir, 'origins.json'), JSON.stringify({ origins: [{ url: a.url }] }))
  const listeners = process.listenerCount('SIGHUP')
  const shield = await startShield(loadConfig({
    env: {},
    cwd: dir,
    argv: { 'log.level': 'silent', 'shield.listen': '127.0.0.1:0', 'shield.cacheDir': 'cache', 'shield.originsFile': 'origins.json' },
  }), { processMetrics: false })
  t.equal(process.listenerCount('SIGHUP'), listeners + 1)
  await shield.close()
  t.equal(process.listenerCount('SIGHUP'), listeners)
})

t.test('SIGHUP to a running `streamedge shield` reloads its origins file', async (t) => {
  const a = await namedOrigin(t, 'a')
  const b = await namedOrigin(t, 'b')
  const dir = await tempDir(t)
  const file = join(dir, 'origins.yaml')
  await writeFile(file, `origins:\n  - { url: "${a.url}", name: a }\n`)
  const child = spawn(process.execPath, [BIN, 'shield', '--shield.originsFile', file, '--listen', '127.0.0.1:0', '--cache-dir', join(dir, 'cache'), '--log.access', 'false'], { stdio: ['ignore', 'pipe', 'inherit'] })
  t.teardown(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL') })
  const logs: Array<Record<string, unknown>> = []
  createInterface({ input: child.stdout! }).on('line', (line) => { logs.push(JSON.parse(line) as Record<string, unknown>) })
  await waitFor('the shield to listen', () => logs.some((l) => l['msg'] === 'shield listening'))
  const url = logs.find((l) => l['msg'] === 'shield listening')!['url'] as string

  t.equal((await fetchRaw(`${url}/files/1.txt`)).body.toString(), 'from a')
  await writeFile(file, `origins:\n  - { url: "${b.url}", name: b }\n`)
  child.kill('SIGHUP')
  await waitFor('the reload', () => logs.some((l) => l['msg'] === 'origins file reloaded'))
  t.equal((await fetchRaw(`${url}/files/2.txt`)).body.toString(), 'from b')
  t.equal(child.exitCode, null, 'SIGHUP did not stop it')

  const exited = once(child, 'exit')
  child.kill('SIGTERM')
  t.equal((await exited)[0], 0)
})
