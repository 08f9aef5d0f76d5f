/**
 * Hot-path metric types published at scrape time: HistogramCells renders like a prom-client
 * histogram (cumulative buckets, +Inf, sum, count, default labels), and the control plane's
 * fast-path counters read their source when scraped.
 */
import t from 'tap'
import client from 'prom-client'
import { ControlPlaneMetrics, HistogramCells } from '../../lib/metrics.ts'

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
  metrics.watchFastPath(() => ({ answered, handedOff: 2, open: 1 }))
  t.match(await metrics.render(), /streamedge_cp_fast_path_requests_total\{role="control-plane",node="cp-1"\} 5\n/)
  answered = 9
  const text = await metrics.render()
  t.match(text, /streamedge_cp_fast_path_requests_total\{role="control-plane",node="cp-1"\} 9\n/)
  t.match(text, /streamedge_cp_fast_path_handoffs_total\{role="control-plane",node="cp-1"\} 2\n/)
  t.match(text, /streamedge_cp_fast_path_connections\{role="control-plane",node="cp-1"\} 1\n/)
  metrics.decisionLatency.observe(0.0002)
  t.match(await metrics.render(), /streamedge_cp_decision_seconds_bucket\{le="0.00025",role="control-plane",node="cp-1"\} 1\n/)
})
