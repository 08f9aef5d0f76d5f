/**
 * Placeholders in the peer config templates.
 */
import t from 'tap'
import { renderTemplate } from '../../../bench/lib/render-template.ts'

t.test('renderTemplate fills every placeholder and names a missing one', async (t) => {
  t.equal(renderTemplate('listen {{listen}}; max_size={{size}};{{listen}}', { listen: '127.0.0.1:1', size: 10 }), 'listen 127.0.0.1:1; max_size=10;127.0.0.1:1')
  t.equal(renderTemplate('no placeholders { } {x}', {}), 'no placeholders { } {x}')
  t.throws(() => renderTemplate('a {{missing}} b', { other: 1 }), { name: 'TypeError', message: /\{\{missing\}\}/ })
})
