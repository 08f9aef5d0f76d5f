/**
 * The shield role from config: `streamedge shield` and `streamedge edge --shield` as real
 * processes (the quick start of issue 4), the in-process composition roots (startShield,
 * startEdge with edge.shields), and the origins file.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import t, { type Test } from 'tap'
import { syntheticBody } from '../../bench/origin/synthetic-body.ts'
import { runCli, type CliHandlers } from '../../config/cli.ts'
import { loadConfig } from '../../config/load.ts'
import type { StreamedgeConfig } from '../../config/params.ts'
import { startEdge } from '../../edge/main.ts'
import { isCdnError } from '../../lib/errors.ts'
import { TokenKey, TokenSigner } from '../../lib/protocol/token.ts'
import { startShield } from '../../shield/main.ts'
import { loadOriginsFile, parseOrigins } from '../../shield/origins-file.ts'
import { fetchRaw } from '../helpers/http-client.ts'
import { deadOriginUrl, startTestOrigin } from '../helpers/origin-fixture.ts'
import { tempDir } from '../helpers/cache-node.ts'

const BIN = fileURLToPath(new URL('../../bin/streamedge.js', import.meta.url))

interface NodeProcess { readonly url: string, readonly child: ChildProcess }

/** Spawns `streamedge <args>` and resolves once it logs `<role> listening`. */
async function spawnNode (t: Test, role: string, args: readonly string[]): Promise<NodeProcess> {
  const child = spawn(process.execPath, [BIN, role, ...args, '--listen', '127.0.0.1:0', '--log.access', 'false'], { stdio: ['ignore', 'pipe', 'inherit'] })
  t.teardown(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL') })
  const lines = createInterface({ input: child.stdout! })
  for await (const line of lines) {
    const entry = JSON.parse(line) as { msg?: string, url?: string }
    if (entry.msg === `${role} listening` && entry.url !== undefined) {
      lines.on('line', () => {})
      return { url: entry.url, child }
    }
  }
  throw new Error(`${role} exited before listening`)
}

async function stop (node: NodeProcess): Promise<number | null> {
  const exited = once(node.child, 'exit')
  node.child.kill('SIGTERM')
  const [code] = await exited as [number | null]
  return code
}

t.test('quick start as real processes: shield --origin DEAD,LIVE and edge --shield URL --origin URL', async (t) => {
  const live = await startTestOrigin(t)
  const shield = await spawnNode(t, 'shield', ['--origin', `${await deadOriginUrl()},${live.url}`, '--cache-dir', await tempDir(t)])
  const path = '/synthetic/quick-188000.ts'
  const direct = await fetchRaw(shield.url + path)
  t.equal(direct.status, 200, 'the second origin serves while the first is down')
  t.ok(direct.body.equals(syntheticBody('quick', 188_000, 'ts')))
  t.match(direct.headers['cache-status'], /fwd=uri-miss/)

  const edge = await spawnNode(t, 'edge', ['--shield', shield.url, '--origin', live.url, '--cache-dir', await tempDir(t)])
  const viaEdge = await fetchRaw(edge.url + path)
  t.equal(viaEdge.status, 200)
  t.ok(viaEdge.body.equals(syntheticBody('quick', 188_000, 'ts')))
  t.match(viaEdge.headers['cache-status'], /^streamedge-[^;]+; (?:hit|fwd)[^,]*, streamedge-[^;]+; fwd=uri-miss/, 'one Cache-Status member per tier, shield first')
  t.equal(live.count(path), 1, 'the edge got it from the shield, the shield from the origin once')
  t.equal(await stop(edge), 0)
  t.equal(await stop(shield), 0)
})

async function cli (args: string[], cwd: string): Promise<{ code: number, stderr: string, shield: Readonly<StreamedgeConfig>[] }> {
  const out = { code: -1, stderr: '', shield: [] as Readonly<StreamedgeConfig>[] }
  const handlers: CliHandlers = {
    edge: async () => {},
    start: async () => {},
    shield: async (config) => { out.shield.push(config) },
  }
  out.code = await runCli(args, handlers, { stdout: () => {}, stderr: (s) => { out.stderr += s }, env: {}, cwd, setExitCode: () => {} })
  return out
}

t.test('CLI: --origin takes a priority list; origins must come from exactly one place', async (t) => {
  const dir = await tempDir(t)
  const ok = await cli(['shield', '--origin', 'http://a:1,http://b:2', '--listen', '127.0.0.1:0', '--cache-dir', 'c'], dir)
  t.equal(ok.code, 0)
  t.same(ok.shield[0]?.shield.origins, ['http://a:1/', 'http://b:2/'])
  t.equal(ok.shield[0]?.shield.cacheDir, join(dir, 'c'))

  const none = await cli(['shield'], dir)
  t.equal(none.code, 2)
  t.equal(none.stderr, 'shield.origins is required: give --origin URL[,URL...] (priority order) or set shield.originsFile in the config file\n')

  const both = await cli(['shield', '--origin', 'http://a:1', '--shield.originsFile', 'origins.yaml'], dir)
  t.equal(both.code, 2)
  t.equal(both.stderr, 'Set shield.origins or shield.originsFile, not both\n')
  t.equal(none.shield.length + both.shield.length, 0, 'nothing started')
})

t.test('origins file: prefixes, priorities and weights; every problem reported at once', async (t) => {
  const dir = await tempDir(t)
  const yaml = join(dir, 'origins.yaml')
  await writeFile(yaml, [
    'origins:',
    '  - { url: "http://a:8000", prefix: /live/, weight: 2, name: packager-a }',
    '  - { url: "http://b:8000", prefix: /live/, weight: 1 }',
    '  - url: http://backup:8000',
    '    priority: 1',
    '',
  ].join('\n'))
  t.same(loadOriginsFile(yaml), [
    { url: 'http://a:8000', prefix: '/live/', priority: 0, weight: 2, name: 'packager-a' },
    { url: 'http://b:8000', prefix: '/live/', priority: 0, weight: 1 },
    { url: 'http://backup:8000', prefix: '/', priority: 1, weight: 1 },
  ])
  const json = join(dir, 'origins.json')
  await writeFile(json, JSON.stringify({ origins: [{ url: 'https://o.example/base' }] }))
  t.same(loadOriginsFile(json), [{ url: 'https://o.example/base', prefix: '/', priority: 0, weight: 1 }])

  const bad = () => parseOrigins({ origins: [{ url: 'ftp://x', weight: 0 }, { url: 'http://y', prefix: 'vod', colour: 'red' }, 'z'], extra: 1 }, 'o.yaml')
  t.throws(bad, {
    code: 'CDN_ERR_CONFIG_INVALID',
    message: [
      'Invalid origins file:',
      'unknown key extra (from file o.yaml)',
      'origins[0].url must be an http: or https: URL, got "ftp://x" (from file o.yaml)',
      'origins[0].weight must be a positive integer, got 0 (from file o.yaml)',
      'origins[1].colour is not a known field (url, prefix, priority, weight, name) (from file o.yaml)',
      'origins[1].prefix must be a path starting with /, got "vod" (from file o.yaml)',
      'origins[2] must be a mapping with url, prefix, priority, weight, name; got "z" (from file o.yaml)',
    ].join('\n'),
  })
  t.throws(() => parseOrigins([], 'o.yaml'), { code: 'CDN_ERR_CONFIG_INVALID', message: /expected a mapping with an "origins" list/ })

  const broken = join(dir, 'broken.yaml')
  await writeFile(broken, 'origins:\n  - { url: "http://a\n')
  t.throws(() => loadOriginsFile(broken), { code: 'CDN_ERR_CONFIG_FILE', message: new RegExp(`^Cannot parse origins file ${broken}:\\d+:\\d+: `) })
  t.throws(() => loadOriginsFile(join(dir, 'origins.txt')), { code: 'CDN_ERR_CONFIG_FILE', message: /must end in \.yaml, \.yml or \.json/ })
  t.throws(() => loadOriginsFile(join(dir, 'missing.yaml')), { code: 'CDN_ERR_CONFIG_FILE', message: /Cannot read origins file/ })
})

t.test('startShield with an origins file routes by prefix', async (t) => {
  const vod = await startTestOrigin(t)
  const synthetic = await startTestOrigin(t)
  const dir = await tempDir(t)
  const file = join(dir, 'origins.yaml')
  await writeFile(file, `origins:\n  - { url: "${vod.url}", prefix: /vod/ }\n  - { url: "${synthetic.url}", prefix: / }\n`)
  const config = loadConfig({
    env: {},
    cwd: dir,
    argv: { 'log.level': 'silent', 'shield.id': 'shield-t', 'shield.listen': '127.0.0.1:0', 'shield.cacheDir': 'cache', 'shield.originsFile': 'origins.yaml' },
  })
  const shield = await startShield(config, { processMetrics: false })
  t.teardown(() => shield.close())
  t.equal((await fetchRaw(`${shield.url}/vod/bars/master.m3u8`)).status, 200)
  const seg = await fetchRaw(`${shield.url}/synthetic/routed-1880.ts`)
  t.equal(seg.status, 200)
  t.match(seg.headers['cache-status'], /^streamedge-shield-t; fwd=uri-miss/)
  t.equal(vod.totalRequests(), 1)
  t.equal(synthetic.totalRequests(), 1)
})

t.test('startShield refuses a config without origins', async (t) => {
  const config = loadConfig({ env: {}, argv: { 'log.level': 'silent', 'shield.listen': '127.0.0.1:0' } })
  await t.rejects(startShield(config), { code: 'CDN_ERR_CONFIG_INVALID', message: /shield\.origins is required/ })
})

t.test('startEdge with edge.shields goes through the shields; allowDirectOrigin false turns a dead tier into a 502', async (t) => {
  const live = await startTestOrigin(t)
  const dir = await tempDir(t)
  const shieldConfig = loadConfig({ env: {}, cwd: dir, argv: { 'log.level': 'silent', 'shield.id': 'sh', 'shield.listen': '127.0.0.1:0', 'shield.cacheDir': 'sh', 'shield.origins': live.url } })
  const shield = await startShield(shieldConfig, { processMetrics: false })
  t.teardown(() => shield.close())
  const edgeArgs = { 'log.level': 'silent', 'edge.id': 'ed', 'edge.listen': '127.0.0.1:0', 'edge.origin': live.url }
  const edge = await startEdge(loadConfig({ env: {}, cwd: dir, argv: { ...edgeArgs, 'edge.cacheDir': 'ed', 'edge.shields': shield.url } }), { processMetrics: false })
  t.teardown(() => edge.close())
  const res = await fetchRaw(`${edge.url}/synthetic/chain-1880.ts`)
  t.equal(res.status, 200)
  t.match(res.headers['cache-status'], /^streamedge-sh; fwd=uri-miss[^,]*, streamedge-ed; fwd=uri-miss/)

  const sealed = await startEdge(loadConfig({
    env: {},
    cwd: dir,
    argv: { ...edgeArgs, 'edge.id': 'sealed', 'edge.cacheDir': 'sealed', 'edge.shields': await deadOriginUrl(), 'edge.allowDirectOrigin': 'false' },
  }), { processMetrics: false })
  t.teardown(() => sealed.close())
  const refused = await fetchRaw(`${sealed.url}/synthetic/sealed-1880.ts`)
  t.equal(refused.status, 502)
  t.match(refused.headers['cache-status'], /detail=CDN_ERR_UPSTREAM_UNAVAILABLE/)
  t.match(refused.body.toString(), /direct origin access is disabled/)
  t.equal(live.count('/synthetic/sealed-1880.ts'), 0)
})

t.test('a failed start closes the origin pool (no probe timers left behind)', async (t) => {
  const dir = await tempDir(t)
  const busy = await startTestOrigin(t)
  const config = loadConfig({
    env: {},
    cwd: dir,
    argv: { 'log.level': 'silent', 'shield.listen': `127.0.0.1:${busy.port}`, 'shield.cacheDir': 'c', 'shield.origins': busy.url, 'shield.origin.probe.intervalMs': '10' },
  })
  const err = await startShield(config, { processMetrics: false }).catch((e: unknown) => e)
  t.ok(err instanceof Error && !isCdnError(err), 'the port is taken')
  t.match((err as NodeJS.ErrnoException).code, 'EADDRINUSE')
  const probes = busy.count('/')
  t.ok(probes >= 1, 'the pool had started probing')
  await new Promise((resolve) => setTimeout(resolve, 100))
  t.ok(busy.count('/') <= probes + 1, 'and stopped when the start failed')
})

t.test('shield.token.required: players reaching a shield directly need a valid token; its edges (trusted proxies) do not', async (t) => {
  const live = await startTestOrigin(t)
  const dir = await tempDir(t)
  const keys = 'k1:shield-token-secret-0123456789'
  const signer = new TokenSigner([new TokenKey('k1', 'shield-token-secret-0123456789')])
  const exp = Math.floor(Date.now() / 1000) + 600
  const good = signer.sign({ exp, path: '/synthetic/' })
  const elsewhere = signer.sign({ exp, path: '/vod/' })
  const forged = new TokenSigner([new TokenKey('k1', 'not-the-shield-secret-at-all-000')]).sign({ exp, path: '/synthetic/' })
  // Dual-stack: the edges come from 127.0.0.1 (trusted), "players" from ::1 (not)
  const shield = await startShield(loadConfig({
    env: {},
    cwd: dir,
    argv: { 'log.level': 'silent', 'shield.id': 'sh', 'shield.listen': '[::]:0', 'shield.cacheDir': 'sh', 'shield.origins': live.url, 'shield.trustedProxies': '127.0.0.1', 'shield.token.required': 'true', 'shield.token.keys': keys },
  }), { processMetrics: false })
  t.teardown(() => shield.close())
  const port = new URL(shield.url).port
  const player = (path: string): Promise<number> => fetchRaw(`http://[::1]:${port}${path}`).then((r) => r.status)
  const edgeLike = (path: string): Promise<number> => fetchRaw(`http://127.0.0.1:${port}${path}`).then((r) => r.status)

  t.equal(await player('/synthetic/direct-1880.ts'), 403, 'a player without a token')
  t.equal(await player(`/t/${forged}/synthetic/direct-1880.ts`), 403, 'a forged token')
  t.equal(await player(`/t/${elsewhere}/synthetic/direct-1880.ts`), 403, 'a token for another title')
  t.equal(await player(`/t/${good}/synthetic/direct-1880.ts`), 200, 'a valid token')
  t.equal(await player(`/synthetic/direct-1880.ts?se_token=${good}`), 200, 'in the query too')
  t.equal(await edgeLike('/synthetic/edge-own-1880.ts'), 200, 'an edge fetching on its own behalf (prefetch, prefill): no token needed')
  t.equal(await edgeLike(`/t/${forged}/synthetic/edge-own-1880.ts`), 403, 'a token an edge does send is still checked')

  const edge = await startEdge(loadConfig({
    env: {},
    cwd: dir,
    argv: { 'log.level': 'silent', 'edge.id': 'ed', 'edge.listen': '127.0.0.1:0', 'edge.origin': live.url, 'edge.cacheDir': 'ed', 'edge.shields': `http://127.0.0.1:${port}`, 'edge.allowDirectOrigin': 'false', 'edge.token.required': 'true', 'edge.token.keys': keys },
  }), { processMetrics: false })
  t.teardown(() => edge.close())
  const through = await fetchRaw(`${edge.url}/t/${good}/synthetic/chain-1880.ts`)
  t.equal(through.status, 200, 'a player with a token, through an edge and the shield')
  t.match(through.headers['cache-status'], /^streamedge-sh; fwd=uri-miss[^,]*, streamedge-ed; fwd=uri-miss/)
  t.equal((await fetchRaw(`${edge.url}/synthetic/chain-1880.ts`)).status, 403, 'the edge refuses the tokenless player itself')
})

t.test('shield.token.required needs keys and trusted proxies: the start is refused, naming the setting', async (t) => {
  const base = { 'log.level': 'silent', 'shield.listen': '127.0.0.1:0', 'shield.origins': 'http://127.0.0.1:9', 'shield.token.required': 'true' }
  await t.rejects(startShield(loadConfig({ env: {}, argv: { ...base, 'shield.trustedProxies': '127.0.0.1' } }), { processMetrics: false }), { code: 'CDN_ERR_CONFIG_INVALID', message: /shield\.token\.required is true but shield\.token\.keys is empty/ })
  await t.rejects(startShield(loadConfig({ env: {}, argv: { ...base, 'shield.token.keys': 'k1:shield-token-secret-0123456789' } }), { processMetrics: false }), { code: 'CDN_ERR_CONFIG_INVALID', message: /shield\.token\.required is true but shield\.trustedProxies is empty/ })
})
