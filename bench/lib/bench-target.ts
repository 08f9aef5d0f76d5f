/**
 * A server under test, whatever it is: the edge (alone or in front of a shield), nginx,
 * Varnish, or a bare Node baseline. Scenarios measure every target the same way: its CPU
 * is the CPU of its processes and everything below them (nginx workers, Varnish's cache
 * child), read from /proc.
 */
import type { ChildServer } from './child-server.ts'
import { httpGet, type FetchedResponse } from './http-get.ts'
import { promSum } from './prometheus-text.ts'
import { readProcessTreeCpu, readProcessTreeRssBytes, type CpuSample } from './proc-cpu.ts'

/**
 * Every target name a scenario can report (`edge-log`: the edge with its access log on, hot-cache
 * --log-ab; `edge-sendfile`: the edge with `server.sendfile` on, hot-segment).
 */
export const TARGET_NAMES = ['edge', 'edge-log', 'edge-sendfile', 'edge-shield', 'nginx', 'nginx-slice', 'varnish', 'bare', 'bare-fast', 'stream'] as const
/** One target name. */
export type TargetName = typeof TARGET_NAMES[number]
/** The third-party caches, started only when installed. */
export const PEER_NAMES = ['nginx', 'nginx-slice', 'varnish'] as const
/** One peer name. */
export type PeerName = typeof PEER_NAMES[number]

/** Whether a peer can run here, and why not (see bench/peers/start-peer.ts). */
export interface PeerAvailability {
  readonly name: PeerName
  readonly available: boolean
  /** The executable that would run. */
  readonly command: string | undefined
  /** `nginx -v` / `varnishd -V` first line. */
  readonly version: string | undefined
  readonly reason: string | undefined
}

/** A running target. */
export interface BenchTarget {
  readonly name: TargetName
  /** Base URL clients use (the edge's, for edge → shield). */
  readonly url: string
  /** Root processes whose trees make up the target (edge and shield for edge-shield). */
  readonly pids: readonly number[]
  /** Memory budget it was configured with (bytes), for the RSS check; undefined for baselines. */
  readonly memoryBudgetBytes: number | undefined
  /** CPU of all its processes so far. */
  cpu (): CpuSample
  /** Resident memory of all its processes now (shared pages counted once per process). */
  rssBytes (): number
  /** Did this response come from the target's cache? */
  isHit (res: FetchedResponse): boolean
  /**
   * Garbage collections of all its processes so far, from their /metrics (prom-client's
   * `nodejs_gc_duration_seconds` counts); absent for targets without one (the peers, the baselines).
   */
  gcCounts? (): Promise<GcCounts | undefined>
  /** Stops every process of the target. */
  stop (): Promise<void>
}

/** Collections by kind, as V8 reports them to prom-client. */
export interface GcCounts {
  /** Scavenges of the young generation. */
  readonly minor: number
  /** Mark-compacts of the whole heap. */
  readonly major: number
}

/**
 * The GC counts in a streamedge `/metrics` answer, or undefined when it has none. The family
 * is there from the start; a kind's samples only once V8 ran one (0 until then).
 */
export function parseGcCounts (text: string): GcCounts | undefined {
  const family = 'streamedge_nodejs_gc_duration_seconds'
  if (!text.includes(`# TYPE ${family} `)) return undefined
  return { minor: promSum(text, `${family}_count`, { kind: 'minor' }), major: promSum(text, `${family}_count`, { kind: 'major' }) }
}

/** How {@link benchTarget} recognises a cache hit. */
export type HitRule = 'cache-status' | 'x-bench-cache' | 'always'

/** Wraps started servers as one target (the first server's URL is the target's). */
export function benchTarget (name: TargetName, servers: readonly ChildServer[], options: { hit: HitRule, memoryBudgetBytes?: number, cleanup?: () => Promise<void>, metrics?: boolean }): BenchTarget {
  const first = servers[0]
  if (first === undefined) throw new TypeError(`Expected at least one server for target ${name}, got none`)
  const pids = servers.map((s) => s.pid)
  return {
    name,
    url: first.url,
    pids,
    memoryBudgetBytes: options.memoryBudgetBytes,
    cpu: () => {
      let userSeconds = 0
      let systemSeconds = 0
      for (const pid of pids) {
        const c = readProcessTreeCpu(pid)
        userSeconds += c.userSeconds
        systemSeconds += c.systemSeconds
      }
      return { userSeconds, systemSeconds }
    },
    rssBytes: () => pids.reduce((sum, pid) => sum + readProcessTreeRssBytes(pid), 0),
    isHit: (res) => isHit(options.hit, res),
    ...(options.metrics === true ? { gcCounts: async () => await sumGcCounts(servers) } : {}),
    stop: async () => {
      await Promise.all(servers.map((s) => s.stop()))
      await options.cleanup?.()
    },
  }
}

/**
 * `cache-status`: the last Cache-Status entry (RFC 9211 §2: each cache appends its own) says
 * `hit`. `x-bench-cache`: the peers' configs add `X-Bench-Cache: HIT`. `always`: a baseline
 * that has nothing to miss.
 */
export function isHit (rule: HitRule, res: Pick<FetchedResponse, 'headers'>): boolean {
  if (rule === 'always') return true
  if (rule === 'x-bench-cache') return String(res.headers['x-bench-cache']).toUpperCase() === 'HIT'
  const entries = String(res.headers['cache-status'] ?? '').split(',')
  return /;\s*hit\b/.test(entries[entries.length - 1] ?? '')
}

/** The GC counts of every server summed, or undefined when one has none (or did not answer). */
async function sumGcCounts (servers: readonly ChildServer[]): Promise<GcCounts | undefined> {
  let minor = 0
  let major = 0
  for (const server of servers) {
    const res = await httpGet(`${server.url}/metrics`, 10_000).catch(() => undefined)
    const counts = res?.status === 200 ? parseGcCounts(res.body.toString('utf8')) : undefined
    if (counts === undefined) return undefined
    minor += counts.minor
    major += counts.major
  }
  return { minor, major }
}
