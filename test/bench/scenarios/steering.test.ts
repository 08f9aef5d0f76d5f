/**
 * The steering scenario's configurations: every worker count with the decision log on, the
 * smallest also with it off (the suite's default: 1 on, 1 off, 2 on).
 */
import t from 'tap'
import { steeringConfigs } from '../../../bench/scenarios/steering.ts'

t.test('worker counts become control-plane configurations', async (t) => {
  t.same(steeringConfigs([1, 2]), [{ workers: 1, accessLog: true }, { workers: 1, accessLog: false }, { workers: 2, accessLog: true }])
  t.same(steeringConfigs([2]), [{ workers: 2, accessLog: true }, { workers: 2, accessLog: false }])
  t.same(steeringConfigs([2, 1, 2]), [{ workers: 2, accessLog: true }, { workers: 1, accessLog: true }, { workers: 1, accessLog: false }])
  t.throws(() => steeringConfigs([]), /Expected workers/)
  t.throws(() => steeringConfigs([0]), /Expected workers to be integers in 1\.\.64, got \[0\]/)
})
