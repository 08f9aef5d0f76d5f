/**
 * Heartbeats: report validation, the signature scheme (constant-time, replay window), and the
 * client against a real HTTP server: signed POSTs on a timer, Mbps from the byte counter, a
 * final `ready: false` on stop, and failures that never throw.
 */
import { once } from 'node:events'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import { HeartbeatClient } from '../../../lib/protocol/heartbeat-client.ts'
import {
  HEARTBEAT_PATH, parseNodeReport, SIGNATURE_HEADER, signReport, verifyReportSignature, type NodeReport
} from '../../../lib/protocol/node-report.ts'

const KEY = 'heartbeat-shared-key'
const report: NodeReport = { v: 1, id: 'edge-1', role: 'edge', ready: true, connections: 12, egressMbps: 3.5, memoryFill: 0.5, sentAtMs: 1_700_000_000_000 }

t.test('reports are validated field by field', async (t) => {
  t.same(parseNodeReport(report), { ok: true, report })
  const bad: Array<[unknown, RegExp]> = [
    [null, /JSON object/],
    [{ ...report, v: 2 }, /^v must be 1/],
    [{ ...report, id: 'bad id' }, /^id/],
    [{ ...report, role: 'origin' }, /^role/],
    [{ ...report, ready: 'yes' }, /^ready/],
    [{ ...report, connections: -1 }, /^connections/],
    [{ ...report, connections: 1.5 }, /^connections/],
    [{ ...report, egressMbps: Number.NaN }, /^egressMbps/],
    [{ ...report, diskFill: 1.5 }, /^diskFill/],
    [{ ...report, sentAtMs: 'now' }, /^sentAtMs/],
  ]
  for (const [value, message] of bad) {
    const parsed = parseNodeReport(value)
    t.notOk(parsed.ok)
    if (!parsed.ok) t.match(parsed.error, message)
  }
})

t.test('signatures: valid within the replay window only, for the exact body and key', async (t) => {
  const body = JSON.stringify(report)
  const now = 1_700_000_000_000
  const header = signReport(body, KEY, now)
  t.match(header, /^t=\d+,v1=[0-9a-f]{64}$/)
  t.ok(verifyReportSignature(header, body, KEY, now + 1000))
  t.notOk(verifyReportSignature(header, body, KEY, now + 6 * 60_000), 'too old')
  t.notOk(verifyReportSignature(header, body, KEY, now - 6 * 60_000), 'from the future')
  t.notOk(verifyReportSignature(header, body.replace('12', '13'), KEY, now), 'body changed')
  t.notOk(verifyReportSignature(header, body, 'other-key', now), 'wrong key')
  t.notOk(verifyReportSignature(undefined, body, KEY, now))
  t.notOk(verifyReportSignature('t=1,v1=zz', body, KEY, now))
  t.notOk(verifyReportSignature(header.replace(/v1=./, 'v1=0'), body, KEY, now), 'one hex digit changed')
})

interface Received { readonly report: NodeReport, readonly signed: boolean }

async function controlPlaneStub (t: { teardown (fn: () => unknown): void }, status = 204): Promise<{ url: string, received: Received[] }> {
  const received: Received[] = []
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString()
      if (req.url === HEARTBEAT_PATH && req.method === 'POST') {
        const sig = req.headers[SIGNATURE_HEADER]
        const parsed = JSON.parse(body) as NodeReport
        // the client under test runs on a fake clock: judge the signature at the report's own time
        received.push({ report: parsed, signed: verifyReportSignature(typeof sig === 'string' ? sig : undefined, body, KEY, parsed.sentAtMs) })
      }
      res.writeHead(status)
      res.end()
    })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())))
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, received }
}

t.test('the client posts signed reports on a timer and a final not-ready report on stop', async (t) => {
  const stub = await controlPlaneStub(t)
  let bytes = 0
  let clock = 1_000_000
  const client = new HeartbeatClient({
    controlPlaneUrl: stub.url,
    key: KEY,
    nodeId: 'edge-1',
    role: 'edge',
    intervalMs: 20,
    sample: () => ({ ready: true, connections: 7, egressBytesTotal: bytes, diskFill: 0.25 }),
    now: () => clock,
  })
  t.equal(await client.sendNow(), 'sent', 'first report')
  bytes += 125_000_000 // 1 Gbit over the next second
  clock += 1000
  t.equal(await client.sendNow(), 'sent')
  t.equal(stub.received[1]?.report.egressMbps, 1000, 'Mbps from the byte counter delta')
  client.start()
  const deadline = Date.now() + 5000
  while (stub.received.length < 5 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10))
  await client.stop()
  t.ok(stub.received.length >= 5, `reports keep coming (${stub.received.length})`)
  t.ok(stub.received.every((r) => r.signed), 'every report is signed with the shared key')
  t.same(stub.received[0]?.report, { v: 1, id: 'edge-1', role: 'edge', ready: true, connections: 7, egressMbps: 0, diskFill: 0.25, sentAtMs: 1_000_000 })
  t.equal(stub.received.at(-1)?.report.ready, false, 'the last report says not ready')
  const count = stub.received.length
  await new Promise((resolve) => setTimeout(resolve, 80))
  t.equal(stub.received.length, count, 'nothing after stop')
})

t.test('a rejecting or absent control plane is reported, never thrown', async (t) => {
  const stub = await controlPlaneStub(t, 401)
  const options = { key: KEY, nodeId: 'edge-1', role: 'edge' as const, intervalMs: 1000, sample: () => ({ ready: true, connections: 0, egressBytesTotal: 0 }) }
  t.equal(await new HeartbeatClient({ ...options, controlPlaneUrl: stub.url }).sendNow(), 'rejected')
  const closed = http.createServer()
  closed.listen(0, '127.0.0.1')
  await once(closed, 'listening')
  const port = (closed.address() as AddressInfo).port
  await new Promise<void>((resolve) => closed.close(() => resolve()))
  t.equal(await new HeartbeatClient({ ...options, controlPlaneUrl: `http://127.0.0.1:${port}` }).sendNow(), 'failed')
  t.equal(await new HeartbeatClient({ ...options, controlPlaneUrl: stub.url, sample: () => { throw new Error('boom') } }).sendNow(), 'failed')
  t.throws(() => new HeartbeatClient({ ...options, controlPlaneUrl: 'nope' }), TypeError)
  t.throws(() => new HeartbeatClient({ ...options, controlPlaneUrl: stub.url, intervalMs: 0 }), TypeError)
})
