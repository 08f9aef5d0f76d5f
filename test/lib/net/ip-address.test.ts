/**
 * Address and CIDR parsing: canonical forms (RFC 5952), IPv4-mapped addresses treated as
 * IPv4, the forms proxies write into X-Forwarded-For, and refusals.
 */
import t from 'tap'
import { cidrContains, normalizeIp, parseCidr, parseIp } from '../../../lib/net/ip-address.ts'

t.test('addresses parse to canonical text', async (t) => {
  const cases: Array<[string, string, 4 | 6]> = [
    ['192.0.2.1', '192.0.2.1', 4],
    [' 192.0.2.1 ', '192.0.2.1', 4],
    ['192.0.2.1:5000', '192.0.2.1', 4],
    ['::ffff:192.0.2.1', '192.0.2.1', 4],
    ['::FFFF:c000:0201', '192.0.2.1', 4],
    ['2001:DB8:0:0:0:0:0:1', '2001:db8::1', 6],
    ['2001:db8::0:1', '2001:db8::1', 6],
    ['[2001:db8::1]:443', '2001:db8::1', 6],
    ['fe80::1%eth0', 'fe80::1', 6],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1', 6],
    ['2001:0:0:1:0:0:0:1', '2001:0:0:1::1', 6],
    ['::', '::', 6],
    ['::1', '::1', 6],
    ['1:2:3:4:5:6:7:8', '1:2:3:4:5:6:7:8', 6],
    ['64:ff9b::192.0.2.33', '64:ff9b::c000:221', 6],
  ]
  for (const [input, text, version] of cases) {
    const ip = parseIp(input)
    t.equal(ip?.text, text, `${input} → ${text}`)
    t.equal(ip?.version, version, `${input} is IPv${version}`)
  }
})

t.test('bad addresses are refused', async (t) => {
  for (const bad of ['', 'x', '1.2.3', '1.2.3.4.5', '256.1.1.1', '01.2.3.4', '1.2.3.-4', '1::2::3', '1:2:3:4:5:6:7:8:9', '12345::', 'g::1', '[::1', 'unknown', '1.2.3.4/24']) {
    t.equal(parseIp(bad), undefined, JSON.stringify(bad))
  }
})

t.test('normalizeIp takes the dotted-quad fast path and canonicalises the rest', async (t) => {
  t.equal(normalizeIp('203.0.113.9'), '203.0.113.9')
  t.equal(normalizeIp('::ffff:203.0.113.9'), '203.0.113.9')
  t.equal(normalizeIp('2001:0db8::0001'), '2001:db8::1')
  t.equal(normalizeIp(undefined), undefined)
  t.equal(normalizeIp('nope'), undefined)
})

t.test('CIDR prefixes are masked and contain what they should', async (t) => {
  t.equal(parseCidr('10.1.2.3/8')?.text, '10.0.0.0/8')
  t.equal(parseCidr('2001:db8:abcd::1/33')?.text, '2001:db8:8000::/33')
  t.equal(parseCidr('192.0.2.7')?.text, '192.0.2.7/32')
  t.equal(parseCidr('::ffff:10.0.0.0/104')?.text, '10.0.0.0/8', 'IPv4-mapped prefix is the IPv4 prefix')
  t.equal(parseCidr('0.0.0.0/0')?.text, '0.0.0.0/0')
  for (const bad of ['10.0.0.0/33', '::/129', '10.0.0.0/x', '10.0.0.0/', 'x/8', '10.0.0.0/-1']) t.equal(parseCidr(bad), undefined, bad)
  const net = parseCidr('100.64.0.0/10')!
  t.ok(cidrContains(net, parseIp('100.127.255.255')!))
  t.notOk(cidrContains(net, parseIp('100.128.0.0')!))
  t.notOk(cidrContains(net, parseIp('2001:db8::1')!), 'other family')
})
