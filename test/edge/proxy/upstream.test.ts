/**
 * HttpUpstream against a raw origin on real sockets: how a body's end is read. A
 * close-delimited body (no Content-Length, not chunked: RFC 9112 §6.3 item 8) ends at the
 * connection's close, so a clean close (FIN) completes it and a reset (ECONNRESET) must fail
 * it; framed bodies and keep-alive reuse are the controls.
 */
import type { Readable } from 'node:stream'
import t, { type Test } from 'tap'
import { isCdnError } from '../../../lib/errors.ts'
import { HttpUpstream, type UpstreamRequest } from '../../../edge/proxy/upstream.ts'
import { rawResponse, sendPart, startRawOrigin, TIMEOUTS, type RawOrigin } from '../../helpers/raw-origin.ts'
import { gate } from '../rfc9111/harness.ts'

const FIELDS = ['content-type: application/octet-stream']
/** Several socket reads' worth. */
const BODY = Buffer.alloc(256 * 1024)
for (let i = 0; i < BODY.length; i++) BODY[i] = (i * 13 + 5) & 0xff
const GET: UpstreamRequest = { method: 'GET', path: '/u.bin', headers: {} }

function upstreamFor (t: Test, origin: RawOrigin): HttpUpstream {
  const upstream = new HttpUpstream({ url: origin.url, name: 'origin', ...TIMEOUTS })
  t.teardown(() => upstream.close())
  return upstream
}

/** Reads `body` to its end or its error; `onChunk` sees the bytes so far after each chunk. */
async function drain (body: Readable, onChunk?: (received: number) => void): Promise<{ bytes: Buffer, error: unknown }> {
  const chunks: Buffer[] = []
  let received = 0
  try {
    for await (const chunk of body as AsyncIterable<Buffer>) {
      chunks.push(chunk)
      received += chunk.length
      onChunk?.(received)
    }
    return { bytes: Buffer.concat(chunks), error: undefined }
  } catch (error) {
    return { bytes: Buffer.concat(chunks), error }
  }
}

t.test('a close-delimited body cut by a reset ends in CDN_ERR_UPSTREAM_TRUNCATED, not in a clean end', async (t) => {
  const cut = gate()
  const origin = await startRawOrigin(t, {
    '/u.bin': sendPart(FIELDS, BODY, 1000, () => cut.promise, (socket) => { socket.resetAndDestroy() }),
  })
  const res = await upstreamFor(t, origin).request(GET)
  t.equal(res.status, 200)
  t.equal(res.headers['content-length'], undefined, 'close-delimited')
  t.equal(res.headers['transfer-encoding'], undefined, 'close-delimited')
  // reset only once the bytes before it are read: a reset that finds bytes unread in the
  // socket reads as a clean close at the socket already (libuv reports EOF on POLLHUP)
  const { bytes, error } = await drain(res.body, (received) => { if (received >= 1000) cut.open() })
  t.ok(isCdnError(error, 'CDN_ERR_UPSTREAM_TRUNCATED'), `the body failed (${String(error)})`)
  t.match(error, { message: /ECONNRESET/, cause: { code: 'ECONNRESET' } }, 'the error names the reset')
  t.ok(bytes.equals(BODY.subarray(0, 1000)), `the bytes the origin sent, and no more (${bytes.length})`)
})

t.test('a close-delimited body ended by a clean close (FIN) is complete', async (t) => {
  const origin = await startRawOrigin(t, { '/u.bin': (_req, socket) => { socket.end(rawResponse(200, FIELDS, BODY, 'none')) } })
  const upstream = upstreamFor(t, origin)
  for (const label of ['first', 'second']) {
    const res = await upstream.request(GET)
    t.equal(res.headers['content-length'], undefined, `${label}: close-delimited`)
    const { bytes, error } = await drain(res.body)
    t.equal(error, undefined, `${label}: no error`)
    t.ok(bytes.equals(BODY), `${label}: the whole body (${bytes.length} of ${BODY.length} bytes)`)
  }
  t.equal(origin.connections, 2, 'each on a connection of its own')
})

t.test('framed bodies (Content-Length, chunked) complete, and one kept-alive connection carries them all', async (t) => {
  const origin = await startRawOrigin(t, {
    '/len.bin': (_req, socket) => { socket.write(rawResponse(200, FIELDS, BODY)) },
    '/chunked.bin': (_req, socket) => {
      socket.write(rawResponse(200, [...FIELDS, 'transfer-encoding: chunked'], '5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n', 'none'))
    },
  })
  const upstream = upstreamFor(t, origin)
  for (let i = 0; i < 3; i++) {
    for (const [path, body] of [['/len.bin', BODY], ['/chunked.bin', Buffer.from('hello world')]] as const) {
      const { bytes, error } = await drain((await upstream.request({ ...GET, path })).body)
      t.equal(error, undefined, `${path} #${i}: no error`)
      t.ok(bytes.equals(body), `${path} #${i}: the whole body`)
      // undici takes a connection back one event-loop turn after a response ends
      await new Promise((resolve) => setImmediate(resolve))
    }
  }
  t.equal(origin.connections, 1, 'the connection was reused for all six')
})

t.test('a reset before the response head is still a failure to reach the upstream', async (t) => {
  const origin = await startRawOrigin(t, { '/u.bin': (_req, socket) => { socket.resetAndDestroy() } })
  await t.rejects(upstreamFor(t, origin).request(GET), { code: 'CDN_ERR_UPSTREAM_CONNECT' })
})
