/**
 * SIGKILL of a real edge process (`streamedge edge ...`) mid-fill and mid-write, then a
 * restart on the same cache directory: every object that was complete before the kill
 * is a hit, the partial one is a miss, and no corrupt byte is ever served.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import t, { type Test } from 'tap'
import { startOrigin } from '../../bench/origin/origin-server.ts'
import { syntheticBody } from '../../bench/origin/synthetic-body.ts'
import { fetchRaw } from '../helpers/http-client.ts'
import { tempDir } from '../helpers/cache-node.ts'

const BIN = fileURLToPath(new URL('../../bin/streamedge.js', import.meta.url))

interface EdgeProcess { readonly url: string, readonly child: ChildProcess }

async function spawnEdge (t: Test, origin: string, cacheDir: string): Promise<EdgeProcess> {
  const child = spawn(process.execPath, [BIN, 'edge', '--origin', origin, '--listen', '127.0.0.1:0', '--cache-dir', cacheDir, '--log.access', 'false'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  t.teardown(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL') })
  const lines = createInterface({ input: child.stdout! })
  for await (const line of lines) {
    const entry = JSON.parse(line) as { msg?: string, url?: string }
    if (entry.msg === 'edge listening' && entry.url !== undefined) {
      lines.on('line', () => {}) // keep draining stdout
      return { url: entry.url, child }
    }
  }
  throw new Error('edge exited before listening')
}

async function kill (edge: EdgeProcess): Promise<void> {
  const exited = once(edge.child, 'exit')
  edge.child.kill('SIGKILL')
  await exited
}

async function countFiles (dir: string): Promise<number> {
  let n = 0
  const walk = async (d: string): Promise<void> => {
    for (const e of await readdir(d, { withFileTypes: true }).catch(() => [])) {
      if (e.isDirectory()) await walk(join(d, e.name))
      else n++
    }
  }
  await walk(dir)
  return n
}

t.test('SIGKILL mid-fill and mid-write, restart: complete objects hit, partial ones miss, no corrupt bytes', async (t) => {
  const origin = await startOrigin()
  t.teardown(() => origin.close())
  const cacheDir = await tempDir(t)
  const first = await spawnEdge(t, origin.url, cacheDir)

  // Three complete objects, on disk before the kill.
  const complete = [1, 2, 3].map((i) => ({ path: `/synthetic/done${i}-${100_016 * i}.ts`, body: syntheticBody(`done${i}`, 100_016 * i, 'ts') }))
  for (const o of complete) t.ok((await fetchRaw(first.url + o.path)).body.equals(o.body))
  for (let i = 0; i < 300 && await countFiles(join(cacheDir, 'objects')) < 3; i++) await new Promise((resolve) => setTimeout(resolve, 10))
  t.equal(await countFiles(join(cacheDir, 'objects')), 3, 'three objects on disk')

  // One fill in progress (slow origin) and one large object whose disk write may be in flight.
  const partial = { path: '/synthetic/partial-4000076.ts', body: syntheticBody('partial', 4_000_076, 'ts') }
  origin.setFault(partial.path, { bytesPerSecond: 2 * 1024 * 1024, times: 1 })
  const inFlight = fetchRaw(first.url + partial.path)
  const racing = { path: '/synthetic/racing-12000040.ts', body: syntheticBody('racing', 12_000_040, 'ts') }
  t.ok((await fetchRaw(first.url + racing.path)).body.equals(racing.body))
  await kill(first) // right after the 12 MB response: its write to disk may be half done
  const cut = await inFlight
  t.ok(cut.error !== undefined, 'the client of the interrupted fill saw an aborted response')
  t.ok(cut.body.length < partial.body.length)

  const second = await spawnEdge(t, origin.url, cacheDir)
  t.equal(await countFiles(join(cacheDir, 'tmp')), 0, 'no temp files survive a restart')
  for (const o of complete) {
    const res = await fetchRaw(second.url + o.path)
    t.ok(res.body.equals(o.body), `${o.path}: exact bytes after restart`)
    t.match(res.headers['cache-status'], /; hit/, `${o.path}: a hit`)
    t.equal(origin.count(o.path), 1, `${o.path}: not refetched`)
  }
  const again = await fetchRaw(second.url + partial.path)
  t.ok(again.body.equals(partial.body), 'the partial object is fetched again, whole')
  t.match(again.headers['cache-status'], /fwd=uri-miss/)
  t.equal(origin.count(partial.path), 2)
  const raced = await fetchRaw(second.url + racing.path)
  t.ok(raced.body.equals(racing.body), 'the object written during the kill is either a clean hit or refetched, never corrupt')
  await kill(second)
})
