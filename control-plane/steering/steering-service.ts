/**
 * One policy engine, three encodings: the steering decision for a request, as data the HTTP
 * layer renders as a 302, as explained JSON (`?format=json`), or as an HLS steering manifest.
 *
 * Per request: locate the client (zones → GeoIP → unknown policy) → licensing rule for the
 * path → plan for (client prefix, title) from the decision cache → pick a node with live
 * health and bounded load → a token for the title bound to the licence decision (signed, or
 * reused within its expiry bucket: control-plane/token-issuer.ts).
 *
 * Everything a decision needs is in memory, so {@link SteeringService.steerNow} decides
 * synchronously (the HTTP fast path); {@link SteeringService.steer} is the same decision with
 * the plan read through the decision cache's authority (cache-manager) on a memory miss.
 * Both run the same steps ({@link SteeringService} `#begin` and `#finish`): one policy engine.
 */
import type { ClientAddress } from '../geo/client-ip.ts'
import type { ClientLocation, Locator } from '../geo/locator.ts'
import type { HealthTracker } from '../health/health-tracker.ts'
import type { Inventory, NodeSpec } from '../health/node-inventory.ts'
import type { LicenceDenyReason, LicensingRules } from '../licensing/licensing-rules.ts'
import { isSafePath, TOKEN_PATH_SEGMENT, type TokenClaims, type TokenSigner, type TokenVerifier } from '../../lib/protocol/token.ts'
import { TokenIssuer } from '../token-issuer.ts'
import { ipv4Int } from '../../lib/net/ip-address.ts'
import { PATHWAY_ID_RE, type SteeringManifest } from '../../lib/protocol/steering.ts'
import type { CacheLookup, DecisionCache } from './decision-cache.ts'
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
  /** `tokenScope`: set when the token names the steered file alone, because its title holds paths the client may not play. */
  readonly licence: { readonly rule: string | undefined, readonly allowed: boolean, readonly reason?: LicenceDenyReason, readonly tokenScope?: string }
  readonly cache: 'hit' | 'miss' | 'none'
  /** Edges looked at and passed over. */
  readonly skipped: number
  /** Every edge looked at, with why: for explained answers ({@link SteeringService.steer}); empty from {@link SteeringService.steerNow}. */
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
  readonly #tokens: TokenIssuer
  // Group order per client prefix (it depends only on where the client is and the inventory).
  readonly #orders = new Map<string, GroupOrder>()
  readonly #ordersByStart = new Map<string, GroupOrder>()
  #ordersFor: Inventory | undefined
  // Locations per client address: a player asks again (its steering manifest reloads every
  // TTL), and a location is a pure function of the address, the zones and the GeoIP data.
  // IPv4 addresses are keyed by their 32 bits (ipv4Int: a small integer, no string to hash),
  // IPv6 ones by their text; the two key types cannot collide. Each entry also keeps the
  // location's group order for the inventory it was computed for, so a known client costs
  // one map probe for both.
  readonly #locations = new Map<number | string, Located>()
  // One string object per title: the decision cache, the token issuer and the title
  // inventory all key maps by the title, and a lookup with the very string object a map
  // holds compares by identity instead of character by character (a fresh slice of each
  // request's path would also have its hash computed).
  readonly #titles = new Map<string, string>()

  constructor (options: SteeringServiceOptions) {
    if (!Number.isSafeInteger(options.tokenTtlSeconds) || options.tokenTtlSeconds < 1) throw new TypeError(`Expected options.tokenTtlSeconds to be a positive integer, got ${String(options.tokenTtlSeconds)}`)
    if (!(options.slack >= 0)) throw new TypeError(`Expected options.slack to be a non-negative number, got ${String(options.slack)}`)
    if (!Number.isSafeInteger(options.maxPathways) || options.maxPathways < 1) throw new TypeError(`Expected options.maxPathways to be a positive integer, got ${String(options.maxPathways)}`)
    this.#o = options
    this.#now = options.now ?? Date.now
    this.#tokens = new TokenIssuer({ signer: options.signer, ttlSeconds: options.tokenTtlSeconds })
  }

  /** Tokens signed and reused (see control-plane/token-issuer.ts). */
  get tokenStats (): { readonly signed: number, readonly reused: number } {
    return this.#tokens.stats
  }

  /**
   * Forgets memoized client locations and group orders: call when coverage zones or GeoIP data
   * change. Inventory changes need no call: memoized orders are checked against the inventory.
   */
  invalidate (): void {
    this.#locations.clear()
    this.#orders.clear()
    this.#ordersByStart.clear()
  }

  /**
   * Decides where `path` should be played from for `client` (undefined: the peer address was
   * unusable), synchronously: a plan missing from the decision cache's memory level is built
   * on the spot (the same pure planFor the cache would store) and reconciled with the cache in
   * the background. Plans are keyed by the client's group order (what its prefix resolves to)
   * and the title, so clients of many prefixes that share an order share plans. The
   * candidates looked at are counted (`explain.skipped`), not listed: this is the 302 path.
   */
  steerNow (path: string, client: ClientAddress | undefined): SteerDecision {
    const pending = this.#begin(path, client)
    if (pending.kind !== 'pending') return pending
    const inventory = this.#o.inventory()
    const order = this.#orderOf(pending.located, inventory)
    const title = pending.base.title
    const generation = this.#o.health.generation
    const cached = this.#o.cache.peek(order.key, title, generation)
    if (cached !== undefined) return this.#finish(pending, cached, true, inventory, false)
    const plan = planFor(order, title, inventory)
    this.#o.cache.fill(order.key, title, generation, plan)
    return this.#finish(pending, plan, false, inventory, false)
  }

  /**
   * Decides like {@link SteeringService.steerNow}, reading the plan through the decision
   * cache's authority on a memory miss, and lists every candidate looked at with why (the
   * `?format=json` answer).
   */
  async steer (path: string, client: ClientAddress | undefined): Promise<SteerDecision> {
    const pending = this.#begin(path, client)
    if (pending.kind !== 'pending') return pending
    const { value, hit } = await this.#plan(pending.located, pending.base.title)
    return this.#finish(pending, value, hit, this.#o.inventory(), true)
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
    const { value } = await this.#plan(this.#locate(client), title)
    const plan = this.#withHolders(value, title)
    const picked = pickNode(plan, this.#o.health, this.#o.slack, false).chosen
    const pathways = rankPathways(plan, this.#o.health, picked, this.#o.maxPathways)
    const manifest = buildSteeringManifest({ ttlSeconds: this.#o.manifestTtlSeconds, reloadUri: query.reloadUri, basePathway, pathways })
    return { kind: 'manifest', manifest, title }
  }

  /** Everything up to the plan: locating, licensing. A decision when no plan is needed. */
  #begin (path: string, client: ClientAddress | undefined): SteerDecision | Pending {
    if (!isSafePath(path) || path === '/' || path.startsWith(TOKEN_PATH_PREFIX)) {
      return { kind: 'bad-request', message: `Cannot steer ${JSON.stringify(path.slice(0, 200))}: give a content path without dot segments or encoded slashes` }
    }
    const nowMs = this.#now()
    const located = this.#locate(client)
    const location = located.location
    const title = this.#intern(titleOf(path))
    const licensing = this.#o.licensing()
    const licence = licensing.evaluate(path, location.country, nowMs, title)
    const base: ExplainBase = {
      client: { ip: client?.ip.text, source: client?.source ?? 'none' },
      location,
      path,
      title,
      licence: licence.allowed ? { rule: licence.rule?.prefix, allowed: true } : { rule: licence.rule.prefix, allowed: false, reason: licence.reason },
    }
    if (!licence.allowed) {
      return { kind: 'denied-licence', reason: licence.reason, rule: licence.rule.prefix, country: location.country, explain: { ...base, cache: 'none', skipped: 0, candidates: [] } }
    }
    if (location.denied === true) return { kind: 'denied-unknown-geo', explain: { ...base, cache: 'none', skipped: 0, candidates: [] } }
    const reach = licensing.tokenReach(title, location.country, nowMs)
    if (reach.whole) return { kind: 'pending', base, client, located, nowMs, tokenScope: title, tokenUntilMs: reach.untilMs }
    // the title holds paths this client may not play: a token for it would open them
    return { kind: 'pending', base: { ...base, licence: { ...base.licence, tokenScope: path } }, client, located, nowMs, tokenScope: path, tokenUntilMs: undefined }
  }

  /** The plan through both cache levels (the async path: a memory miss reads the authority). */
  async #plan (located: Located, title: string): Promise<CacheLookup<SteeringPlan>> {
    const inventory = this.#o.inventory()
    const order = this.#orderOf(located, inventory)
    return await this.#o.cache.getOrBuild(order.key, title, this.#o.health.generation, () => planFor(order, title, inventory))
  }

  /** Picks the node from the plan and issues the token; `explained`: with every candidate looked at. */
  #finish (pending: Pending, cached: SteeringPlan, hit: boolean, inventory: Inventory, explained: boolean): SteerDecision {
    const { base, client, nowMs } = pending
    const location = base.location
    const plan = this.#withHolders(cached, base.title)
    const selection = pickNode(plan, this.#o.health, this.#o.slack, explained)
    const candidates = explained ? withDistances(selection.candidates, location.point ?? inventory.groups.get(location.group ?? ''), inventory) : selection.candidates
    const explain: SteerExplain = { client: base.client, location, path: base.path, title: base.title, licence: base.licence, cache: hit ? 'hit' : 'miss', skipped: selection.skipped, candidates }
    if (selection.chosen === undefined || selection.group === undefined) return { kind: 'no-node', explain }
    this.#o.health.noteAssigned(selection.chosen.id)
    const { token, claims } = this.#tokens.issue(pending.tokenScope, location.country, this.#o.bindIp && client !== undefined ? client.ip.text : undefined, nowMs, pending.tokenUntilMs)
    const target = `${selection.chosen.url}/${TOKEN_PATH_SEGMENT}/${token}${base.path}`
    return { kind: 'redirect', node: selection.chosen, group: selection.group, location: target, token, claims, explain }
  }

  /** Holders change with every inventory poll, so they reorder the cached plan rather than key it. */
  #withHolders (plan: SteeringPlan, title: string): SteeringPlan {
    const holders = this.#o.holders?.(title)
    return holders === undefined ? plan : preferHolders(plan, holders)
  }

  /** Where the client is: memoized per address (a zone lookup and a GeoIP lookup cost several µs). */
  #locate (client: ClientAddress | undefined): Located {
    if (client === undefined) return { location: this.#o.locator.locateUnknown(), order: undefined, orderFor: undefined }
    const ip = client.ip
    const key = ip.version === 4 ? ipv4Int(ip.bytes) : ip.text
    let located = this.#locations.get(key)
    if (located === undefined) {
      located = { location: this.#o.locator.locate(ip), order: undefined, orderFor: undefined }
      if (this.#locations.size >= MAX_MEMOIZED_LOCATIONS) this.#locations.clear()
      this.#locations.set(key, located)
    }
    return located
  }

  #intern (title: string): string {
    const known = this.#titles.get(title)
    if (known !== undefined) return known
    if (this.#titles.size >= MAX_INTERNED_TITLES) this.#titles.clear()
    // a copy of its own rather than a slice of this request's path (see flatString)
    const own = flatString(title)
    this.#titles.set(own, own)
    return own
  }

  /** The located client's group order, kept on its memo entry for the inventory it was computed for. */
  #orderOf (located: Located, inventory: Inventory): GroupOrder {
    if (located.orderFor === inventory && located.order !== undefined) return located.order
    const order = this.#order(located.location, inventory)
    located.order = order
    located.orderFor = inventory
    return order
  }

  /**
   * The group order for a location, memoized per client prefix and, behind that, per starting
   * point (every network of one city starts from the same point, so the groups are sorted by
   * distance once per city rather than once per network).
   */
  #order (location: ClientLocation, inventory: Inventory): GroupOrder {
    if (this.#ordersFor !== inventory || this.#orders.size >= MAX_MEMOIZED_ORDERS || this.#ordersByStart.size >= MAX_MEMOIZED_ORDERS) {
      this.#orders.clear()
      this.#ordersByStart.clear()
      this.#ordersFor = inventory
    }
    let order = this.#orders.get(location.prefixKey)
    if (order !== undefined) return order
    const point = location.point
    const startKey = `${location.group ?? ''}|${point === undefined ? '' : `${point.lat},${point.lon}`}`
    order = this.#ordersByStart.get(startKey)
    if (order === undefined) {
      order = orderGroups({ group: location.group, point }, inventory)
      this.#ordersByStart.set(startKey, order)
    }
    this.#orders.set(location.prefixKey, order)
    return order
  }
}

/** The explanation without the cache outcome and the candidates. */
type ExplainBase = Omit<SteerExplain, 'cache' | 'skipped' | 'candidates'>

/** A decision that needs a plan. */
interface Pending {
  readonly kind: 'pending'
  readonly base: ExplainBase
  readonly client: ClientAddress | undefined
  readonly located: Located
  readonly nowMs: number
  /** The token's path ACL: the title, or the steered file alone (LicensingRules.tokenReach). */
  readonly tokenScope: string
  /** A licence window the token must not outlive. */
  readonly tokenUntilMs: number | undefined
}

/** A client's memoized location and, once asked for, its group order for one inventory. */
interface Located {
  readonly location: ClientLocation
  order: GroupOrder | undefined
  orderFor: Inventory | undefined
}

/** `/t/`: a path that is already a tokenized edge URL cannot be steered again. */
const TOKEN_PATH_PREFIX = `/${TOKEN_PATH_SEGMENT}/`

/** Client prefixes (and starting points) whose group order is remembered (cleared when full or when the inventory changes). */
const MAX_MEMOIZED_ORDERS = 100_000
/** Titles whose string is shared (cleared when full). */
const MAX_INTERNED_TITLES = 100_000

/**
 * A copy of `text` that does not keep the string it was cut from alive: V8 represents a
 * slice of 13 characters or more as a view of its parent (here the request's whole head).
 * Concatenation then slicing copies the characters into a new parent.
 */
function flatString (text: string): string {
  return (' ' + text).slice(1)
}

/** Client addresses whose location is remembered (cleared when full; ~0.3 KB each). */
const MAX_MEMOIZED_LOCATIONS = 100_000

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
