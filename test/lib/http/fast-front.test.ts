import { once } from 'node:events'
import http from 'node:http'
import net, { type AddressInfo } from 'node:net'
import t from 'tap'
import { closeSync, openSync, writeFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { constants, tmpdir } from 'node:os'
import { join } from 'node:path'
import { DIRECT_MAX_BYTES, FastFront, parseHead, SENDFILE_MIN_BYTES, SENDFILE_PROBE_BYTES, SMALL_BODY_BYTES, type FastBodySink, type FastHandler, type FastReply, type FastRequest, type FastResponse, type SendHeadBody, type SendHeadFile } from '../../../lib/http/fast-front.ts'
import { patternBody } from '../../edge/cache/store.contract.ts'
import { requireZeroCopy } from '../../helpers/zero-copy.ts'
import { until } from '../../helpers/hls.ts'

interface Harness {
  readonly port: number
  readonly front: FastFront
  readonly seenFast: FastRequest[]
  readonly seenSlow: string[]
}

// /fast/... is answered by the front; anything else by node:http ("slow"), which also gets
// /fast/... requests the front hands over.
async function start (tap: Teardown, keepAliveTimeoutMs = 5000): Promise<Harness> {
  const seenFast: FastRequest[] = []
  const h = await startWith(tap, (req) => {
    if (!req.target.startsWith('/fast/')) return undefined
    seenFast.push(req)
    const body = Buffer.from(req.target === '/fast/big' ? 'x'.repeat(8 * 1024 * 1024) : `fast ${req.target}\n`)
    return { head: `HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: ${body.length}\r\n`, body }
  }, keepAliveTimeoutMs)
  return { ...h, seenFast }
}

interface Teardown { teardown (fn: () => unknown): void }

/** Sends raw bytes (in the given pieces) and collects everything until the server closes or `untilText` appears. */
async function exchange (port: number, pieces: ReadonlyArray<string | Buffer>, untilText?: string, gapMs = 20): Promise<string> {
  const socket = net.connect(port, '127.0.0.1')
  await once(socket, 'connect')
  let text = ''
  const done = new Promise<void>((resolve) => {
    socket.on('data', (d: Buffer) => {
      text += d.toString('latin1')
      if (untilText !== undefined && text.includes(untilText)) resolve()
    })
    socket.on('close', () => resolve())
    socket.on('error', () => resolve())
  })
  for (const piece of pieces) {
    socket.write(piece)
    await new Promise((resolve) => setTimeout(resolve, gapMs))
  }
  const timer = setTimeout(() => socket.destroy(), 5000)
  await done
  clearTimeout(timer)
  socket.destroy()
  return text
}

function bodies (text: string): string[] {
  return [...text.matchAll(/(fast|slow) [^\n]*\n/g)].map((m) => m[0].trim())
}

t.test('simple GETs are answered by the front; the first other request hands the connection to node:http, in order', async (t) => {
  const h = await start(t)
  const text = await exchange(h.port, [
    'GET /fast/1 HTTP/1.1\r\nHost: a\r\n\r\n',
    'GET /fast/2 HTTP/1.1\r\nHost: a\r\n\r\nGET /other HTTP/1.1\r\nHost: a\r\n\r\nGET /fast/3 HTTP/1.1\r\nHost: a\r\n\r\n',
    'GET /fast/4 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n',
  ])
  t.same(bodies(text), ['fast /fast/1', 'fast /fast/2', 'slow /other', 'slow /fast/3', 'slow /fast/4'])
  t.same(h.seenSlow, ['GET /other', 'GET /fast/3', 'GET /fast/4'])
  t.equal(h.front.stats.answered, 2)
  t.equal(h.front.stats.handedOff, 1)
  t.match(text, /^HTTP\/1\.1 200 OK\r\nContent-Type: text\/plain\r\nContent-Length: 13\r\nDate: \w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d GMT\r\n\r\nfast \/fast\/1\n/)
})

t.test('pipelined requests in one segment are all answered, in order', async (t) => {
  const h = await start(t)
  const burst = Array.from({ length: 50 }, (_, i) => `GET /fast/${i} HTTP/1.1\r\nHost: a\r\n\r\n`).join('')
  const text = await exchange(h.port, [burst], 'fast /fast/49\n')
  t.same(bodies(text), Array.from({ length: 50 }, (_, i) => `fast /fast/${i}`))
  t.equal(h.front.stats.handedOff, 0)
})

t.test('HEAD gets the head only; Connection: close closes after the response', async (t) => {
  const h = await start(t)
  const text = await exchange(h.port, ['HEAD /fast/x HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, close\r\n\r\n'])
  t.match(text, /^HTTP\/1\.1 200 OK\r\n/)
  t.match(text, /Content-Length: 13\r\n/)
  t.match(text, /Connection: close\r\n\r\n$/)
  t.notMatch(text, /fast \/fast/)
  t.equal(h.seenFast[0]?.method, 'HEAD')
  t.equal(h.seenFast[0]?.close, true)
})

t.test('a head split over two segments goes to node:http, which still answers it', async (t) => {
  const h = await start(t)
  const text = await exchange(h.port, ['GET /fast/split HTTP/1.1\r\nHo', 'st: a\r\nConnection: close\r\n\r\n'])
  t.same(bodies(text), ['slow /fast/split'])
  t.equal(h.front.stats.handedOff, 1)
})

t.test('malformed and unusual requests reach node:http, which answers them as it always does', async (t) => {
  const h = await start(t)
  const bad400 = await exchange(h.port, ['GET /fast/a HTTP/1.1\r\nHost: a\r\nBad Header: x\r\n\r\n'])
  t.match(bad400, /^HTTP\/1\.1 400 /, 'space in a field name: 400 from node:http')
  const noHost = await exchange(h.port, ['GET /fast/a HTTP/1.1\r\n\r\n'])
  t.match(noHost, /^HTTP\/1\.1 400 /, 'no Host: 400')
  const withBody = await exchange(h.port, ['GET /fast/a HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc'])
  t.same(bodies(withBody), ['slow /fast/a'], 'a GET with a body is node:http\'s')
  const post = await exchange(h.port, ['POST /fast/a HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nConnection: close\r\n\r\n'])
  t.same(bodies(post), ['slow /fast/a'])
  const http10 = await exchange(h.port, ['GET /fast/a HTTP/1.0\r\nHost: a\r\n\r\n'])
  t.same(bodies(http10), ['slow /fast/a'])
  const huge = await exchange(h.port, [`GET /fast/a HTTP/1.1\r\nHost: a\r\nX-Big: ${'y'.repeat(20_000)}\r\n\r\n`])
  t.match(huge, /^HTTP\/1\.1 431 /, 'oversized head: 431 from node:http')
  t.equal(h.seenFast.length, 0)
})

t.test('a slow reader of big pipelined responses gets them all, in order, without the front buffering requests unboundedly', async (t) => {
  const h = await start(t)
  const socket = net.connect(h.port, '127.0.0.1')
  await once(socket, 'connect')
  socket.pause()
  socket.write('GET /fast/big HTTP/1.1\r\nHost: a\r\n\r\n'.repeat(3) + 'GET /other HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n')
  await new Promise((resolve) => setTimeout(resolve, 200))
  t.ok(h.seenFast.length < 3, 'later requests wait until earlier responses drain')
  let received = 0
  let tail = ''
  socket.on('data', (d: Buffer) => {
    received += d.length
    tail = (tail + d.toString('latin1')).slice(-64)
  })
  socket.resume()
  await once(socket, 'end')
  t.equal(h.seenFast.length, 3)
  t.same(h.seenSlow, ['GET /other'])
  t.ok(received > 3 * 8 * 1024 * 1024, 'three bodies arrived')
  t.match(tail, /slow \/other\n$/)
  socket.destroy()
})

t.test('idle keep-alive connections close after the timeout; closeIdle closes idle ones now', async (t) => {
  const h = await start(t, 200)
  const socket = net.connect(h.port, '127.0.0.1')
  socket.write('GET /fast/1 HTTP/1.1\r\nHost: a\r\n\r\n')
  const started = Date.now()
  socket.resume()
  await once(socket, 'close')
  t.ok(Date.now() - started >= 150, 'closed by the idle timer')
  const other = net.connect(h.port, '127.0.0.1')
  other.write('GET /fast/2 HTTP/1.1\r\nHost: a\r\n\r\n')
  other.resume()
  await once(other, 'data')
  t.equal(h.front.stats.open, 1)
  h.front.closeIdle()
  await once(other, 'close')
  for (let i = 0; i < 100 && h.front.stats.open > 0; i++) await new Promise((resolve) => setTimeout(resolve, 10))
  t.equal(h.front.stats.open, 0)
})

t.test('parseHead', async (t) => {
  const ok = parseHead('GET /a?b=c HTTP/1.1\r\nHost: x\r\nAccept:  text/plain \t\r\nX-A: 1\r\nx-a: 2\r\nConnection: Keep-Alive', '127.0.0.1')
  t.same(ok, { method: 'GET', target: '/a?b=c', headers: { host: 'x', accept: 'text/plain', 'x-a': '1, 2', connection: 'Keep-Alive' }, remoteAddress: '127.0.0.1', close: false })
  const refused = [
    'GET http://x/a HTTP/1.1\r\nHost: x', // absolute-form
    'GET /a HTTP/1.1\r\nHost: x\r\n folded', // obs-fold
    'GET /a HTTP/1.1\r\nHost: x\r\nHost: y', // two Hosts
    'GET /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked',
    'GET /a HTTP/1.1\r\nHost: x\r\nExpect: 100-continue',
    'GET /a HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket',
    'GET /a HTTP/1.1\r\nHost: x\r\nX: a\x00b', // NUL in a value
    'GET /a b HTTP/1.1\r\nHost: x', // space in the target
    'GET /\xe9 HTTP/1.1\r\nHost: x', // non-ASCII target
    'GET / HTTP/1.1\r\nHost: x\r\n: empty name',
    'PUT /a HTTP/1.1\r\nHost: x',
    'GET /a HTTP/2.0\r\nHost: x',
  ]
  for (const head of refused) t.equal(parseHead(head, undefined), undefined, JSON.stringify(head))
  t.equal(parseHead('GET /a HTTP/1.1\r\nHost: x\r\nContent-Length: 0', undefined)?.target, '/a', 'an empty body is fine')
})

t.test('options are checked', async (t) => {
  t.throws(() => new FastFront({ keepAliveTimeoutMs: 0, handler: () => undefined }), /keepAliveTimeoutMs to be a positive integer, got 0/)
  t.throws(() => new FastFront({ keepAliveTimeoutMs: 10, maxHeadBytes: 1, handler: () => undefined }), /maxHeadBytes to be an integer of at least 64, got 1/)
  const server = http.createServer()
  server.on('connection', () => {})
  t.throws(() => new FastFront({ keepAliveTimeoutMs: 10, handler: () => undefined }).attach(server), /one connection listener, got 2/)
})

t.test('ownDate: a head with its own Date gets no second one; onDone says whether the response was flushed', async (t) => {
  const done: Array<[string, boolean]> = []
  const big = Buffer.alloc(32 * 1024 * 1024, 0x61)
  const server = http.createServer({ keepAliveTimeout: 5000 }, (_req, res) => res.end())
  const front = new FastFront({
    keepAliveTimeoutMs: 5000,
    handler: (req) => ({
      head: req.target === '/dated'
        ? 'HTTP/1.1 200 OK\r\ndate: Mon, 05 Jan 2026 12:00:00 GMT\r\nContent-Length: 2\r\n'
        : `HTTP/1.1 200 OK\r\nContent-Length: ${req.target === '/big' ? big.length : 2}\r\n`,
      body: req.target === '/big' ? big : Buffer.from('ok'),
      ownDate: req.target === '/dated',
      onDone: (completed) => done.push([req.target, completed]),
    }),
  })
  front.attach(server)
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(async () => {
    front.closeAll()
    await new Promise<void>((resolve) => server.close(() => resolve()))
  })
  const port = (server.address() as AddressInfo).port
  const dated = await exchange(port, ['GET /dated HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n'])
  t.equal([...dated.matchAll(/^date:/gim)].length, 1, 'one Date field')
  t.match(dated, /\r\ndate: Mon, 05 Jan 2026 12:00:00 GMT\r\n/)
  const plain = await exchange(port, ['GET /plain HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n'])
  t.match(plain, /\r\nDate: \w{3}, /, 'the front dates the others')
  t.same(done, [['/dated', true], ['/plain', true]])
  // A client that reads nothing of a body bigger than the socket buffers, then leaves.
  const socket = net.connect(port, '127.0.0.1')
  await once(socket, 'connect')
  socket.pause()
  socket.write('GET /big HTTP/1.1\r\nHost: a\r\n\r\n')
  for (let i = 0; i < 200 && front.stats.answered < 3; i++) await new Promise((resolve) => setTimeout(resolve, 10))
  t.equal(done.length, 2, 'not done while the body is still being written')
  socket.destroy()
  for (let i = 0; i < 200 && done.length < 3; i++) await new Promise((resolve) => setTimeout(resolve, 10))
  t.same(done[2], ['/big', false], 'a response cut short is reported as not completed')
})

t.test('a long keep-alive connection keeps one timeout listener (no listener per response)', async (t) => {
  const server = http.createServer((_req, res) => res.end())
  const front = new FastFront({ keepAliveTimeoutMs: 5000, handler: () => ({ head: 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n', body: Buffer.from('ok') }) })
  front.attach(server)
  let serverSide: net.Socket | undefined
  server.on('connection', (socket: net.Socket) => { serverSide = socket })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(async () => {
    front.closeAll()
    await new Promise<void>((resolve) => server.close(() => resolve()))
  })
  const socket = net.connect((server.address() as AddressInfo).port, '127.0.0.1')
  t.teardown(() => socket.destroy())
  let answers = 0
  socket.on('data', (d: Buffer) => { answers += d.toString('latin1').split('HTTP/1.1 200').length - 1 })
  for (let i = 0; i < 30; i++) {
    socket.write('GET /x HTTP/1.1\r\nHost: a\r\n\r\n')
    while (answers <= i) await new Promise((resolve) => setTimeout(resolve, 2))
  }
  t.equal(answers, 30)
  t.equal(serverSide?.listenerCount('timeout'), 1)
})

t.test('the idle timer does not cut a slow reader of a big body, and closes the connection once it is idle', async (t) => {
  const h = await start(t, 100)
  const socket = net.connect(h.port, '127.0.0.1')
  t.teardown(() => socket.destroy())
  await once(socket, 'connect')
  socket.pause()
  socket.write('GET /fast/big HTTP/1.1\r\nHost: a\r\n\r\n')
  await new Promise((resolve) => setTimeout(resolve, 400)) // several idle timeouts while the body waits
  let received = 0
  socket.on('data', (d: Buffer) => { received += d.length })
  socket.resume()
  await once(socket, 'close')
  t.ok(received > 8 * 1024 * 1024, 'the whole body arrived')
  for (let i = 0; i < 100 && h.front.stats.open > 0; i++) await new Promise((resolve) => setTimeout(resolve, 10))
  t.equal(h.front.stats.open, 0, 'then the idle connection was closed')
})

t.test('bodies go out byte for byte, binary ones included, on both sides of the small-body single write', async (t) => {
  const server = http.createServer((_req, res) => res.end())
  const binary = (n: number): Buffer => Buffer.from(Array.from({ length: n }, (_, i) => (i * 7 + 3) & 0xff))
  const front = new FastFront({
    keepAliveTimeoutMs: 5000,
    handler: (req) => {
      const body = binary(Number(req.target.slice(1)))
      return { head: `HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: ${body.length}\r\n`, body }
    },
  })
  front.attach(server)
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const agent = new http.Agent({ keepAlive: true })
  t.teardown(async () => {
    agent.destroy()
    front.closeAll()
    await new Promise<void>((resolve) => server.close(() => resolve()))
  })
  const port = (server.address() as AddressInfo).port
  for (const n of [1, 128, 255, 256, 2047, 2048, 2049, 70_000]) {
    const body = await new Promise<Buffer>((resolve, reject) => {
      http.get({ host: '127.0.0.1', port, path: `/${n}`, agent }, (res) => {
        const chunks: Buffer[] = []
        res.on('data', (c: Buffer) => chunks.push(c))
        res.on('end', () => resolve(Buffer.concat(chunks)))
      }).on('error', reject)
    })
    t.ok(body.equals(binary(n)), `${n} bytes, every byte value`)
  }
  t.equal(front.stats.answered, 8, 'all answered by the front')
})

// ---- answers given later (FastPending) and streamed bodies (FastResponse.pipe) ----

/** A front whose handler the test writes (`seenFast` stays empty); node:http answers `slow <url>` for what it is handed. */
async function startWith (tap: Teardown, handler: FastHandler, keepAliveTimeoutMs = 5000, sendFile?: SendHeadFile, sendHeadBody?: SendHeadBody): Promise<Harness> {
  const seenSlow: string[] = []
  const server = http.createServer({ keepAliveTimeout: keepAliveTimeoutMs }, (req, res) => {
    seenSlow.push(`${req.method ?? ''} ${req.url ?? ''}`)
    const body = `slow ${req.url ?? ''}\n`
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) })
    res.end(body)
  })
  const front = new FastFront({ keepAliveTimeoutMs, handler, sendFile, sendHeadBody })
  return { port: await listenWithFront(tap, server, front), front, seenFast: [], seenSlow }
}

/** Puts `front` before `server`, listens on a loopback port (returned) and closes both at teardown. */
async function listenWithFront (tap: Teardown, server: http.Server, front: FastFront): Promise<number> {
  front.attach(server)
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  tap.teardown(async () => {
    front.closeAll()
    server.closeAllConnections()
    await new Promise<void>((resolve) => server.close(() => resolve()))
  })
  return (server.address() as AddressInfo).port
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

function fastAnswer (text: string, onDone?: (completed: boolean) => void): FastResponse {
  const body = Buffer.from(`${text}\n`)
  return { head: `HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\n`, body, ...(onDone === undefined ? {} : { onDone }) }
}

/** A handler answering /fast/* at once, /later/* after `delayMs` (or at once for /now/*), /decline/* by declining after `delayMs`. */
function laterHandler (delayMs: number): FastHandler {
  return (req) => {
    const target = req.target
    if (target.startsWith('/fast/')) return fastAnswer(`fast ${target}`)
    if (target.startsWith('/now/')) return { pending: true, wait: (reply) => reply.answer(fastAnswer(`now ${target}`)) }
    if (target.startsWith('/later/')) return { pending: true, wait: (reply) => { setTimeout(() => reply.answer(fastAnswer(`later ${target}`)), delayMs) } }
    if (target.startsWith('/decline/')) return { pending: true, wait: (reply) => { setTimeout(() => reply.decline(), delayMs) } }
    return undefined
  }
}

function answers (text: string): string[] {
  return [...text.matchAll(/(fast|slow|now|later) [^\n]*\n/g)].map((m) => m[0].trim())
}

t.test('an answer given later keeps request order; requests pipelined behind it wait, then are answered', async (t) => {
  const h = await startWith(t, laterHandler(60))
  const text = await exchange(h.port, [
    'GET /later/1 HTTP/1.1\r\nHost: a\r\n\r\nGET /fast/2 HTTP/1.1\r\nHost: a\r\n\r\nGET /now/3 HTTP/1.1\r\nHost: a\r\n\r\nGET /later/4 HTTP/1.1\r\nHost: a\r\n\r\nGET /fast/5 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n',
  ])
  t.same(answers(text), ['later /later/1', 'fast /fast/2', 'now /now/3', 'later /later/4', 'fast /fast/5'])
  t.same(h.seenSlow, [], 'node:http saw none of them')
  t.equal(h.front.stats.answered, 5)
})

t.test('a later decline hands the request, and everything pipelined behind it, to node:http in order', async (t) => {
  const h = await startWith(t, laterHandler(40))
  const text = await exchange(h.port, [
    'GET /fast/1 HTTP/1.1\r\nHost: a\r\n\r\nGET /decline/2 HTTP/1.1\r\nHost: a\r\n\r\nGET /fast/3 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n',
  ])
  t.same(answers(text), ['fast /fast/1', 'slow /decline/2', 'slow /fast/3'])
  t.same(h.seenSlow, ['GET /decline/2', 'GET /fast/3'], 'node:http parsed the declined request from its first byte')
  t.equal(h.front.stats.handedOff, 1)
})

/**
 * Sends `requests`, then a FIN at once (half-close: still reading), and reads until the
 * connection closes: what the server sent, and whether a 3 s guard had to close it instead
 * (the server's keep-alive timeout is 5 s).
 */
async function halfClosed (port: number, requests: string): Promise<{ text: string, guarded: boolean }> {
  const socket = net.connect(port, '127.0.0.1')
  await once(socket, 'connect')
  let text = ''
  socket.on('data', (d: Buffer) => { text += d.toString('latin1') })
  socket.end(requests)
  let guarded = false
  const timer = setTimeout(() => { guarded = true; socket.destroy() }, 3000)
  await once(socket, 'close')
  clearTimeout(timer)
  return { text, guarded }
}

t.test('a client that half-closes while its last request waits: declined, node:http answers it and closes', async (t) => {
  const h = await startWith(t, laterHandler(60))
  const { text, guarded } = await halfClosed(h.port, 'GET /decline/1 HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\n\r\n')
  t.same(answers(text), ['slow /decline/1'], 'the answer came')
  t.match(text, /\r\nConnection: close\r\n/i, 'with Connection: close, though the client asked to keep alive')
  t.notOk(guarded, 'the server closed the connection (not the 3 s guard; its keep-alive is 5 s)')
  t.same(h.seenSlow, ['GET /decline/1'])
})

t.test('a client that half-closes behind a pending answer: its last request, declined at once, is node:http\'s, which closes after it', async (t) => {
  const h = await startWith(t, laterHandler(60))
  const { text, guarded } = await halfClosed(h.port, 'GET /later/1 HTTP/1.1\r\nHost: a\r\n\r\nGET /other/2 HTTP/1.1\r\nHost: a\r\n\r\n')
  t.same(answers(text), ['later /later/1', 'slow /other/2'], 'both answers, in order')
  t.match(text, /\r\nConnection: close\r\n/i, 'the last with Connection: close')
  t.notOk(guarded, 'the server closed the connection')
  t.same(h.seenSlow, ['GET /other/2'])
})

t.test('bytes kept past a read (pipelined behind a later answer, declined, handed to node:http, behind an upgrade) survive other connections\' reads; an upgraded connection reads on', async (t) => {
  // Every connection reads into one shared buffer: what a connection keeps must be its own copy.
  const seenSlow: string[] = []
  const server = http.createServer((req, res) => {
    // node:http reads the body later, after other connections have read
    setTimeout(() => {
      const chunks: Buffer[] = []
      req.on('data', (d: Buffer) => chunks.push(d))
      req.on('end', () => {
        const body = `slow ${req.url ?? ''} ${Buffer.concat(chunks).toString('latin1')}\n`
        seenSlow.push(body.trim())
        res.writeHead(200, { 'content-length': Buffer.byteLength(body) })
        res.end(body)
      })
    }, 60)
  })
  // an upgraded connection: node:http lets go of it, and its reads reach the listener again
  server.on('upgrade', (_req, socket: net.Socket, head: Buffer) => {
    socket.write('HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n')
    setTimeout(() => socket.write(`head=${head.toString('latin1')}\n`), 60)
    socket.on('data', (d: Buffer) => socket.end(`echo=${d.toString('latin1')}\n`))
  })
  const port = await listenWithFront(t, server, new FastFront({ keepAliveTimeoutMs: 5000, handler: laterHandler(60) }))
  const request = (target: string, pad: string): string => `GET ${target} HTTP/1.1\r\nHost: a\r\nX-Pad: ${pad}\r\n\r\n`
  const a = exchange(port, [
    request('/later/1', 'a') + request('/fast/2', 'a') + request('/decline/3', 'a') + request('/fast/4', 'a') +
    `POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 26\r\nConnection: close\r\n\r\n${'abcdefghijklmnopqrstuvwxyz'}`,
  ], 'slow /echo')
  const c = exchange(port, [request('/decline/c', 'c').replace('\r\n\r\n', '\r\nConnection: close\r\n\r\n')], 'slow /decline/c')
  const d = exchange(port, ['GET /up HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\nfirst-bytes', 'second-bytes'], 'echo=', 150)
  const b = exchange(port, [`POST /echo2 HTTP/1.1\r\nHost: b\r\nContent-Length: 26\r\nConnection: close\r\n\r\n${'ABCDEFGHIJKLMNOPQRSTUVWXYZ'}`], 'slow /echo2')
  // meanwhile other connections read over the shared buffer, with bytes of another length and content
  const noise: Array<Promise<string>> = []
  for (let i = 0; i < 10; i++) {
    noise.push(exchange(port, [request(`/fast/noise-${i}-${'z'.repeat(40)}`, 'Z'.repeat(300 + i * 97)) + request('/fast/last', 'z').replace('\r\n\r\n', '\r\nConnection: close\r\n\r\n')], 'fast /fast/last'))
    await sleep(5)
  }
  const [textA, textB, textC, textD] = await Promise.all([a, b, c, d, ...noise])
  t.same(answers(textC!), ['slow /decline/c'], 'a request declined later: node:http parsed its own bytes')
  t.match(textD!, /\r\n\r\nhead=first-bytes\necho=second-bytes\n$/, 'an upgraded connection: the bytes behind its head, then what came later')
  t.same(answers(textA!), ['later /later/1', 'fast /fast/2', 'slow /decline/3', 'slow /fast/4', 'slow /echo abcdefghijklmnopqrstuvwxyz'])
  t.same(answers(textB!), ['slow /echo2 ABCDEFGHIJKLMNOPQRSTUVWXYZ'])
  t.same(seenSlow.filter((s) => s.includes('echo')).sort(), ['slow /echo abcdefghijklmnopqrstuvwxyz', 'slow /echo2 ABCDEFGHIJKLMNOPQRSTUVWXYZ'])
})

t.test('a request waiting for its answer is not idle: the keep-alive timer does not cut it', async (t) => {
  const h = await startWith(t, laterHandler(300), 80)
  const text = await exchange(h.port, ['GET /later/1 HTTP/1.1\r\nHost: a\r\n\r\n'], 'later /later/1')
  t.same(answers(text), ['later /later/1'])
})

t.test('a client that half-closes while its answer is pending still gets it, then the connection ends', async (t) => {
  const h = await startWith(t, laterHandler(50))
  const { text } = await halfClosed(h.port, 'GET /later/1 HTTP/1.1\r\nHost: a\r\n\r\n')
  t.same(answers(text), ['later /later/1'])
})

t.test('an answer or decline for a connection that is gone only reports the response as not completed', async (t) => {
  const done: boolean[] = []
  let replyLater: FastReply | undefined
  let declineLater: FastReply | undefined
  const h = await startWith(t, (req) => ({
    pending: true,
    wait: (reply) => { if (req.target === '/a') replyLater = reply; else declineLater = reply },
  }))
  for (const target of ['/a', '/b']) {
    const socket = net.connect(h.port, '127.0.0.1')
    await once(socket, 'connect')
    socket.write(`GET ${target} HTTP/1.1\r\nHost: a\r\n\r\n`)
    for (let i = 0; i < 200 && (target === '/a' ? replyLater : declineLater) === undefined; i++) await sleep(5)
    // A reset, not a FIN: after a FIN the client may still read its answer (half-close, above).
    socket.resetAndDestroy()
  }
  for (let i = 0; i < 200 && h.front.stats.open > 0; i++) await sleep(5)
  replyLater!.answer(fastAnswer('late', (completed) => done.push(completed)))
  declineLater!.decline()
  replyLater!.answer(fastAnswer('twice', (completed) => done.push(completed)))
  t.same(done, [false], 'onDone(false) once; a second answer is ignored')
  t.same(h.seenSlow, [], 'node:http got nothing from a dead connection')
})

/** A streamed response: its body in `parts`, written one per `gapMs`, then ended (or destroyed after `abortAfter` parts). */
function streamed (parts: readonly string[], gapMs: number, onDone: (completed: boolean) => void, abortAfter?: number, sinks?: FastBodySink[]): FastResponse {
  const total = parts.reduce((n, p) => n + Buffer.byteLength(p), 0)
  return {
    head: `HTTP/1.1 200 OK\r\nContent-Length: ${total}\r\n`,
    onDone,
    pipe: (sink) => {
      sinks?.push(sink)
      let i = 0
      const next = (): void => {
        if (sink.destroyed) return
        if (i === abortAfter) {
          sink.destroy()
          return
        }
        if (i === parts.length) {
          sink.end()
          return
        }
        sink.write(Buffer.from(parts[i++]!))
        setTimeout(next, gapMs)
      }
      next()
    },
  }
}

t.test('a streamed body goes out as written; the connection then serves the next pipelined request', async (t) => {
  const done: Array<[string, boolean]> = []
  const h = await startWith(t, (req) => {
    if (req.target === '/stream') return streamed(['str', 'eam', 'ed!', '\n'], 15, (c) => done.push([req.target, c]))
    return fastAnswer(`fast ${req.target}`, (c) => done.push([req.target, c]))
  })
  const text = await exchange(h.port, ['GET /stream HTTP/1.1\r\nHost: a\r\n\r\nGET /fast/after HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n'])
  const [first, second] = text.split('HTTP/1.1 200 OK').slice(1)
  t.match(first, /Content-Length: 10\r\n/)
  t.ok(first!.endsWith('\r\n\r\nstreamed!\n'), 'exactly the body, nothing else')
  t.match(second, /Connection: close\r\n/)
  t.ok(second!.endsWith('\r\n\r\nfast /fast/after\n'))
  t.same(done, [['/stream', true], ['/fast/after', true]], 'onDone once each, in order')
})

t.test('a streamed body that cannot be completed aborts the connection: never ended short', async (t) => {
  const done: boolean[] = []
  const h = await startWith(t, () => streamed(['abc', 'def', 'ghi'], 10, (c) => done.push(c), 2))
  const text = await exchange(h.port, ['GET /s HTTP/1.1\r\nHost: a\r\n\r\nGET /s2 HTTP/1.1\r\nHost: a\r\n\r\n'])
  t.match(text, /Content-Length: 9\r\n/)
  t.ok(text.endsWith('\r\n\r\nabcdef'), 'the client sees 6 of 9 bytes, then the connection closes')
  t.equal([...text.matchAll(/HTTP\/1\.1 /g)].length, 1, 'the pipelined request is not answered on the broken connection')
  t.same(done, [false])
})

t.test('a client leaving mid-stream: the sink says destroyed, onDone(false) runs once', async (t) => {
  const done: boolean[] = []
  const sinks: FastBodySink[] = []
  const h = await startWith(t, () => streamed(Array.from({ length: 100 }, () => 'x'), 10, (c) => done.push(c), undefined, sinks))
  const socket = net.connect(h.port, '127.0.0.1')
  await once(socket, 'connect')
  socket.write('GET /s HTTP/1.1\r\nHost: a\r\n\r\n')
  await once(socket, 'data')
  socket.destroy()
  for (let i = 0; i < 200 && done.length === 0; i++) await sleep(5)
  t.same(done, [false])
  t.equal(sinks[0]!.destroyed, true)
  await sleep(50)
  t.same(done, [false], 'not reported again when the writer notices')
})

t.test('HEAD of a streamed response gets the head only; pipe is not called', async (t) => {
  const done: boolean[] = []
  let piped = 0
  const h = await startWith(t, () => ({
    head: 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n',
    onDone: (c) => done.push(c),
    pipe: (sink) => { piped++; sink.end() },
  }))
  const text = await exchange(h.port, ['HEAD /s HTTP/1.1\r\nHost: a\r\n\r\nHEAD /s HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n'])
  t.equal([...text.matchAll(/Content-Length: 5\r\n/g)].length, 2)
  t.equal(piped, 0)
  t.same(done, [true, true])
})

t.test('a body streamed to a slow reader waits for drain; the idle timer does not cut it', async (t) => {
  const chunk = 'y'.repeat(256 * 1024)
  const parts = Array.from({ length: 32 }, () => chunk)
  const done: boolean[] = []
  const h = await startWith(t, () => ({
    head: `HTTP/1.1 200 OK\r\nContent-Length: ${parts.length * chunk.length}\r\n`,
    onDone: (c) => done.push(c),
    pipe: (sink) => {
      let i = 0
      const next = (): void => {
        while (i < parts.length) {
          if (!sink.write(Buffer.from(parts[i++]!))) {
            sink.once('drain', next)
            return
          }
        }
        sink.end()
      }
      next()
    },
  }), 100)
  const socket = net.connect(h.port, '127.0.0.1')
  await once(socket, 'connect')
  socket.write('GET /s HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n')
  let bytes = 0
  socket.pause()
  await sleep(250) // longer than the keep-alive timeout, reading nothing
  socket.on('data', (d: Buffer) => { bytes += d.length })
  socket.resume()
  await once(socket, 'close')
  t.ok(bytes > parts.length * chunk.length, 'the whole body (and the head) arrived')
  t.same(done, [true])
})

t.test('answers to the requests of one event-loop turn are written together, at the end of the turn', async (t) => {
  const clients = 5
  // What each handler call saw: bytes still queued on the connection answered just before it in this turn.
  const queuedBefore: number[] = []
  let previous: net.Socket | undefined
  const h = await startWith(t, (req) => {
    if (previous !== undefined) queuedBefore.push(previous.writableLength)
    previous = req.connection as net.Socket
    return fastAnswer(`fast ${req.target}`)
  })
  const sockets: net.Socket[] = []
  t.teardown(() => { for (const s of sockets) s.destroy() })
  for (let i = 0; i < clients; i++) {
    const s = net.connect(h.port, '127.0.0.1')
    await once(s, 'connect')
    sockets.push(s)
  }
  await sleep(50) // the server has taken every connection
  const answers = sockets.map((s) => new Promise<string>((resolve) => {
    let text = ''
    s.on('data', (d: Buffer) => { text += d.toString('latin1'); if (text.endsWith('\n') && text.includes('fast')) resolve(text) })
  }))
  const flushesBefore = h.front.stats.flushes
  // Every request reaches the server's socket buffers before its event loop looks again, so
  // one poll phase reads them all.
  sockets.forEach((s, i) => s.write(`GET /fast/${i} HTTP/1.1\r\nHost: a\r\n\r\n`))
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 100)
  const texts = await Promise.all(answers)
  t.same(texts.map((x) => bodies(x)[0]), sockets.map((_, i) => `fast /fast/${i}`), 'every client got its own answer')
  t.equal(h.front.stats.flushes - flushesBefore, 1, 'one flush for the turn')
  t.equal(queuedBefore.length, clients - 1)
  t.ok(queuedBefore.every((bytes) => bytes > 0), `each earlier answer was still queued when the next request was handled (${queuedBefore.join(', ')} bytes)`)
})

t.test('an answer held for the end of the turn is flushed behind node:http taking the connection, in order', async (t) => {
  const h = await start(t)
  // one segment: /fast/1 is answered (held), /other hands the connection to node:http
  const text = await exchange(h.port, ['GET /fast/1 HTTP/1.1\r\nHost: a\r\n\r\nGET /other HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n'])
  t.same(bodies(text), ['fast /fast/1', 'slow /other'])
  t.equal(h.front.stats.answered, 1)
})

// ---- adversarial cases for the end-of-turn flush: held answers meet later answers, streams, closes and hand-overs ----

/** A raw client connection recording what it receives and whether the server closed it. */
class Peer {
  readonly socket: net.Socket
  text = ''
  closed = false

  constructor (socket: net.Socket) {
    this.socket = socket
    socket.on('data', (d: Buffer) => { this.text += d.toString('latin1') })
    socket.on('close', () => { this.closed = true })
    socket.on('error', () => {})
  }

  static async open (tap: Teardown, port: number): Promise<Peer> {
    const socket = net.connect(port, '127.0.0.1')
    tap.teardown(() => socket.destroy())
    await once(socket, 'connect')
    return new Peer(socket)
  }

  /** Until `done(text)` holds (or, without `done`, the connection closes); false if neither within `guardMs`: a hang. */
  async wait (done?: (text: string) => boolean, guardMs = 3000): Promise<boolean> {
    const deadline = Date.now() + guardMs
    while (!(done?.(this.text) ?? false) && !this.closed) {
      if (Date.now() > deadline) return false
      await sleep(5)
    }
    return true
  }
}

const CRLF2 = '\r\n\r\n'

interface Parsed { readonly head: string, readonly body: string, readonly complete: boolean }

/** Splits received bytes into responses by Content-Length (`headOnly[i]`: the i-th answers a HEAD); `rest` is what follows the last head. */
function parse (text: string, headOnly: readonly boolean[] = []): { responses: Parsed[], rest: string } {
  const responses: Parsed[] = []
  let at = 0
  for (let end = text.indexOf(CRLF2, at); end >= 0; end = text.indexOf(CRLF2, at)) {
    const head = text.slice(at, end + 4)
    const length = headOnly[responses.length] === true ? 0 : Number(/\r\ncontent-length: *(\d+)\r\n/i.exec(head)?.[1] ?? '0')
    const body = text.slice(end + 4, end + 4 + length)
    responses.push({ head, body, complete: body.length === length })
    at = end + 4 + body.length
  }
  return { responses, rest: text.slice(at) }
}

const get = (target: string, more = ''): string => `GET ${target} HTTP/1.1\r\nHost: a\r\n${more}\r\n`
/** Blocks the event loop so that what the clients just wrote is read by the server in one poll phase (one turn). */
const oneTurn = (): void => { Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 50) }

t.test('held: an answer given later (timer, promise, setImmediate, nextTick, another answer\'s onDone) is flushed in its own turn', async (t) => {
  let chained: FastReply | undefined
  const h = await startWith(t, (req) => {
    const target = req.target
    const later = (reply: FastReply): void => reply.answer(fastAnswer(`later ${target}`))
    switch (target.replace(/\/\d+$/, '')) {
      case '/fast': return fastAnswer(`fast ${target}`)
      case '/timer': return { pending: true, wait: (reply) => { setTimeout(() => later(reply), 2) } }
      case '/promise': return { pending: true, wait: (reply) => { void sleep(2).then(() => later(reply)) } }
      case '/immediate': return { pending: true, wait: (reply) => { setImmediate(() => later(reply)) } }
      case '/immediate2': return { pending: true, wait: (reply) => { setImmediate(() => setImmediate(() => later(reply))) } }
      case '/timer-immediate': return { pending: true, wait: (reply) => { setTimeout(() => setImmediate(() => later(reply)), 2) } }
      case '/tick': return { pending: true, wait: (reply) => { process.nextTick(() => later(reply)) } }
      // the answer comes from the previous answer's onDone: after the flush that wrote it
      case '/chain-first': return fastAnswer(`fast ${target}`, () => chained?.answer(fastAnswer('later /chained')))
      case '/chained': return { pending: true, wait: (reply) => { chained = reply } }
      default: return undefined
    }
  })
  const kinds = ['/timer', '/promise', '/immediate', '/immediate2', '/timer-immediate', '/tick']
  // each kind alone on a connection, each behind a held answer, and all of them in one pipeline
  const scripts = [
    ...kinds.map((kind) => [`${kind}/1`]),
    ...kinds.map((kind) => ['/fast/1', `${kind}/2`, '/fast/3']),
    ['/chain-first', '/chained', '/fast/3'],
    ['/fast/1', ...kinds.map((kind, i) => `${kind}/${i + 2}`), '/fast/9'],
  ]
  const peers = await Promise.all(scripts.map(async () => await Peer.open(t, h.port)))
  peers.forEach((peer, i) => peer.socket.write(scripts[i]!.map((target) => get(target)).join('')))
  const expected = scripts.map((script) => script.map((target) => `${target.startsWith('/fast') || target === '/chain-first' ? 'fast' : 'later'} ${target}`))
  const arrived = await Promise.all(peers.map(async (peer, i) => await peer.wait((text) => answers(text).length >= expected[i]!.length)))
  peers.forEach((peer, i) => {
    t.ok(arrived[i], `${scripts[i]!.join(' ')}: answered without waiting for the keep-alive timer`)
    t.same(answers(peer.text), expected[i], `${scripts[i]!.join(' ')}: in order`)
    t.equal(peer.closed, false, 'the connection stays open')
  })
  t.equal(h.front.stats.answered, expected.flat().length)
})

t.test('held: a streamed body begun in the held turn and continued later reaches a slow reader complete and in order', async (t) => {
  const done: Array<[string, boolean]> = []
  // 2 parts written at once (the second above the socket's highWaterMark), then 24 later ones, honouring 'drain'
  const parts = [Buffer.alloc(100, 0x30), Buffer.alloc(64 * 1024, 0x31), ...Array.from({ length: 24 }, (_, i) => Buffer.alloc(96 * 1024, 0x41 + i))]
  const whole = Buffer.concat(parts).toString('latin1')
  const h = await startWith(t, (req) => {
    if (req.target !== '/stream') return fastAnswer(`fast ${req.target}`, (c) => done.push([req.target, c]))
    return {
      head: `HTTP/1.1 200 OK\r\nContent-Length: ${whole.length}\r\n`,
      onDone: (c) => done.push([req.target, c]),
      pipe: (sink) => {
        let i = 0
        sink.write(parts[i++]!)
        const next = (): void => {
          if (i === parts.length) {
            sink.end()
            return
          }
          // alternately from a timer and from an immediate
          if (sink.write(parts[i++]!)) (i % 2 === 0 ? setImmediate : setTimeout)(next)
          else sink.once('drain', next)
        }
        if (sink.write(parts[i++]!)) setTimeout(next)
        else sink.once('drain', next)
      },
    }
  })
  const peer = await Peer.open(t, h.port)
  peer.socket.pause()
  peer.socket.write(get('/fast/1') + get('/stream') + get('/fast/3'))
  await sleep(150) // a slow reader: the server fills the socket buffers and waits for 'drain'
  peer.socket.resume()
  t.ok(await peer.wait((text) => text.endsWith('fast /fast/3\n')), 'all three answers arrived')
  const { responses, rest } = parse(peer.text)
  t.same(responses.map((r) => [r.complete, r.body.length]), [[true, 13], [true, whole.length], [true, 13]])
  t.ok(responses[1]?.body === whole, 'the streamed body byte for byte, in order')
  t.equal(rest, '')
  t.same(done, [['/fast/1', true], ['/stream', true], ['/fast/3', true]])
})

t.test('held: a stream aborted in the turn it began (or later) cuts the connection; the answers before it still arrive', async (t) => {
  const done: Array<[string, boolean]> = []
  const h = await startWith(t, (req) => {
    const target = req.target
    if (!target.startsWith('/abort-')) return fastAnswer(`fast ${target}`, (c) => done.push([target, c]))
    return {
      head: 'HTTP/1.1 200 OK\r\nContent-Length: 9\r\n',
      onDone: (c) => done.push([target, c]),
      pipe: (sink) => {
        sink.write(Buffer.from('abc'))
        if (target === '/abort-sync') sink.destroy()
        if (target === '/abort-microtask') queueMicrotask(() => sink.destroy())
        if (target === '/abort-immediate') setImmediate(() => sink.destroy())
        if (target === '/abort-later') setTimeout(() => { sink.write(Buffer.from('def')); sink.destroy() }, 5)
      },
    }
  })
  for (const abort of ['/abort-sync', '/abort-microtask', '/abort-immediate', '/abort-later']) {
    done.length = 0
    const peer = await Peer.open(t, h.port)
    peer.socket.write(get('/fast/1') + get(abort) + get('/fast/3'))
    t.ok(await peer.wait(), `${abort}: the connection is cut`)
    const { responses, rest } = parse(peer.text)
    t.same(responses[0], { head: responses[0]?.head, body: 'fast /fast/1\n', complete: true }, `${abort}: the answer before the stream arrived`)
    t.ok(responses.length <= 2 && responses[1]?.complete !== true, `${abort}: the aborted body never looks complete`)
    t.equal(rest, '')
    t.notMatch(peer.text, /fast \/fast\/3/, `${abort}: nothing is answered after the abort`)
    t.same(done.map(([target]) => target).sort(), ['/fast/1', abort].sort(), `${abort}: onDone once each`)
    t.same(done.find(([target]) => target === abort), [abort, false], `${abort}: the aborted response is not completed`)
    // Flushed in an earlier turn, /fast/1 is reported completed. Released and destroyed in one tick, its
    // write callback runs after the destroy and reports false although the bytes left (as before the
    // end-of-turn flush, for an abort inside pipe): onDone under-reports, never over-reports.
    if (abort === '/abort-immediate' || abort === '/abort-later') t.same(done.find(([target]) => target === '/fast/1'), ['/fast/1', true])
  }
})

t.test('held: a client that leaves before its held answers are flushed: onDone once each, no exception, others still served', async (t) => {
  const done: Array<[string, boolean]> = []
  let victim: net.Socket | undefined
  const h = await startWith(t, (req) => {
    const target = req.target
    const onDone = (c: boolean): void => { done.push([target, c]) }
    // the client leaves while the handler runs, i.e. while this turn's answers are still held
    if (target === '/leave-fin') victim?.destroy()
    if (target === '/leave-rst') victim?.resetAndDestroy()
    if (target === '/leave-stream') {
      victim?.resetAndDestroy()
      return streamed(['abc', 'def', 'ghi'], 5, onDone)
    }
    return fastAnswer(`fast ${target}`, onDone)
  })
  const bystander = await Peer.open(t, h.port)
  for (const leave of ['/leave-fin', '/leave-rst', '/leave-stream']) {
    done.length = 0
    const peer = await Peer.open(t, h.port)
    victim = peer.socket
    peer.socket.write(get('/fast/1') + get(leave))
    bystander.socket.write(get(`/fast/by${leave}`))
    for (let i = 0; i < 600 && done.length < 3; i++) await sleep(5)
    const victims = done.filter(([target]) => !target.startsWith('/fast/by'))
    t.equal(victims.length, 2, `${leave}: onDone ran for both answers`)
    t.equal(victims[0]?.[0], '/fast/1')
    if (leave === '/leave-fin') {
      // the peer sent a FIN: the kernel took both answers (the peer's RST comes later)
      t.same(victims, [['/fast/1', true], [leave, true]], `${leave}: written`)
    } else if (leave === '/leave-rst') {
      t.equal(victims[0]?.[1], victims[1]?.[1], `${leave}: one writev, one outcome for both (${String(victims[0]?.[1])})`)
    } else {
      t.equal(victims[1]?.[1], false, `${leave}: the stream never completed`)
    }
    t.same(done.find(([target]) => target.startsWith('/fast/by')), [`/fast/by${leave}`, true], `${leave}: the other connection was answered`)
    await sleep(30)
    t.equal(done.length, 3, `${leave}: no second onDone`)
  }
  t.ok(await bystander.wait((text) => answers(text).length === 3))
  t.same(answers(bystander.text), ['fast /fast/by/leave-fin', 'fast /fast/by/leave-rst', 'fast /fast/by/leave-stream'])
  for (let i = 0; i < 200 && h.front.stats.open > 1; i++) await sleep(5)
  t.equal(h.front.stats.open, 1, 'only the bystander is left')
})

t.test('held: Connection: close answered while held: every answer up to it arrives complete, then the connection closes', async (t) => {
  const big = Buffer.alloc(1024 * 1024, 0x62)
  const h = await startWith(t, (req) => {
    const target = req.target
    if (target === '/big') return { head: `HTTP/1.1 200 OK\r\nContent-Length: ${big.length}\r\n`, body: big }
    if (target.startsWith('/later/')) return { pending: true, wait: (reply) => { setTimeout(() => reply.answer(fastAnswer(`later ${target}`)), 5) } }
    if (target.startsWith('/stream/')) return streamed(['str', 'eam', '\n'], 2, () => {})
    return fastAnswer(`fast ${target}`)
  })
  const close = 'Connection: close\r\n'
  const cases: Array<{ name: string, send: string, bodies: string[], head?: boolean[] }> = [
    { name: 'close on the last of a burst', send: get('/fast/1') + get('/big') + get('/fast/3', close) + get('/fast/4'), bodies: ['fast /fast/1\n', big.toString('latin1'), 'fast /fast/3\n'] },
    { name: 'close on the first', send: get('/fast/1', close) + get('/fast/2'), bodies: ['fast /fast/1\n'] },
    { name: 'close on a later answer', send: get('/fast/1') + get('/later/2', close) + get('/fast/3'), bodies: ['fast /fast/1\n', 'later /later/2\n'] },
    { name: 'close on a stream ending later', send: get('/fast/1') + get('/stream/2', close) + get('/fast/3'), bodies: ['fast /fast/1\n', 'stream\n'] },
    { name: 'close on a HEAD', send: get('/fast/1') + `HEAD /big HTTP/1.1\r\nHost: a\r\n${close}\r\n` + get('/fast/3'), bodies: ['fast /fast/1\n', ''], head: [false, true] },
  ]
  const peers = await Promise.all(cases.map(async () => await Peer.open(t, h.port)))
  peers.forEach((peer, i) => peer.socket.write(cases[i]!.send))
  const closed = await Promise.all(peers.map(async (peer) => await peer.wait()))
  cases.forEach((c, i) => {
    const { responses, rest } = parse(peers[i]!.text, c.head)
    t.ok(closed[i], `${c.name}: closed`)
    t.ok(responses.every((r) => r.complete), `${c.name}: every answer complete`)
    t.ok(responses.length === c.bodies.length && responses.every((r, j) => r.body === c.bodies[j]), `${c.name}: the answers up to the close, no more`)
    t.match(responses.at(-1)?.head, /\r\nConnection: close\r\n\r\n$/, `${c.name}: the last one says close`)
    t.equal(rest, '', `${c.name}: nothing after it`)
  })
})

t.test('held: pipelined answered at once, answered later and declined keep request order; node:http\'s errors do not drop held answers', async (t) => {
  const h = await startWith(t, laterHandler(10))
  const malformed = 'GET /x HTTP/1.1\r\nHost: a\r\nBad Header: x\r\n\r\n'
  const oversized = get('/fast/big-head', `X-Big: ${'y'.repeat(20_000)}\r\n`)
  const cases: Array<{ send: string, expected: string[], status?: RegExp }> = [
    { send: get('/fast/1') + get('/later/2') + get('/other/3') + get('/fast/4'), expected: ['fast /fast/1', 'later /later/2', 'slow /other/3', 'slow /fast/4'] },
    { send: get('/fast/1') + get('/now/2') + get('/other/3') + get('/fast/4'), expected: ['fast /fast/1', 'now /now/2', 'slow /other/3', 'slow /fast/4'] },
    { send: get('/later/1') + get('/fast/2') + get('/decline/3') + get('/fast/4'), expected: ['later /later/1', 'fast /fast/2', 'slow /decline/3', 'slow /fast/4'] },
    // node:http answers a malformed request with 400 and destroys the socket at once: what the front holds must be out first
    { send: get('/fast/1') + malformed, expected: ['fast /fast/1'], status: /HTTP\/1\.1 400 / },
    { send: get('/fast/1') + get('/later/2') + malformed, expected: ['fast /fast/1', 'later /later/2'], status: /HTTP\/1\.1 400 / },
    { send: get('/fast/1') + oversized, expected: ['fast /fast/1'], status: /HTTP\/1\.1 431 / },
  ]
  const peers = await Promise.all(cases.map(async () => await Peer.open(t, h.port)))
  peers.forEach((peer, i) => peer.socket.write(cases[i]!.send))
  const arrived = await Promise.all(peers.map(async (peer, i) => await peer.wait((text) => answers(text).length >= cases[i]!.expected.length && (cases[i]!.status === undefined || cases[i]!.status!.test(text)))))
  cases.forEach((c, i) => {
    const text = peers[i]!.text
    t.ok(arrived[i], `${JSON.stringify(c.expected)}: answered`)
    t.same(answers(text), c.expected, 'in request order')
    if (c.status !== undefined) t.match(text.slice(text.lastIndexOf('\n', text.search(c.status)) + 1), c.status, 'node:http\'s error answer after them')
  })
})

t.test('held: closeIdle() or closeAll() while answers are held: each answer arrives complete or the connection is cut; nothing hangs', async (t) => {
  for (const how of ['closeIdle in the handler', 'closeIdle in a microtask', 'closeAll in the handler', 'closeAll in a microtask']) {
    const done: Array<[string, boolean]> = []
    const handled = new Set<string>()
    let given = 0 // responses handed to the front, at once or later (one given to a connection already gone is not `answered`)
    let front: FastFront | undefined
    const h = await startWith(t, (req) => {
      const target = req.target
      handled.add(target)
      if (!target.startsWith('/later/')) given++
      const onDone = (c: boolean): void => { done.push([target, c]) }
      if (target === '/close') {
        const close = (): void => { if (how.startsWith('closeIdle')) front?.closeIdle(); else front?.closeAll() }
        if (how.endsWith('handler')) close()
        else queueMicrotask(close)
      }
      if (target.startsWith('/later/')) return { pending: true, wait: (reply) => { setTimeout(() => { given++; reply.answer(fastAnswer(`later ${target}`, onDone)) }, 10) } }
      return fastAnswer(`fast ${target}`, onDone)
    })
    front = h.front
    const scripts = [['/fast/a1', '/fast/a2'], ['/fast/b1'], ['/later/c1'], ['/fast/d1', '/close', '/fast/d3'], ['/fast/e1'], []]
    const peers = await Promise.all(scripts.map(async () => await Peer.open(t, h.port)))
    // the front holds every connection (one accepted after the close would be node:http's, which keeps it)
    for (let i = 0; i < 600 && h.front.stats.open < peers.length; i++) await sleep(5)
    peers.forEach((peer, i) => { if (scripts[i]!.length > 0) peer.socket.write(scripts[i]!.map((target) => get(target)).join('')) })
    oneTurn() // most requests are read in the turn that closes
    const closed = await Promise.all(peers.map(async (peer) => await peer.wait()))
    t.ok(closed.every(Boolean), `${how}: every connection closed, none hangs (${closed.map((c, i) => `${scripts[i]!.join(' ') || 'idle'}: ${c ? 'closed' : `open, ${peers[i]!.text.length} bytes in`}`).join('; ')})`)
    peers.forEach((peer, i) => {
      const { responses, rest } = parse(peer.text)
      t.ok(responses.every((r) => r.complete) && rest === '', `${how}: ${scripts[i]!.join(' ')}: only complete answers (${responses.length})`)
      // a request read after the close began may go unanswered (the connection was idle, or is cut): the client retries it
      const answered = scripts[i]!.filter((target) => handled.has(target)).map((target) => `${target.startsWith('/later/') ? 'later' : 'fast'} ${target}`)
      if (how.startsWith('closeIdle')) t.same(answers(peer.text), answered, `${how}: ${scripts[i]!.join(' ')}: closeIdle lets every answer given out`)
      else t.same(answers(peer.text), answered.slice(0, answers(peer.text).length), `${how}: ${scripts[i]!.join(' ')}: what arrived is a prefix of the answers, in order`)
    })
    if (how === 'closeIdle in the handler') t.notOk(handled.has('/fast/d3'), 'nothing is read after the request that closed')
    // every request handled gets one response, the later ones 10 ms on
    for (let i = 0; i < 600 && (given < handled.size || done.length < given); i++) await sleep(5)
    const targets = done.map(([target]) => target)
    t.equal(new Set(targets).size, targets.length, `${how}: onDone once per answer`)
    t.equal(done.length, given, `${how}: onDone for every answer given`)
    t.ok(h.front.stats.answered <= given, `${how}: answered counts only the answers a live connection took`)
    if (how.startsWith('closeIdle')) t.ok(done.every(([, c]) => c), `${how}: all of them completed`)
    if (how.startsWith('closeAll')) {
      const late = await Peer.open(t, h.port)
      late.socket.write(get('/fast/after'))
      t.ok(await late.wait((text) => text.includes('slow /fast/after\n')), `${how}: a new connection goes to node:http`)
    }
    for (let i = 0; i < 200 && h.front.stats.open > 0; i++) await sleep(5)
    t.equal(h.front.stats.open, 0, `${how}: the front holds no connection`)
  }
})

t.test('held: many connections pipelining in one turn: every answer arrives, answered is exact, a few flushes', async (t) => {
  // the turns in which the handler answered: a turn's first answer schedules a check-phase marker, as the front's flush
  let turns = 0
  let marked = false
  const h = await startWith(t, (req) => {
    if (!marked) {
      marked = true
      turns++
      setImmediate(() => { marked = false })
    }
    return fastAnswer(`fast ${req.target}`)
  })
  const count = 50
  const peers = await Promise.all(Array.from({ length: count }, async () => await Peer.open(t, h.port)))
  for (let i = 0; i < 600 && h.front.stats.open < count; i++) await sleep(5)
  const before = h.front.stats
  turns = 0
  peers.forEach((peer, i) => peer.socket.write(get(`/fast/${i}a`) + `HEAD /fast/${i}b HTTP/1.1\r\nHost: a\r\n\r\n` + get(`/fast/${i}c`)))
  oneTurn()
  const arrived = await Promise.all(peers.map(async (peer, i) => await peer.wait((text) => text.endsWith(`fast /fast/${i}c\n`))))
  t.ok(arrived.every(Boolean), 'every connection got its answers')
  t.ok(peers.every((peer, i) => {
    const { responses, rest } = parse(peer.text, [false, true, false])
    return rest === '' && responses.length === 3 && responses.every((r) => r.complete) && responses[0]!.body === `fast /fast/${i}a\n` && responses[1]!.body === '' && responses[2]!.body === `fast /fast/${i}c\n`
  }), 'each its own three answers, in order')
  const after = h.front.stats
  t.equal(after.answered - before.answered, 3 * count)
  const flushes = after.flushes - before.flushes
  // one flush per turn that answered, whatever the number of connections and answers in it; and each
  // connection's requests came in one segment, so there are at most as many such turns as connections
  t.equal(flushes, turns, `${flushes} flushes for ${3 * count} answers given in ${turns} turns`)
  t.ok(turns >= 1 && turns <= count)
})

t.test('held: HEAD answers and empty bodies (plain and streamed) between held answers', async (t) => {
  const done: Array<[string, boolean]> = []
  const h = await startWith(t, (req) => {
    const target = req.target
    const onDone = (c: boolean): void => { done.push([`${req.method} ${target}`, c]) }
    switch (target) {
      case '/empty': return { head: 'HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n', body: Buffer.alloc(0), onDone }
      case '/none': return { head: 'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n', onDone }
      case '/stream-empty': return { head: 'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n', onDone, pipe: (sink) => sink.end() }
      case '/stream-empty-later': return { head: 'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n', onDone, pipe: (sink) => { setTimeout(() => sink.end(), 5) } }
      case '/stream': return streamed(['str', 'eam\n'], 2, onDone)
      default: return fastAnswer(`fast ${target}`, onDone)
    }
  })
  const head = (target: string): string => `HEAD ${target} HTTP/1.1\r\nHost: a\r\n\r\n`
  const script: Array<[string, string]> = [
    ['HEAD', '/fast/1'], ['GET', '/empty'], ['GET', '/none'], ['HEAD', '/stream'], ['GET', '/stream-empty'], ['HEAD', '/empty'],
    ['GET', '/stream-empty-later'], ['HEAD', '/stream-empty-later'], ['GET', '/stream'], ['HEAD', '/fast/2'], ['GET', '/fast/3'],
  ]
  const peer = await Peer.open(t, h.port)
  peer.socket.write(script.map(([method, target]) => method === 'HEAD' ? head(target) : get(target)).join(''))
  t.ok(await peer.wait((text) => text.endsWith('fast /fast/3\n')), 'all answered')
  const { responses, rest } = parse(peer.text, script.map(([method]) => method === 'HEAD'))
  t.equal(rest, '')
  t.same(responses.map((r) => r.body), ['', '', '', '', '', '', '', '', 'stream\n', '', 'fast /fast/3\n'])
  t.same(responses.map((r) => /^HTTP\/1\.1 (\d+)/.exec(r.head)?.[1]), ['200', '204', '200', '200', '200', '204', '200', '200', '200', '200', '200'])
  t.match(responses[0]?.head, /Content-Length: 13\r\n/, 'HEAD keeps the GET\'s Content-Length')
  t.same(done, script.map(([method, target]) => [`${method} ${target}`, true]), 'onDone once each, in order')
  t.equal(peer.closed, false)
})

// ---- bodies sent from a file (FastResponse.sendFile, FastFrontOptions.sendFile) ----

/** A temp file holding 100 bytes of junk, then `body`; its descriptor (closed at teardown). */
async function bodyFile (tap: Teardown, body: Buffer): Promise<number> {
  const dir = await mkdtemp(join(tmpdir(), 'streamedge-front-'))
  const path = join(dir, 'body')
  writeFileSync(path, Buffer.concat([Buffer.alloc(100, 'j'), body]))
  const fd = openSync(path, 'r')
  tap.teardown(async () => {
    closeSync(fd)
    await rm(dir, { recursive: true, force: true })
  })
  return fd
}

/** Reads responses with Content-Length bodies off `text` (latin1), in order. */
function sized (text: string): Array<{ status: string, body: string }> {
  const out: Array<{ status: string, body: string }> = []
  let at = 0
  while (at < text.length) {
    const end = text.indexOf('\r\n\r\n', at)
    if (end < 0) break
    const head = text.slice(at, end)
    const length = Number(/content-length: (\d+)/i.exec(head)?.[1] ?? 0)
    const bodyless = head.includes('X-Head: 1')
    out.push({ status: head.slice(0, head.indexOf('\r\n')), body: bodyless ? '' : text.slice(end + 4, end + 4 + length) })
    at = end + 4 + (bodyless ? 0 : length)
  }
  return out
}

function fileAnswer (body: Buffer, fd: number, onDone?: (completed: boolean) => void, offer: 'file' | 'none' | 'refused' = 'file'): FastResponse {
  return {
    head: `HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\n`,
    body,
    sendFile: (send) => offer === 'file' ? send(fd, 100) : offer === 'refused' ? -11 : undefined,
    ...(onDone === undefined ? {} : { onDone }),
  }
}

t.test('sendFile: a large body goes out from the file byte for byte; pipelined answers keep their order', async (t) => {
  const send = requireZeroCopy().sendHeadFile
  const body = patternBody(SENDFILE_MIN_BYTES * 4, 11)
  const fd = await bodyFile(t, body)
  const done: boolean[] = []
  const h = await startWith(t, (req) => {
    if (req.target === '/small') return fastAnswer('fast /small')
    if (req.target === '/head') return { head: `HTTP/1.1 200 OK\r\nX-Head: 1\r\nContent-Length: ${body.length}\r\n`, body, sendFile: (s) => s(fd, 100) }
    return fileAnswer(body, fd, (completed) => { done.push(completed) })
  }, 5000, send)
  const want = body.toString('latin1')
  let text = await exchange(h.port, ['GET /file/1 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n'], undefined, 50)
  t.same(sized(text).map((r) => r.body === want), [true], 'alone on its connection')
  t.equal(h.front.stats.sentFromFileBytes, body.length, 'all of it from the file')
  text = await exchange(h.port, [
    'GET /file/2 HTTP/1.1\r\nHost: a\r\n\r\nGET /small HTTP/1.1\r\nHost: a\r\n\r\nGET /file/3 HTTP/1.1\r\nHost: a\r\n\r\nHEAD /head HTTP/1.1\r\nHost: a\r\n\r\nGET /file/4 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n',
  ])
  const got = sized(text)
  t.same(got.map((r) => r.body === want ? 'file' : r.body), ['file', 'fast /small\n', 'file', '', 'file'], 'every answer, in request order')
  t.ok(got.every((r) => r.status === 'HTTP/1.1 200 OK'))
  t.ok(h.front.stats.sentFromFileBytes >= 2 * body.length, 'the first answer of a turn goes from the file; one behind queued bytes is copied')
  t.same(done, [true, true, true, true], 'onDone once each, completed')
})

t.test('sendFileTo: asked once per connection with its peer address; a connection it refuses copies every body', async (t) => {
  const send = requireZeroCopy().sendHeadFile
  const body = patternBody(SENDFILE_MIN_BYTES * 2, 12)
  const fd = await bodyFile(t, body)
  const asked: Array<string | undefined> = []
  let allow = false
  const server = http.createServer((_req, res) => { res.end() })
  const front = new FastFront({
    keepAliveTimeoutMs: 5000,
    handler: () => fileAnswer(body, fd),
    sendFile: send,
    sendFileTo: (remoteAddress) => {
      asked.push(remoteAddress)
      return allow
    },
  })
  const port = await listenWithFront(t, server, front)
  const want = body.toString('latin1')
  const two = 'GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n'
  t.same(sized(await exchange(port, [two])).map((r) => r.body === want), [true, true], 'refused: both bodies, copied')
  t.equal(front.stats.sentFromFileBytes, 0, 'nothing from the file')
  allow = true
  t.same(sized(await exchange(port, [two])).map((r) => r.body === want), [true, true], 'allowed: both bodies')
  t.ok(front.stats.sentFromFileBytes > 0, 'from the file')
  t.same(asked, ['127.0.0.1', '127.0.0.1'], 'once per connection, with the peer address')
  t.throws(() => new FastFront({ keepAliveTimeoutMs: 5000, handler: () => undefined, sendFileTo: 'remote' as never }), /options\.sendFileTo/)
})

/** Connects, sends `request` with the socket paused for `pauseMs` (the server's socket fills up), then reads to the end. */
async function slowRead (port: number, request: string, pauseMs: number): Promise<Buffer> {
  const socket = net.connect(port, '127.0.0.1')
  await once(socket, 'connect')
  socket.pause()
  socket.write(request)
  await sleep(pauseMs)
  const parts: Buffer[] = []
  try {
    for await (const chunk of socket) parts.push(chunk as Buffer)
  } finally {
    socket.destroy()
  }
  return Buffer.concat(parts)
}

t.test('sendFile: a body larger than the socket takes goes on from the file, part after part; the next answer waits for it', async (t) => {
  const send = requireZeroCopy().sendHeadFile
  const body = patternBody(24 * 1024 * 1024, 12)
  const fd = await bodyFile(t, body)
  const done: boolean[] = []
  const results: number[] = []
  const h = await startWith(t, (req) => req.target === '/small'
    ? fastAnswer('fast /small')
    : { ...fileAnswer(body, fd, (completed) => { done.push(completed) }), sendFile: (s) => { const r = s(fd, 100); results.push(r); return r } }, 5000, send)
  const got = await slowRead(h.port, 'GET /big HTTP/1.1\r\nHost: a\r\n\r\nGET /small HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n', 200)
  const start = got.indexOf('\r\n\r\n') + 4
  t.ok(got.subarray(start, start + body.length).equals(body), 'every byte, in order')
  t.match(got.subarray(start + body.length).toString('latin1'), /^HTTP\/1\.1 200 OK\r\n[^]*fast \/small\n$/, 'then the pipelined answer, after the whole body')
  const offers = results.length
  t.ok(offers > 1, `sent in parts (${offers} sends)`)
  // The kernel may evict the file's pages meanwhile (this VM's DAMON reclaim does, within
  // seconds): the helper then says -ENODATA and the rest comes from memory, by design.
  const evicted = results.indexOf(-constants.errno.ENODATA)
  if (evicted === -1) {
    // what is not from the file: the probes, one per part, that wait for room in the socket
    t.ok(h.front.stats.sentFromFileBytes >= body.length - offers * SENDFILE_PROBE_BYTES, `${h.front.stats.sentFromFileBytes} of ${body.length} bytes from the file`)
    t.ok(h.front.stats.sentFromFileBytes > body.length / 2, 'most of it')
  } else {
    t.equal(evicted, offers - 1, 'pages evicted mid-body: no part offered to the file after that')
    t.equal(h.front.stats.sentFromFileBytes, results.slice(0, evicted).reduce((sum, r) => sum + Math.max(0, r), 0) - start, 'the parts before it came from the file, the rest from memory')
  }
  t.same(done, [true])
})

t.test('sendFile: when the file is gone mid-body, or its pages are, the rest comes from memory', async (t) => {
  const send = requireZeroCopy().sendHeadFile
  const body = patternBody(24 * 1024 * 1024, 14)
  const fd = await bodyFile(t, body)
  for (const later of [undefined, -constants.errno.ENODATA]) {
    const done: boolean[] = []
    let offers = 0
    const h = await startWith(t, () => ({
      ...fileAnswer(body, fd, (completed) => { done.push(completed) }),
      sendFile: (s) => ++offers === 1 ? s(fd, 100) : later,
    }), 5000, send)
    const got = await slowRead(h.port, 'GET /big HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n', 200)
    t.ok(got.subarray(got.indexOf('\r\n\r\n') + 4).equals(body), `${String(later)}: every byte, in order`)
    t.equal(offers, 2, `${String(later)}: asked once more, then memory`)
    t.ok(h.front.stats.sentFromFileBytes > 0 && h.front.stats.sentFromFileBytes < body.length)
    t.same(done, [true])
  }
})

t.test('sendFile: a client that leaves mid-body: the answer is not completed, once', async (t) => {
  const send = requireZeroCopy().sendHeadFile
  const body = patternBody(24 * 1024 * 1024, 15)
  const fd = await bodyFile(t, body)
  const done: boolean[] = []
  const h = await startWith(t, () => fileAnswer(body, fd, (completed) => { done.push(completed) }), 5000, send)
  const socket = net.connect(h.port, '127.0.0.1')
  await once(socket, 'connect')
  socket.pause()
  socket.write('GET /big HTTP/1.1\r\nHost: a\r\n\r\n')
  await sleep(200)
  socket.resetAndDestroy()
  await until(() => done.length > 0 && h.front.stats.open === 0, 'the front to notice')
  await sleep(50)
  t.same(done, [false])
})

t.test('sendFile: no file at hand, or a refusal, falls back to writing the body', async (t) => {
  const body = patternBody(SENDFILE_MIN_BYTES, 13)
  const fd = await bodyFile(t, body)
  let calls = 0
  const send: SendHeadFile = () => { calls++; return -11 }
  const h = await startWith(t, (req) => fileAnswer(body, fd, undefined, req.target === '/none' ? 'none' : 'refused'), 5000, send)
  const text = await exchange(h.port, ['GET /none HTTP/1.1\r\nHost: a\r\n\r\nGET /refused HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n'])
  t.same(sized(text).map((r) => r.body === body.toString('latin1')), [true, true])
  t.equal(calls, 0, 'the responder decides whether send runs')
  t.equal(h.front.stats.sentFromFileBytes, 0)
})

// ---- medium bodies in one sendmsg (FastFrontOptions.sendHeadBody) ----

const MEDIUM = patternBody(DIRECT_MAX_BYTES, 31)
const LARGE = patternBody(DIRECT_MAX_BYTES + 1, 32)
const JUST_OVER_SMALL = patternBody(SMALL_BODY_BYTES + 1, 33)

/** /medium, /over-small and /large answer those bodies; anything else a small `fast <target>`. */
function sizedHandler (done: boolean[]): FastHandler {
  return (req) => {
    const body = req.target === '/medium' ? MEDIUM : req.target === '/large' ? LARGE : req.target === '/over-small' ? JUST_OVER_SMALL : undefined
    if (body === undefined) return fastAnswer(`fast ${req.target}`, (completed) => { done.push(completed) })
    return { head: `HTTP/1.1 200 OK\r\nX-Target: ${req.target}\r\nContent-Length: ${body.length}\r\n`, body, onDone: (completed) => { done.push(completed) } }
  }
}

function named (text: string): string[] {
  return sized(text).map((r) => r.body === MEDIUM.toString('latin1') ? 'medium' : r.body === LARGE.toString('latin1') ? 'large' : r.body === JUST_OVER_SMALL.toString('latin1') ? 'over-small' : r.body)
}

t.test('sendHeadBody: a medium body leaves in one send, byte for byte; small, large and queued-behind answers take the socket, in order', async (t) => {
  const zc = requireZeroCopy()
  const offered: number[] = []
  const send: SendHeadBody = (fd, head, body) => {
    offered.push(body.length)
    return zc.sendHeadBody(fd, head, body)
  }
  const done: boolean[] = []
  const h = await startWith(t, sizedHandler(done), 5000, undefined, send)

  let text = await exchange(h.port, [get('/medium', 'Connection: close\r\n')])
  t.same(named(text), ['medium'], 'alone: the body, whole')
  t.match(text, /^HTTP\/1\.1 200 OK\r\nX-Target: \/medium\r\nContent-Length: 65536\r\nDate: [^\r]+ GMT\r\nConnection: close\r\n\r\n/, 'the head the front completes')
  t.equal(h.front.stats.sentDirect, 1)
  t.same(offered, [DIRECT_MAX_BYTES])

  // pipelined: the first two go out at once (nothing queued); the small one is corked and the
  // medium answer behind it must not overtake it; the large one never goes direct, and fills the
  // socket's buffer past its mark, so the front waits for 'drain' before the last request, which
  // then finds nothing queued
  text = await exchange(h.port, [get('/medium') + get('/over-small') + get('/small') + get('/medium') + get('/large') + get('/medium', 'Connection: close\r\n')])
  t.same(named(text), ['medium', 'over-small', 'fast /small\n', 'medium', 'large', 'medium'], 'every answer, in request order')
  t.equal(h.front.stats.sentDirect, 4, 'the medium and just-over-small answers with nothing queued ahead')
  t.same(offered, [DIRECT_MAX_BYTES, DIRECT_MAX_BYTES, SMALL_BODY_BYTES + 1, DIRECT_MAX_BYTES], 'no send is tried behind queued bytes, nor for small or large bodies')
  t.same(done, [true, true, true, true, true, true, true], 'onDone once each, completed')
})

t.test('sendHeadBody: what the socket did not take (part of the head, part of the body, nothing) follows through the socket', async (t) => {
  const zc = requireZeroCopy()
  const EMPTY = Buffer.alloc(0)
  const cuts: Record<string, SendHeadBody> = {
    'head cut': (fd, head) => zc.sendHeadBody(fd, head.slice(0, 7), EMPTY),
    'head only': (fd, head) => zc.sendHeadBody(fd, head, EMPTY),
    'body cut': (fd, head, body) => zc.sendHeadBody(fd, head, body.subarray(0, 1000)),
    'all but one byte': (fd, head, body) => zc.sendHeadBody(fd, head, body.subarray(0, body.length - 1)),
    'socket full': () => -constants.errno.EAGAIN,
    'socket broken': () => -constants.errno.EPIPE,
    'head too long for the helper': () => -constants.errno.E2BIG,
  }
  for (const [name, send] of Object.entries(cuts)) {
    const done: boolean[] = []
    const h = await startWith(t, sizedHandler(done), 5000, undefined, send)
    const text = await exchange(h.port, [get('/medium') + get('/small') + get('/medium', 'Connection: close\r\n')])
    t.same(named(text), ['medium', 'fast /small\n', 'medium'], `${name}: every byte, in order`)
    t.equal(text.match(/HTTP\/1\.1 200 OK\r\n/g)?.length, 3, `${name}: three heads, none doubled`)
    t.same(done, [true, true, true], `${name}: onDone once each`)
    t.equal(h.front.stats.sentDirect, name.startsWith('socket') || name.startsWith('head too') ? 0 : 1, `${name}: counted only when bytes went`)
  }
})

t.test('FastResponse.fullHead: a head the responder keeps completed is written as given, for direct sends and the socket alike', async (t) => {
  const calls: Array<[string, boolean]> = []
  const keptHead = (req: FastRequest, body: Buffer): FastResponse => {
    const head = `HTTP/1.1 200 OK\r\nX-Target: ${req.target}\r\nContent-Length: ${body.length}\r\n`
    return {
      head,
      body,
      fullHead (date: string, close: boolean): string {
        calls.push([date, close])
        return `${head}X-Kept: yes\r\nDate: ${date}\r\n${close ? 'Connection: close\r\n' : ''}\r\n`
      },
    }
  }
  const zc = requireZeroCopy()
  const send: SendHeadBody = (fd, head, body) => zc.sendHeadBody(fd, head, body)
  const h = await startWith(t, (req) => keptHead(req, req.target === '/large' ? LARGE : req.target === '/medium' ? MEDIUM : Buffer.from('small')), 5000, undefined, send)
  const text = await exchange(h.port, [get('/medium') + get('/large') + get('/small', 'Connection: close\r\n')])
  t.same(named(text), ['medium', 'large', 'small'])
  t.equal(text.match(/\r\nX-Kept: yes\r\nDate: [^\r]+ GMT\r\n\r\n/g)?.length, 2, 'the kept heads of the medium and large answers, as given')
  t.notMatch(text.split('\r\n\r\n').slice(-2)[0], /X-Kept/, 'a small body is written whole by the front (wire), fullHead not asked')
  t.same(calls.map(([, close]) => close), [false, false])
  t.ok(calls.every(([date]) => / GMT$/.test(date)), 'called with the Date the front adds')
})

t.test('sendHeadBody: answers sent whole are done in request order with the turn\'s socket writes, and complete even if the connection is destroyed right after', async (t) => {
  const zc = requireZeroCopy()
  const order: string[] = []
  const h = await startWith(t, (req) => {
    const body = req.target.startsWith('/medium') ? MEDIUM : Buffer.from(`small ${req.target}`)
    return { head: `HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\n`, body, onDone: (completed) => { order.push(`${req.target} ${String(completed)}`) } }
  }, 5000, undefined, (fd, head, body) => zc.sendHeadBody(fd, head, body))
  // one turn: a direct send, a corked small answer, then a medium one that must queue behind it
  await exchange(h.port, [get('/medium-1') + get('/small') + get('/medium-2') + get('/medium-3', 'Connection: close\r\n')])
  t.same(order, ['/medium-1 true', '/small true', '/medium-2 true', '/medium-3 true'])
  t.equal(h.front.stats.sentDirect >= 1, true)

  // a direct answer, then the connection is destroyed in the same turn (a request node:http
  // would refuse is handed over and answered 400 at once): the direct answer was whole with the kernel
  order.length = 0
  const text = await exchange(h.port, [get('/medium-4') + 'BREW /pot HTTP/1.1\r\nHost: a\r\n\r\n'])
  t.match(text, /^HTTP\/1\.1 200 OK\r\n/)
  await until(() => order.length === 1, 'the direct answer accounted')
  t.same(order, ['/medium-4 true'])
})
