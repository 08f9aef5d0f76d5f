import { once } from 'node:events'
import http from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { REPO_ROOT, startIpcWorker, type IpcWorker } from '../../../bench/lib/child-server.ts'
import type { HerdConfig, HerdReport } from '../../../bench/peers/herd-client.ts'

const BODY = Buffer.alloc(5000, 'h')

/** A node:http server on 127.0.0.1 answering with `handler`, and a herd client process; both stopped at teardown. */
async function startRig (t: Test, handler: http.RequestListener): Promise<{ url: string, herd: IpcWorker<HerdConfig, HerdReport> }> {
  const server = http.createServer(handler)
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => { server.closeAllConnections(); server.close() })
  const herd = startIpcWorker<HerdConfig, HerdReport>(join(REPO_ROOT, 'bench/peers/herd-client.ts'))
  t.teardown(() => herd.stop())
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, herd }
}

t.test('herd client: every connection is answered once (HEAD of warmPath) before the herd GETs, on the same connections', async (t) => {
  const seen: Array<{ method: string, url: string, socket: Socket }> = []
  let getsWhileWarming = 0
  const { url, herd } = await startRig(t, (req, res) => {
    seen.push({ method: req.method!, url: req.url!, socket: req.socket })
    if (req.method === 'HEAD') {
      res.writeHead(200, { 'content-length': String(BODY.length) })
      res.end()
      return
    }
    if (seen.filter((s) => s.method === 'HEAD').length < 5) getsWhileWarming++
    res.writeHead(200, { 'content-length': String(BODY.length) })
    res.end(BODY)
  })
  const report = await herd.call({ url, path: '/seg.ts', clients: 5, timeoutMs: 10_000, warmPath: '/warm.ts' }, 20_000)
  t.equal(report.clients.length, 5)
  t.ok(report.clients.every((c) => c.status === 200 && c.bodyBytes === BODY.length && c.error === undefined), 'every herd client got its body')
  t.equal(getsWhileWarming, 0, 'no GET before every connection had its HEAD answered')
  const heads = seen.filter((s) => s.method === 'HEAD')
  const gets = seen.filter((s) => s.method === 'GET')
  t.same(heads.map((s) => s.url), Array(5).fill('/warm.ts'))
  t.same(gets.map((s) => s.url), Array(5).fill('/seg.ts'))
  t.same(new Set(gets.map((s) => s.socket)), new Set(heads.map((s) => s.socket)), 'the herd used the warmed connections')
})

t.test('herd client: a warm-up answered with an error fails the run (no herd on connections that did not work)', async (t) => {
  const { url, herd } = await startRig(t, (_req, res) => {
    res.writeHead(404, { 'content-length': '0' })
    res.end()
  })
  await t.rejects(herd.call({ url, path: '/seg.ts', clients: 2, timeoutMs: 5_000, warmPath: '/warm.ts' }, 10_000))
})
