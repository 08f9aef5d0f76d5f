/**
 * Control-plane cluster mode (control-plane/cluster.ts). The relay in memory: heartbeats and
 * probe results reach every other worker (also one that starts later) once it set its
 * handlers, /metrics merges every serving worker and counts the ones that do not answer.
 * Then real processes: `streamedge control-plane --controlPlane.workers 2` serving on one
 * port, sharing health and metrics (probes counted once each), answering /metrics while a
 * worker is stopped, restarting a killed worker, stopping on SIGTERM with no worker left,
 * and refusing a bad worker count.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { writeFile } from 'node:fs/promises'
import http from 'node:http'
import type { Socket } from 'node:net'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import t, { type Test } from 'tap'
import { stringify as toYaml } from 'yaml'
import { promSum } from '../../bench/lib/prometheus-text.ts'
import { ClusterHub, WorkerPeers, type ClusterMessage } from '../../control-plane/cluster.ts'
import { ControlPlaneClusterMetrics, ControlPlaneMetrics, type MetricsSnapshot } from '../../lib/metrics.ts'
import { signReport, SIGNATURE_HEADER, type NodeReport } from '../../lib/protocol/node-report.ts'
import { tempDir } from '../helpers/cache-node.ts'
import { startFakeNode } from '../helpers/control-plane.ts'
import { fetchRaw } from '../helpers/http-client.ts'
import { processAlive as alive } from '../../bench/lib/proc-cpu.ts'

const BIN = fileURLToPath(new URL('../../bin/streamedge.js', import.meta.url))
const HEARTBEAT_KEY = 'cluster-test-heartbeat-key'
const MISSING_WORKERS_METRIC = 'streamedge_cp_metrics_workers_missing'

function report (id: string, ready: boolean, sentAtMs = Date.now()): NodeReport {
  return { v: 1, id, role: 'edge', ready, connections: 1, egressMbps: 1, sentAtMs }
}

/** Workers and a hub joined in memory; messages go through JSON and a microtask, as over IPC. */
function inMemoryCluster (collectTimeoutMs = 1000): {
  hub: ClusterHub
  join (id: number, slot: number): WorkerPeers
  leave (id: number): void
  /** What the hub sent worker `id`. */
  sentTo (id: number): ClusterMessage[]
} {
  let running = 0
  const hub = new ClusterHub({ metrics: new ControlPlaneClusterMetrics({ node: 'cp-1', workers: () => running }), collectTimeoutMs })
  const gone = new Set<number>()
  const sent = new Map<number, ClusterMessage[]>()
  const wire = (message: ClusterMessage): unknown => JSON.parse(JSON.stringify(message))
  return {
    hub,
    sentTo: (id) => sent.get(id) ?? [],
    join (id, slot) {
      let peers: WorkerPeers | undefined
      sent.set(id, [])
      hub.add(id, slot, (message) => {
        sent.get(id)?.push(message)
        queueMicrotask(() => { if (!gone.has(id)) peers?.receive(wire(message)) })
      })
      peers = new WorkerPeers({ slot, send: (message) => queueMicrotask(() => { if (!gone.has(id)) hub.receive(id, wire(message)) }), metricsTimeoutMs: 5000 })
      running++
      return peers
    },
    leave (id) {
      gone.add(id)
      running--
      hub.remove(id)
    },
  }
}

const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))

/** Registers both peer handlers of `peers` (which makes it say hello), recording into `seen`. */
function listen (peers: WorkerPeers, seen: string[]): void {
  peers.onPeerHeartbeat((r, at) => seen.push(`hb ${r.id} ${String(r.ready)} ${at}`))
  peers.onPeerProbe((id, ok, detail) => seen.push(`probe ${id} ${String(ok)} ${detail ?? '-'}`))
}

t.test('relay: heartbeats and probes reach every other worker, also one that starts later', async (t) => {
  const c = inMemoryCluster()
  const a = c.join(1, 0)
  const b = c.join(2, 1)
  t.equal(a.prober, true, 'slot 0 probes')
  t.equal(b.prober, false)
  const seen = { a: [] as string[], b: [] as string[] }
  listen(a, seen.a)
  await settle()
  a.shareHeartbeat(report('edge-1', false), 1000)
  a.shareProbe('edge-2', false, 'timeout')
  await settle()
  t.same(seen.a, [], 'a sender does not hear itself')
  // b is still starting: with one handler set it has not said hello, so nothing is relayed to it
  b.onPeerHeartbeat((r, at) => seen.b.push(`hb ${r.id} ${String(r.ready)} ${at}`))
  await settle()
  t.same(seen.b, [], 'nothing is relayed before hello')
  t.equal(c.hub.greeted(2), false)
  // with both it says hello and gets the latest heartbeat of each node (a probe result from
  // before is not replayed: a worker probes every node itself once its handlers are set)
  b.onPeerProbe((id, ok, detail) => seen.b.push(`probe ${id} ${String(ok)} ${detail ?? '-'}`))
  await settle()
  t.equal(c.hub.greeted(2), true)
  t.same(seen.b, ['hb edge-1 false 1000'])
  a.shareProbe('edge-2', true, undefined)
  b.shareHeartbeat(report('edge-1', true), 2000)
  b.shareHeartbeat(report('edge-3', true), 1500)
  a.shareHeartbeat(report('edge-3', false), 1400) // older than what b relayed: not the latest
  await settle()
  t.same(seen.a, ['hb edge-1 true 2000', 'hb edge-3 true 1500'])
  t.same(seen.b, ['hb edge-1 false 1000', 'probe edge-2 true -', 'hb edge-3 false 1400'], 'what is relayed after hello reaches the handlers')

  const late = c.join(3, 2)
  const lateSeen: string[] = []
  late.onPeerProbe(() => lateSeen.push('probe'))
  a.shareHeartbeat(report('edge-1', false), 2500)
  await settle()
  t.same(lateSeen, [], 'nothing is relayed before hello')
  late.onPeerHeartbeat((r, at) => lateSeen.push(`hb ${r.id} ${String(r.ready)} ${at}`))
  await settle()
  t.same(lateSeen.sort(), ['hb edge-1 false 2500', 'hb edge-3 true 1500'], 'hello replays the latest heartbeat of each node')

  let stops = 0
  late.onStop(() => stops++)
  late.receive({ type: 'streamedge-cp:stop' })
  t.equal(stops, 1)

  // someone else's messages on the same channel (prom-client's cluster IPC) get no answer
  const sent: ClusterMessage[] = []
  const lone = new WorkerPeers({ slot: 1, send: (message) => sent.push(message) })
  lone.provideMetrics(async () => [])
  lone.receive({ type: 'prom-client:getMetricsReq', requestId: 1 })
  await settle()
  t.same(sent, [], 'a foreign request is ignored')
  lone.receive({ type: 'streamedge-cp:snapshot-request', requestId: 1 })
  await settle()
  t.same(sent, [{ type: 'streamedge-cp:snapshot', requestId: 1, metrics: [] }], 'while our own is answered')
  t.equal(c.hub.receive(1, { type: 'prom-client:getMetricsReq', requestId: 1 }), undefined, 'the hub ignores it too')
  lone.onPeerHeartbeat(() => {})
  t.equal(sent.length, 1, 'one handler set: no hello yet')
  lone.onPeerProbe(() => {})
  lone.onPeerHeartbeat(() => {})
  t.same(sent.slice(1), [{ type: 'streamedge-cp:hello' }], 'both set: hello, once')
})

t.test('relay: no event relayed while a worker sets its handlers is lost', async (t) => {
  const c = inMemoryCluster()
  const a = c.join(1, 0)
  listen(a, [])
  const b = c.join(2, 1)
  const seen: string[] = []
  const probesAfterHello: string[] = []
  // a shares heartbeats and probe results in every turn while b starts and sets its handlers
  for (let i = 0; i < 50; i++) {
    a.shareHeartbeat(report(`edge-${i}`, true), 1000 + i)
    if (i === 20) b.onPeerHeartbeat((r, at) => seen.push(`hb ${r.id} ${String(r.ready)} ${at}`))
    if (i === 30) b.onPeerProbe((id, ok, detail) => seen.push(`probe ${id} ${String(ok)} ${detail ?? '-'}`))
    a.shareProbe(`edge-${i}`, i % 2 === 0, undefined)
    if (i >= 30) probesAfterHello.push(`probe edge-${i} ${String(i % 2 === 0)} -`)
    await new Promise<void>((resolve) => queueMicrotask(resolve))
  }
  await settle()
  const relayed = c.sentTo(2).filter((m) => m.type === 'streamedge-cp:heartbeat' || m.type === 'streamedge-cp:probe')
  t.ok(relayed.length > 0)
  t.equal(seen.length, relayed.length, 'everything the primary relayed reached a handler')
  const heartbeats = seen.filter((e) => e.startsWith('hb ')).sort()
  t.same(heartbeats, Array.from({ length: 50 }, (_, i) => `hb edge-${i} true ${1000 + i}`).sort(), 'every node\'s heartbeat, replayed or relayed')
  t.same(seen.filter((e) => e.startsWith('probe ')), probesAfterHello, 'every probe result shared after the handlers were set, in order')
})

t.test('relay: /metrics on any worker merges every serving worker', async (t) => {
  const c = inMemoryCluster(300)
  const metrics = [new ControlPlaneMetrics({ node: 'cp-1' }), new ControlPlaneMetrics({ node: 'cp-1' }), new ControlPlaneMetrics({ node: 'cp-1' })]
  const peers = metrics.map((m, i) => {
    const p = c.join(i + 1, i)
    p.provideMetrics(() => m.snapshot())
    listen(p, [])
    m.decisions.inc({ outcome: 'redirect', group: 'g' }, 100 * (i + 1))
    return p
  })
  await settle()
  // worker 3 has not said it listens: it is not asked
  for (const id of [1, 2]) c.hub.receive(id, { type: 'streamedge-cp:ready', url: 'http://127.0.0.1:1' })
  t.equal(c.hub.readyCount, 2)
  const text = await peers[2]!.renderMetrics()
  t.match(text, /streamedge_cp_decisions_total\{outcome="redirect",group="g",role="control-plane",node="cp-1"\} 300\n/)
  t.match(text, new RegExp(`# HELP ${MISSING_WORKERS_METRIC} Serving workers left out of this /metrics answer.*\n# TYPE ${MISSING_WORKERS_METRIC} gauge\n`))
  t.match(text, new RegExp(`\n${MISSING_WORKERS_METRIC}\\{role="control-plane",node="cp-1"\\} 0\n`), 'none missing, labelled like the rest')
  c.hub.receive(3, { type: 'streamedge-cp:ready', url: 'http://127.0.0.1:1' })
  t.match(await peers[0]!.renderMetrics(), /streamedge_cp_decisions_total\{[^}]*\} 600\n/)

  // a worker that never answers: after the deadline the others' metrics, and it counted as missing
  peers[1]!.provideMetrics(() => new Promise<MetricsSnapshot>(() => {}))
  const partial = await peers[0]!.renderMetrics()
  t.equal(promSum(partial, 'streamedge_cp_decisions_total'), 400, 'workers 1 and 3')
  t.equal(promSum(partial, MISSING_WORKERS_METRIC), 1)
  t.equal(promSum(partial, 'streamedge_cp_workers'), 3, 'it still serves')
  // one that exits meanwhile is not missing: it is gone
  const pending = peers[0]!.renderMetrics()
  await settle()
  c.leave(2)
  const afterExit = await pending
  t.equal(promSum(afterExit, 'streamedge_cp_decisions_total'), 400)
  t.equal(promSum(afterExit, MISSING_WORKERS_METRIC), 0)
  // a worker whose snapshot fails is missing too
  peers[2]!.provideMetrics(() => Promise.reject(new Error('boom')))
  const failed = await peers[0]!.renderMetrics()
  t.equal(promSum(failed, 'streamedge_cp_decisions_total'), 100, 'worker 1 only')
  t.equal(promSum(failed, MISSING_WORKERS_METRIC), 1)
})

// ---- real processes ---------------------------------------------------------------------------

interface ClusterProcess {
  readonly child: ChildProcess
  readonly lines: Array<Record<string, unknown>>
  readonly stderr: () => string
  /** Resolves with the first line (seen so far or later) matching `match`. */
  waitFor (match: (line: Record<string, unknown>) => boolean, what: string, fromIndex?: number): Promise<Record<string, unknown>>
  readonly exited: Promise<[number | null, NodeJS.Signals | null]>
}

function spawnCli (t: Test, args: readonly string[]): ClusterProcess {
  const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>
  t.teardown(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL') })
  const lines: Array<Record<string, unknown>> = []
  const waiters: Array<() => void> = []
  let stderr = ''
  child.stderr!.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
  createInterface({ input: child.stdout! }).on('line', (line) => {
    lines.push(JSON.parse(line) as Record<string, unknown>) // every line whole JSON, also with two writers
    for (const w of waiters.splice(0)) w()
  })
  return {
    child,
    lines,
    stderr: () => stderr,
    exited,
    async waitFor (match, what, fromIndex = 0) {
      const deadline = Date.now() + 60_000
      for (;;) {
        const found = lines.slice(fromIndex).find(match)
        if (found !== undefined) return found
        if (child.exitCode !== null || Date.now() > deadline) throw new Error(`no ${what} line; stderr: ${stderr}`)
        await new Promise<void>((resolve) => {
          waiters.push(resolve)
          setTimeout(resolve, 200)
        })
      }
    },
  }
}

/**
 * GET over `agent`; with `socket`, fails at once if the agent does not send it on that
 * connection (a new one might go to a stopped worker and hang).
 */
function getOn (agent: http.Agent, url: string, socket?: Socket): Promise<{ status: number, body: string, socket: Socket }> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => { body += chunk })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, socket: req.socket as Socket }))
      res.on('error', reject)
    })
    req.on('error', reject)
    req.on('socket', (s) => {
      if (socket === undefined || s === socket) return
      req.destroy()
      reject(new Error('the keep-alive connection was not reused'))
    })
  })
}

t.test('streamedge control-plane --controlPlane.workers 2: one port, one health view, one /metrics', async (t) => {
  const dir = await tempDir(t, 'streamedge-cp-cluster-')
  const edges = [await startFakeNode(t), await startFakeNode(t)]
  const nodesFile = join(dir, 'nodes.yaml')
  await writeFile(nodesFile, toYaml({ nodes: edges.map((e, i) => ({ id: `edge-${i + 1}`, url: e.url, group: 'g', lat: 50, lon: 8, capacity: { connections: 1000, mbps: 1000 } })) }))
  const cp = spawnCli(t, [
    'control-plane', '--nodes', nodesFile, '--listen', '127.0.0.1:0', '--controlPlane.workers', '2',
    '--controlPlane.id', 'cp-cluster', '--controlPlane.tokenKeys', 'k1:cluster-test-secret-0123456789',
    '--controlPlane.trustedProxies', '127.0.0.1', '--controlPlane.heartbeatKey', HEARTBEAT_KEY,
    '--controlPlane.heartbeatTimeoutMs', '600000', '--log.access', 'true', '--controlPlane.probe.intervalMs', '200',
  ])
  const listening = await cp.waitFor((l) => l['msg'] === 'control plane listening', '"control plane listening"')
  const url = listening['url'] as string
  const workers = listening['workers'] as Array<{ worker: number, pid: number }>
  t.equal(workers.length, 2)
  t.equal(cp.lines.filter((l) => l['msg'] === 'control plane listening').length, 1, 'one listening line, from the primary')
  // each worker's line comes through its own writes: it may follow the primary's
  const readyLines = (): Array<Record<string, unknown>> => cp.lines.filter((l) => l['msg'] === 'control plane worker ready')
  await cp.waitFor(() => readyLines().length >= 2, 'two "control plane worker ready"')
  t.same(readyLines().map((l) => l['url']), [url, url], 'every worker serves the same port')
  let steered = 0
  const steer = async (title: string, json: boolean): Promise<{ status: number, node: string | undefined }> => {
    steered++
    const res = await fetchRaw(`${url}/v1/steer/vod/${title}/master.m3u8${json ? '?format=json' : ''}`)
    const body = json && res.status === 200 ? JSON.parse(res.body.toString()) as { node: { id: string } } : undefined
    return { status: res.status, node: body?.node.id }
  }

  await t.test('many requests over many connections all get 302s, served by both workers', async (t) => {
    const from = cp.lines.length
    const statuses = await Promise.all(Array.from({ length: 40 }, (_, i) => steer(`t${i}`, false)))
    t.ok(statuses.every((s) => s.status === 302), statuses.map((s) => s.status).join(' '))
    await cp.waitFor(() => cp.lines.slice(from).filter((l) => l['msg'] === 'steer').length >= 40, 'decision log')
    const served = new Set(cp.lines.slice(from).filter((l) => l['msg'] === 'steer').map((l) => l['worker']))
    t.same([...served].sort(), [0, 1], 'fresh connections land on both workers')
  })

  await t.test('a heartbeat sent to one worker is seen by every worker', async (t) => {
    const before = await Promise.all(Array.from({ length: 20 }, (_, i) => steer(`t${i}`, true)))
    t.ok(before.some((d) => d.node === 'edge-1'), 'edge-1 takes some titles while ready')
    const body = JSON.stringify(report('edge-1', false))
    const res = await fetchRaw(`${url}/v1/heartbeat`, { method: 'POST', headers: { 'content-type': 'application/json', [SIGNATURE_HEADER]: signReport(body, HEARTBEAT_KEY, Date.now()) }, body })
    t.equal(res.status, 204)
    // the relay is asynchronous: wait until a few fresh connections in a row all see it
    let agreeing = 0
    for (let i = 0; i < 200 && agreeing < 4; i++) {
      const nodes = JSON.parse((await fetchRaw(`${url}/v1/nodes`)).body.toString()) as { nodes: Array<{ id: string, status: string }> }
      agreeing = nodes.nodes.find((n) => n.id === 'edge-1')?.status === 'not-ready' ? agreeing + 1 : 0
    }
    t.equal(agreeing, 4)
    const from = cp.lines.length
    const after = await Promise.all(Array.from({ length: 20 }, (_, i) => steer(`t${i}`, true)))
    t.same(after.map((d) => d.node), after.map(() => 'edge-2'), 'no worker steers to the node that reported not ready')
    await cp.waitFor(() => cp.lines.slice(from).filter((l) => l['msg'] === 'steer').length >= 20, 'decision log')
    t.same([...new Set(cp.lines.slice(from).filter((l) => l['msg'] === 'steer').map((l) => l['worker']))].sort(), [0, 1], 'both workers decided')
  })

  await t.test('/metrics on any worker: counters summed, shared health not doubled', async (t) => {
    for (let i = 0; i < 4; i++) {
      const text = (await fetchRaw(`${url}/metrics`)).body.toString()
      t.equal(promSum(text, 'streamedge_cp_decisions_total'), steered, 'every decision, whichever worker made it')
      t.equal(promSum(text, 'streamedge_cp_heartbeats_total', { outcome: 'accepted' }), 1, 'the heartbeat counted once, where it arrived')
      t.equal(promSum(text, 'streamedge_cp_node_status', { target: 'edge-1' }), 1, 'one status per node')
      t.equal(promSum(text, 'streamedge_cp_node_status', { target: 'edge-1', status: 'not-ready' }), 1)
      t.equal(promSum(text, 'streamedge_cp_node_health_changes_total', { target: 'edge-1', status: 'not-ready' }), 1)
      t.equal(promSum(text, 'streamedge_cp_workers'), 2)
      t.match(text, /streamedge_cp_decisions_total\{outcome="redirect",group="g",role="control-plane",node="cp-cluster"\} \d+\n/, 'the labels of one process')
      t.equal(promSum(text, MISSING_WORKERS_METRIC), 0)
    }
  })

  await t.test('/metrics counts each probe once, also the results worker 0 relays', async (t) => {
    const readyz = (): number => edges.reduce((n, e) => n + e.hits.filter((h) => h === '/readyz').length, 0)
    // every worker probed once before it listened; since then worker 0 probes every 200 ms and
    // relays the results to worker 1 (which said hello long ago): wait for six more rounds
    const start = readyz()
    for (let i = 0; i < 600 && readyz() < start + 6 * edges.length; i++) await new Promise((resolve) => setTimeout(resolve, 50))
    const before = readyz()
    t.ok(before >= start + 6 * edges.length, `${before - start} probes received meanwhile`)
    const counted = promSum((await fetchRaw(`${url}/metrics`)).body.toString(), 'streamedge_cp_probes_total')
    const after = readyz()
    // a probe reaches its edge before it is counted, and rounds do not overlap (at most one in flight)
    t.ok(counted <= after, `${counted} counted, no more than the ${after} received (relayed results are not counted again)`)
    t.ok(counted >= before - edges.length, `${counted} counted, all of the ${before} received but one round in flight`)
  })

  await t.test('/metrics while a worker does not answer: the others\' metrics, and the gap counted', async (t) => {
    // one kept-alive connection, so the request reaches the worker that serves it, not the stopped one
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
    t.teardown(() => agent.destroy())
    const from = cp.lines.length
    const first = await getOn(agent, `${url}/v1/steer/vod/which-worker/master.m3u8`)
    steered++
    t.equal(first.status, 302)
    const serving = (await cp.waitFor((l) => l['msg'] === 'steer', 'decision log', from))['worker']
    const stopped = workers.find((w) => w.worker !== serving)!
    process.kill(stopped.pid, 'SIGSTOP')
    let continued = false
    const resume = (): void => {
      if (continued) return
      continued = true
      process.kill(stopped.pid, 'SIGCONT')
    }
    t.teardown(resume)
    const partial = await getOn(agent, `${url}/metrics`, first.socket) // after the primary's deadline (5 s)
    t.equal(partial.status, 200)
    t.equal(promSum(partial.body, MISSING_WORKERS_METRIC), 1, 'the stopped worker is missing')
    t.equal(promSum(partial.body, 'streamedge_cp_workers'), 2, 'it still counts as serving')
    const decided = promSum(partial.body, 'streamedge_cp_decisions_total')
    t.ok(decided > 0 && decided < steered, `the serving worker's ${decided} of ${steered} decisions`)
    resume()
    const whole = (await fetchRaw(`${url}/metrics`)).body.toString()
    t.equal(promSum(whole, MISSING_WORKERS_METRIC), 0, 'none missing once it runs again')
    t.equal(promSum(whole, 'streamedge_cp_decisions_total'), steered)
  })

  await t.test('a killed worker is restarted and service continues', async (t) => {
    const victim = workers[0]!
    const from = cp.lines.length
    process.kill(victim.pid, 'SIGKILL')
    const exited = await cp.waitFor((l) => l['msg'] === 'worker exited unexpectedly: restarting it', 'restart', from)
    t.match(exited, { worker: 0, pid: victim.pid, signal: 'SIGKILL' })
    const started = await cp.waitFor((l) => l['msg'] === 'worker started' && l['worker'] === 0, 'worker started', from)
    await cp.waitFor((l) => l['msg'] === 'control plane worker ready' && l['worker'] === 0, 'worker ready', from)
    workers.push({ worker: 0, pid: started['pid'] as number })
    t.not(started['pid'], victim.pid)
    t.equal(alive(victim.pid), false)
    const statuses = await Promise.all(Array.from({ length: 20 }, (_, i) => steer(`t${i}`, true)))
    t.same(statuses.map((s) => s.node), statuses.map(() => 'edge-2'), 'the new worker got the heartbeat it missed')
    const text = (await fetchRaw(`${url}/metrics`)).body.toString()
    t.equal(promSum(text, 'streamedge_cp_workers'), 2)
  })

  await t.test('SIGTERM to the primary stops every worker and exits 0', async (t) => {
    cp.child.kill('SIGTERM')
    const [code, signal] = await cp.exited
    t.equal(code, 0)
    t.equal(signal, null)
    for (const w of workers) t.equal(alive(w.pid), false, `worker pid ${w.pid} is gone`)
    t.ok(cp.lines.some((l) => l['msg'] === 'stopped' && l['worker'] === undefined), 'the primary logged its stop')
  })
})

t.test('a worker that keeps crashing: restarted with back-off, then the cluster gives up with exit code 1', async (t) => {
  const dir = await tempDir(t, 'streamedge-cp-cluster-')
  const edge = await startFakeNode(t)
  const nodesFile = join(dir, 'nodes.yaml')
  await writeFile(nodesFile, toYaml({ nodes: [{ id: 'edge-1', url: edge.url, group: 'g', lat: 50, lon: 8, capacity: { connections: 10, mbps: 10 } }] }))
  const cp = spawnCli(t, ['control-plane', '--nodes', nodesFile, '--listen', '127.0.0.1:0', '--controlPlane.workers', '2',
    '--controlPlane.tokenKeys', 'k1:cluster-test-secret-0123456789', '--controlPlane.geoip.databases', ''])
  const listening = await cp.waitFor((l) => l['msg'] === 'control plane listening', '"control plane listening"')
  const pids = (listening['workers'] as Array<{ worker: number, pid: number }>).map((w) => w.pid)
  let pid = pids[1]!
  const delays: unknown[] = []
  for (let crash = 1; crash <= 5; crash++) {
    const from = cp.lines.length
    process.kill(pid, 'SIGKILL')
    if (crash === 5) break
    delays.push((await cp.waitFor((l) => l['msg'] === 'worker exited unexpectedly: restarting it', 'restart', from))['restartInMs'])
    pid = (await cp.waitFor((l) => l['msg'] === 'worker started' && l['worker'] === 1, 'worker started', from))['pid'] as number
    pids.push(pid)
  }
  t.same(delays, [100, 200, 400, 800], 'the back-off doubles')
  const [code] = await cp.exited
  t.equal(code, 1)
  t.match(cp.lines.find((l) => l['level'] === 'error'), { worker: 1, crashes: 5, msg: /exited 5 times within 60000 ms: giving up/ })
  for (const p of pids) t.equal(alive(p), false, `worker pid ${p} is gone`)
})

t.test('a bad worker count and a worker that cannot start are reported once', async (t) => {
  const zero = spawnCli(t, ['control-plane', '--nodes', '/nonexistent.yaml', '--controlPlane.tokenKeys', 'k1:cluster-test-secret-0123456789', '--controlPlane.workers', '0'])
  const [code] = await zero.exited
  t.equal(code, 2)
  t.equal(zero.stderr().trim().split('\n').length, 1, zero.stderr())
  t.match(zero.stderr(), /controlPlane\.workers.*\b0\b/)

  const dir = await tempDir(t, 'streamedge-cp-cluster-')
  const nodesFile = join(dir, 'nodes.yaml')
  await writeFile(nodesFile, toYaml({ nodes: [{ id: 'edge-1', url: 'http://127.0.0.1:9', group: 'g', lat: 50, lon: 8, capacity: { connections: 10, mbps: 10 } }] }))
  const broken = spawnCli(t, ['control-plane', '--nodes', nodesFile, '--listen', '127.0.0.1:0', '--controlPlane.tokenKeys', 'k1:cluster-test-secret-0123456789',
    '--controlPlane.workers', '2', '--controlPlane.geoip.databases', join(dir, 'missing.mmdb')])
  const [failed] = await broken.exited
  t.equal(failed, 1)
  t.equal(broken.stderr().match(/Cannot open GeoIP database/g)?.length, 1, broken.stderr())
  t.notOk(broken.lines.some((l) => l['msg'] === 'control plane listening'))
})
