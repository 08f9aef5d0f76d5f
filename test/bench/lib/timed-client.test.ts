/**
 * TimedClient: one request on one raw connection against real loopback servers, timed from
 * the write; done on the last body byte or on the first failure, whichever comes first.
 */
import { once } from 'node:events'
import http from 'node:http'
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net'
import t, { type Test } from 'tap'
import { TimedClient } from '../../../bench/lib/timed-client.ts'

async function listen (t: Test, server: http.Server | Server): Promise<number> {
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => {
    if (server instanceof http.Server) server.closeAllConnections()
    server.close()
  })
  return (server.address() as AddressInfo).port
}

async function connected (t: Test, port: number): Promise<Socket> {
  const socket = connect({ host: '127.0.0.1', port })
  t.teardown(() => socket.destroy())
  await once(socket, 'connect')
  return socket
}

/** A raw server that answers every connection with `answer` once the request has arrived. */
function rawServer (answer: (socket: Socket) => void): Server {
  return createServer((socket) => {
    socket.on('error', () => {})
    socket.once('data', () => answer(socket))
  })
}

const REQUEST = 'GET /x HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n'

t.test('a whole response: status, ordered times, body bytes, and the socket closed', async (t) => {
  const body = Buffer.alloc(300_000, 1)
  const port = await listen(t, http.createServer((_req, res) => res.end(body)))
  const socket = await connected(t, port)
  const client = new TimedClient(socket)
  t.equal(client.doneAt, undefined, 'nothing sent yet')
  client.send(REQUEST)
  await client.done
  const r = client.result()
  t.equal(r.status, 200)
  t.equal(r.bodyBytes, body.length)
  t.equal(r.error, undefined)
  t.ok(r.headMs! >= 0 && r.firstByteMs! >= r.headMs! && r.totalMs! >= r.firstByteMs!, 'head, first byte, end in order')
  t.type(client.doneAt, 'number', 'the absolute end time is known')
  t.ok(socket.destroyed, 'the connection is closed once the body is complete')
})

t.test('a close before the body is complete is an error with what arrived so far', async (t) => {
  const port = await listen(t, rawServer((socket) => socket.end('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc')))
  const client = new TimedClient(await connected(t, port))
  client.send(Buffer.from(REQUEST))
  await client.done
  const r = client.result()
  t.equal(r.status, 200)
  t.equal(r.bodyBytes, 3)
  t.equal(r.totalMs, undefined)
  t.equal(client.doneAt, undefined)
  t.equal(r.error, 'connection closed before the body was complete')
})

t.test('a malformed head fails the client with the parser\'s message', async (t) => {
  const port = await listen(t, rawServer((socket) => socket.write('SSH-2.0-OpenSSH\r\n\r\n')))
  const socket = await connected(t, port)
  const client = new TimedClient(socket)
  client.send(REQUEST)
  await client.done
  t.match(client.result().error, /^Expected an HTTP\/1\.x status line, got "SSH-2\.0-OpenSSH"/)
  t.equal(client.result().status, undefined)
  t.ok(socket.destroyed)
})

t.test('abort: the first reason wins, and a finished client stays finished', async (t) => {
  const port = await listen(t, rawServer(() => {})) // never answers
  const socket = await connected(t, port)
  const client = new TimedClient(socket)
  client.send(REQUEST)
  client.abort('timeout')
  await client.done
  t.equal(client.result().error, 'timeout', 'not the close that the abort caused')
  t.ok(socket.destroyed)

  const port2 = await listen(t, http.createServer((_req, res) => res.end('ok')))
  const done = new TimedClient(await connected(t, port2))
  done.send(REQUEST)
  await done.done
  done.abort('too late')
  t.equal(done.result().error, undefined)
  t.equal(done.result().bodyBytes, 2)
})

t.test('a socket still connecting: a refused connection is an error, no request needed', async (t) => {
  const probe = createServer().listen(0, '127.0.0.1')
  await once(probe, 'listening')
  const { port } = probe.address() as AddressInfo
  probe.close() // the port is free again: connecting to it is refused
  await once(probe, 'close')
  const client = new TimedClient(connect({ host: '127.0.0.1', port }))
  await client.done
  t.match(client.result().error, /ECONNREFUSED/)
  t.equal(client.result().bodyBytes, 0)
})
