/**
 * Counters out of a Prometheus text exposition, as the bench scenarios read /metrics.
 */
import t from 'tap'
import { promLabelsMatch, promSamples, promSum, promValue } from '../../../bench/lib/prometheus-text.ts'

const text = [
  '# HELP streamedge_cp_decisions_total Steering decisions',
  '# TYPE streamedge_cp_decisions_total counter',
  'streamedge_cp_decisions_total{node="cp",outcome="redirect",group="eu"} 10',
  'streamedge_cp_decisions_total{node="cp",outcome="redirect",group="us"} 5',
  'streamedge_cp_decisions_total{node="cp",outcome="denied-licence",group="none"} 2',
  'streamedge_cp_decisions_total_extra{outcome="redirect"} 1000',
  'streamedge_cp_fast_path_requests_total{node="cp"} 42',
  'streamedge_up 1',
  '',
].join('\n')

t.test('promSamples: only the exact series, with its label set and value', async (t) => {
  t.same(promSamples(text, 'streamedge_cp_decisions_total').map((s) => s.value), [10, 5, 2], 'a longer name with the same prefix is another series')
  t.same(promSamples(text, 'streamedge_up'), [{ labels: '', value: 1 }])
  t.same(promSamples(text, 'streamedge_cp_fast_path_requests_total'), [{ labels: '{node="cp"}', value: 42 }])
  t.same(promSamples(text, 'absent_total'), [])
  t.ok(Number.isNaN(promSamples('x{a="1"} oops', 'x')[0]!.value), 'an unparseable value is NaN')
})

t.test('promSum over the label sets that match; promValue of the first sample', async (t) => {
  t.equal(promSum(text, 'streamedge_cp_decisions_total', { outcome: 'redirect' }), 15)
  t.equal(promSum(text, 'streamedge_cp_decisions_total', { outcome: 'denied-licence' }), 2)
  t.equal(promSum(text, 'streamedge_cp_decisions_total', { outcome: 'redirect', group: 'us' }), 5)
  t.equal(promSum(text, 'streamedge_cp_decisions_total'), 17, 'no match: every sample')
  t.equal(promSum(text, 'streamedge_cp_decisions_total', { outcome: 'other' }), 0)
  t.equal(promValue(text, 'streamedge_cp_fast_path_requests_total'), 42)
  t.equal(promValue(text, 'streamedge_up'), 1)
  t.equal(promValue(text, 'absent_total'), 0)
  t.equal(promLabelsMatch({ labels: '{a="1"}', value: 1 }, { a: '2' }), false)
})
