/**
 * One policy engine, three encodings: the steering decision for a request, as data the HTTP
 * layer renders as a 302, as explained JSON (`?format=json`), or as an HLS steering manifest.
 *
 * Per request: locate the client (zones → GeoIP → unknown policy) → licensing rule for the
 * path → plan for (client prefix, title) from the decision cache → pick a node with live
 * health and bounded load → sign a token for the title bound to the licence decision.
 */
import { randomBytes } from 'node:crypto'
import type { ClientAddress } from '../geo/client-ip.ts'
import type { ClientLocation, Locator } from '../geo/locator.ts'
import type { HealthTracker } from '../health/health-tracker.ts'
import type { Inventory, NodeSpec } from '../health/node-inventory.ts'
import type { LicenceDenyReason, LicensingRules } from '../licensing/licensing-rules.ts'
import { isSafePath, TOKEN_PATH_SEGMENT, type TokenClaims, type TokenSigner, type TokenVerifier } from '../../lib/protocol/token.ts'
import { PATHWAY_ID_RE, type SteeringManifest } from '../../lib/protocol/steering.ts'
import type { DecisionCache } from './decision-cache.ts'
import { orderGroups, pickNode, planFor, rankPathways, withDistances, type CandidateExplain, type GroupOrder, type SteeringPlan } from './selector.ts'
import { buildSteeringManifest } from './steering-manifest.ts'
import { preferHolders } from '../title-inventory.ts'

/** Options of {@link SteeringService}. */
export interface SteeringServiceOptions {
  readonly inventory: () => Inventory
  readonly licensing: () => LicensingRules
  readonly health: HealthTracker
  readonly locator: Locator
  readonly cache: DecisionCache<SteeringPlan>
  readonly signer: TokenSigner
  readonly verifier: TokenVerifier
  readonly tokenTtlSeconds: number
  /** Bind tokens to the client IP. */
  readonly bindIp: boolean
  /** Bounded-load ε. */
  readonly slack: number
  readonly manifestTtlSeconds: number
  readonly maxPathways: number
  /** Nodes that already hold a title (control-plane/title-inventory.ts): preferred within their group. */
  readonly holders?: (title: string) => ReadonlySet<string>
  readonly now?: () => number
}

/** What the decision was based on (the `?format=json` body minus the outcome). */
export interface SteerExplain {
  readonly client: { readonly ip: string | undefined, readonly source: ClientAddress['source'] | 'none' }
  readonly location: ClientLocation
  readonly path: string
  readonly title: string
  readonly licence: { readonly rule: string | undefined, readonly allowed: boolean, readonly reason?: LicenceDenyReason }
  readonly cache: 'hit' | 'miss' | 'none'
  readonly candidates: readonly CandidateExplain[]
}

/** The outcome of one steering request. */
export type SteerDecision =
  | { readonly kind: 'redirect', readonly node: NodeSpec, readonly group: string, readonly location: string, readonly token: string, readonly claims: Omit<TokenClaims, 'kid'>, readonly explain: SteerExplain }
  | { readonly kind: 'denied-licence', readonly reason: LicenceDenyReason, readonly rule: string, readonly country: string | undefined, readonly explain: SteerExplain }
  | { readonly kind: 'denied-unknown-geo', readonly explain: SteerExplain }
  | { readonly kind: 'no-node', readonly explain: SteerExplain }
  | { readonly kind: 'bad-request', readonly message: string }

/** The outcome of a steering-manifest request. */
export type ManifestOutcome =
  | { readonly kind: 'manifest', readonly manifest: SteeringManifest, readonly title: string }
  | { readonly kind: 'invalid-session', readonly message: string }

/** Query of a steering-manifest request. */
export interface ManifestQuery {
  readonly token: string | undefined
  readonly title: string | undefined
  readonly pathway: string | undefined
  /** The URL the player should reload (built by the HTTP layer from the public URL and the query). */
  readonly reloadUri: string
}

/** Decides steering requests. */
export class SteeringService {
  readonly #o: SteeringServiceOptions
  readonly #now: () => number
  // Session ids: a random per-instance prefix and a counter (randomBytes per request costs more
  // than the rest of the token); unique per instance, which is all logs need.
  readonly #sidPrefix = randomBytes(4).toString('base64url')
  #sidCounter = 0
  // Group order per client prefix (it depends only on where the client is and the inventory).
  readonly #orders = new Map<string, GroupOrder>()
  #ordersFor: Inventory | undefined

  constructor (options: SteeringServiceOptions) {
    if (!Number.isSafeInteger(options.tokenTtlSeconds) || options.tokenTtlSeconds < 1) throw new TypeError(`Expected options.tokenTtlSeconds to be a positive integer, got ${String(options.tokenTtlSeconds)}`)
    if (!(options.slack >= 0)) throw new TypeError(`Expected options.slack to be a non-negative number, got ${String(options.slack)}`)
    if (!Number.isSafeInteger(options.maxPathways) || options.maxPathways < 1) throw new TypeError(`Expected options.maxPathways to be a positive integer, got ${String(options.maxPathways)}`)
    this.#o = options
    this.#now = options.now ?? Date.now
  }

  /** Forgets memoized group orders: call when coverage zones or GeoIP data change. */
  invalidate (): void {
    this.#orders.clear()
  }

  /** Decides where `path` should be played from for `client` (undefined: the peer address was unusable). */
  async steer (path: string, client: ClientAddress | undefined): Promise<SteerDecision> {
    if (!isSafePath(path) || path === '/' || path.startsWith(`/${TOKEN_PATH_SEGMENT}/`)) {
      return { kind: 'bad-request', message: `Cannot steer ${JSON.stringify(path.slice(0, 200))}: give a content path without dot segments or encoded slashes` }
    }
    const nowMs = this.#now()
    const location = this.#locate(client)
    const title = titleOf(path)
    const licence = this.#o.licensing().evaluate(path, location.country, nowMs)
    const base = {
      client: { ip: client?.ip.text, source: client?.source ?? 'none' as const },
      location,
      path,
      title,
      licence: { rule: licence.rule?.prefix, allowed: licence.allowed, ...(licence.allowed ? {} : { reason: licence.reason }) },
    }
    if (!licence.allowed) {
      return { kind: 'denied-licence', reason: licence.reason, rule: licence.rule.prefix, country: location.country, explain: { ...base, cache: 'none', candidates: [] } }
    }
    if (location.denied === true) return { kind: 'denied-unknown-geo', explain: { ...base, cache: 'none', candidates: [] } }
    const { plan, hit } = await this.#plan(location, title)
    const selection = pickNode(plan, this.#o.health, this.#o.slack)
    const candidates = withDistances(selection.candidates, location.point ?? this.#o.inventory().groups.get(location.group ?? ''), this.#o.inventory())
    const explain: SteerExplain = { ...base, cache: hit ? 'hit' : 'miss', candidates }
    if (selection.chosen === undefined || selection.group === undefined) return { kind: 'no-node', explain }
    this.#o.health.noteAssigned(selection.chosen.id)
    const claims: Omit<TokenClaims, 'kid'> = {
      exp: Math.floor(nowMs / 1000) + this.#o.tokenTtlSeconds,
      path: title,
      ...(this.#o.bindIp && client !== undefined ? { ip: client.ip.text } : {}),
      ...(location.country === undefined ? {} : { country: location.country }),
      sid: `${this.#sidPrefix}${(this.#sidCounter++).toString(36)}`,
    }
    const token = this.#o.signer.sign(claims)
    const target = `${selection.chosen.url}/${TOKEN_PATH_SEGMENT}/${token}${path}`
    return { kind: 'redirect', node: selection.chosen, group: selection.group, location: target, token, claims, explain }
  }

  /**
   * The steering manifest for a playback session: the session's title comes from its token
   * (or, with tokens off at the edge, the `title` parameter); the ranking is recomputed for
   * the client on every reload, so a node that failed since drops out at the next TTL.
   */
  async manifest (query: ManifestQuery, client: ClientAddress | undefined): Promise<ManifestOutcome> {
    let title: string
    if (query.token !== undefined) {
      const verified = this.#o.verifier.verify(query.token, { nowMs: this.#now(), clientIp: client?.ip.text })
      if (!verified.ok) return { kind: 'invalid-session', message: `token refused: ${verified.reason}` }
      title = verified.claims.path
    } else if (query.title !== undefined && isSafePath(query.title)) {
      title = query.title
    } else {
      return { kind: 'invalid-session', message: 'give se_token (or title) as the edge put it in SERVER-URI' }
    }
    const basePathway = query.pathway !== undefined && PATHWAY_ID_RE.test(query.pathway) ? query.pathway : '.'
    const location = this.#locate(client)
    const { plan } = await this.#plan(location, title)
    const picked = pickNode(plan, this.#o.health, this.#o.slack).chosen
    const pathways = rankPathways(plan, this.#o.health, picked, this.#o.maxPathways)
    const manifest = buildSteeringManifest({ ttlSeconds: this.#o.manifestTtlSeconds, reloadUri: query.reloadUri, basePathway, pathways })
    return { kind: 'manifest', manifest, title }
  }

  #locate (client: ClientAddress | undefined): ClientLocation {
    if (client === undefined) return this.#o.locator.locateUnknown()
    return this.#o.locator.locate(client.ip)
  }

  /**
   * The plan for a client and a title. The decision cache is keyed by the client's group
   * order (what its prefix resolves to) and the title, so clients of many prefixes that share
   * an order share plans; entries are dropped on every health or inventory change.
   */
  async #plan (location: ClientLocation, title: string): Promise<{ plan: SteeringPlan, hit: boolean }> {
    const generation = this.#o.health.generation
    const inventory = this.#o.inventory()
    const order = this.#order(location, inventory)
    const { value, hit } = await this.#o.cache.getOrBuild(`${order.key}\u0000${title}`, generation, () => planFor(order, title, inventory))
    // Holders change with every inventory poll, so they reorder the cached plan rather than key it.
    const holders = this.#o.holders?.(title)
    return { plan: holders === undefined ? value : preferHolders(value, holders), hit }
  }

  #order (location: ClientLocation, inventory: Inventory): GroupOrder {
    if (this.#ordersFor !== inventory || this.#orders.size >= MAX_MEMOIZED_ORDERS) {
      this.#orders.clear()
      this.#ordersFor = inventory
    }
    let order = this.#orders.get(location.prefixKey)
    if (order === undefined) {
      order = orderGroups({ group: location.group, point: location.point }, inventory)
      this.#orders.set(location.prefixKey, order)
    }
    return order
  }
}

/** Client prefixes whose group order is remembered (cleared when full or when the inventory changes). */
const MAX_MEMOIZED_ORDERS = 100_000

/**
 * The title a path belongs to, which is both the rendezvous key and the token's ACL: the
 * directory of the requested file (`/vod/t1/master.m3u8` → `/vod/t1/`), so one token covers
 * the master playlist, the media playlists and segments below it. A file at the root gets a
 * token for itself alone rather than for the whole site.
 */
export function titleOf (path: string): string {
  const slash = path.lastIndexOf('/')
  if (slash <= 0) return path
  return path.slice(0, slash + 1)
}
