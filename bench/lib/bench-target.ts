/**
 * A server under test, whatever it is: the edge (alone or in front of a shield), nginx,
 * Varnish, or a bare Node baseline. Scenarios measure every target the same way: its CPU
 * is the CPU of its processes and everything below them (nginx workers, Varnish's cache
 * child), read from /proc.
 */
import type { ChildServer } from './child-server.ts'
import type { FetchedResponse } from './http-get.ts'
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
  /** Stops every process of the target. */
  stop (): Promise<void>
}

/** How {@link benchTarget} recognises a cache hit. */
export type HitRule = 'cache-status' | 'x-bench-cache' | 'always'

/** Wraps started servers as one target (the first server's URL is the target's). */
export function benchTarget (name: TargetName, servers: readonly ChildServer[], options: { hit: HitRule, memoryBudgetBytes?: number, cleanup?: () => Promise<void> }): BenchTarget {
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
