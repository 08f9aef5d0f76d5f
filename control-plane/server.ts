/**
 * The control plane's HTTP surface (plain node:http):
 *
 *   GET  /v1/steer/<path>            302 to the chosen edge, token in the path; ?format=json explains
 *   GET  /v1/steering/manifest       HLS steering manifest (never 429; 410 for a session it cannot serve)
 *   POST /v1/heartbeat               node load reports (signed with the shared heartbeat key)
 *   POST /v1/purge                   purge a URL or prefix on every node (admin bearer token)
 *   POST /v1/prefill                 ask nodes to pre-position titles (admin bearer token)
 *   GET  /v1/inventory               the titles each node holds (admin bearer token)
 *   GET  /v1/nodes                   inventory with live health (admin bearer token when one is set)
 *   GET  /healthz /readyz /metrics
 *
 * Every answer carries `Access-Control-Allow-Origin: *`: browser players follow the 302 with
 * `Origin: null`, so an allow-list of real origins would break playback, and nothing here
 * relies on cookies. Steering answers are `no-store`: they are per client.
 *
 * Steering requests (`GET|HEAD /v1/steer/...` without `format=json`) are answered below
 * node:http by lib/http/fast-front.ts: the decision is synchronous (SteeringService.steerNow)
 * and the answer is rendered by the same {@link steerAnswer} node:http's path writes, so both
 * paths send the same status, fields and body. Everything else, and every later request on a
 * connection once one request needed node:http, goes through node:http as before.
 */
import { once } from 'node:events'
import http, { STATUS_CODES, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { timingSafeEqual, createHash } from 'node:crypto'
import { FastFront, type FastFrontStats, type FastRequest, type FastResponse } from '../lib/http/fast-front.ts'
import { CdnError, CODES, type ErrorCode } from '../lib/errors.ts'
import { infoLineWriter, jsonString, type Logger } from '../lib/log.ts'
import type { ControlPlaneMetrics } from '../lib/metrics.ts'
import { HEARTBEAT_PATH, MAX_REPORT_BYTES, parseNodeReport, SIGNATURE_HEADER, verifyReportSignature, type NodeReport } from '../lib/protocol/node-report.ts'
import { FANOUT_PURGE_PATH, parsePurgeRequest } from '../lib/protocol/purge.ts'
import { PATHWAY_QUERY_PARAM, STEERING_MANIFEST_PATH, TITLE_QUERY_PARAM } from '../lib/protocol/steering.ts'
import { TOKEN_QUERY_PARAM } from '../lib/protocol/token.ts'
import type { ClientAddress, ClientIpResolver } from './geo/client-ip.ts'
import type { HealthTracker } from './health/health-tracker.ts'
import type { Inventory, NodeSpec } from './health/node-inventory.ts'
import { fanOutPurge } from './purge-fanout.ts'
import { parsePrefillFanout, type TitleInventory } from './title-inventory.ts'
import { FANOUT_PREFILL_PATH, FLEET_INVENTORY_PATH } from '../lib/protocol/prefill.ts'
import type { SteerDecision, SteeringService } from './steering/steering-service.ts'

/** Path prefix of steering requests. */
export const STEER_PATH = '/v1/steer'
/** Path of the node list. */
export const NODES_PATH = '/v1/nodes'

/** Options of {@link ControlPlaneServer}. */
export interface ControlPlaneServerOptions {
  readonly listen: { readonly host: string, readonly port: number }
  readonly steering: SteeringService
  readonly clientIp: ClientIpResolver
  readonly health: HealthTracker
  readonly inventory: () => Inventory
  readonly metrics: ControlPlaneMetrics
  readonly logger: Logger
  /** One log line per steering decision. */
  readonly accessLog: boolean
  readonly heartbeatKey: string | undefined
  readonly adminToken: string | undefined
  readonly purgeNodeToken: string | undefined
  readonly purgeTimeoutMs: number
  /** Title inventories and prefill fan-out; the endpoints answer 404 without. */
  readonly titles?: TitleInventory | undefined
  /** Base URL players reach this control plane at (for RELOAD-URI); else taken from Host. */
  readonly publicUrl: string | undefined
  readonly ready: () => boolean
  /** Called with each accepted heartbeat (a cluster worker relays it to the others). */
  readonly onHeartbeat?: ((report: NodeReport) => void) | undefined
  /** Renders /metrics instead of `metrics` alone (a cluster worker asks for the whole cluster's). */
  readonly renderMetrics?: (() => Promise<string>) | undefined
  readonly keepAliveTimeoutMs?: number
  readonly now?: () => number
}

const CORS_HEADERS = {
  'access-control-allow-origin': '*',
  'access-control-expose-headers': 'location, retry-after',
} as const
const PREFLIGHT_HEADERS = {
  ...CORS_HEADERS,
  'access-control-allow-methods': 'GET, HEAD, POST, OPTIONS',
  'access-control-allow-headers': `authorization, content-type, ${SIGNATURE_HEADER}`,
  'access-control-max-age': '86400',
} as const
const NO_STORE = 'no-store'
const STEER_PREFIX = `${STEER_PATH}/`

/** The HTTP server. */
export class ControlPlaneServer {
  readonly #o: ControlPlaneServerOptions
  readonly #now: () => number
  readonly #steerLog: (fields: string) => void
  #server: Server | undefined
  #front: FastFront | undefined
  #closing = false

  constructor (options: ControlPlaneServerOptions) {
    this.#o = options
    this.#now = options.now ?? Date.now
    this.#steerLog = infoLineWriter(options.logger, 'steer')
  }

  /** Requests the fast path answered, and connections it handed to node:http. */
  get fastPath (): FastFrontStats {
    return this.#front?.stats ?? { answered: 0, handedOff: 0, open: 0, flushes: 0, sentFromFileBytes: 0, sentDirect: 0 }
  }

  /** Binds and resolves with the URL (port 0 becomes a real port). */
  async listen (): Promise<string> {
    const keepAliveTimeoutMs = this.#o.keepAliveTimeoutMs ?? 5000
    const server = http.createServer({
      keepAliveTimeout: keepAliveTimeoutMs,
      headersTimeout: 10_000,
      requestTimeout: 30_000,
      noDelay: true,
    }, (req, res) => this.#route(req, res))
    const front = new FastFront({ keepAliveTimeoutMs, handler: (req) => this.#fastSteer(req) })
    front.attach(server)
    this.#front = front
    server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
      if (err.code !== 'ECONNRESET' && socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n')
      else socket.destroy()
    })
    server.listen(this.#o.listen.port, this.#o.listen.host)
    await once(server, 'listening')
    this.#server = server
    const address = server.address() as AddressInfo
    const host = address.family === 'IPv6' ? `[${address.address}]` : address.address
    return `http://${host}:${address.port}`
  }

  /** Stops accepting, closes idle connections, cuts the rest after `graceMs`. */
  async close (graceMs = 5000): Promise<void> {
    this.#closing = true
    const server = this.#server
    if (server === undefined) return
    const closed = new Promise<void>((resolve) => server.close(() => resolve()))
    this.#front?.closeIdle()
    server.closeIdleConnections()
    const timer = setTimeout(() => {
      this.#front?.closeAll()
      server.closeAllConnections()
    }, graceMs)
    timer.unref()
    await closed
    clearTimeout(timer)
  }

  #route (req: IncomingMessage, res: ServerResponse): void {
    const raw = req.url ?? '/'
    const q = raw.indexOf('?')
    const path = q < 0 ? raw : raw.slice(0, q)
    const query = q < 0 ? '' : raw.slice(q + 1)
    const method = req.method ?? 'GET'
    if (method === 'OPTIONS') {
      res.writeHead(204, PREFLIGHT_HEADERS)
      res.end()
      return
    }
    if (path.startsWith(STEER_PREFIX) && (method === 'GET' || method === 'HEAD')) {
      void this.#steer(req, res, path.slice(STEER_PATH.length), query)
      return
    }
    if (path === STEERING_MANIFEST_PATH && (method === 'GET' || method === 'HEAD')) {
      void this.#manifest(req, res, query)
      return
    }
    if (path === HEARTBEAT_PATH && method === 'POST') {
      void this.#heartbeat(req, res)
      return
    }
    if (path === FANOUT_PURGE_PATH && method === 'POST') {
      void this.#purge(req, res)
      return
    }
    if ((path === FANOUT_PREFILL_PATH && method === 'POST') || (path === FLEET_INVENTORY_PATH && method === 'GET')) {
      void this.#titles(req, res, path)
      return
    }
    if (path === NODES_PATH && method === 'GET') {
      this.#nodes(req, res)
      return
    }
    if (path === '/healthz') return sendText(res, 200, 'ok\n')
    if (path === '/readyz') {
      const ready = this.#o.ready() && !this.#closing
      return sendText(res, ready ? 200 : 503, ready ? 'ready\n' : 'not ready\n')
    }
    if (path === '/metrics' && method === 'GET') {
      (this.#o.renderMetrics?.() ?? this.#o.metrics.render()).then((body) => {
        res.writeHead(200, { 'content-type': this.#o.metrics.contentType, 'cache-control': NO_STORE })
        res.end(body)
      }, (err: unknown) => {
        this.#o.logger.error({ err }, 'metrics rendering failed')
        sendError(res, 'CDN_ERR_INTERNAL')
      })
      return
    }
    sendError(res, 'CDN_ERR_NOT_FOUND', `No ${method} ${path.slice(0, 200)} here`)
  }

  // ---- steering ------------------------------------------------------------------------------

  /**
   * The fast path's handler: a steering request decided and rendered synchronously. Undefined
   * (node:http takes the connection) for anything else, for explained (`format=json`)
   * answers, and if deciding throws (node:http's path then logs it and answers 500).
   */
  #fastSteer (req: FastRequest): FastResponse | undefined {
    const target = req.target
    if (!target.startsWith(STEER_PREFIX)) return undefined
    const started = performance.now()
    const q = target.indexOf('?')
    const path = target.slice(STEER_PATH.length, q < 0 ? target.length : q)
    let passQuery = ''
    if (q >= 0) {
      const query = target.slice(q + 1)
      if (queryParam(query, 'format') === 'json') return undefined
      passQuery = withoutParams(query, ['format'])
    }
    const client = this.#o.clientIp.resolve(req.remoteAddress, req.headers['x-forwarded-for'])
    let decision: SteerDecision
    let response: FastResponse
    let outcome: SteerOutcome
    try {
      decision = this.#o.steering.steerNow(path, client)
      if (decision.kind === 'redirect') {
        // nearly every answer: the head around its Location, the bytes renderHead makes of steerAnswer's 302
        response = { head: `${REDIRECT_HEAD.before}${redirectTarget(decision, passQuery)}${REDIRECT_HEAD.after}` }
        outcome = 'redirect'
      } else {
        const answer = steerAnswer(decision, false, passQuery)
        response = { head: renderHead(answer), body: answer.body === undefined ? undefined : Buffer.from(answer.body) }
        outcome = answer.outcome
      }
    } catch {
      return undefined
    }
    this.#account(decision, outcome, path, (performance.now() - started) / 1000)
    return response
  }

  async #steer (req: IncomingMessage, res: ServerResponse, path: string, query: string): Promise<void> {
    const started = performance.now()
    const format = queryParam(query, 'format')
    const passQuery = query === '' ? '' : withoutParams(query, ['format'])
    const client = this.#client(req)
    let decision: SteerDecision
    try {
      decision = await this.#o.steering.steer(path, client)
    } catch (err) {
      this.#o.logger.error({ err, path }, 'steering failed')
      sendError(res, 'CDN_ERR_INTERNAL')
      return
    }
    const answer = steerAnswer(decision, format === 'json', passQuery)
    res.writeHead(answer.status, answer.headers)
    res.end(req.method === 'HEAD' ? undefined : answer.body)
    this.#account(decision, answer.outcome, path, (performance.now() - started) / 1000)
  }

  /** Metrics and the decision log line, the same for both paths. */
  #account (decision: SteerDecision, outcome: SteerOutcome, path: string, seconds: number): void {
    const metrics = this.#o.metrics
    metrics.decisionLatency.observe(seconds)
    metrics.decisions.inc({ outcome, group: decision.kind === 'redirect' ? decision.group : 'none' })
    if (decision.kind !== 'bad-request') {
      const location = decision.explain.location
      if (location.source === 'unknown') metrics.unknownGeo.inc({ policy: unknownPolicyOf(location) })
      if (decision.explain.cache !== 'none') metrics.decisionCache.inc({ result: decision.explain.cache })
    }
    if (decision.kind === 'denied-licence') metrics.licenceDenials.inc({ country: decision.country ?? 'unknown', reason: decision.reason })
    if (this.#o.accessLog) this.#logDecision(decision, outcome, path, seconds)
  }

  /**
   * The decision's log line, rendered here rather than by pino's generic serialiser (it is
   * written for every decision). Fields in a fixed order; absent ones are left out, as pino
   * leaves out undefined values: {"level":"info","time":…,"role":…,"node":…,"outcome":…,
   * "client","clientSource","path","loc","country","network","rule","reason","node","group",
   * "sid","cache","skipped","ms","msg":"steer"}.
   */
  #logDecision (d: SteerDecision, outcome: SteerOutcome, path: string, seconds: number): void {
    if (d.kind === 'bad-request') {
      this.#steerLog(`,"outcome":"${outcome}","path":${jsonString(path.slice(0, 200))},"ms":${round(seconds * 1000)}`)
      return
    }
    const e = d.explain
    const location = e.location
    let line = `,"outcome":"${outcome}"`
    if (e.client.ip !== undefined) line += `,"client":${jsonString(e.client.ip)}`
    line += `,"clientSource":"${e.client.source}","path":${jsonString(path)},"loc":"${location.source}"`
    if (location.country !== undefined) line += `,"country":${jsonString(location.country)}`
    if (location.network !== undefined) line += `,"network":${jsonString(location.network)}`
    if (e.licence.rule !== undefined) line += `,"rule":${jsonString(e.licence.rule)}`
    if (d.kind === 'denied-licence') line += `,"reason":${jsonString(d.reason)}`
    if (d.kind === 'redirect') {
      line += `,"node":${jsonString(d.node.id)},"group":${jsonString(d.group)}`
      if (d.claims.sid !== undefined) line += `,"sid":${jsonString(d.claims.sid)}`
    }
    line += `,"cache":"${e.cache}","skipped":${e.skipped},"ms":${round(seconds * 1000)}`
    this.#steerLog(line)
  }

  async #manifest (req: IncomingMessage, res: ServerResponse, query: string): Promise<void> {
    const head = req.method === 'HEAD'
    const params = new URLSearchParams(query)
    const reloadQuery = withoutParams(query, ['_HLS_pathway', '_HLS_throughput'])
    const reloadUri = `${this.#publicBase(req)}${STEERING_MANIFEST_PATH}${reloadQuery === '' ? '' : `?${reloadQuery}`}`
    try {
      const outcome = await this.#o.steering.manifest({
        token: params.get(TOKEN_QUERY_PARAM) ?? undefined,
        title: params.get(TITLE_QUERY_PARAM) ?? undefined,
        pathway: params.get(PATHWAY_QUERY_PARAM) ?? undefined,
        reloadUri,
      }, this.#client(req))
      this.#o.metrics.steeringManifests.inc({ outcome: outcome.kind === 'manifest' ? 'ok' : 'invalid-session' })
      if (outcome.kind === 'invalid-session') {
        // 410 tells the player to stop reloading: no later reload could succeed (§7.2)
        sendJson(res, 410, { error: 'CDN_ERR_TOKEN_INVALID', message: outcome.message }, head)
        return
      }
      sendJson(res, 200, outcome.manifest, head)
    } catch (err) {
      // Never a 429, and a 5xx only for a bug: hls.js waits 300 s after a failed first load.
      this.#o.logger.error({ err }, 'steering manifest failed')
      sendError(res, 'CDN_ERR_INTERNAL')
    }
  }

  // ---- nodes, heartbeats, purge -------------------------------------------------------------

  async #heartbeat (req: IncomingMessage, res: ServerResponse): Promise<void> {
    const key = this.#o.heartbeatKey
    if (key === undefined) {
      req.resume()
      sendError(res, 'CDN_ERR_NOT_FOUND', 'Heartbeats are off: controlPlane.heartbeatKey is not set')
      return
    }
    const body = await readBody(req, MAX_REPORT_BYTES)
    if (body === undefined) {
      sendError(res, 'CDN_ERR_REQUEST_INVALID', `Report larger than ${MAX_REPORT_BYTES} bytes`, 413)
      return
    }
    const signature = req.headers[SIGNATURE_HEADER]
    if (!verifyReportSignature(typeof signature === 'string' ? signature : undefined, body, key, this.#now())) {
      this.#o.metrics.heartbeats.inc({ outcome: 'bad-signature' })
      sendError(res, 'CDN_ERR_UNAUTHORIZED', 'Bad or stale heartbeat signature')
      return
    }
    const parsed = parseNodeReport(parseJson(body))
    if (!parsed.ok) {
      this.#o.metrics.heartbeats.inc({ outcome: 'invalid' })
      sendError(res, 'CDN_ERR_REQUEST_INVALID', `Invalid report: ${parsed.error}`)
      return
    }
    if (!this.#o.health.recordHeartbeat(parsed.report)) {
      this.#o.metrics.heartbeats.inc({ outcome: 'unknown-node' })
      sendError(res, 'CDN_ERR_NOT_FOUND', `No ${parsed.report.role} ${parsed.report.id} in the inventory`)
      return
    }
    this.#o.metrics.heartbeats.inc({ outcome: 'accepted' })
    this.#o.onHeartbeat?.(parsed.report)
    res.writeHead(204, { ...CORS_HEADERS, 'cache-control': NO_STORE })
    res.end()
  }

  async #purge (req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (this.#o.adminToken === undefined) {
      req.resume()
      sendError(res, 'CDN_ERR_NOT_FOUND', 'Purging is off: controlPlane.adminToken is not set')
      return
    }
    if (!bearerMatches(req.headers.authorization, this.#o.adminToken)) {
      req.resume()
      sendError(res, 'CDN_ERR_UNAUTHORIZED', 'Give Authorization: Bearer <controlPlane.adminToken>')
      return
    }
    const body = await readBody(req, 16 * 1024)
    const parsed = parsePurgeRequest(body === undefined ? undefined : parseJson(body))
    if (!parsed.ok) {
      sendError(res, 'CDN_ERR_REQUEST_INVALID', parsed.error)
      return
    }
    const nodeToken = this.#o.purgeNodeToken
    const result = await fanOutPurge(this.#o.inventory().nodes, parsed.request, {
      tokenFor: (node: NodeSpec) => node.adminToken ?? nodeToken,
      timeoutMs: this.#o.purgeTimeoutMs,
    })
    this.#o.metrics.purges.inc({ outcome: result.ok ? 'ok' : 'partial' })
    for (const r of result.results) this.#o.metrics.nodePurges.inc({ target: r.node, outcome: r.ok ? 'ok' : 'failed' })
    this.#o.logger.info({ request: parsed.request, ok: result.ok, failed: result.results.filter((r) => !r.ok).map((r) => r.node) }, 'purge fanned out')
    sendJson(res, result.ok ? 200 : 502, result, false)
  }

  /** POST /v1/prefill fans a prefill out; GET /v1/inventory shows what every node holds. */
  async #titles (req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    const titles = this.#o.titles
    if (titles === undefined || this.#o.adminToken === undefined) {
      req.resume()
      sendError(res, 'CDN_ERR_NOT_FOUND', 'Prefill and inventories are off: controlPlane.adminToken is not set')
      return
    }
    if (!bearerMatches(req.headers.authorization, this.#o.adminToken)) {
      req.resume()
      sendError(res, 'CDN_ERR_UNAUTHORIZED', 'Give Authorization: Bearer <controlPlane.adminToken>')
      return
    }
    if (path === FLEET_INVENTORY_PATH) {
      sendJson(res, 200, { nodes: titles.snapshot() }, false)
      return
    }
    const body = await readBody(req, 256 * 1024)
    const parsed = parsePrefillFanout(body === undefined ? undefined : parseJson(body))
    if (!parsed.ok) {
      sendError(res, 'CDN_ERR_REQUEST_INVALID', parsed.error)
      return
    }
    const results = await titles.prefill(parsed.request, parsed.nodes)
    const ok = results.length > 0 && results.every((r) => r.ok)
    this.#o.logger.info({ titles: parsed.request.titles.length, nodes: results.map((r) => r.node), failed: results.filter((r) => !r.ok).map((r) => r.node) }, 'prefill fanned out')
    sendJson(res, ok ? 202 : 502, { ok, results }, false)
  }

  #nodes (req: IncomingMessage, res: ServerResponse): void {
    if (this.#o.adminToken !== undefined && !bearerMatches(req.headers.authorization, this.#o.adminToken)) {
      sendError(res, 'CDN_ERR_UNAUTHORIZED', 'Give Authorization: Bearer <controlPlane.adminToken>')
      return
    }
    const inventory = this.#o.inventory()
    const nodes = this.#o.health.views().map((h) => {
      const spec = inventory.byId.get(h.id)
      return {
        id: h.id,
        role: spec?.role,
        group: spec?.group,
        url: spec?.url,
        adminState: spec?.state,
        status: h.status,
        sinceMs: h.sinceMs,
        probe: { up: h.probeUp ?? null, consecutiveFailures: h.consecutiveFailures, consecutiveSuccesses: h.consecutiveSuccesses, lastError: h.lastProbeError ?? null },
        heartbeat: h.lastHeartbeatAtMs === undefined ? null : { ageMs: this.#now() - h.lastHeartbeatAtMs, report: h.report },
        load: Math.round(h.load * 100) / 100,
        capacity: spec?.capacity,
      }
    })
    sendJson(res, 200, { nodes }, false)
  }

  #client (req: IncomingMessage): ClientAddress | undefined {
    return this.#o.clientIp.resolve(req.socket.remoteAddress, req.headers['x-forwarded-for'])
  }

  #publicBase (req: IncomingMessage): string {
    if (this.#o.publicUrl !== undefined) return this.#o.publicUrl.replace(/\/+$/, '')
    const host = req.headers.host ?? `${this.#o.listen.host}:${this.#o.listen.port}`
    return `http://${host}`
  }
}

function unknownPolicyOf (location: { readonly group?: string, readonly point?: unknown, readonly denied?: boolean }): string {
  if (location.denied === true) return 'deny'
  return location.group !== undefined ? 'default-group' : 'nearest-point'
}

/** The first value of a query parameter, decoded (fast path: no URLSearchParams). */
function queryParam (query: string, name: string): string | undefined {
  if (query === '') return undefined
  const key = `${name}=`
  for (const pair of query.split('&')) {
    if (!pair.startsWith(key)) continue
    try {
      return decodeURIComponent(pair.slice(key.length).replace(/\+/g, ' '))
    } catch {
      return undefined
    }
  }
  return undefined
}

/** The query without the named parameters, other pairs kept byte for byte. */
function withoutParams (query: string, names: readonly string[]): string {
  return query.split('&').filter((pair) => pair !== '' && !names.some((n) => pair === n || pair.startsWith(`${n}=`))).join('&')
}

/** Reads a body up to `maxBytes`; undefined when it is larger. */
async function readBody (req: IncomingMessage, maxBytes: number): Promise<string | undefined> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length
    if (size > maxBytes) {
      req.resume()
      return undefined
    }
    chunks.push(chunk)
  }
  return Buffer.concat(chunks).toString('utf8')
}

function parseJson (text: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    return undefined
  }
}

/** Constant-time bearer check (hashing first makes the lengths equal). */
function bearerMatches (header: string | undefined, token: string): boolean {
  if (header === undefined || !header.startsWith('Bearer ')) return false
  const given = createHash('sha256').update(header.slice(7).trim()).digest()
  const expected = createHash('sha256').update(token).digest()
  return timingSafeEqual(given, expected)
}

/** What a steering request was answered with (the `outcome` label and log field). */
export type SteerOutcome = 'redirect' | 'explained' | 'denied-licence' | 'denied-unknown-geo' | 'no-node' | 'bad-request'

/** A steering answer before it is written: one encoding for node:http and the fast path. */
export interface SteerAnswer {
  readonly outcome: SteerOutcome
  readonly status: number
  /** Header fields in the order they are sent. */
  readonly headers: Readonly<Record<string, string>>
  readonly body: string | undefined
}

/** Renders a decision: 302 (or the JSON explanation), 451, 403, 503 or 400. */
export function steerAnswer (d: SteerDecision, json: boolean, passQuery: string): SteerAnswer {
  switch (d.kind) {
    case 'bad-request':
      return errorAnswer('bad-request', 'CDN_ERR_REQUEST_INVALID', d.message)
    case 'denied-licence':
      return jsonAnswer('denied-licence', 451, {
        error: 'CDN_ERR_LICENCE_DENIED',
        message: `${d.explain.path} is not available ${d.country === undefined ? 'to clients of unknown location' : `in ${d.country}`}${d.reason === 'not-yet-available' || d.reason === 'expired' ? ' at this time' : ''}`,
        reason: d.reason,
        rule: d.rule,
        country: d.country ?? null,
        ...(json ? { explain: d.explain } : {}),
      })
    case 'denied-unknown-geo':
      return jsonAnswer('denied-unknown-geo', 403, { error: 'CDN_ERR_GEO_UNKNOWN', message: CODES.CDN_ERR_GEO_UNKNOWN.message, ...(json ? { explain: d.explain } : {}) })
    case 'no-node':
      return jsonAnswer('no-node', 503, { error: 'CDN_ERR_NO_NODE', message: CODES.CDN_ERR_NO_NODE.message, ...(json ? { explain: d.explain } : {}) }, RETRY_AFTER)
    case 'redirect': {
      const location = redirectTarget(d, passQuery)
      if (json) {
        return jsonAnswer('explained', 200, {
          decision: 'redirect',
          url: location,
          node: { id: d.node.id, group: d.group, url: d.node.url },
          token: { expiresAt: new Date(d.claims.exp * 1000).toISOString(), path: d.claims.path, ip: d.claims.ip ?? null, country: d.claims.country ?? null, sid: d.claims.sid },
          explain: d.explain,
        })
      }
      return { outcome: 'redirect', status: 302, headers: redirectHeaders(location), body: undefined }
    }
  }
}

/** A redirect's Location: the node URL with the client's query (less `format`) passed on. */
function redirectTarget (decision: Extract<SteerDecision, { kind: 'redirect' }>, passQuery: string): string {
  return passQuery === '' ? decision.location : `${decision.location}?${passQuery}`
}

const RETRY_AFTER = { 'retry-after': '5' } as const

/** The fields of a 302, in the order they are sent. */
function redirectHeaders (location: string): Readonly<Record<string, string>> {
  return { 'access-control-allow-origin': '*', 'access-control-expose-headers': CORS_HEADERS['access-control-expose-headers'], location, 'cache-control': NO_STORE, 'content-length': '0' }
}

function jsonAnswer (outcome: SteerOutcome, status: number, body: unknown, extra: Readonly<Record<string, string>> = {}): SteerAnswer {
  const text = `${JSON.stringify(body)}\n`
  return {
    outcome,
    status,
    headers: { ...CORS_HEADERS, 'content-type': JSON_TYPE, 'content-length': String(Buffer.byteLength(text)), 'cache-control': NO_STORE, ...extra },
    body: text,
  }
}

function errorAnswer (outcome: SteerOutcome, code: ErrorCode, message?: string): SteerAnswer {
  const err = new CdnError(code, message)
  return jsonAnswer(outcome, err.status, { error: err.code, message: err.message })
}

/** The status line and fields of an answer as the fast path writes them (it adds Date and the empty line). */
function renderHead (answer: SteerAnswer): string {
  let head = `HTTP/1.1 ${answer.status} ${STATUS_CODES[answer.status] ?? ''}\r\n`
  const headers = answer.headers
  for (const name in headers) head += `${name}: ${headers[name]}\r\n`
  return head
}

/**
 * The fast path's 302 head as the text before and after the Location value, cut once from
 * what {@link renderHead} makes of a {@link steerAnswer} redirect: the same bytes, without
 * building the answer's field object per request.
 */
const REDIRECT_HEAD = ((): { readonly before: string, readonly after: string } => {
  const mark = '\u0000'
  const head = renderHead({ outcome: 'redirect', status: 302, headers: redirectHeaders(mark), body: undefined })
  const at = head.indexOf(mark)
  return { before: head.slice(0, at), after: head.slice(at + mark.length) }
})()

const JSON_TYPE = 'application/json; charset=utf-8'

function sendJson (res: ServerResponse, status: number, body: unknown, head: boolean, extra: Record<string, string> = {}): void {
  const text = `${JSON.stringify(body)}\n`
  res.writeHead(status, {
    ...CORS_HEADERS,
    'content-type': JSON_TYPE,
    'content-length': Buffer.byteLength(text),
    'cache-control': NO_STORE,
    ...extra,
  })
  res.end(head ? undefined : text)
}

function sendError (res: ServerResponse, code: ErrorCode, message?: string, status?: number): void {
  const err = new CdnError(code, message)
  sendJson(res, status ?? err.status, { error: err.code, message: err.message }, false)
}

function sendText (res: ServerResponse, status: number, body: string): void {
  res.writeHead(status, { ...CORS_HEADERS, 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body), 'cache-control': NO_STORE })
  res.end(body)
}

function round (ms: number): number {
  return Math.round(ms * 1000) / 1000
}
