/**
 * ResponseReader: one response read off a raw socket, with the head, first body byte and
 * end timestamped in the caller's clock.
 */
import { once } from 'node:events'
import http from 'node:http'
import { connect, type AddressInfo } from 'node:net'
import t from 'tap'
import { ResponseReader } from '../../../bench/lib/response-reader.ts'

t.test('a head split over chunks, then the body: times, bytes and the end at Content-Length', async (t) => {
  const r = new ResponseReader(100)
  t.equal(r.feed(Buffer.from('HTTP/1.1 200 OK\r\nContent-Le'), 101), 0)
  t.equal(r.head, undefined)
  t.equal(r.headAt, undefined)
  t.equal(r.feed(Buffer.from('ngth: 5\r\nCache-Status: edge; hit\r\n\r\n'), 102), 0, 'a head with no body bytes yet')
  t.equal(r.head?.status, 200)
  t.equal(r.head?.headers['cache-status'], 'edge; hit')
  t.equal(r.headAt, 102)
  t.equal(r.firstByteAt, undefined)
  t.equal(r.feed(Buffer.from('ab'), 103), 2)
  t.equal(r.firstByteAt, 103)
  t.equal(r.doneAt, undefined)
  t.equal(r.feed(Buffer.from('cde'), 104), 3)
  t.equal(r.bodyBytes, 5)
  t.equal(r.doneAt, 104)
  t.equal(r.sentAt, 100)
})

t.test('head and body in one chunk; an empty body is done with the head; no Content-Length never ends', async (t) => {
  const one = new ResponseReader(0)
  t.equal(one.feed(Buffer.from('HTTP/1.1 206 Partial Content\r\nContent-Length: 3\r\n\r\nxyz'), 7), 3)
  t.same([one.headAt, one.firstByteAt, one.doneAt, one.bodyBytes], [7, 7, 7, 3])
  const empty = new ResponseReader(0)
  empty.feed(Buffer.from('HTTP/1.1 304 Not Modified\r\nContent-Length: 0\r\n\r\n'), 9)
  t.same([empty.firstByteAt, empty.doneAt], [undefined, 9])
  const open = new ResponseReader(0)
  open.feed(Buffer.from('HTTP/1.1 200 OK\r\n\r\nbody'), 1)
  t.equal(open.bodyBytes, 4)
  t.equal(open.doneAt, undefined)
})

t.test('the times are read-only from outside: only feed sets them', async (t) => {
  const r = new ResponseReader(10)
  r.feed(Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx'), 11)
  const writable = r as unknown as Record<'sentAt' | 'headAt' | 'firstByteAt' | 'doneAt', number>
  for (const field of ['sentAt', 'headAt', 'firstByteAt', 'doneAt'] as const) {
    t.throws(() => { writable[field] = 99 }, TypeError, `${field} cannot be assigned`)
  }
  t.same([r.sentAt, r.headAt, r.firstByteAt, r.doneAt], [10, 11, 11, 11], 'unchanged')
  // @ts-expect-error: the type says so too
  t.throws(() => { r.doneAt = 1 }, TypeError)
})

t.test('a malformed head throws TypeError', async (t) => {
  t.throws(() => new ResponseReader(0).feed(Buffer.from('SSH-2.0-OpenSSH\r\n\r\n'), 1), TypeError)
  t.throws(() => new ResponseReader(0).feed(Buffer.from('HTTP/1.1 200 OK\r\nno colon\r\n\r\n'), 1), TypeError)
})

t.test('reads a real response off a socket', async (t) => {
  const body = Buffer.alloc(200_000, 7)
  const server = http.createServer((_req, res) => res.end(body))
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => { server.closeAllConnections(); server.close() })
  const socket = connect({ host: '127.0.0.1', port: (server.address() as AddressInfo).port })
  t.teardown(() => socket.destroy())
  await once(socket, 'connect')
  const reader = new ResponseReader(performance.now())
  const done = new Promise<void>((resolve, reject) => {
    socket.on('data', (chunk: Buffer) => {
      reader.feed(chunk, performance.now())
      if (reader.doneAt !== undefined) resolve()
    })
    socket.once('close', () => reject(new Error('closed before the body was complete')))
  })
  socket.write('GET /x HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n')
  await done
  t.equal(reader.head?.status, 200)
  t.equal(reader.bodyBytes, body.length)
  t.ok(reader.headAt! >= reader.sentAt && reader.firstByteAt! >= reader.headAt! && reader.doneAt! >= reader.firstByteAt!, 'in order')
})
