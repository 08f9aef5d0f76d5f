/**
 * Scenario "steering": steering decisions per second and their latency, issue 5's benchmark.
 *
 * The control plane runs as a child process through the real CLI (`streamedge control-plane`)
 * with the embedded DB-IP City database, 12 edges in 6 cache groups (tiny local servers that
 * answer /readyz), coverage zones and licensing rules. autocannon sends `GET /v1/steer/...`
 * for 1000 titles from 50,000 client addresses (public IPv4 and IPv6, so GeoIP does real
 * work and the decision cache sees many prefixes) through X-Forwarded-For from the trusted
 * 127.0.0.1. Every answer must be a 302 (or a 451 from the licensing rules). Runs with the
 * per-decision log line on (the shipped default) and off, each after one pass over every
 * client address (its rate is reported as the cold rate), and against two bare servers
 * answering the same 302 with the same requests: node:http, and lib/http/fast-front.ts (the
 * control plane's own HTTP path with no decision: the ceiling this machine allows the control
 * plane with autocannon on the other core), so a result can be judged on a busy or slow box
 * too. autocannon's own CPU is reported: at ~1.0 CPU s/s the generator, not the server, is
 * the limit.
 *
 * Target: 20,000 decisions/s with p99 < 5 ms; floor 8,000/s (Traffic Control's harness).
 * Register in bench/run.ts: `import { runSteering } from './scenarios/steering.ts'` and call
 * `await runSteering({ durationS, connections: 64, log })` when `wants('steering')`.
 * Alone: `node --import tsx bench/scenarios/steering.ts [--quick] [--profile DIR]` (DIR gets the
 * `.cpuprofile` of the decision-log-off round).
 */
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import autocannon from 'autocannon'
import { stringify as toYaml } from 'yaml'
import { FastFront } from '../../lib/http/fast-front.ts'
import { cleanEnv, listeningUrl, REPO_ROOT, startChildServer, type ChildServer } from '../lib/child-server.ts'
import { httpGet } from '../lib/http-get.ts'
import { readProcessCpu } from '../lib/proc-cpu.ts'
import { profileNodeArgs } from '../lib/profile-run.ts'

const STREAMEDGE_BIN = fileURLToPath(new URL('../../bin/streamedge.js', import.meta.url))

/** Settings of {@link runSteering}. */
export interface SteeringBenchOptions {
  /** Measured seconds per round. */
  readonly durationS: number
  readonly warmupS?: number
  readonly connections: number
  readonly log: (line: string) => void
  /** When set, the decision-log-off round runs under `node --cpu-prof` writing into this directory. */
  readonly profileDir?: string
}

/** A baseline server under the same load. */
export interface BareResult {
  readonly requestsPerSec: number
  readonly latencyP50Ms: number
  readonly latencyP99Ms: number
  readonly serverCpuPerSec: number
  /** autocannon's own CPU seconds per second (it runs in this process; 1.0 = its one thread is saturated). */
  readonly generatorCpuPerSec: number
}

/** One measured round. */
export interface SteeringRound {
  readonly accessLog: boolean
  /** Answers per second of the first pass over all client addresses (cold prefix, plan and token caches). */
  readonly firstPassDecisionsPerSec: number
  readonly decisionsPerSec: number
  readonly requests: number
  readonly redirects: number
  readonly licenceDenials: number
  readonly otherStatuses: number
  readonly errors: number
  readonly latencyP50Ms: number
  readonly latencyP99Ms: number
  /** Control-plane CPU seconds per second of wall time (1.0 = one core busy). */
  readonly serverCpuPerSec: number
  /** autocannon's own CPU seconds per second (1.0 = the generator is saturated). */
  readonly generatorCpuPerSec: number
  /** Requests the HTTP fast path answered, and connections it handed to node:http (whole process life, warm-up included). */
  readonly fastPathAnswered: number
  readonly fastPathHandoffs: number
}

/** The scenario's result. */
export interface SteeringResult {
  readonly targetPerSec: number
  readonly targetP99Ms: number
  /** The bare node:http 302 server under the same load: the machine's ceiling for a node:http answer. */
  readonly bare: BareResult
  /**
   * The same fixed 302 answered by lib/http/fast-front.ts below node:http (what the control
   * plane's fast path costs with no decision at all): this machine's ceiling for the control
   * plane's architecture with this generator.
   */
  readonly bareFast: BareResult
  readonly rounds: readonly SteeringRound[]
  readonly passed: boolean
}

/** Issue 5's targets. */
export const STEERING_TARGET_PER_SEC = 20_000
export const STEERING_TARGET_P99_MS = 5

const GROUPS = [
  { id: 'eu-central', lat: 50.11, lon: 8.68 },
  { id: 'eu-west', lat: 51.51, lon: -0.13 },
  { id: 'us-east', lat: 39.04, lon: -77.49 },
  { id: 'us-west', lat: 37.34, lon: -121.89 },
  { id: 'ap-northeast', lat: 35.68, lon: 139.77 },
  { id: 'sa-east', lat: -23.55, lon: -46.63 },
]
const TITLES = 1000
const CLIENTS = 50_000

/** Runs the scenario: one round with decision logging on, one with it off. Stops everything it started. */
export async function runSteering (o: SteeringBenchOptions): Promise<SteeringResult> {
  const dir = await mkdtemp(join(tmpdir(), 'streamedge-bench-steering-'))
  const fleet: http.Server[] = []
  let child: ChildServer | undefined
  try {
    const nodes = []
    for (let i = 0; i < GROUPS.length * 2; i++) {
      const server = http.createServer((_req, res) => res.end('ready\n'))
      server.listen(0, '127.0.0.1')
      await once(server, 'listening')
      fleet.push(server)
      const group = GROUPS[i % GROUPS.length]!
      nodes.push({ id: `edge-${i}`, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, group: group.id, lat: group.lat, lon: group.lon, capacity: { connections: 1_000_000, mbps: 100_000 } })
    }
    await writeFile(join(dir, 'nodes.yaml'), toYaml({ nodes }))
    await writeFile(join(dir, 'licensing.yaml'), toYaml({ rules: [{ prefix: '/vod/title-7/', allow: ['US', 'CA'] }, { prefix: '/vod/title-9', deny: ['CN'], unknown: 'allow' }] }))
    await writeFile(join(dir, 'zones.json'), JSON.stringify({ coverageZones: { 'eu-central': { network: ['100.64.0.0/10'], country: 'DE' } } }))
    const clients = clientAddresses(CLIENTS)
    const baseline = async (kind: 'http' | 'fast'): Promise<BareResult> => {
      const server = await startChildServer({ label: `bare-302-${kind}`, nodeArgs: ['--import', 'tsx'], script: fileURLToPath(import.meta.url), args: ['--serve-bare-302', kind] })
      child = server
      await measure(server.url, clients, o.connections, o.warmupS ?? 2)
      const cpuBefore = readProcessCpu(server.pid)
      const generatorBefore = process.cpuUsage()
      const started = performance.now()
      const result = await measure(server.url, clients, o.connections, o.durationS)
      const wallS = (performance.now() - started) / 1000
      const generator = process.cpuUsage(generatorBefore)
      const cpuAfter = readProcessCpu(server.pid)
      await server.stop()
      child = undefined
      const cpuSeconds = cpuAfter.userSeconds + cpuAfter.systemSeconds - cpuBefore.userSeconds - cpuBefore.systemSeconds
      const bare: BareResult = {
        requestsPerSec: Math.round(result.requests.total / result.duration),
        latencyP50Ms: result.latency.p50,
        latencyP99Ms: result.latency.p99,
        serverCpuPerSec: Math.round(cpuSeconds / wallS * 100) / 100,
        generatorCpuPerSec: cpuPerSec(generator, wallS),
      }
      o.log(`steering: bare ${kind === 'http' ? 'node:http' : 'fast-front'} 302 server: ${bare.requestsPerSec} req/s, p50 ${bare.latencyP50Ms} ms, p99 ${bare.latencyP99Ms} ms, server ${bare.serverCpuPerSec} CPU s/s, autocannon ${bare.generatorCpuPerSec} CPU s/s`)
      return bare
    }
    const bare = await baseline('http')
    const bareFast = await baseline('fast')
    const rounds: SteeringRound[] = []
    for (const accessLog of [true, false]) {
      child = await startControlPlaneProcess(dir, accessLog, accessLog ? [] : profileArgs(o.profileDir))
      o.log(`steering: control plane pid ${child.pid} ${child.url}, decision log ${accessLog ? 'on' : 'off'}`)
      // One pass over every client address first (each connection sends its slice once): the
      // measured window then shows the steady state, every prefix, plan and token seen before,
      // and the pass itself shows the cold rate.
      const first = await measure(child.url, clients, o.connections, 0, clients.length)
      const firstPassDecisionsPerSec = Math.round(first.requests.total / first.duration)
      if ((o.warmupS ?? 2) > 0) await measure(child.url, clients, o.connections, o.warmupS ?? 2)
      const cpuBefore = readProcessCpu(child.pid)
      const generatorBefore = process.cpuUsage()
      const started = performance.now()
      const result = await measure(child.url, clients, o.connections, o.durationS)
      const wallS = (performance.now() - started) / 1000
      const generator = process.cpuUsage(generatorBefore)
      const cpuAfter = readProcessCpu(child.pid)
      const cpuSeconds = cpuAfter.userSeconds + cpuAfter.systemSeconds - cpuBefore.userSeconds - cpuBefore.systemSeconds
      const status = (code: string): number => result.statusCodeStats?.[code as `${number}`]?.count ?? 0
      const metrics = (await httpGet(`${child.url}/metrics`)).body.toString()
      const redirects = status('302')
      const licenceDenials = status('451')
      const round: SteeringRound = {
        accessLog,
        firstPassDecisionsPerSec,
        decisionsPerSec: Math.round((redirects + licenceDenials) / result.duration),
        requests: result.requests.total,
        redirects,
        licenceDenials,
        otherStatuses: result.requests.total - redirects - licenceDenials,
        errors: result.errors + result.timeouts,
        latencyP50Ms: result.latency.p50,
        latencyP99Ms: result.latency.p99,
        serverCpuPerSec: Math.round(cpuSeconds / wallS * 100) / 100,
        generatorCpuPerSec: cpuPerSec(generator, wallS),
        fastPathAnswered: metricValue(metrics, 'streamedge_cp_fast_path_requests_total'),
        fastPathHandoffs: metricValue(metrics, 'streamedge_cp_fast_path_handoffs_total'),
      }
      rounds.push(round)
      o.log(`  first pass (cold) ${round.firstPassDecisionsPerSec}/s; measured ${round.decisionsPerSec} decisions/s, p50 ${round.latencyP50Ms} ms, p99 ${round.latencyP99Ms} ms, ${round.redirects} × 302, ${round.licenceDenials} × 451, ${round.otherStatuses} other, ${round.errors} errors, server ${round.serverCpuPerSec} CPU s/s, autocannon ${round.generatorCpuPerSec} CPU s/s, fast path ${round.fastPathAnswered} answered, ${round.fastPathHandoffs} handoffs`)
      await child.stop()
      child = undefined
    }
    const shipped = rounds[0]!
    return {
      targetPerSec: STEERING_TARGET_PER_SEC,
      targetP99Ms: STEERING_TARGET_P99_MS,
      bare,
      bareFast,
      rounds,
      passed: shipped.decisionsPerSec >= STEERING_TARGET_PER_SEC && shipped.latencyP99Ms < STEERING_TARGET_P99_MS && shipped.otherStatuses === 0,
    }
  } finally {
    await child?.stop()
    await Promise.all(fleet.map((s) => new Promise<void>((resolve) => { s.closeAllConnections(); s.close(() => resolve()) })))
    await rm(dir, { recursive: true, force: true })
  }
}

/** The scenario under the name bench/run.ts registrations use. */
export const run = runSteering

/**
 * Starts `streamedge control-plane` with stdout going to a file, as a service's log would:
 * piping 20,000 lines a second into the load generator's process would measure the pipe.
 */
async function startControlPlaneProcess (dir: string, accessLog: boolean, nodeArgs: readonly string[]): Promise<ChildServer> {
  const logFile = join(dir, `control-plane-${accessLog ? 'log' : 'nolog'}.jsonl`)
  const out = await open(logFile, 'w')
  const child = spawn(process.execPath, [...nodeArgs, STREAMEDGE_BIN, ...controlPlaneArgs(dir, accessLog)], { cwd: REPO_ROOT, env: cleanEnv(process.env), stdio: ['ignore', out.fd, 'pipe'] })
  await out.close()
  let stderr = ''
  child.stderr?.on('data', (chunk: Buffer) => { stderr = (stderr + chunk.toString()).slice(-4096) })
  const exited = once(child, 'exit')
  const deadline = Date.now() + 30_000
  let url: string | undefined
  while (url === undefined) {
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL')
      throw new Error(`control plane did not start\n${stderr}`)
    }
    await new Promise((resolve) => setTimeout(resolve, 50))
    const text = await readFile(logFile, 'utf8')
    url = text.split('\n').map(listeningUrl).find((u) => u !== undefined)
  }
  const pid = child.pid ?? 0
  return {
    label: 'control-plane',
    pid,
    url,
    async stop () {
      if (child.exitCode !== null) return
      child.kill('SIGTERM')
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000)
      await exited
      clearTimeout(timer)
    },
  }
}

function profileArgs (profileDir: string | undefined): string[] {
  return profileDir === undefined ? [] : profileNodeArgs(profileDir)
}

function controlPlaneArgs (dir: string, accessLog: boolean): string[] {
  return [
    'control-plane',
    '--nodes', join(dir, 'nodes.yaml'),
    '--licensing', join(dir, 'licensing.yaml'),
    '--zones', join(dir, 'zones.json'),
    '--listen', '127.0.0.1:0',
    '--controlPlane.id', 'bench-cp',
    '--controlPlane.tokenKeys', 'bench:bench-secret-0123456789abcdef',
    '--controlPlane.trustedProxies', '127.0.0.1',
    '--log.level', 'info',
    '--log.access', String(accessLog),
  ]
}

/**
 * One autocannon run. Every connection gets its own prebuilt list of requests (a slice of the
 * clients, each with its title), so the generator spends nothing per request on building
 * them (a per-request `setupRequest` costs autocannon more than a fast server spends
 * answering), every client address is used, and the bare baseline sees the same requests.
 */
async function measure (url: string, clients: readonly string[], connections: number, durationS: number, amount?: number): Promise<autocannon.Result> {
  const lists = requestLists(clients, connections)
  let next = 0
  return await autocannon({
    url,
    connections,
    ...(amount === undefined ? { duration: durationS } : { amount }),
    setupClient: (client) => {
      client.setRequests(lists[next++ % lists.length] ?? [])
    },
  })
}

/** Request `i` goes to client address `i` for title `(i · 7919) mod TITLES`; connection `k` gets the `k`-th slice. */
function requestLists (clients: readonly string[], connections: number): autocannon.Request[][] {
  const perConnection = Math.ceil(clients.length / connections)
  const lists: autocannon.Request[][] = []
  for (let k = 0; k < connections; k++) {
    const list: autocannon.Request[] = []
    for (let i = k * perConnection; i < Math.min(clients.length, (k + 1) * perConnection); i++) {
      list.push({ method: 'GET', path: `/v1/steer/vod/title-${(i * 7919) % TITLES}/master.m3u8`, headers: { 'x-forwarded-for': clients[i] ?? '127.0.0.1' } })
    }
    lists.push(list)
  }
  return lists
}

function cpuPerSec (usage: NodeJS.CpuUsage, wallS: number): number {
  return Math.round((usage.user + usage.system) / 1e6 / wallS * 100) / 100
}

/** The value of an unlabelled-but-default-labelled series in a Prometheus text exposition (0 when absent). */
function metricValue (text: string, name: string): number {
  const match = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text)
  return match === null ? 0 : Number(match[1])
}

/** Deterministic public-looking addresses: 90 % IPv4 outside private and special ranges, 10 % IPv6 in 2a00::/12. */
export function clientAddresses (count: number): string[] {
  let seed = 0x5eed
  const next = (): number => {
    seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0
    return seed
  }
  const out: string[] = []
  while (out.length < count) {
    const r = next()
    if (out.length % 10 === 9) {
      out.push(`2a0${((r >>> 28) & 0xf).toString(16)}:${(r & 0xffff).toString(16)}:${(next() & 0xffff).toString(16)}::${(next() & 0xffff).toString(16)}`)
      continue
    }
    const a = 1 + ((r >>> 24) % 223)
    const b = (r >>> 16) & 0xff
    if (a === 10 || a === 127 || (a === 100 && b >= 64 && b < 128) || (a === 169 && b === 254) || (a === 172 && b >= 16 && b < 32) || (a === 192 && b === 168)) continue
    out.push(`${a}.${b}.${(r >>> 8) & 0xff}.${next() & 0xff}`)
  }
  return out
}

/**
 * The baselines: node:http answering every request with a 302 of the same size and fields,
 * nothing else; or (`fast`) lib/http/fast-front.ts answering it below node:http.
 */
async function serveBare302 (kind: string): Promise<void> {
  const location = `http://127.0.0.1:8081/t/${'x'.repeat(170)}/vod/title-1/master.m3u8`
  const headers = { 'access-control-allow-origin': '*', 'access-control-expose-headers': 'location, retry-after', location, 'cache-control': 'no-store', 'content-length': '0' }
  const server = http.createServer({ keepAliveTimeout: 5000, noDelay: true }, (req, res) => {
    res.writeHead(302, headers)
    res.end()
  })
  if (kind === 'fast') {
    const head = `HTTP/1.1 302 Found\r\n${Object.entries(headers).map(([name, value]) => `${name}: ${value}\r\n`).join('')}`
    new FastFront({ keepAliveTimeoutMs: 5000, handler: () => ({ head }) }).attach(server)
  }
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  process.stdout.write(`${JSON.stringify({ msg: 'bare listening', url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` })}\n`)
  process.once('SIGTERM', () => server.close(() => process.exit(0)))
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1] && process.argv.includes('--serve-bare-302')) {
  void serveBare302(process.argv[process.argv.indexOf('--serve-bare-302') + 1] ?? 'http')
} else if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const quick = process.argv.includes('--quick')
  const profileAt = process.argv.indexOf('--profile')
  const profileDir = profileAt === -1 ? undefined : process.argv[profileAt + 1]
  runSteering({ durationS: quick ? 3 : 10, warmupS: quick ? 1 : 3, connections: 64, ...(profileDir === undefined ? {} : { profileDir }), log: (line) => process.stderr.write(`${line}\n`) }).then((result) => {
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`)
    process.exit(0)
  }, (err: unknown) => {
    process.stderr.write(`steering bench failed: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`)
    process.exit(1)
  })
}
