/**
 * The control-plane role from config: `startControlPlane(config)` and `streamedge
 * control-plane` (flags, required settings, config errors that name the setting), and the
 * example config with the files it references.
 */
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { stringify as toYaml } from 'yaml'
import { runCli } from '../../config/cli.ts'
import { loadConfig } from '../../config/load.ts'
import { startControlPlane } from '../../control-plane/main.ts'
import { loadCoverageZones } from '../../control-plane/geo/coverage-zones.ts'
import { loadInventory } from '../../control-plane/health/node-inventory.ts'
import { loadLicensingRules } from '../../control-plane/licensing/licensing-rules.ts'
import { isCdnError } from '../../lib/errors.ts'
import { createLogger } from '../../lib/log.ts'
import { tempDir } from '../helpers/cache-node.ts'
import { startFakeNode } from '../helpers/control-plane.ts'
import { fetchRaw } from '../helpers/http-client.ts'

const EXAMPLE = fileURLToPath(new URL('../../config/examples/control-plane.yaml', import.meta.url))
const KEYS = 'k1:main-test-secret-0123456789'

async function nodesFile (t: { teardown (fn: () => unknown): void }): Promise<string> {
  const dir = await tempDir(t)
  const edge = await startFakeNode(t)
  const file = join(dir, 'nodes.yaml')
  await writeFile(file, toYaml({ nodes: [{ id: 'edge-1', url: edge.url, group: 'g', lat: 50, lon: 8, capacity: { connections: 10, mbps: 10 } }] }))
  return file
}

t.test('startControlPlane maps the config section and serves steering with the embedded DB-IP database', async (t) => {
  const config = loadConfig({
    env: {},
    argv: { 'controlPlane.nodesFile': await nodesFile(t), 'controlPlane.listen': '127.0.0.1:0', 'controlPlane.tokenKeys': KEYS, 'controlPlane.trustedProxies': '127.0.0.1', 'log.level': 'silent' },
  })
  t.equal(config.controlPlane.geoip.databases.length, 2, 'the DB-IP files are the default')
  const cp = await startControlPlane(config, { processMetrics: false, logger: createLogger({ level: 'silent' }) })
  t.teardown(() => cp.close())
  const res = await fetchRaw(`${cp.url}/v1/steer/vod/x/master.m3u8?format=json`, { headers: { 'x-forwarded-for': '8.8.8.8' } })
  t.equal(res.status, 200)
  t.match(JSON.parse(res.body.toString()), { decision: 'redirect', node: { id: 'edge-1' }, explain: { location: { source: 'geoip', country: 'US' } } })
})

t.test('config mistakes are config errors that name the setting', async (t) => {
  const file = await nodesFile(t)
  const cases: Array<[Record<string, unknown>, RegExp]> = [
    [{ 'controlPlane.tokenKeys': 'k1:short' }, /controlPlane\.tokenKeys\[0\]: .*at least 16 bytes/],
    [{ 'controlPlane.tokenKeys': KEYS, 'controlPlane.tokenActiveKid': 'k9' }, /active token key id .* got "k9"/],
    [{ 'controlPlane.tokenKeys': KEYS, 'controlPlane.trustedProxies': '10.0.0.0/40' }, /trustedProxies\[0\]/],
    [{ 'controlPlane.tokenKeys': KEYS, 'controlPlane.unknownGeo.policy': 'nearest-point' }, /controlPlane\.unknownGeo\.point is required/],
    [{ 'controlPlane.tokenKeys': KEYS, 'controlPlane.unknownGeo.group': 'nowhere' }, /unknownGeo\.group .* got "nowhere"/],
    [{ 'controlPlane.tokenKeys': KEYS, 'controlPlane.geoip.databases': '/nonexistent/x.mmdb' }, /Cannot open GeoIP database \/nonexistent\/x\.mmdb/],
  ]
  for (const [argv, message] of cases) {
    const config = loadConfig({ env: {}, argv: { 'controlPlane.nodesFile': file, 'controlPlane.listen': '127.0.0.1:0', 'log.level': 'silent', ...argv } })
    const err = await startControlPlane(config, { processMetrics: false, logger: createLogger({ level: 'silent' }) }).then(async (cp) => { await cp.close(); return undefined }, (e: unknown) => e)
    t.ok(isCdnError(err), JSON.stringify(argv))
    t.match((err as Error).message, message)
    t.notMatch((err as Error).message, /main-test-secret/, 'no secret in the message')
  }
})

t.test('streamedge control-plane: flags, required settings, and a started control plane', async (t) => {
  const out: string[] = []
  const err: string[] = []
  const io = { stdout: (s: string) => out.push(s), stderr: (s: string) => err.push(s), env: {}, cwd: process.cwd(), setExitCode: () => {} }
  let started: string | undefined
  const handlers = {
    edge: async () => {},
    start: async () => {},
    controlPlane: async (config: Parameters<typeof startControlPlane>[0]) => {
      const cp = await startControlPlane(config, { processMetrics: false, logger: createLogger({ level: 'silent' }) })
      started = cp.url
      await cp.close()
    },
  }
  t.equal(await runCli(['control-plane', '--help'], handlers, io), 0)
  const help = out.join('')
  for (const flag of ['--controlPlane.nodesFile, --nodes', '--controlPlane.tokenKeys', '--controlPlane.unknownGeo.policy', '--controlPlane.geoip.databases', '--log.level']) t.match(help, flag)
  t.notMatch(help, '--edge.origin', 'edge flags are not control-plane flags')
  t.equal(await runCli(['control-plane'], handlers, io), 2)
  t.match(err.join(''), /controlPlane\.nodesFile is required: give --nodes FILE/)
  t.match(err.join(''), /controlPlane\.tokenKeys is required/)
  const code = await runCli(['control-plane', '--nodes', await nodesFile(t), '--listen', '127.0.0.1:0', '--controlPlane.tokenKeys', KEYS, '--log.level', 'silent'], handlers, io)
  t.equal(code, 0)
  t.match(started, /^http:\/\/127\.0\.0\.1:\d+$/)
  t.equal(await runCli(['control-plane', '--nodes', 'x.yaml', '--controlPlane.tokenKeys', KEYS], { edge: async () => {}, start: async () => {} }, io), 1, 'a build without the handler fails cleanly')
})

t.test('the example config and every file it references load and agree', async (t) => {
  const config = loadConfig({ file: EXAMPLE, env: {} })
  const cp = config.controlPlane
  t.ok(cp.nodesFile !== undefined && cp.licensingFile !== undefined && cp.coverageZonesFile !== undefined)
  const inventory = loadInventory(cp.nodesFile ?? '')
  const zones = loadCoverageZones(cp.coverageZonesFile ?? '')
  const rules = loadLicensingRules(cp.licensingFile ?? '')
  t.ok(rules.size > 0)
  for (const group of zones.groups) t.ok(inventory.groups.has(group), `zone group ${group} is in the inventory`)
  t.ok(inventory.groups.has(cp.unknownGeo.group ?? ''), 'the unknown-location group exists')
  t.ok(inventory.edgesByGroup.get(cp.unknownGeo.group ?? '')?.length, 'and has edges')
  t.equal(cp.tokenKeys?.length, 1)
  t.equal(cp.tokenActiveKid, cp.tokenKeys?.[0]?.split(':')[0])
})
