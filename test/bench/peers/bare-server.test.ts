/**
 * bench/peers/bare-server.ts through bench/lib/start-target.ts: the baseline sends exactly
 * the status, headers and body it was given, from node:http (`bare`) or from the edge's fast
 * path (`bare-fast`), whatever the request asks for.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { Agent, request } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { httpGet } from '../../../bench/lib/http-get.ts'
import { startBareTarget } from '../../../bench/lib/start-target.ts'

const BODY = Buffer.from('0123456789abcdef'.repeat(256)) // 4 KiB: above the fast path's small-body copy
const HEADERS = ['Content-Type', 'video/mp2t', 'Content-Range', `bytes 0-4095/1048576`, 'Content-Length', String(BODY.length), 'Cache-Status', 'bench-edge; hit']

for (const fast of [false, true]) {
  const name = fast ? 'bare-fast' : 'bare'
  t.test(`${name}: the given 206, byte for byte, to GET; the head alone to HEAD; counts as the ${name} target`, async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'streamedge-bare-test-'))
    t.teardown(() => rm(dir, { recursive: true, force: true }))
    const bodyFile = join(dir, 'floor.bin')
    await writeFile(bodyFile, BODY)
    const bare = await startBareTarget({ name: 'segment', bytes: 1, ext: 'ts', bodyFile, status: 206, headers: HEADERS, fast })
    t.teardown(() => bare.stop())
    t.equal(bare.name, name)
    for (const range of [undefined, 'bytes=100-200']) {
      const res = await httpGet(bare.url + '/any/path.ts', 10_000, range === undefined ? {} : { range })
      t.equal(res.status, 206, `status (range ${range ?? 'none'})`)
      t.ok(res.body.equals(BODY), 'the body given, whatever the request asks for')
      t.equal(res.headers['content-range'], 'bytes 0-4095/1048576')
      t.equal(res.headers['cache-status'], 'bench-edge; hit')
      t.equal(res.headers['content-type'], 'video/mp2t')
      t.ok(res.headers.date !== undefined, 'a Date, as node:http adds one')
    }
    // on a kept-alive connection node:http names the keep-alive timeout; the fast path sends no such field
    const agent = new Agent({ keepAlive: true })
    t.teardown(() => agent.destroy())
    const keepAlive = await new Promise<string | undefined>((resolve, reject) => {
      request(bare.url + '/x.ts', { agent }, (res) => { res.resume(); res.on('end', () => resolve(res.headers['keep-alive'] as string | undefined)) }).on('error', reject).end()
    })
    t.equal(keepAlive === undefined, fast, fast ? 'answered by the fast path' : 'answered by node:http')
    const head = await new Promise<{ status: number | undefined, length: string | undefined, bytes: number }>((resolve, reject) => {
      const req = request(bare.url + '/x.ts', { method: 'HEAD' }, (res) => {
        let bytes = 0
        res.on('data', (c: Buffer) => { bytes += c.length })
        res.on('end', () => resolve({ status: res.statusCode, length: res.headers['content-length'], bytes }))
      })
      req.on('error', reject)
      req.end()
    })
    t.same(head, { status: 206, length: String(BODY.length), bytes: 0 }, 'HEAD: the head, no body')
  })
}
