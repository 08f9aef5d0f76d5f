/**
 * IPv4 and IPv6 addresses and CIDR prefixes as bytes (pure, no I/O).
 *
 * IPv4-mapped IPv6 addresses (`::ffff:192.0.2.1`, what a dual-stack socket reports for an
 * IPv4 peer) are treated as the IPv4 address they carry, so one client has one identity
 * whichever way it connected (RFC 4291 §2.5.5.2). Text output is canonical (RFC 5952).
 */

/** 4 or 6. */
export type IpVersion = 4 | 6

/** A parsed address: 4 or 16 network-order bytes and its canonical text. */
export interface IpAddress {
  readonly version: IpVersion
  readonly bytes: Uint8Array
  /** Canonical text: dotted quad, or RFC 5952 IPv6 (lower case, longest zero run as `::`). */
  readonly text: string
}

/** A CIDR prefix: the network bytes (host bits zeroed) and the prefix length. */
export interface Cidr {
  readonly version: IpVersion
  readonly bytes: Uint8Array
  readonly prefixLength: number
  /** Canonical `network/length`. */
  readonly text: string
}

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'))

/**
 * Parses an IPv4 or IPv6 address. Accepts a zone (`fe80::1%eth0`, dropped), brackets
 * (`[2001:db8::1]`) and the port forms proxies put in X-Forwarded-For (`192.0.2.1:5000`,
 * `[2001:db8::1]:5000`). Undefined for anything else.
 */
export function parseIp (input: string): IpAddress | undefined {
  // The hot path (a socket peer, an X-Forwarded-For hop): a plain dotted quad, which is
  // already canonical (no leading zeros are accepted), so it is its own text.
  const quad = ipv4Value(input)
  if (quad >= 0) return { version: 4, bytes: ipv4Bytes(quad), text: input }
  let text = input.trim()
  if (text.startsWith('[')) {
    const close = text.indexOf(']')
    if (close < 0) return undefined
    text = text.slice(1, close)
  } else if (text.indexOf(':') !== text.lastIndexOf(':')) {
    // two or more colons: IPv6 without brackets, no port possible
  } else if (text.includes(':')) {
    text = text.slice(0, text.indexOf(':')) // IPv4 with a port
  }
  const zone = text.indexOf('%')
  if (zone >= 0) text = text.slice(0, zone)
  if (!text.includes(':')) {
    const value = ipv4Value(text)
    if (value < 0) return undefined
    const bytes = ipv4Bytes(value)
    return { version: 4, bytes, text: formatIpv4(bytes) }
  }
  const bytes = parseIpv6Bytes(text)
  if (bytes === undefined) return undefined
  if (isV4Mapped(bytes)) {
    const v4 = bytes.slice(12)
    return { version: 4, bytes: v4, text: formatIpv4(v4) }
  }
  return { version: 6, bytes, text: formatIpv6(bytes) }
}

/**
 * The canonical text of an address, or undefined when it does not parse. The hot path is
 * a plain dotted quad, which is returned as given once checked.
 */
export function normalizeIp (input: string | undefined): string | undefined {
  if (input === undefined || input === '') return undefined
  if (ipv4Value(input) >= 0) return input
  return parseIp(input)?.text
}

/**
 * Whether `input` is a loopback address: 127.0.0.0/8 (RFC 1122 §3.2.1.3), `::1` (RFC 4291
 * §2.5.3), or an IPv4-mapped 127.x. False for anything that does not parse.
 */
export function isLoopback (input: string | undefined): boolean {
  if (input === undefined || input === '') return false
  const ip = parseIp(input)
  if (ip === undefined) return false
  if (ip.version === 4) return ip.bytes[0] === 127
  return ip.bytes[15] === 1 && ip.bytes.subarray(0, 15).every((b) => b === 0)
}

/** Parses `network/length`; a bare address is a host prefix (/32 or /128). Host bits are zeroed. */
export function parseCidr (input: string): Cidr | undefined {
  const text = input.trim()
  const slash = text.indexOf('/')
  const ip = parseIp(slash < 0 ? text : text.slice(0, slash))
  if (ip === undefined) return undefined
  const max = ip.version === 4 ? 32 : 128
  let prefixLength = max
  if (slash >= 0) {
    const lengthText = text.slice(slash + 1)
    if (!/^\d{1,3}$/.test(lengthText)) return undefined
    prefixLength = Number(lengthText)
    // an IPv4-mapped prefix (::ffff:10.0.0.0/104) is the IPv4 prefix it maps
    if (ip.version === 4 && text.slice(0, slash).includes(':')) prefixLength -= 96
    if (prefixLength < 0 || prefixLength > max) return undefined
  }
  const bytes = maskBytes(ip.bytes, prefixLength)
  const network = ip.version === 4 ? formatIpv4(bytes) : formatIpv6(bytes)
  return { version: ip.version, bytes, prefixLength, text: `${network}/${prefixLength}` }
}

/** Copies `bytes` with every bit after `prefixLength` cleared. */
export function maskBytes (bytes: Uint8Array, prefixLength: number): Uint8Array {
  const out = new Uint8Array(bytes.length)
  const full = prefixLength >> 3
  out.set(bytes.subarray(0, full))
  const rest = prefixLength & 7
  if (rest !== 0 && full < bytes.length) out[full] = (bytes[full] ?? 0) & (0xff << (8 - rest))
  return out
}

/** Lower-case hex of the bytes (8 characters for IPv4, 32 for IPv6). */
export function bytesToHex (bytes: Uint8Array): string {
  let out = ''
  for (const byte of bytes) out += HEX[byte]
  return out
}

/** True when `ip` lies inside `cidr`. */
export function cidrContains (cidr: Cidr, ip: IpAddress): boolean {
  if (cidr.version !== ip.version) return false
  const masked = maskBytes(ip.bytes, cidr.prefixLength)
  for (let i = 0; i < masked.length; i++) if (masked[i] !== cidr.bytes[i]) return false
  return true
}

/**
 * The four bytes of an IPv4 address as one signed 32-bit integer (`|0`): a V8 small integer,
 * so a map keyed by it hashes no string and allocates nothing. Use `>>> 0` for the unsigned value.
 */
export function ipv4Int (bytes: Uint8Array): number {
  return (((bytes[0] ?? 0) << 24) | ((bytes[1] ?? 0) << 16) | ((bytes[2] ?? 0) << 8) | (bytes[3] ?? 0)) | 0
}

/** Canonical text of 4 or 16 address bytes. */
export function formatIp (bytes: Uint8Array): string {
  return bytes.length === 4 ? formatIpv4(bytes) : formatIpv6(bytes)
}

/**
 * A dotted quad as an unsigned 32-bit number, or -1 when `text` is not exactly four decimal
 * octets of 0-255 separated by dots. No leading zeros ("010" is octal to some parsers and
 * decimal to others), no signs, spaces or other characters. One pass without a regex or an
 * allocation: it runs for the socket peer and every X-Forwarded-For hop of a request.
 */
export function ipv4Value (text: string): number {
  return ipv4ValueIn(text, 0, text.length)
}

/** {@link ipv4Value} of `text` from `start` to `end` (exclusive), without slicing it out. */
function ipv4ValueIn (text: string, start: number, end: number): number {
  const length = end - start
  if (length < 7 || length > 15) return -1
  let value = 0
  let octet = 0
  let digits = 0
  let parts = 0
  for (let i = start; i <= end; i++) {
    const c = i === end ? 0x2e : text.charCodeAt(i)
    if (c === 0x2e) {
      if (digits === 0 || ++parts > 4) return -1
      value = value * 256 + octet
      octet = 0
      digits = 0
      continue
    }
    const digit = c - 0x30
    if (digit < 0 || digit > 9) return -1
    if (digits > 0 && octet === 0) return -1 // a leading zero
    octet = octet * 10 + digit
    if (octet > 255) return -1
    digits++
  }
  return parts === 4 ? value : -1
}

function ipv4Bytes (value: number): Uint8Array {
  const bytes = new Uint8Array(4)
  bytes[0] = value >>> 24
  bytes[1] = (value >>> 16) & 0xff
  bytes[2] = (value >>> 8) & 0xff
  bytes[3] = value & 0xff
  return bytes
}

/**
 * IPv6 text (RFC 4291 §2.2) in one pass without a regex or a slice: 1-4 hex digits per group,
 * at most one `::`, and a dotted quad (strict, as {@link ipv4Value}) as the last piece. No zone
 * or brackets: the caller strips them. Client addresses in X-Forwarded-For take this path.
 */
function parseIpv6Bytes (text: string): Uint8Array | undefined {
  const length = text.length
  // the longest valid text is six full groups and a full dotted quad: 45 characters
  if (length < 2 || length > 45) return undefined
  const groups = new Uint16Array(8)
  let count = 0
  let gap = -1
  let value = 0
  let digits = 0
  let i = 0
  if (text.charCodeAt(0) === 0x3a) {
    if (text.charCodeAt(1) !== 0x3a) return undefined
    gap = 0
    i = 2
    if (length === 2) return new Uint8Array(16)
  }
  for (; i <= length; i++) {
    const c = i === length ? -1 : text.charCodeAt(i)
    const digit = c >= 0x30 && c <= 0x39 ? c - 0x30 : c >= 0x61 && c <= 0x66 ? c - 0x57 : c >= 0x41 && c <= 0x46 ? c - 0x37 : -1
    if (digit >= 0) {
      if (++digits > 4) return undefined
      value = value * 16 + digit
      continue
    }
    if (c === 0x2e) {
      // the digits so far open a dotted quad, which ends the text (RFC 4291 §2.2, form 3)
      const quad = ipv4ValueIn(text, i - digits, length)
      if (quad < 0 || count > 6) return undefined
      groups[count++] = quad >>> 16
      groups[count++] = quad & 0xffff
      value = 0
      digits = 0
      break
    }
    if (c !== 0x3a && c !== -1) return undefined
    if (digits === 0) {
      // the end right after a `::` (`1::`); any other empty group is malformed
      if (c === -1 && gap === count && i >= 2 && text.charCodeAt(i - 1) === 0x3a) break
      return undefined
    }
    if (count === 8) return undefined
    groups[count++] = value
    value = 0
    digits = 0
    if (c === -1) break
    if (text.charCodeAt(i + 1) === 0x3a) {
      if (gap >= 0) return undefined
      gap = count
      i++
    }
  }
  if (gap < 0 ? count !== 8 : count > 7) return undefined
  const bytes = new Uint8Array(16)
  const tail = gap < 0 ? 0 : count - gap
  for (let k = 0; k < count; k++) {
    const at = gap < 0 || k < gap ? k : 8 - tail + (k - gap)
    bytes[at * 2] = groups[k]! >> 8
    bytes[at * 2 + 1] = groups[k]! & 0xff
  }
  return bytes
}

function isV4Mapped (bytes: Uint8Array): boolean {
  for (let i = 0; i < 10; i++) if (bytes[i] !== 0) return false
  return bytes[10] === 0xff && bytes[11] === 0xff
}

function formatIpv4 (bytes: Uint8Array): string {
  return `${bytes[0] ?? 0}.${bytes[1] ?? 0}.${bytes[2] ?? 0}.${bytes[3] ?? 0}`
}

/** RFC 5952 §4: lower case, no leading zeros, the longest run (≥ 2) of zero groups as `::` (the first of equals). */
function formatIpv6 (bytes: Uint8Array): string {
  let bestStart = -1
  let bestLength = 1
  let runStart = -1
  for (let i = 0; i < 8; i++) {
    if (bytes[i * 2] !== 0 || bytes[i * 2 + 1] !== 0) {
      runStart = -1
      continue
    }
    if (runStart < 0) runStart = i
    if (i - runStart + 1 > bestLength) {
      bestStart = runStart
      bestLength = i - runStart + 1
    }
  }
  let out = ''
  let colon = false
  for (let i = 0; i < 8; i++) {
    if (i === bestStart) {
      out += '::'
      colon = false
      i += bestLength - 1
      continue
    }
    if (colon) out += ':'
    out += (((bytes[i * 2] ?? 0) << 8) | (bytes[i * 2 + 1] ?? 0)).toString(16)
    colon = true
  }
  return out
}
