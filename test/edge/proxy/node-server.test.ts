/**
 * The node's HTTP front: HTTPS with a configured certificate next to HTTP, keep-alive,
 * operational endpoints, malformed requests and graceful shutdown.
 */
import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import http from 'node:http'
import { join } from 'node:path'
import net from 'node:net'
import t from 'tap'
import { startOrigin } from '../../../bench/origin/origin-server.ts'
import { syntheticBody } from '../../../bench/origin/synthetic-body.ts'
import { fetchRaw } from '../../helpers/http-client.ts'
import { startTestNode, tempDir } from '../../helpers/cache-node.ts'
import { NodeServer } from '../../../edge/proxy/node-server.ts'
import { silentLogger } from '../../../lib/log.ts'
import type { FastRequest } from '../../../lib/http/fast-front.ts'

t.test('HTTPS listener with a configured certificate serves through the same cache', async (t) => {
  const dir = await tempDir(t)
  const cert = join(dir, 'cert.pem')
  const key = join(dir, 'key.pem')
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1',
    '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' })
  const origin = await startOrigin()
  t.teardown(() => origin.close())
  const edge = await startTestNode(t, {
    origin: origin.url,
    tls: { listen: { host: '127.0.0.1', port: 0 }, cert: readFileSync(cert), key: readFileSync(key) },
  })
  t.match(edge.httpsUrl, /^https:\/\/127\.0\.0\.1:\d+$/)
  const path = '/synthetic/tls-18800.ts'
  const secure = await fetchRaw(edge.httpsUrl + path, { ca: readFileSync(cert) })
  t.equal(secure.status, 200)
  t.ok(secure.body.equals(syntheticBody('tls', 18800, 'ts')))
  const plain = await fetchRaw(edge.url + path)
  t.match(plain.headers['cache-status'], /; hit/, 'HTTP and HTTPS share one cache')
  t.equal(origin.count(path), 1)
})

t.test('keep-alive: many requests on one connection', async (t) => {
  const origin = await startOrigin()
  t.teardown(() => origin.close())
  const edge = await startTestNode(t, { origin: origin.url })
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
  t.teardown(() => agent.destroy())
  const ports = new Set<number>()
  for (let i = 0; i < 20; i++) {
    await new Promise<void>((resolve, reject) => {
      http.get(edge.url + '/synthetic/ka-1880.ts', { agent }, (res) => {
        ports.add(res.socket.localPort!)
        res.resume()
        res.on('end', resolve)
      }).on('error', reject)
    })
  }
  t.equal(ports.size, 1, 'one connection served all 20 requests')
})

t.test('a malformed request line gets a 400 and the server keeps serving', async (t) => {
  const origin = await startOrigin()
  t.teardown(() => origin.close())
  const edge = await startTestNode(t, { origin: origin.url })
  const u = new URL(edge.url)
  const reply = await new Promise<string>((resolve) => {
    const socket = net.connect(Number(u.port), u.hostname, () => socket.write('GARBAGE\r\n\r\n'))
    let data = ''
    socket.on('data', (d) => { data += d.toString() })
    socket.on('close', () => resolve(data))
  })
  t.match(reply, /^HTTP\/1\.1 400/)
  t.equal((await fetchRaw(edge.url + '/healthz')).status, 200)
})

t.test('graceful shutdown lets an in-flight response finish and refuses new connections', async (t) => {
  const origin = await startOrigin()
  t.teardown(() => origin.close())
  const edge = await startTestNode(t, { origin: origin.url })
  const path = '/synthetic/drain-300800.ts'
  origin.setFault(path, { bytesPerSecond: 1024 * 1024 })
  const inFlight = fetchRaw(edge.url + path)
  await new Promise((resolve) => setTimeout(resolve, 50))
  const closing = edge.close()
  const res = await inFlight
  t.equal(res.error, undefined, 'the in-flight response completed')
  t.ok(res.body.equals(syntheticBody('drain', 300800, 'ts')))
  await closing
  await t.rejects(fetchRaw(edge.url + '/healthz'), 'no new connections after close')
})

t.test('the fast handler never sees operational endpoints; close() also closes its idle connections', async (t) => {
  const seen: string[] = []
  const server = new NodeServer({
    listen: { host: '127.0.0.1', port: 0 },
    handler: (req, res) => res.end(`slow ${req.url ?? ''}`),
    admin: (req, res) => res.end(`admin ${req.url ?? ''}`),
    fastHandler: (req: FastRequest) => {
      seen.push(req.target)
      return { head: 'HTTP/1.1 200 OK\r\nContent-Length: 4\r\n', body: Buffer.from('fast') }
    },
    ready: () => true,
    metrics: async () => ({ contentType: 'text/plain', body: 'm 1\n' }),
    keepAliveTimeoutMs: 120_000,
    headersTimeoutMs: 10_000,
    logger: silentLogger(),
  })
  const { url } = await server.listen()
  let closed = false
  t.teardown(async () => { if (!closed) await server.close(0) })
  t.equal((await fetchRaw(url + '/healthz')).body.toString(), 'ok\n')
  t.equal((await fetchRaw(url + '/readyz')).body.toString(), 'ready\n')
  t.equal((await fetchRaw(url + '/metrics')).body.toString(), 'm 1\n')
  t.equal((await fetchRaw(url + '/admin/purge')).body.toString(), 'admin /admin/purge')
  t.equal((await fetchRaw(url + '/media/seg.ts')).body.toString(), 'fast')
  t.equal((await fetchRaw(url + '/healthz-not')).body.toString(), 'fast', 'only the endpoints themselves are kept out')
  t.same(seen, ['/media/seg.ts', '/healthz-not'])
  t.equal(server.fastPath?.answered, 2)
  // an idle keep-alive connection held by the fast path: close() must not wait 120 s for it
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
  t.teardown(() => agent.destroy())
  const socketClosed = new Promise<void>((resolve, reject) => {
    const req = http.get(url + '/x', { agent }, (res) => res.resume())
    req.on('socket', (socket) => socket.once('close', () => resolve()))
    req.on('error', reject)
  })
  for (let i = 0; i < 200 && server.fastPath?.answered !== 3; i++) await new Promise((resolve) => setTimeout(resolve, 5))
  closed = true
  await server.close(120_000)
  await socketClosed
  for (let i = 0; i < 100 && server.fastPath?.open !== 0; i++) await new Promise((resolve) => setTimeout(resolve, 5))
  t.equal(server.fastPath?.open, 0)
})
