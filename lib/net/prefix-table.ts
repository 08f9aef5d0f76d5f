/**
 * Longest-prefix match over IPv4 and IPv6 CIDR prefixes (coverage zones, trusted proxies).
 *
 * One hash map per prefix length in use, probed from the longest length down: a lookup
 * costs one map probe per distinct length (at most 33 or 129, a handful in practice), which
 * beats a bit-by-bit trie walk in JavaScript. IPv4 prefixes are keyed by their network bits
 * as a small integer, so an IPv4 lookup allocates nothing and hashes no string (it runs for
 * the socket peer and every X-Forwarded-For hop of a request); IPv6 ones by a hex string.
 */
import { bytesToHex, ipv4Int, type Cidr, type IpAddress } from './ip-address.ts'

/** What a lookup found: the value and the prefix that matched. */
export interface PrefixMatch<T> {
  readonly value: T
  readonly cidr: Cidr
}

interface Family<K, T> {
  /** Prefix lengths in use, longest first. */
  lengths: number[]
  /** The table of each length, by length (sparse). */
  readonly byLength: Array<Map<K, PrefixMatch<T>> | undefined>
}

/** A set of CIDR prefixes with a value each; the most specific prefix wins. */
export class PrefixTable<T> {
  readonly #v4: Family<number, T> = { lengths: [], byLength: [] }
  readonly #v6: Family<string, T> = { lengths: [], byLength: [] }
  #size = 0

  /** Number of prefixes. */
  get size (): number {
    return this.#size
  }

  /** Adds a prefix; a prefix added twice keeps the first value (callers report duplicates). Returns false then. */
  add (cidr: Cidr, value: T): boolean {
    const length = cidr.prefixLength
    const added = cidr.version === 4
      ? addTo(this.#v4, length, v4Key(ipv4Int(cidr.bytes), length), { value, cidr })
      : addTo(this.#v6, length, keyOf(bytesToHex(cidr.bytes), length), { value, cidr })
    if (added) this.#size++
    return added
  }

  /** The value of the longest prefix containing `ip`, or undefined. */
  lookup (ip: IpAddress): PrefixMatch<T> | undefined {
    if (ip.version === 4) {
      const family = this.#v4
      if (family.lengths.length === 0) return undefined
      const value = ipv4Int(ip.bytes)
      for (const length of family.lengths) {
        const found = family.byLength[length]?.get(v4Key(value, length))
        if (found !== undefined) return found
      }
      return undefined
    }
    const family = this.#v6
    if (family.lengths.length === 0) return undefined
    const hex = bytesToHex(ip.bytes)
    for (const length of family.lengths) {
      const found = family.byLength[length]?.get(keyOf(hex, length))
      if (found !== undefined) return found
    }
    return undefined
  }
}

function addTo<K, T> (family: Family<K, T>, length: number, key: K, match: PrefixMatch<T>): boolean {
  let table = family.byLength[length]
  if (table === undefined) {
    table = new Map()
    family.byLength[length] = table
    family.lengths = [...family.lengths, length].sort((a, b) => b - a)
  }
  if (table.has(key)) return false
  table.set(key, match)
  return true
}

/**
 * The first `length` bits of an IPv4 address as a signed 32-bit integer (a V8 small
 * integer, cheap to hash), unique within one length's table. `value` may be signed
 * (ipv4Int): `>>>` reads it as unsigned 32 bits first. `>>> 32` would not shift.
 */
function v4Key (value: number, length: number): number {
  return length === 0 ? 0 : (value >>> (32 - length)) | 0
}

/** The first `length` bits of the address as hex: whole nibbles, then the partial nibble masked. */
function keyOf (hex: string, length: number): string {
  const nibbles = length >> 2
  const rest = length & 3
  if (rest === 0) return hex.slice(0, nibbles)
  const partial = parseInt(hex.charAt(nibbles), 16) & (0xf << (4 - rest))
  return hex.slice(0, nibbles) + partial.toString(16)
}
