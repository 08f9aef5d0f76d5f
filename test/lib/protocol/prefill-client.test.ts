/**
 * The prefill/inventory client against a real HTTP server standing in for a node: what each
 * call sends, what it reads back, and an error that says what went wrong for every way a node
 * can fail (refused, hung, stalled or cut mid-body, error statuses, non-JSON, wrong shape).
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import t, { type Test } from 'tap'
import { cancelPrefillJob, getInventory, getPrefillJob, startPrefill, type NodeAdmin } from '../../../lib/protocol/prefill-client.ts'
import type { InventoryReport, PrefillJobStatus } from '../../../lib/protocol/prefill.ts'

interface Received {
  readonly method: string
  readonly path: string
  readonly authorization: string | undefined
  readonly contentType: string | undefined
  readonly body: string
}

type Handler = (req: IncomingMessage, res: ServerResponse) => void

/** A node on 127.0.0.1:0 that records every request and answers with `handler`. */
async function fakeNode (t: Test, handler: Handler): Promise<{ url: string, received: Received[] }> {
  const received: Received[] = []
  const server = createServer((req, res) => {
    let body = ''
    req.setEncoding('utf8')
    req.on('data', (chunk: string) => { body += chunk })
    req.on('end', () => {
      received.push({ method: req.method ?? '', path: req.url ?? '', authorization: req.headers.authorization, contentType: req.headers['content-type'], body })
      handler(req, res)
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(async () => {
    server.closeAllConnections()
    await new Promise((resolve) => server.close(resolve))
  })
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, received }
}

const send = (status: number, body: unknown, type = 'application/json'): Handler => (_req, res) => {
  res.writeHead(status, { 'content-type': type })
  res.end(typeof body === 'string' ? body : JSON.stringify(body))
}

const admin = (url: string, timeoutMs = 5000): NodeAdmin => ({ url, token: 'node-admin-token', timeoutMs })

function status (over: Partial<PrefillJobStatus> = {}): PrefillJobStatus {
  return {
    id: 'job-1', state: 'running', titles: ['/vod/t1/'], createdAtMs: 1_700_000_000_000, updatedAtMs: 1_700_000_001_000,
    playlists: 2, segmentsTotal: 40, segmentsDone: 10, segmentsFilled: 8, segmentsCached: 2, segmentsFailed: 0,
    bytes: 123_456, bytesPerSecond: 0, errors: [], ...over,
  }
}

const INVENTORY: InventoryReport = { v: 1, node: 'edge-1', generatedAtMs: 1_700_000_002_000, titles: [{ title: '/vod/t1/', segments: 40 }, { title: '/live/ch1/', segments: 3 }] }

t.test('startPrefill: POST /admin/prefill with the request as JSON, the job status back', async (t) => {
  const node = await fakeNode(t, send(202, status({ state: 'waiting' })))
  const answer = await startPrefill(admin(node.url), { titles: ['/vod/t1/'], renditions: 'highest', window: '01:00-05:00' })
  t.same(answer, { ok: true, value: status({ state: 'waiting' }) })
  t.same(node.received, [{
    method: 'POST', path: '/admin/prefill', authorization: 'Bearer node-admin-token', contentType: 'application/json',
    body: JSON.stringify({ titles: ['/vod/t1/'], renditions: 'highest', window: '01:00-05:00' }),
  }])
})

t.test('getPrefillJob and cancelPrefillJob: the job id is one path segment, whatever it holds', async (t) => {
  const node = await fakeNode(t, (req, res) => send(200, status({ state: req.method === 'DELETE' ? 'cancelled' : 'done', finishedAtMs: 1_700_000_009_000 }))(req, res))
  const got = await getPrefillJob(admin(node.url), 'job-1')
  t.equal(got.ok, true)
  t.equal(got.ok && got.value.state, 'done')
  t.equal(got.ok && got.value.finishedAtMs, 1_700_000_009_000)
  const cancelled = await cancelPrefillJob(admin(node.url), 'job-1')
  t.equal(cancelled.ok && cancelled.value.state, 'cancelled')
  await getPrefillJob(admin(node.url), 'a/b ?#c')
  t.same(node.received.map((r) => [r.method, r.path, r.contentType, r.body]), [
    ['GET', '/admin/prefill/job-1', undefined, ''],
    ['DELETE', '/admin/prefill/job-1', undefined, ''],
    ['GET', '/admin/prefill/a%2Fb%20%3F%23c', undefined, ''],
  ], 'no body and no content-type without a body; slashes, spaces, ? and # are escaped')
  t.ok(node.received.every((r) => r.authorization === 'Bearer node-admin-token'))
})

t.test('getInventory: GET /admin/inventory, the report back', async (t) => {
  const node = await fakeNode(t, send(200, INVENTORY))
  t.same(await getInventory(admin(`${node.url}/`)), { ok: true, value: INVENTORY }, 'a base URL with a trailing slash works too')
  t.same(node.received.map((r) => `${r.method} ${r.path}`), ['GET /admin/inventory'])
})

t.test('error statuses: the status, and the node\'s own error message when it gave one', async (t) => {
  const node = await fakeNode(t, (req, res) => {
    if (req.url === '/admin/prefill') return send(401, { error: 'missing or wrong admin token' })(req, res)
    if (req.url === '/admin/prefill/gone') return send(404, { error: 42 })(req, res)
    if (req.url === '/admin/prefill/null') return send(409, null)(req, res)
    return send(503, '<html>Service Unavailable</html>', 'text/html')(req, res)
  })
  t.same(await startPrefill(admin(node.url), { titles: ['/vod/t1/'] }), { ok: false, status: 401, error: 'HTTP 401: missing or wrong admin token' })
  t.same(await getPrefillJob(admin(node.url), 'gone'), { ok: false, status: 404, error: 'HTTP 404' }, 'an error field that is not a string is left out')
  t.same(await cancelPrefillJob(admin(node.url), 'null'), { ok: false, status: 409, error: 'HTTP 409' }, 'a JSON null body')
  t.same(await getInventory(admin(node.url)), { ok: false, status: 503, error: 'HTTP 503 with a body that is not JSON' })
})

t.test('a 2xx that is not what the protocol says is an unexpected answer naming the field', async (t) => {
  const node = await fakeNode(t, (req, res) => {
    if (req.url === '/admin/inventory') return send(200, { ...INVENTORY, v: 2 })(req, res)
    if (req.url === '/admin/prefill/text') return send(200, 'ok', 'text/plain')(req, res)
    return send(202, { ...status(), state: 'paused' })(req, res)
  })
  t.same(await startPrefill(admin(node.url), { titles: ['/vod/t1/'] }), { ok: false, status: 202, error: 'unexpected answer: state must be one of waiting, running, done, failed, cancelled' })
  t.same(await getInventory(admin(node.url)), { ok: false, status: 200, error: 'unexpected answer: v must be 1' })
  t.same(await getPrefillJob(admin(node.url), 'text'), { ok: false, status: 200, error: 'HTTP 200 with a body that is not JSON' })
})

t.test('nothing listening: the connection error code', async (t) => {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  await new Promise((resolve) => server.close(resolve))
  t.same(await getInventory(admin(url)), { ok: false, error: 'ECONNREFUSED' })
  t.same(await startPrefill(admin(url), { titles: ['/vod/t1/'] }), { ok: false, error: 'ECONNREFUSED' })
})

t.test('a node that never answers: each call gives up after its own timeout', async (t) => {
  let hang = true
  const node = await fakeNode(t, (req, res) => {
    if (!hang) send(200, INVENTORY)(req, res)
  })
  t.same(await getInventory(admin(node.url, 200)), { ok: false, error: 'no answer within 200 ms' })
  t.same(await startPrefill(admin(node.url, 150), { titles: ['/vod/t1/'] }), { ok: false, error: 'no answer within 150 ms' })
  hang = false
  t.same(await getInventory(admin(node.url, 5000)), { ok: true, value: INVENTORY }, 'the next call is not hurt by the last one\'s timeout')
})

t.test('a body that stalls or breaks off after the status line is said to, not called "not JSON"', async (t) => {
  const node = await fakeNode(t, (req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' })
    // cut: the connection dies once the head and half the body are on the wire
    res.write('{"v":1,"node":"edge-1",', () => { if (req.url === '/admin/prefill/cut') res.socket?.destroy() })
  })
  t.same(await getInventory(admin(node.url, 200)), { ok: false, status: 200, error: 'HTTP 200 but the body did not arrive within 200 ms' })
  const cut = await getPrefillJob(admin(node.url), 'cut')
  t.equal(cut.ok, false)
  t.equal(!cut.ok && cut.status, 200)
  t.match(!cut.ok && cut.error, /^HTTP 200 but the body broke off: \S/)
  t.notMatch(!cut.ok && cut.error, /not JSON/)
})
