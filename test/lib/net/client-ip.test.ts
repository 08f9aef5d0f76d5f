/**
 * Client addresses: X-Forwarded-For only from trusted proxies, walked from the right past
 * every trusted hop; spoofed entries on the left are ignored.
 */
import t from 'tap'
import { ClientIpResolver } from '../../../lib/net/client-ip.ts'

t.test('X-Forwarded-For is believed only from trusted proxies', async (t) => {
  const resolver = new ClientIpResolver(['127.0.0.1', '10.0.0.0/8', 'fd00::/8'])
  const cases: Array<[string, string | string[] | undefined, string, string]> = [
    ['198.51.100.7', '203.0.113.9', '198.51.100.7', 'socket'],
    ['127.0.0.1', undefined, '127.0.0.1', 'socket'],
    ['127.0.0.1', '203.0.113.9', '203.0.113.9', 'x-forwarded-for'],
    ['::ffff:127.0.0.1', '203.0.113.9', '203.0.113.9', 'x-forwarded-for'],
    ['127.0.0.1', '1.1.1.1, 203.0.113.9, 10.0.0.5', '203.0.113.9', 'x-forwarded-for'],
    ['127.0.0.1', ['6.6.6.6', '203.0.113.9, 10.1.1.1'], '203.0.113.9', 'x-forwarded-for'],
    ['127.0.0.1', '10.0.0.4, 10.0.0.5', '10.0.0.4', 'x-forwarded-for'],
    ['127.0.0.1', 'garbage, 203.0.113.9', '203.0.113.9', 'x-forwarded-for'],
    ['127.0.0.1', '203.0.113.9, garbage', '127.0.0.1', 'socket'],
    ['127.0.0.1', '203.0.113.9:4711', '203.0.113.9', 'x-forwarded-for'],
    ['fd00::1', '[2001:db8::42]:443', '2001:db8::42', 'x-forwarded-for'],
  ]
  for (const [peer, xff, ip, source] of cases) {
    t.match(resolver.resolve(peer, xff), { ip: { text: ip }, source }, `${peer} + ${JSON.stringify(xff)} → ${ip}`)
  }
  t.equal(resolver.resolve(undefined, '1.2.3.4'), undefined)
  t.match(new ClientIpResolver([]).resolve('127.0.0.1', '203.0.113.9'), { ip: { text: '127.0.0.1' }, source: 'socket' }, 'no trusted proxies: the socket')
  t.throws(() => new ClientIpResolver(['10.0.0.0/99'], 'controlPlane.trustedProxies'), /controlPlane\.trustedProxies\[0\]/)
})

t.test('the remembered peer never leaks into the next request: alternating peers, one-hop headers, unusable peers', async (t) => {
  const resolver = new ClientIpResolver(['127.0.0.1'])
  const sequence: Array<[string | undefined, string | undefined, string | undefined, string | undefined]> = [
    ['127.0.0.1', '203.0.113.9', '203.0.113.9', 'x-forwarded-for'],
    ['198.51.100.7', '203.0.113.9', '198.51.100.7', 'socket'],
    ['127.0.0.1', '203.0.113.10', '203.0.113.10', 'x-forwarded-for'],
    ['127.0.0.1', 'garbage', '127.0.0.1', 'socket'],
    ['not-an-ip', '203.0.113.9', undefined, undefined],
    ['127.0.0.1', ' 203.0.113.11 ', '203.0.113.11', 'x-forwarded-for'],
    ['not-an-ip', undefined, undefined, undefined],
    ['198.51.100.7', undefined, '198.51.100.7', 'socket'],
    ['127.0.0.1', '2001:DB8::1', '2001:db8::1', 'x-forwarded-for'],
  ]
  for (const [peer, xff, ip, source] of sequence) {
    const got = resolver.resolve(peer, xff)
    if (ip === undefined) t.equal(got, undefined, `${peer}: unusable`)
    else t.match(got, { ip: { text: ip }, source }, `${peer} + ${JSON.stringify(xff)} → ${ip}`)
  }
})
