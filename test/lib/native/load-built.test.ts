/**
 * The native helpers' loader: a built helper loads; a missing one says so, naming the file and
 * what builds it (npm ci builds both helpers here: CI installs a C compiler).
 */
import t from 'tap'
import { loadBuilt } from '../../../lib/native/load-built.ts'

t.test('a helper npm ci built loads; one never built is named, with what would build it', async (t) => {
  const built = loadBuilt<{ trim: () => number }>('heap-trim', 'malloc_trim is glibc\'s')
  t.equal(built.unavailable, undefined)
  t.equal(typeof built.addon?.trim, 'function')
  const missing = loadBuilt('no-such-helper', 'off Linux')
  t.equal(missing.addon, undefined)
  t.equal(missing.unavailable, 'lib/native/build/no-such-helper.node was not built (npm install builds it with the C compiler; see its output)')
})
