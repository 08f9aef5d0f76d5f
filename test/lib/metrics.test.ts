/**
 * Hot-path metric types published at scrape time: HistogramCells renders like a prom-client
 * histogram (cumulative buckets, +Inf, sum, count, default labels), and the control plane's
 * fast-path counters read their source when scraped; a control-plane cluster's exposition
 * merges its workers' snapshots by each metric's aggregator.
 */
import t from 'tap'
import client from 'prom-client'
import { ControlPlaneClusterMetrics, ControlPlaneMetrics, CounterFamily, HistogramCells } from '../../lib/metrics.ts'

t.test('HistogramCells: the exposition prom-client would write for the same observations', async (t) => {
  const ours = new client.Registry()
  ours.setDefaultLabels({ node: 'n1' })
  const theirs = new client.Registry()
  theirs.setDefaultLabels({ node: 'n1' })
  const buckets = [0.001, 0.01, 0.1]
  const cells = new HistogramCells(ours, 'x_seconds', 'Some latency', buckets)
  const reference = new client.Histogram({ name: 'x_seconds', help: 'Some latency', buckets, registers: [theirs] })
  for (const v of [0.0005, 0.001, 0.002, 0.05, 0.5, 3, 0.01]) {
    cells.observe(v)
    reference.observe(v)
  }
  t.equal(await ours.metrics(), await theirs.metrics())
  t.match(await ours.metrics(), /x_seconds_bucket\{le="0.01",node="n1"\} 4\n/)
  t.equal(cells.count, 7)
  cells.reset()
  t.match(await ours.metrics(), /x_seconds_count\{node="n1"\} 0/)
  t.throws(() => new HistogramCells(ours, 'y', 'y', [0.1, 0.01]), /increasing/)
})

t.test('the control plane reports the fast path at scrape time', async (t) => {
  const metrics = new ControlPlaneMetrics({ node: 'cp-1' })
  let answered = 5
  metrics.watchFastPath(() => ({ answered, handedOff: 2, open: 1, flushes: 4 }))
  t.match(await metrics.render(), /streamedge_cp_fast_path_requests_total\{role="control-plane",node="cp-1"\} 5\n/)
  answered = 9
  const text = await metrics.render()
  t.match(text, /streamedge_cp_fast_path_requests_total\{role="control-plane",node="cp-1"\} 9\n/)
  t.match(text, /streamedge_cp_fast_path_handoffs_total\{role="control-plane",node="cp-1"\} 2\n/)
  t.match(text, /streamedge_cp_fast_path_connections\{role="control-plane",node="cp-1"\} 1\n/)
  t.match(text, /streamedge_cp_fast_path_flushes_total\{role="control-plane",node="cp-1"\} 4\n/)
  metrics.decisionLatency.observe(0.0002)
  t.match(await metrics.render(), /streamedge_cp_decision_seconds_bucket\{le="0.00025",role="control-plane",node="cp-1"\} 1\n/)
})

t.test('a cluster sums what each worker counts and does not multiply shared state', async (t) => {
  const workers = [new ControlPlaneMetrics({ node: 'cp-1' }), new ControlPlaneMetrics({ node: 'cp-1' })]
  const ages = [4, 2]
  for (const [i, m] of workers.entries()) {
    m.decisions.inc({ outcome: 'redirect', group: 'g' }, 10 + i)
    m.decisionLatency.observe(0.0002)
    m.healthChanges.inc({ target: 'edge-1', status: 'available' }, i === 0 ? 1 : 2)
    m.reloads.inc({ file: 'nodes', outcome: 'ok' })
    m.watchNodes(() => [{ id: 'edge-1', group: 'g', status: 'not-ready', heartbeatAgeSeconds: ages[i] }])
    m.watchFastPath(() => ({ answered: 3, handedOff: 0, open: 1, flushes: 2 }))
  }
  const single = await workers[0]!.render()
  let running = 2
  const cluster = new ControlPlaneClusterMetrics({ node: 'cp-1', workers: () => running })
  const text = await cluster.render(await Promise.all(workers.map((w) => w.snapshot())))
  const labels = 'role="control-plane",node="cp-1"'
  t.match(text, `streamedge_cp_decisions_total{outcome="redirect",group="g",${labels}} 21\n`, 'counters sum')
  t.match(text, `streamedge_cp_decision_seconds_bucket{le="0.00025",${labels}} 2\n`, 'histograms sum')
  t.match(text, `streamedge_cp_decision_seconds_count{${labels}} 2\n`)
  t.match(text, `streamedge_cp_fast_path_requests_total{${labels}} 6\n`)
  t.match(text, `streamedge_cp_fast_path_flushes_total{${labels}} 4\n`)
  t.match(text, `streamedge_cp_fast_path_connections{${labels}} 2\n`, 'per-worker gauges sum')
  t.match(text, `streamedge_cp_node_status{target="edge-1",group="g",status="not-ready",${labels}} 1\n`, 'shared health is not doubled')
  t.match(text, `streamedge_cp_node_status{target="edge-1",group="g",status="available",${labels}} 0\n`)
  t.match(text, `streamedge_cp_heartbeat_age_seconds{target="edge-1",${labels}} 2\n`, 'the freshest heartbeat any worker holds')
  t.match(text, `streamedge_cp_node_health_changes_total{target="edge-1",status="available",${labels}} 2\n`, 'changes every worker saw: the most counted')
  t.match(text, `streamedge_cp_reloads_total{file="nodes",outcome="ok",${labels}} 1\n`)
  t.match(text, `streamedge_cp_workers{${labels}} 2\n`)
  running = 1
  t.match(await cluster.render([await workers[0]!.snapshot()]), `streamedge_cp_workers{${labels}} 1\n`)
  // the series of one process, in its order, plus the cluster's two gauges: dashboards need no change
  const names = (s: string): string[] => s.split('\n').filter((l) => l.startsWith('# TYPE')).map((l) => l.split(' ')[2]!)
  t.same(names(text), [...names(single), 'streamedge_cp_workers', 'streamedge_cp_metrics_workers_missing'])
})

t.test('CounterFamily: one series per label set, numbers and their strings alike, counted at scrape time', async (t) => {
  const registry = new client.Registry()
  const family = new CounterFamily(registry, 'test_requests_total', 'help', ['phase', 'status'])
  family.inc({ phase: 'hit', status: 200 })
  family.inc({ phase: 'hit', status: '200' }, 2)
  family.inc({ phase: 'hit', status: 206 }, 5)
  family.inc({ phase: 'miss', status: 200 })
  const text = await registry.metrics()
  t.match(text, /^test_requests_total\{phase="hit",status="200"\} 3$/m, '200 and "200" are one series')
  t.match(text, /^test_requests_total\{phase="hit",status="206"\} 5$/m)
  t.match(text, /^test_requests_total\{phase="miss",status="200"\} 1$/m)
  t.equal(text.match(/^test_requests_total\{/gm)?.length, 3)
  t.equal(await family.value({ phase: 'hit' }), 8)
  t.equal(await family.value({ status: 200 }), 4)
  t.equal(await family.value(), 9)
  family.inc({ phase: 'hit', status: 206 })
  t.match(await registry.metrics(), /^test_requests_total\{phase="hit",status="206"\} 6$/m, 'a second scrape sees the new total, not the sum of both')
  const plain = new CounterFamily(registry, 'test_plain_total', 'help', [])
  plain.inc({})
  plain.inc({}, 4)
  t.match(await registry.metrics(), /^test_plain_total 5$/m, 'a family without labels is one series')
})
