import { existsSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { REPO_ROOT } from '../../../bench/lib/child-server.ts'
import { exportRef } from '../../../bench/lib/edge-snapshot.ts'

t.test('exportRef: the committed tree in a temp dir, node_modules shared, the native helpers built as npm ci builds them', async (t) => {
  const snapshot = await exportRef(REPO_ROOT, 'HEAD')
  t.teardown(() => snapshot.remove())
  t.match(snapshot.commit, /^[0-9a-f]{40}$/)
  t.ok(existsSync(join(snapshot.dir, 'bin/streamedge.js')), 'the tree')
  t.ok(existsSync(join(snapshot.dir, 'node_modules/undici')), 'node_modules')
  // where this checkout could build it (a C compiler), the export has it too
  for (const helper of ['zero-copy', 'heap-trim']) {
    const builtHere = existsSync(join(REPO_ROOT, `lib/native/build/${helper}.node`))
    t.equal(existsSync(join(snapshot.dir, `lib/native/build/${helper}.node`)), builtHere, `the native helper ${helper}, built in the export`)
  }
  await snapshot.remove()
  t.notOk(existsSync(snapshot.dir), 'removed')
})

t.test('exportRef: a ref that names no commit is refused', async (t) => {
  await t.rejects(exportRef(REPO_ROOT, 'no-such-ref-xyz'), { name: 'TypeError', message: /--edge-ref.*no-such-ref-xyz/ })
  await t.rejects(exportRef(REPO_ROOT, '--help'), { name: 'TypeError' })
})
