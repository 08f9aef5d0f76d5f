/**
 * Address and CIDR parsing: canonical forms (RFC 5952), IPv4-mapped addresses treated as
 * IPv4, the forms proxies write into X-Forwarded-For, and refusals.
 */
import t from 'tap'
import { cidrContains, ipv4Int, ipv4Value, isLoopback, normalizeIp, parseCidr, parseIp } from '../../../lib/net/ip-address.ts'

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
    // dotted IPv4 tails
    ['::ffff:1.2.3.4', '1.2.3.4', 4],
    ['::FFFF:255.255.255.255', '255.255.255.255', 4],
    ['0:0:0:0:0:ffff:10.0.0.1', '10.0.0.1', 4],
    ['[::ffff:192.0.2.1]:443', '192.0.2.1', 4],
    ['::ffff:192.0.2.1%eth0', '192.0.2.1', 4],
    ['::1.2.3.4', '::102:304', 6],
    ['1:2:3:4:5:6:1.2.3.4', '1:2:3:4:5:6:102:304', 6],
    ['1:2:3:4:5::0.0.0.0', '1:2:3:4:5::', 6],
    ['ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255', 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', 6],
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

t.test('dotted quads: the one-pass parser keeps the old policy on malformed input', async (t) => {
  const good: Array<[string, number]> = [
    ['0.0.0.0', 0],
    ['255.255.255.255', 0xffffffff],
    ['192.0.2.1', 0xc0000201],
    ['10.0.0.10', 0x0a00000a],
    ['100.200.0.99', (100 * 2 ** 24) + (200 * 2 ** 16) + 99],
  ]
  for (const [text, value] of good) {
    t.equal(ipv4Value(text), value, `${text} = ${value}`)
    const ip = parseIp(text)
    t.equal(ip?.text, text, `${text} is its own canonical text`)
    t.same([...(ip?.bytes ?? [])], [value >>> 24, (value >>> 16) & 255, (value >>> 8) & 255, value & 255], `${text} bytes`)
  }
  const bad = [
    // leading zeros: refused, as before ("010" is octal to some parsers)
    '01.2.3.4', '1.02.3.4', '1.2.3.004', '00.0.0.0', '0.0.0.00',
    // out-of-range octets
    '256.0.0.0', '1.2.3.256', '999.1.1.1', '1.2.1000.1', '4294967295.0.0.0',
    // too many or too few parts, empty parts
    '1.2.3', '1.2.3.4.5', '1..3.4', '.1.2.3', '1.2.3.', '1.2.3.4.', '....', '1.2.3.4.5.6.7.8',
    // trailing or embedded junk
    '1.2.3.4x', '1.2.3.4 x', 'x1.2.3.4', '1.2.3.4/24', '1.2.3.-4', '1.2.+3.4', '1.2.3.4\u0000', '١.٢.٣.٤', '1.2.3.0x4', '1e2.0.0.1',
  ]
  for (const text of bad) {
    t.equal(ipv4Value(text), -1, `ipv4Value(${JSON.stringify(text)})`)
    t.equal(parseIp(text), undefined, `parseIp(${JSON.stringify(text)})`)
    t.equal(normalizeIp(text), undefined, `normalizeIp(${JSON.stringify(text)})`)
  }
  t.equal(ipv4Value(' 1.2.3.4'), -1, 'the bare parser takes no white space')
  t.equal(ipv4Value('1.2.3.4\n'), -1)
  t.equal(parseIp(' 1.2.3.4\t')?.text, '1.2.3.4', 'parseIp trims them, as before')
  t.equal(parseIp('1.2.3.4:80')?.text, '1.2.3.4', 'and strips a port')
  t.equal(parseIp('1.2.3.04:80'), undefined, 'but not a leading zero behind a port')
  t.equal(parseIp('::ffff:1.2.3.04'), undefined, 'nor inside an IPv4-mapped address')
  t.equal(parseIp('::ffff:1.2.3.256'), undefined, 'nor an out-of-range octet there')
})

t.test('normalizeIp takes the dotted-quad fast path and canonicalises the rest', async (t) => {
  t.equal(normalizeIp('203.0.113.9'), '203.0.113.9')
  t.equal(normalizeIp('::ffff:203.0.113.9'), '203.0.113.9')
  t.equal(normalizeIp('2001:0db8::0001'), '2001:db8::1')
  t.equal(normalizeIp(undefined), undefined)
  t.equal(normalizeIp('nope'), undefined)
})

t.test('ipv4Int is the signed 32-bit form of ipv4Value', async (t) => {
  for (const text of ['0.0.0.0', '10.1.2.3', '127.255.255.255', '128.0.0.0', '203.0.113.9', '255.255.255.255']) {
    const value = ipv4Int(parseIp(text)!.bytes)
    t.equal(value, ipv4Value(text) | 0, text)
    t.equal(value >>> 0, ipv4Value(text), `${text} unsigned`)
  }
  t.equal(ipv4Int(parseIp('255.255.255.255')!.bytes), -1, 'the top bit makes it negative')
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

/**
 * The regex-based IPv6 parser and the formatter as they were before the one-pass versions
 * (the parser verbatim but for its IPv4 piece, which is checked by a regex of the same
 * policy here, and a dotted quad accepted as the last piece only): the reference the one-pass
 * parser must agree with, dotted tails included.
 */
function referenceIpv6 (text: string): string | undefined {
  if (text.length > 45 || !/^[0-9A-Fa-f:.]+$/.test(text)) return undefined
  const doubleColon = text.indexOf('::')
  if (doubleColon !== text.lastIndexOf('::') && doubleColon >= 0) return undefined
  // a dotted quad only as the text's last piece (RFC 4291 §2.2 form 3): not before a `::`
  const side = (part: string, last: boolean): number[] | undefined => {
    if (part === '') return []
    const out: number[] = []
    const pieces = part.split(':')
    for (let i = 0; i < pieces.length; i++) {
      const piece = pieces[i]!
      if (last && i === pieces.length - 1 && piece.includes('.')) {
        const quad = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(piece)
        if (quad === null || quad.slice(1).some((o) => Number(o) > 255 || (o.length > 1 && o.startsWith('0')))) return undefined
        const [a, b, c, d] = quad.slice(1).map(Number) as [number, number, number, number]
        out.push((a << 8) | b, (c << 8) | d)
        continue
      }
      if (!/^[0-9A-Fa-f]{1,4}$/.test(piece)) return undefined
      out.push(parseInt(piece, 16))
    }
    return out
  }
  let groups: number[]
  if (doubleColon < 0) {
    const all = side(text, true)
    if (all === undefined || all.length !== 8) return undefined
    groups = all
  } else {
    const head = side(text.slice(0, doubleColon), false)
    const tail = side(text.slice(doubleColon + 2), true)
    if (head === undefined || tail === undefined || head.length + tail.length > 7) return undefined
    groups = [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail]
  }
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) return `${groups[6]! >> 8}.${groups[6]! & 0xff}.${groups[7]! >> 8}.${groups[7]! & 0xff}`
  let bestStart = -1
  let bestLength = 1
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) { i++; continue }
    let j = i
    while (j < 8 && groups[j] === 0) j++
    if (j - i > bestLength) { bestStart = i; bestLength = j - i }
    i = j
  }
  const hex = groups.map((g) => g.toString(16))
  if (bestStart < 0) return hex.join(':')
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLength).join(':')}`
}

t.test('IPv6 texts parse and print as the regex reference does, on random and malformed input with and without dotted tails', async (t) => {
  let seed = 7
  const random = (n: number): number => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0
    return seed % n
  }
  const group = (): string => {
    const kind = random(6)
    if (kind < 2) return '0'
    const hex = (random(0x10000)).toString(16)
    return kind === 2 ? hex.toUpperCase() : kind === 3 ? hex.padStart(4, '0') : hex
  }
  const octet = (): string => {
    const kind = random(10)
    return kind === 0 ? String(256 + random(700)) : kind === 1 ? `0${random(10)}` : String(random(256))
  }
  const quad = (): string => Array.from({ length: random(8) === 0 ? 3 : 4 }, octet).join('.')
  const texts: string[] = ['::', '::1', '1::', '::ffff:1.2.3.4', '1:2:3:4:5:6:7::', '::2:3:4:5:6:7:8', '1:2:3:4:5:6:7:8', '1:0:0:2:0:0:0:3', '0:0:1:0:0:1:0:0',
    ':::', '1:::2', ':1', '1:', '1::2::3', '1:2:3:4:5:6:7:8:9', '1:2:3:4::5:6:7:8', '12345::', 'g::1', '1:2', '::1:', ':1::', '00000::1', '1:2:3:4:5:6:1.2.3.4', '::1.2.3',
    '1:2:3:4:5:6:7:1.2.3.4', '1:2:3:4:5:6::1.2.3.4', '1.2.3.4::', '1.2.3.4::5.6.7.8', '1.2.3.4:5::', '::ffff:1.2.3.4::', '::.1.2.3', '::12345.1.1.1']
  for (let n = 0; n < 6000; n++) {
    // a third of them end in a dotted quad, valid or not (a leading zero, an octet past 255, three parts)
    const dotted = random(3) === 0
    const groups = Array.from({ length: dotted ? 6 : 8 }, group)
    if (dotted) groups.push(quad())
    const form = random(4)
    if (form === 0) {
      texts.push(groups.join(':'))
    } else {
      const from = random(groups.length)
      const to = from + random(groups.length - from + 1)
      texts.push(`${groups.slice(0, from).join(':')}::${groups.slice(to).join(':')}`)
    }
    // a random mutation now and then: a character dropped, doubled or replaced
    const last = texts[texts.length - 1]!
    if (random(5) === 0) {
      const at = random(last.length)
      const op = random(3)
      texts.push(op === 0 ? last.slice(0, at) + last.slice(at + 1) : op === 1 ? last.slice(0, at) + last[at] + last.slice(at) : `${last.slice(0, at)}${':x.0'[random(4)]}${last.slice(at + 1)}`)
    }
  }
  let mismatches = 0
  for (const text of texts) {
    const want = referenceIpv6(text)
    const got = text.includes(':') ? parseIp(text)?.text : undefined
    if (got !== want) {
      mismatches++
      if (mismatches <= 5) t.fail(`${JSON.stringify(text)}: got ${String(got)}, want ${String(want)}`)
    }
  }
  t.equal(mismatches, 0, `${texts.length} texts agree`)
})

t.test('a dotted IPv4 tail (valid ones above) is the last piece, strict like a bare dotted quad', async (t) => {
  const bad = [
    '::ffff:1.2.3', '::ffff:1.2.3.4.5', '::ffff:01.2.3.4', '::ffff:1.2.3.256', '::ffff:1.2.3.', '::ffff:.1.2.3', '::ffff:1..2.3',
    '::ffff:1.2.3.4:5', '1.2.3.4:5::', '1.2.3.4:56:7', '1:1.2.3.4:56', '::ffff:1.2.3.4:56', '::ffff:1.2.3.4::', '1.2.3.4::5.6.7.8::', '::1.2.3.4:1.2.3.4', '::12345.1.1.1', '::a.1.2.3', ':1.2.3.4',
    '1:2:3:4:5:6:7:1.2.3.4', '1:2:3:4:5:6::1.2.3.4', '1:2:3:4:5:1.2.3.4', 'ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.2555',
    // RFC 4291 puts it last only (versions before this one took it in front of a `::` too)
    '1.2.3.4::', '1.2.3.4::5.6.7.8', '1.2.3.4::1',
  ]
  for (const text of bad) t.equal(parseIp(text), undefined, JSON.stringify(text))
  t.equal(parseCidr('::ffff:10.1.0.0/112')?.text, '10.1.0.0/16', 'a mapped prefix written with a dotted tail')
})

t.test('isLoopback: 127.0.0.0/8, ::1 and mapped 127.x, nothing else', async (t) => {
  for (const text of ['127.0.0.1', '127.255.255.254', '127.0.0.1:8080', '::1', '[::1]', '[::1]:443', '0:0:0:0:0:0:0:1', '::ffff:127.0.0.1', '::ffff:7f00:1']) {
    t.equal(isLoopback(text), true, text)
  }
  for (const text of [undefined, '', '128.0.0.1', '126.255.255.255', '10.0.0.1', '192.0.2.1', '::', '::2', '::1:0', '1::1', 'fe80::1', '::ffff:10.0.0.1', '::127.0.0.1', 'localhost', '127.0.0', 'garbage']) {
    t.equal(isLoopback(text), false, String(text))
  }
})
