/**
 * Promoted-bytes heap profiles of a real child: started and stopped by signal, the profile
 * keeps what a function retained (promoted) and drops what died young, even the garbage
 * still in new space when sampling stopped.
 */
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { formatHeapPromoted, heapPromotedChild, HeapPromotedSampler, summariseHeapPromoted } from '../../../bench/lib/heap-promoted.ts'

// `retain` keeps ~100 KB a tick (promoted); `churn` allocates ~8 MB a tick that dies at once.
const CHILD = `
  const kept = []
  function retain () { for (let i = 0; i < 400; i++) kept.push(new Array(30).fill(i)) }
  function churn () { let x; for (let i = 0; i < 32000; i++) x = new Array(30).fill(i); return x }
  setInterval(() => { retain(); churn(); if (kept.length > 40000) kept.length = 0 }, 10)
  process.stdout.write('ready\\n')
`

t.test('a window of a real child: retained bytes in, young garbage out', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'streamedge-test-heap-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const { nodeArgs, env } = heapPromotedChild(dir)
  const child = spawn(process.execPath, [...nodeArgs, '-e', CHILD], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] })
  t.teardown(() => { child.kill('SIGKILL') })
  // SIGUSR2 before the preload is in would end the child: wait for its first line
  await once(child.stdout, 'data')
  const sampler = new HeapPromotedSampler(child.pid!, dir)
  await t.rejects(sampler.stop(), /not started/)
  await sampler.start()
  await sleep(300)
  const capture = await sampler.stop()
  t.equal(capture.meta.pid, child.pid)
  t.ok(capture.meta.stoppedUs > capture.meta.startedUs)
  t.ok(capture.meta.youngLiveBytesAtStop > 0, 'new space in use after the forced scavenge')
  const s = await summariseHeapPromoted(capture, { root: process.cwd() })
  t.equal(s.youngBytesBound, capture.meta.youngLiveBytesAtStop + capture.meta.youngBytesAtMarkCompacts)
  const bytes = (name: string): number => s.topSites.filter((x) => x.functionName === name).reduce((a, x) => a + x.selfBytes, 0)
  t.ok(bytes('retain') > 0, `retain promoted ${bytes('retain')} B`)
  // Without the scavenge forced at the stop, up to a semi-space of churn would count; what
  // can remain is the young garbage of mark-compacts (sampled: an estimate, hence the slack).
  t.ok(bytes('churn') <= 1.5 * capture.meta.youngBytesAtMarkCompacts + 256 * 1024, `churn, 80 times the allocation of retain, counts ${bytes('churn')} B (${capture.meta.markCompacts} mark-compacts, ${capture.meta.youngBytesAtMarkCompacts} B young when they began)`)
  t.match(formatHeapPromoted(s, { decisions: 10 })[0], /^promoted \(heap samples surviving the young generation\) over \d+\.\d s: .* \(.*\/decision\), of which up to .* may be young objects \(alive at the stop, or freed by the window's \d+ mark-compacts\); /)
  // a second window on the same child
  await sampler.start()
  const second = await sampler.stop()
  t.equal(second.meta.window, 2)
  child.kill('SIGKILL')
  await once(child, 'exit')
  await t.rejects(sampler.start(), /ESRCH|exited/, 'a child that is gone is an error, not a hang')
})

t.test('HeapPromotedSampler checks its pid', async (t) => {
  t.throws(() => new HeapPromotedSampler(0, '/tmp'), /Expected pid to be a positive integer, got 0/)
})
