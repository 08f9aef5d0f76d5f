/**
 * Longest-prefix match over IPv4 and IPv6 CIDR prefixes (coverage zones, trusted proxies).
 *
 * One hash map per prefix length in use, probed from the longest length down: a lookup
 * costs one map probe per distinct length (at most 33 or 129, a handful in practice), which
 * beats a bit-by-bit trie walk in JavaScript and allocates only the address's hex string.
 */
import { bytesToHex, type Cidr, type IpAddress, type IpVersion } from './ip-address.ts'

/** What a lookup found: the value and the prefix that matched. */
export interface PrefixMatch<T> {
  readonly value: T
  readonly cidr: Cidr
}

interface Family<T> {
  /** Prefix lengths in use, longest first. */
  lengths: number[]
  readonly byLength: Map<number, Map<string, PrefixMatch<T>>>
}

/** A set of CIDR prefixes with a value each; the most specific prefix wins. */
export class PrefixTable<T> {
  readonly #families: Record<IpVersion, Family<T>> = {
    4: { lengths: [], byLength: new Map() },
    6: { lengths: [], byLength: new Map() },
  }

  #size = 0

  /** Number of prefixes. */
  get size (): number {
    return this.#size
  }

  /** Adds a prefix; a prefix added twice keeps the first value (callers report duplicates). Returns false then. */
  add (cidr: Cidr, value: T): boolean {
    const family = this.#families[cidr.version]
    let table = family.byLength.get(cidr.prefixLength)
    if (table === undefined) {
      table = new Map()
      family.byLength.set(cidr.prefixLength, table)
      family.lengths = [...family.byLength.keys()].sort((a, b) => b - a)
    }
    const key = keyOf(bytesToHex(cidr.bytes), cidr.prefixLength)
    if (table.has(key)) return false
    table.set(key, { value, cidr })
    this.#size++
    return true
  }

  /** The value of the longest prefix containing `ip`, or undefined. */
  lookup (ip: IpAddress): PrefixMatch<T> | undefined {
    const family = this.#families[ip.version]
    if (family.lengths.length === 0) return undefined
    const hex = bytesToHex(ip.bytes)
    for (const length of family.lengths) {
      const found = family.byLength.get(length)?.get(keyOf(hex, length))
      if (found !== undefined) return found
    }
    return undefined
  }
}

/** The first `length` bits of the address as hex: whole nibbles, then the partial nibble masked. */
function keyOf (hex: string, length: number): string {
  const nibbles = length >> 2
  const rest = length & 3
  if (rest === 0) return hex.slice(0, nibbles)
  const partial = parseInt(hex.charAt(nibbles), 16) & (0xf << (4 - rest))
  return hex.slice(0, nibbles) + partial.toString(16)
}
