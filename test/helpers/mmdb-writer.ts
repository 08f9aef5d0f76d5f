/**
 * A minimal MaxMind DB (MMDB 2.0) writer for GeoIP test fixtures, following the published
 * format (maxmind.github.io/MaxMind-DB): a binary search tree over address bits with 24-bit
 * records, 16 zero bytes, a data section of typed values, then `\xAB\xCD\xEFMaxMind.com` and a
 * metadata map. Enough to write GeoIP2-City-shaped and DB-IP-shaped records for tests.
 */
import { parseCidr } from '../../lib/net/ip-address.ts'

/** A value the data section can hold. */
export type MmdbValue = string | number | boolean | MmdbValue[] | { [key: string]: MmdbValue }

/** One network and its record. */
export interface MmdbEntry {
  /** CIDR (`81.2.69.0/24`, `2a02:c7c::/32`); IPv4 networks go to `::a.b.c.d/96+n` in an IPv6 tree. */
  readonly network: string
  readonly record: { [key: string]: MmdbValue }
}

/** Options of {@link writeMmdb}. */
export interface MmdbOptions {
  readonly ipVersion: 4 | 6
  readonly databaseType: string
  readonly entries: readonly MmdbEntry[]
  readonly buildEpochSeconds?: number
}

type Child = TreeNode | { leaf: number } | undefined
interface TreeNode { left: Child, right: Child, index: number }

/** The bytes of an MMDB file. Entries are inserted in order; a later, more specific network splits an earlier one. */
export function writeMmdb (options: MmdbOptions): Buffer {
  const bits = options.ipVersion === 4 ? 32 : 128
  const data: Buffer[] = []
  let dataLength = 0
  const root: TreeNode = { left: undefined, right: undefined, index: 0 }
  for (const entry of options.entries) {
    const cidr = parseCidr(entry.network)
    if (cidr === undefined) throw new TypeError(`bad network ${entry.network}`)
    let addressBits: number[] = toBits(cidr.bytes)
    let prefix = cidr.prefixLength
    if (cidr.version === 4 && options.ipVersion === 6) {
      addressBits = [...new Array<number>(96).fill(0), ...addressBits]
      prefix += 96
    } else if (cidr.version === 6 && options.ipVersion === 4) {
      throw new TypeError(`IPv6 network ${entry.network} in an IPv4 database`)
    }
    const encoded = encodeValue(entry.record)
    const offset = dataLength
    data.push(encoded)
    dataLength += encoded.length
    insert(root, addressBits.slice(0, prefix), { leaf: offset }, bits)
  }
  const nodes: TreeNode[] = []
  number(root, nodes)
  const nodeCount = nodes.length
  const tree = Buffer.alloc(nodeCount * 6)
  const recordOf = (child: Child): number => {
    if (child === undefined) return nodeCount // "not found"
    if ('leaf' in child) return nodeCount + 16 + child.leaf
    return child.index
  }
  for (const node of nodes) {
    tree.writeUIntBE(recordOf(node.left), node.index * 6, 3)
    tree.writeUIntBE(recordOf(node.right), node.index * 6 + 3, 3)
  }
  const metadata = encodeValue({
    node_count: nodeCount,
    record_size: 24,
    ip_version: options.ipVersion,
    database_type: options.databaseType,
    languages: ['en'],
    binary_format_major_version: 2,
    binary_format_minor_version: 0,
    build_epoch: options.buildEpochSeconds ?? 1_700_000_000,
    description: { en: 'streamedge test fixture' },
  })
  return Buffer.concat([tree, Buffer.alloc(16), ...data, Buffer.from('abcdef4d61784d696e642e636f6d', 'hex'), metadata])
}

function toBits (bytes: Uint8Array): number[] {
  const out: number[] = []
  for (const byte of bytes) for (let i = 7; i >= 0; i--) out.push((byte >> i) & 1)
  return out
}

function insert (root: TreeNode, path: number[], leaf: { leaf: number }, depth: number): void {
  if (path.length === 0) throw new TypeError('a /0 network cannot be written')
  if (path.length > depth) throw new TypeError('network longer than the tree')
  let node = root
  for (let i = 0; i < path.length; i++) {
    const side = path[i] === 0 ? 'left' : 'right'
    if (i === path.length - 1) {
      node[side] = leaf
      return
    }
    let next = node[side]
    if (next === undefined || 'leaf' in next) {
      // split a less specific network: both halves keep its record
      const split: TreeNode = { left: next, right: next, index: -1 }
      node[side] = split
      next = split
    }
    node = next
  }
}

function number (root: TreeNode, out: TreeNode[]): void {
  const queue: TreeNode[] = [root]
  while (queue.length > 0) {
    const node = queue.shift() as TreeNode
    node.index = out.length
    out.push(node)
    for (const child of [node.left, node.right]) if (child !== undefined && !('leaf' in child)) queue.push(child)
  }
}

function encodeValue (value: MmdbValue): Buffer {
  if (typeof value === 'string') {
    const bytes = Buffer.from(value, 'utf8')
    return Buffer.concat([control(2, bytes.length), bytes])
  }
  if (typeof value === 'boolean') return control(14, value ? 1 : 0)
  if (typeof value === 'number') {
    if (Number.isInteger(value) && value >= 0 && value <= 0xffffffff) {
      const bytes = uintBytes(value)
      return Buffer.concat([control(6, bytes.length), bytes])
    }
    const bytes = Buffer.alloc(8)
    bytes.writeDoubleBE(value)
    return Buffer.concat([control(3, 8), bytes])
  }
  if (Array.isArray(value)) return Buffer.concat([control(11, value.length), ...value.map(encodeValue)])
  const entries = Object.entries(value)
  return Buffer.concat([control(7, entries.length), ...entries.flatMap(([k, v]) => [encodeValue(k), encodeValue(v)])])
}

function uintBytes (value: number): Buffer {
  const out: number[] = []
  for (let v = value; v > 0; v = Math.floor(v / 256)) out.unshift(v % 256)
  return Buffer.from(out)
}

/** Control byte(s) for a type and size (types ≥ 8 are "extended": type 0 plus a second byte). */
function control (type: number, size: number): Buffer {
  const parts: number[] = []
  let sizeBits: number
  const extra: number[] = []
  if (size < 29) sizeBits = size
  else if (size < 285) {
    sizeBits = 29
    extra.push(size - 29)
  } else if (size < 65821) {
    sizeBits = 30
    extra.push(((size - 285) >> 8) & 0xff, (size - 285) & 0xff)
  } else throw new TypeError('value too large for the fixture writer')
  if (type < 8) parts.push((type << 5) | sizeBits)
  else parts.push(sizeBits, type - 7)
  return Buffer.from([...parts, ...extra])
}
