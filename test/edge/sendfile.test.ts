/**
 * `server.sendfile`: large fast-path hits leave from the disk tier's checked copy in the page
 * cache (lib/native/zero-copy.c via lib/http/fast-front.ts and DiskStore.lendFile), with the same
 * bytes, head and accounting as a copy from memory. Real sockets, a real edge, real files.
 */
import { closeSync, openSync } from 'node:fs'
import { stat } from 'node:fs/promises'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { patternBody } from './cache/store.contract.ts'
import { objectFiles } from './cache/disk-fixture.ts'
import { flipByte } from '../helpers/flip-byte.ts'
import { startTestNode, type TestNode } from '../helpers/cache-node.ts'
import { fetchRaw } from '../helpers/http-client.ts'
import type { SendfileMode } from '../../edge/cache-node.ts'
import { requireZeroCopy } from '../helpers/zero-copy.ts'
import { pageCacheCheck } from '../../lib/native/zero-copy.ts'
import { startScriptedOrigin, type ScriptedOrigin } from '../helpers/scripted-origin.ts'


const SEGMENT = patternBody(1_500_000, 21)
const SMALL = patternBody(20_000, 22)

async function setup (t: Test, sendfile: SendfileMode | undefined): Promise<{ origin: ScriptedOrigin, node: TestNode }> {
  const origin = await startScriptedOrigin(t)
  const headers = { 'content-type': 'application/octet-stream', 'cache-control': 'max-age=3600', etag: '"s1"' }
  origin.script('/v/seg-1.bin', { headers, body: SEGMENT })
  origin.script('/v/seg-2.bin', { headers, body: SEGMENT })
  origin.script('/v/small.bin', { headers, body: SMALL })
  const node = await startTestNode(t, { origin: origin.url, ...(sendfile === undefined ? {} : { sendfile }) })
  return { origin, node }
}

const sent = (node: TestNode): number => node.fastPathStats()?.sentFromFileBytes ?? 0

/** GETs `path` until a hit has gone out from the file (the disk copy is checked in the background first). */
async function untilSentFromFile (node: TestNode, path: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const before = sent(node)
    const res = await fetchRaw(node.url + path)
    if (!res.body.equals(SEGMENT)) throw new Error(`wrong body for ${path}`)
    if (sent(node) > before) return
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
  throw new Error('no hit went out from the file')
}

t.test('on: large hits leave from the checked disk copy, byte for byte, head as from memory', async (t) => {
  requireZeroCopy()
  const { origin, node } = await setup(t, 'on')
  const miss = await fetchRaw(node.url + '/v/seg-1.bin')
  t.ok(miss.body.equals(SEGMENT))
  await untilSentFromFile(node, '/v/seg-1.bin')
  const before = sent(node)
  const hit = await fetchRaw(node.url + '/v/seg-1.bin')
  t.ok(hit.body.equals(SEGMENT), 'the same bytes')
  t.equal(sent(node) - before, SEGMENT.length, 'all of them from the file')
  t.equal(hit.headers['content-length'], String(SEGMENT.length))
  t.match(hit.headers['cache-status'], /hit/)
  t.equal(hit.headers.etag, '"s1"')

  const range = await fetchRaw(node.url + '/v/seg-1.bin', { headers: { range: 'bytes=300000-999999' } })
  t.equal(range.status, 206)
  t.equal(range.headers['content-range'], `bytes 300000-999999/${SEGMENT.length}`)
  t.ok(range.body.equals(SEGMENT.subarray(300_000, 1_000_000)), 'a large range: its bytes, from its offset')
  t.equal(sent(node) - before, SEGMENT.length + 700_000)

  const small = await fetchRaw(node.url + '/v/small.bin')
  await fetchRaw(node.url + '/v/small.bin')
  t.ok(small.body.equals(SMALL))
  t.equal(sent(node) - before, SEGMENT.length + 700_000, 'small bodies are written from memory')
  t.equal(origin.count('/v/seg-1.bin'), 1, 'one fill')

  const metrics = await fetchRaw(node.url + '/metrics')
  t.match(metrics.body.toString(), /streamedge_fast_path_sendfile_bytes_total\{[^}]*\} [1-9]\d*/)
})

t.test('on: a disk copy changed behind the edge is not sent; memory serves the right bytes', async (t) => {
  requireZeroCopy()
  const { node } = await setup(t, 'on')
  await fetchRaw(node.url + '/v/seg-2.bin')
  await untilSentFromFile(node, '/v/seg-2.bin')
  const before = sent(node)
  // damage the body on disk, in place (the only large object file of this node)
  const large: string[] = []
  for (const name of await objectFiles(node.cacheDir)) {
    const file = join(node.cacheDir, 'objects', name)
    if ((await stat(file)).size > SEGMENT.length) large.push(file)
  }
  t.equal(large.length, 1)
  await flipByte(large[0]!, (await stat(large[0]!)).size - 5)
  for (let i = 0; i < 3; i++) {
    const hit = await fetchRaw(node.url + '/v/seg-2.bin')
    t.ok(hit.body.equals(SEGMENT), `hit ${i + 1}: the stored bytes, not the damaged file's`)
  }
  t.equal(sent(node), before, 'nothing sent from the damaged file')
})

t.test('on: a sent file whose pages were dropped is copied once, then sent from the file again (readahead)', async (t) => {
  const zeroCopy = requireZeroCopy()
  const { node } = await setup(t, 'on')
  await fetchRaw(node.url + '/v/seg-1.bin')
  await untilSentFromFile(node, '/v/seg-1.bin')
  const large: string[] = []
  for (const name of await objectFiles(node.cacheDir)) {
    const file = join(node.cacheDir, 'objects', name)
    if ((await stat(file)).size > SEGMENT.length) large.push(file)
  }
  t.equal(large.length, 1)
  // as memory pressure would: the page cache lets the file go while the memory tier answers its hits
  const fd = openSync(large[0]!, 'r')
  try {
    zeroCopy.dropCached(fd)
    if (zeroCopy.resident(fd, 0, SEGMENT.length) === 1) {
      t.comment('this file system keeps its pages (tmpfs): nothing to drop')
      return
    }
  } finally {
    closeSync(fd)
  }
  const before = sent(node)
  const copied = await fetchRaw(node.url + '/v/seg-1.bin')
  t.ok(copied.body.equals(SEGMENT), 'the hit while the pages are out: the right bytes')
  t.equal(sent(node), before, 'copied from memory, not read from disk on the event loop')
  // nothing else reads the file: only the readahead the refusal queued brings its pages back
  await untilSentFromFile(node, '/v/seg-1.bin')
  t.ok(sent(node) > before, 'a later hit leaves from the file again')
})

t.test('the startup log says whether and how large hits leave from the page cache', async (t) => {
  requireZeroCopy()
  const said = (node: TestNode): Array<Record<string, unknown>> => node.logs.filter((l) => typeof l.msg === 'string' && l.msg.startsWith('large hits leave from the page cache'))
  const method = pageCacheCheck()
  t.ok(method === 'cachestat' || method === 'mincore', String(method))
  for (const [mode, msg] of [['on', 'large hits leave from the page cache with sendfile(2)'], [undefined, 'large hits leave from the page cache with sendfile(2) to clients off this host']] as const) {
    const { node } = await setup(t, mode)
    t.match(said(node), [{ level: 'info', sendfile: mode ?? 'remote', pageCacheCheck: method, msg }], mode ?? 'the default')
  }
  const { node } = await setup(t, 'off')
  t.same(said(node), [], 'off: nothing said')
})

t.test('off, and remote (the default) to a loopback client: every body is written from memory', async (t) => {
  requireZeroCopy()
  for (const mode of ['off', undefined] as const) {
    const { node } = await setup(t, mode)
    for (let i = 0; i < 4; i++) {
      t.ok((await fetchRaw(node.url + '/v/seg-1.bin')).body.equals(SEGMENT))
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
    t.equal(sent(node), 0, `${mode ?? 'the default'}: nothing from the file`)
  }
})

t.test('medium hits (over 2 KiB, up to 64 KiB: a small object, a range) leave in one direct send, byte for byte, sendfile on or off', async (t) => {
  requireZeroCopy()
  for (const sendfile of ['off', 'on'] as const) {
    const { node } = await setup(t, sendfile)
    const direct = (): number => node.fastPathStats()?.sentDirect ?? 0
    const miss = await fetchRaw(node.url + '/v/small.bin')
    t.ok(miss.body.equals(SMALL))
    await fetchRaw(node.url + '/v/seg-1.bin')
    const before = direct()
    const hit = await fetchRaw(node.url + '/v/small.bin')
    t.ok(hit.body.equals(SMALL), `sendfile ${String(sendfile)}: a 20 KB hit, its bytes`)
    t.match(hit.headers['cache-status'], /hit/)
    t.equal(hit.headers['content-length'], String(SMALL.length))
    const range = await fetchRaw(node.url + '/v/seg-1.bin', { headers: { range: 'bytes=700000-765535' } })
    t.equal(range.status, 206)
    t.equal(range.headers['content-range'], `bytes 700000-765535/${SEGMENT.length}`)
    t.ok(range.body.equals(SEGMENT.subarray(700_000, 765_536)), 'a 64 KiB range: its bytes')
    const over = await fetchRaw(node.url + '/v/seg-1.bin', { headers: { range: 'bytes=0-65536' } })
    t.ok(over.body.equals(SEGMENT.subarray(0, 65_537)), 'one byte over 64 KiB: its bytes, through the socket')
    t.equal(direct() - before, 2, 'the hit and the 64 KiB range went direct; the larger range did not')
    const metrics = await fetchRaw(node.url + '/metrics')
    t.match(metrics.body.toString(), /streamedge_fast_path_direct_sends_total\{[^}]*\} [1-9]\d*/)
  }
})
