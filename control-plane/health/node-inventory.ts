/**
 * The node inventory: every edge and shield the control plane steers to, probes and purges,
 * from a YAML or JSON file.
 *
 *   groups:                          # optional; a group's position defaults to its nodes' mean
 *     eu-central: { fallbacks: [eu-west, us-east] }
 *     isp-berlin: { zoneOnly: true }   # an ISP appliance: only its coverage zones' clients
 *   nodes:
 *     - id: edge-fra-1               # also the HLS pathway id
 *       role: edge                   # edge (steered to) or shield (probed and purged only)
 *       url: https://fra1.cdn.example
 *       group: eu-central
 *       lat: 50.11
 *       lon: 8.68
 *       capacity: { connections: 20000, mbps: 10000 }
 *       state: active                # active | draining (no new sessions) | offline
 */
import { isRecord, Problems, readDataFile } from '../data-file.ts'

/** Node roles. */
export type NodeRole = 'edge' | 'shield'
/** Operator's intent for a node. */
export type AdminState = 'active' | 'draining' | 'offline'

/** One node. */
export interface NodeSpec {
  readonly id: string
  readonly role: NodeRole
  /** Public base URL, without a trailing slash. */
  readonly url: string
  /** `host[:port]` of the URL: what a steering-manifest pathway clone swaps in. */
  readonly host: string
  readonly group: string
  readonly lat: number
  readonly lon: number
  readonly capacity: { readonly connections: number, readonly mbps: number }
  readonly state: AdminState
  /** Bearer token for the node's purge endpoint, if it differs from the shared one. */
  readonly adminToken?: string
}

/** One cache group. */
export interface GroupSpec {
  readonly id: string
  readonly lat: number
  readonly lon: number
  /** Groups to try, in order, when this one has no available node. */
  readonly fallbacks: readonly string[]
  /**
   * Reached only through coverage zones (and explicit fallbacks), never by GeoIP distance:
   * an ISP-hosted appliance serves its own subscribers, not everyone nearby (Traffic
   * Router's per-cache-group localization methods).
   */
  readonly zoneOnly: boolean
}

/** The validated inventory. */
export interface Inventory {
  readonly nodes: readonly NodeSpec[]
  readonly byId: ReadonlyMap<string, NodeSpec>
  readonly groups: ReadonlyMap<string, GroupSpec>
  /** Edge nodes per group, in file order. */
  readonly edgesByGroup: ReadonlyMap<string, readonly NodeSpec[]>
}

const ID_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/
const NODE_KEYS = new Set(['id', 'role', 'url', 'group', 'lat', 'lon', 'capacity', 'state', 'adminToken'])

/** Reads and validates an inventory file. */
export function loadInventory (path: string): Inventory {
  return parseInventory(readDataFile(path, 'nodes'), `Invalid nodes file ${path}:`)
}

/** Validates decoded inventory data; every problem is reported at once. */
export function parseInventory (data: unknown, prefix = 'Invalid nodes:'): Inventory {
  const problems = new Problems(prefix)
  if (!isRecord(data) || !Array.isArray(data['nodes']) || data['nodes'].length === 0) {
    problems.add('nodes', 'a non-empty list of nodes', isRecord(data) ? data['nodes'] : data)
    problems.throwIfAny()
  }
  const record = data as Record<string, unknown>
  const nodes: NodeSpec[] = []
  const ids = new Set<string>()
  ;(record['nodes'] as unknown[]).forEach((entry, i) => {
    const id = isRecord(entry) ? entry['id'] : undefined
    if (typeof id === 'string') {
      if (ids.has(id)) problems.note(`nodes[${i}].id ${id} is used twice`)
      ids.add(id)
    }
    const node = parseNode(entry, `nodes[${i}]`, problems)
    if (node !== undefined) nodes.push(node)
  })
  const groups = parseGroups(record['groups'], nodes, problems)
  problems.throwIfAny()
  const edgesByGroup = new Map<string, NodeSpec[]>()
  for (const node of nodes) {
    if (node.role !== 'edge') continue
    const list = edgesByGroup.get(node.group) ?? []
    list.push(node)
    edgesByGroup.set(node.group, list)
  }
  return { nodes, byId: new Map(nodes.map((n) => [n.id, n])), groups, edgesByGroup }
}

function parseNode (entry: unknown, field: string, problems: Problems): NodeSpec | undefined {
  if (!isRecord(entry)) {
    problems.add(field, 'a mapping', entry)
    return undefined
  }
  const before = problems.count
  for (const key of Object.keys(entry)) {
    if (!NODE_KEYS.has(key)) problems.note(`${field}.${key} is not a node field (${[...NODE_KEYS].join(', ')})`)
  }
  const { id, url, group, lat, lon, capacity, adminToken } = entry
  const role = entry['role'] ?? 'edge'
  const state = entry['state'] ?? 'active'
  if (typeof id !== 'string' || !ID_RE.test(id)) problems.add(`${field}.id`, "1-64 letters, digits, '.', '_' or '-'", id)
  if (role !== 'edge' && role !== 'shield') problems.add(`${field}.role`, 'edge or shield', role)
  const base = typeof url === 'string' && URL.canParse(url) ? new URL(url) : undefined
  if (base === undefined || (base.protocol !== 'http:' && base.protocol !== 'https:') || base.search !== '' || base.hash !== '') {
    problems.add(`${field}.url`, 'an http: or https: base URL without query', url)
  }
  if (typeof group !== 'string' || !ID_RE.test(group)) problems.add(`${field}.group`, 'a cache group id', group)
  if (!inRange(lat, -90, 90)) problems.add(`${field}.lat`, 'a latitude from -90 to 90', lat)
  if (!inRange(lon, -180, 180)) problems.add(`${field}.lon`, 'a longitude from -180 to 180', lon)
  const connections = isRecord(capacity) ? capacity['connections'] : undefined
  const mbps = isRecord(capacity) ? capacity['mbps'] : undefined
  if (!isPositiveInt(connections) || !isPositiveInt(mbps)) {
    problems.add(`${field}.capacity`, '{ connections: N, mbps: N } with positive integers', capacity)
  }
  if (state !== 'active' && state !== 'draining' && state !== 'offline') problems.add(`${field}.state`, 'active, draining or offline', state)
  if (adminToken !== undefined && (typeof adminToken !== 'string' || adminToken === '')) problems.add(`${field}.adminToken`, 'a non-empty string', '(hidden)')
  if (problems.count > before || base === undefined) return undefined
  return {
    id: id as string,
    role: role as NodeRole,
    url: base.href.replace(/\/+$/, ''),
    host: base.host,
    group: group as string,
    lat: lat as number,
    lon: lon as number,
    capacity: { connections: connections as number, mbps: mbps as number },
    state: state as AdminState,
    ...(typeof adminToken === 'string' ? { adminToken } : {}),
  }
}

function parseGroups (value: unknown, nodes: readonly NodeSpec[], problems: Problems): Map<string, GroupSpec> {
  const declared = value === undefined ? {} : value
  if (!isRecord(declared)) {
    problems.add('groups', 'a mapping of group id to { fallbacks, zoneOnly, lat, lon }', value)
    return new Map()
  }
  const ids = new Set([...Object.keys(declared), ...nodes.map((n) => n.group)])
  const groups = new Map<string, GroupSpec>()
  for (const id of ids) {
    const spec = declared[id] ?? {}
    const field = `groups.${id}`
    if (!isRecord(spec)) {
      problems.add(field, 'a mapping with fallbacks, lat and lon', spec)
      continue
    }
    if (!ID_RE.test(id)) problems.add(field, 'named by a cache group id', id)
    const zoneOnly = spec['zoneOnly'] ?? false
    if (typeof zoneOnly !== 'boolean') problems.add(`${field}.zoneOnly`, 'true or false', zoneOnly)
    const fallbacks = spec['fallbacks'] ?? []
    if (!Array.isArray(fallbacks) || !fallbacks.every((f) => typeof f === 'string')) {
      problems.add(`${field}.fallbacks`, 'a list of group ids', fallbacks)
      continue
    }
    for (const f of fallbacks as string[]) {
      if (!ids.has(f)) problems.add(`${field}.fallbacks`, `a list of known groups (${[...ids].join(', ')})`, f)
      if (f === id) problems.note(`${field}.fallbacks lists the group itself`)
    }
    const members = nodes.filter((n) => n.group === id)
    let lat = spec['lat']
    let lon = spec['lon']
    if (lat === undefined && lon === undefined && members.length > 0) {
      lat = members.reduce((sum, n) => sum + n.lat, 0) / members.length
      lon = members.reduce((sum, n) => sum + n.lon, 0) / members.length
    }
    if (!inRange(lat, -90, 90) || !inRange(lon, -180, 180)) {
      problems.add(field, 'given lat and lon (it has no nodes to take them from)', { lat, lon })
      continue
    }
    groups.set(id, { id, lat: lat as number, lon: lon as number, fallbacks: fallbacks as string[], zoneOnly: zoneOnly === true })
  }
  return groups
}

function inRange (value: unknown, min: number, max: number): value is number {
  return typeof value === 'number' && Number.isFinite(value) && value >= min && value <= max
}

function isPositiveInt (value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value > 0
}
