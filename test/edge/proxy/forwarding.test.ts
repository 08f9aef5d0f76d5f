/**
 * Via (RFC 9110 §7.6.3), CDN-Loop (RFC 8586) and X-Forwarded-For across tiers:
 * unit checks of the Forwarding rules, then real nodes chained edge → edge → origin,
 * and a node whose upstream is itself (a loop).
 */
import http from 'node:http'
import t from 'tap'
import { Forwarding, MAX_CDN_HOPS } from '../../../edge/proxy/forwarding.ts'
import { HttpUpstream } from '../../../edge/proxy/upstream.ts'
import { CACHE_NODE_DEFAULTS } from '../../../edge/cache-node.ts'
import { fetchRaw } from '../../helpers/http-client.ts'
import { startTestNode } from '../../helpers/cache-node.ts'
import { startScriptedOrigin } from '../../helpers/scripted-origin.ts'

function fakeRequest (headers: http.IncomingHttpHeaders, remoteAddress: string): http.IncomingMessage {
  return { headers, socket: { remoteAddress } } as unknown as http.IncomingMessage
}

t.test('Forwarding: names must be tokens; options are checked once', async (t) => {
  t.throws(() => new Forwarding({ name: 'has space', trustedProxies: [] }), /options\.name to be a token/)
  t.throws(() => new Forwarding({ name: 'ok', trustedProxies: ['nonsense'] }), /options\.trustedProxies\[0\] to be an IP address or CIDR prefix/)
})

t.test('RFC 8586 §2: our own name in CDN-Loop, or too many hops, is a loop', async (t) => {
  const f = new Forwarding({ name: 'streamedge-e1', trustedProxies: [] })
  t.notOk(f.isLoop(fakeRequest({}, '192.0.2.1')))
  t.notOk(f.isLoop(fakeRequest({ 'cdn-loop': 'othercdn, streamedge-e2' }, '192.0.2.1')))
  t.ok(f.isLoop(fakeRequest({ 'cdn-loop': 'othercdn, streamedge-e1' }, '192.0.2.1')))
  t.ok(f.isLoop(fakeRequest({ 'cdn-loop': 'streamedge-e1; trace="abc"' }, '192.0.2.1')), 'parameters after the cdn-id are ignored')
  t.notOk(f.isLoop(fakeRequest({ 'cdn-loop': 'streamedge-e10' }, '192.0.2.1')), 'a longer name is not ours')
  const many = Array.from({ length: MAX_CDN_HOPS + 1 }, (_, i) => `cdn${i}`).join(', ')
  t.ok(f.isLoop(fakeRequest({ 'cdn-loop': many }, '192.0.2.1')), 'a runaway chain is refused')
})

t.test('X-Forwarded-For: believed only from trusted proxies', async (t) => {
  const f = new Forwarding({ name: 'n', trustedProxies: ['10.0.0.0/8'] })
  const direct = fakeRequest({ 'x-forwarded-for': '203.0.113.9' }, '198.51.100.7')
  t.equal(f.clientOf(direct), '198.51.100.7', 'an untrusted peer cannot claim another address')
  t.same(f.upstreamHeaders(direct), { via: '1.1 n', 'cdn-loop': 'n', 'x-forwarded-for': '198.51.100.7' }, 'its claim is dropped upstream')
  const viaLb = fakeRequest({ 'x-forwarded-for': '203.0.113.9', via: '1.1 lb', 'cdn-loop': 'lbcdn' }, '10.1.2.3')
  t.equal(f.clientOf(viaLb), '203.0.113.9')
  t.same(f.upstreamHeaders(viaLb), { via: '1.1 lb, 1.1 n', 'cdn-loop': 'lbcdn, n', 'x-forwarded-for': '203.0.113.9, 10.1.2.3' })
  t.equal(f.clientOf(fakeRequest({}, '::ffff:10.9.9.9')), '10.9.9.9', 'IPv4-mapped addresses are the IPv4 address')
})

t.test('edge → edge → origin: Via and CDN-Loop grow per hop, X-Forwarded-For carries the client, responses carry Via', async (t) => {
  const origin = await startScriptedOrigin(t)
  origin.script('/doc', { status: 200, headers: { 'cache-control': 'max-age=60' }, body: 'hello' })
  const inner = await startTestNode(t, { id: 'inner', origin: origin.url, trustedProxies: ['127.0.0.1'] })
  const outer = await startTestNode(t, { id: 'outer', origin: inner.url })
  const res = await fetchRaw(outer.url + '/doc')
  t.equal(res.status, 200)
  const seen = origin.last('/doc')!
  t.equal(seen.headers.via, '1.1 streamedge-outer, 1.1 streamedge-inner')
  t.equal(seen.headers['cdn-loop'], 'streamedge-outer, streamedge-inner')
  t.equal(seen.headers['x-forwarded-for'], '127.0.0.1, 127.0.0.1', 'client (the test) then the outer edge')
  t.equal(res.headers.via, '1.1 streamedge-inner, 1.1 streamedge-outer', 'the response names each tier it passed')
  t.match(res.headers['cache-status'], /^streamedge-inner; fwd=uri-miss; fwd-status=200; stored, streamedge-outer; fwd=uri-miss; fwd-status=200; stored$/,
    'RFC 9211 §2: each tier appends its entry, nearest the origin first')
})

t.test('a node whose upstream leads back to itself answers 508 instead of looping', async (t) => {
  // Find a free port, then start a node whose origin is that same port.
  const probe = http.createServer()
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve))
  const port = (probe.address() as { port: number }).port
  await new Promise<void>((resolve) => probe.close(() => resolve()))
  const self = `http://127.0.0.1:${port}`
  const node = await startTestNode(t, {
    id: 'looper',
    listen: { host: '127.0.0.1', port },
    upstream: new HttpUpstream({ url: self, ...CACHE_NODE_DEFAULTS.upstreamTimeouts }),
  })
  const res = await fetchRaw(node.url + '/anything.ts')
  t.equal(res.status, 508)
  t.match(res.headers['cache-status'], /detail=loop/)
  t.ok(node.logs.some((l) => l.msg === 'request loop refused'), 'the loop is logged')
})
