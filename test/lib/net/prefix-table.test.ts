/**
 * Longest-prefix match: the most specific prefix wins, partial-nibble lengths, both families
 * apart, duplicates refused — checked against a brute-force scan on random data.
 */
import t from 'tap'
import { cidrContains, parseCidr, parseIp, type Cidr } from '../../../lib/net/ip-address.ts'
import { PrefixTable } from '../../../lib/net/prefix-table.ts'

t.test('the most specific prefix wins, in each family', async (t) => {
  const table = new PrefixTable<string>()
  for (const [cidr, value] of [['0.0.0.0/0', 'any4'], ['10.0.0.0/8', 'ten'], ['10.1.0.0/16', 'ten-one'], ['10.1.2.0/23', 'ten-one-two'], ['::/0', 'any6'], ['2001:db8::/32', 'doc'], ['2001:db8:8000::/33', 'doc-high']] as const) {
    t.ok(table.add(parseCidr(cidr)!, value), cidr)
  }
  t.notOk(table.add(parseCidr('10.0.0.0/8')!, 'again'), 'a duplicate is refused')
  t.equal(table.size, 7)
  const expect: Array<[string, string]> = [
    ['10.1.3.4', 'ten-one-two'], ['10.1.4.4', 'ten-one'], ['10.200.0.1', 'ten'], ['192.0.2.1', 'any4'],
    ['2001:db8:8000::1', 'doc-high'], ['2001:db8:7fff::1', 'doc'], ['2001:db9::1', 'any6'], ['::ffff:10.1.2.9', 'ten-one-two'],
  ]
  for (const [ip, value] of expect) t.equal(table.lookup(parseIp(ip)!)?.value, value, `${ip} → ${value}`)
  t.equal(table.lookup(parseIp('10.1.3.4')!)?.cidr.text, '10.1.2.0/23', 'the match names its prefix')
})

t.test('an empty family answers undefined', async (t) => {
  const table = new PrefixTable<number>()
  table.add(parseCidr('192.0.2.0/24')!, 1)
  t.equal(table.lookup(parseIp('2001:db8::1')!), undefined)
  t.equal(table.lookup(parseIp('198.51.100.1')!), undefined)
})

t.test('agrees with a brute-force scan on random prefixes and addresses', async (t) => {
  let seed = 42
  const random = (): number => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0
    return seed
  }
  const table = new PrefixTable<Cidr>()
  const all: Cidr[] = []
  for (let i = 0; i < 400; i++) {
    const a = random()
    const text = `${(a >>> 24) & 0xf}.${(a >>> 16) & 0xff}.${(a >>> 8) & 0xff}.${a & 0xff}/${4 + (random() % 29)}`
    const cidr = parseCidr(text)!
    if (table.add(cidr, cidr)) all.push(cidr)
  }
  let mismatches = 0
  for (let i = 0; i < 5000; i++) {
    const a = random()
    const ip = parseIp(`${(a >>> 24) & 0xf}.${(a >>> 16) & 0xff}.${(a >>> 8) & 0xff}.${a & 0xff}`)!
    const best = all.filter((c) => cidrContains(c, ip)).sort((x, y) => y.prefixLength - x.prefixLength)[0]
    if (table.lookup(ip)?.value !== best) mismatches++
  }
  t.equal(mismatches, 0)
})

t.test('IPv4 lengths at the edges of the integer keys: /0, /1, /31, /32 and the top bit set', async (t) => {
  const table = new PrefixTable<string>()
  for (const [cidr, value] of [['0.0.0.0/0', 'any'], ['128.0.0.0/1', 'upper'], ['255.255.255.254/31', 'top-pair'], ['255.255.255.255/32', 'top'], ['0.0.0.1/32', 'one'], ['203.0.113.7/32', 'host']] as const) {
    t.ok(table.add(parseCidr(cidr)!, value), cidr)
  }
  t.notOk(table.add(parseCidr('255.255.255.255')!, 'again'), 'a /32 added twice is refused')
  const expect: Array<[string, string]> = [
    ['255.255.255.255', 'top'], ['255.255.255.254', 'top-pair'], ['255.255.255.253', 'upper'], ['128.0.0.0', 'upper'],
    ['127.255.255.255', 'any'], ['0.0.0.1', 'one'], ['0.0.0.0', 'any'], ['203.0.113.7', 'host'], ['203.0.113.6', 'upper'],
  ]
  for (const [ip, value] of expect) t.equal(table.lookup(parseIp(ip)!)?.value, value, `${ip} → ${value}`)
})
