/** The steering configuration's name, as log lines and RESULTS.md print it. */
import t from 'tap'
import { steeringLabel } from '../../../bench/lib/steering-label.ts'

t.test('steeringLabel', async (t) => {
  t.equal(steeringLabel(1, true), 'one process, decision log on')
  t.equal(steeringLabel(2, false), '2 workers, decision log off')
  t.equal(steeringLabel(4), '4 workers')
  t.equal(steeringLabel(1), 'one process')
})
