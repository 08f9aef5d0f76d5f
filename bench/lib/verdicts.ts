/**
 * Issue 7's targets, judged from one run's results: each is a median of per-round ratios
 * (the edge and the peer measured closest in time), as the issue defines them.
 */
import type { TargetName } from './bench-target.ts'
import type { CompareResult, CompareWindow } from './compare.ts'
import type { BenchResults, Verdict } from './results.ts'
import { fmt } from './results.ts'
import { median, ratio } from './stats.ts'

/** The edge's cost may be at most this multiple of nginx's (hot segment CPU/GB, hot playlist CPU/1k requests). */
export const COST_VS_NGINX_MAX = 1.3
/** Byte hit ratio the working set must reach on the edge (1.0, allowing for rounding). */
export const BYTE_HIT_RATIO_MIN = 0.999
const PEERS: readonly TargetName[] = ['nginx', 'nginx-slice', 'varnish']

/**
 * Median over rounds (and generators) of `metric(edge window) / metric(peer window)`,
 * pairing windows of the same round and generator; NaN when there is no pair.
 */
export function pairedRatio (windows: readonly CompareWindow[], target: TargetName, peer: TargetName, metric: (w: CompareWindow) => number, generator?: string): number {
  const ratios: number[] = []
  for (const w of windows) {
    if (w.target !== target || (generator !== undefined && w.generator !== generator)) continue
    const p = windows.find((x) => x.target === peer && x.round === w.round && x.generator === w.generator)
    if (p !== undefined) ratios.push(ratio(metric(w), metric(p)))
  }
  return median(ratios.filter((x) => Number.isFinite(x)))
}

/** The preferred generator for throughput: wrk when it ran, else autocannon. */
function throughputGenerator (c: CompareResult): string {
  return c.config.generators.includes('wrk') ? 'wrk' : 'autocannon'
}

/** The edge's (or `who`'s) req/s against the best peer's (by median req/s), with the same generator. */
function versusBestPeer (c: CompareResult, id: string, who: TargetName = 'edge'): Verdict {
  const gen = throughputGenerator(c)
  const peers = c.summaries.filter((s) => PEERS.includes(s.target) && s.generator === gen)
  const edge = c.summaries.find((s) => s.target === who && s.generator === gen)
  if (edge === undefined || peers.length === 0) return { id, target: 'req/s ≥ best peer', measured: edge === undefined ? `${who} not measured` : 'no peer ran', met: undefined }
  const best = peers.reduce((a, b) => (b.requestsPerSec > a.requestsPerSec ? b : a))
  const r = pairedRatio(c.windows, who, best.target, (w) => w.requestsPerSec, gen)
  return { id, target: 'req/s ≥ best peer', measured: `${fmt(r)}× ${best.target} (${fmt(edge.requestsPerSec)} vs ${fmt(best.requestsPerSec)} req/s, ${gen})`, met: r >= 1 }
}

function costVersusNginx (c: CompareResult, id: string, who: TargetName = 'edge'): Verdict {
  const unit = c.config.costUnit
  const metric = unit === 'gb' ? (w: CompareWindow) => w.cpuSecondsPerGb : (w: CompareWindow) => w.cpuMsPerKiloRequest
  const target = `CPU ${unit === 'gb' ? 'per GB' : 'per 1000 requests'} ≤ ${COST_VS_NGINX_MAX}× nginx`
  const r = pairedRatio(c.windows, who, 'nginx', metric)
  if (!Number.isFinite(r)) return { id, target, measured: 'nginx not measured', met: undefined }
  const value = (name: TargetName): string => fmt(median(c.windows.filter((w) => w.target === name).map(metric)))
  const units = unit === 'gb' ? 's/GB' : 'ms/1k req'
  return { id, target, measured: `${fmt(r)}× (${who} ${value(who)}, nginx ${value('nginx')} ${units}; all windows)`, met: r <= COST_VS_NGINX_MAX }
}

/** Every issue-7 target the results can judge, in the issue's order. */
export function issue7Verdicts (r: BenchResults): Verdict[] {
  const out: Verdict[] = []
  const comparison = (name: string): CompareResult | undefined => r.comparisons?.find((c) => c.scenario === name)
  const segment = comparison('hot-segment')
  if (segment !== undefined) {
    out.push(costVersusNginx(segment, 'hot segment: CPU'))
    out.push(versusBestPeer(segment, 'hot segment: req/s'))
    // the zero-copy edge (server.sendfile on: loopback clients too), judged the same way (its trade: the server's copy against the loopback client's cost)
    if (segment.windows.some((w) => w.target === 'edge-sendfile')) {
      out.push(costVersusNginx(segment, 'hot segment, server.sendfile on: CPU', 'edge-sendfile'))
      out.push(versusBestPeer(segment, 'hot segment, server.sendfile on: req/s', 'edge-sendfile'))
    }
  }
  const playlist = comparison('hot-playlist')
  if (playlist !== undefined) {
    out.push(costVersusNginx(playlist, 'hot playlist: CPU'))
    const gen = throughputGenerator(playlist)
    const rps = pairedRatio(playlist.windows, 'edge', 'nginx', (w) => w.requestsPerSec, gen)
    out.push({ id: 'hot playlist: req/s', target: 'req/s ≥ nginx', measured: Number.isFinite(rps) ? `${fmt(rps)}× nginx (${gen})` : 'nginx not measured', met: Number.isFinite(rps) ? rps >= 1 : undefined })
  }
  for (const name of ['range-first', 'range-mid']) {
    const c = comparison(name)
    if (c !== undefined) out.push(versusBestPeer(c, `${name}: req/s`))
  }
  const ws = r.workingSet
  if (ws !== undefined) {
    out.push(versusBestPeer(ws.comparison, 'working set: req/s'))
    const edge = ws.comparison.summaries.filter((s) => s.target === 'edge')
    const bhr = Math.min(...edge.map((s) => s.byteHitRatio))
    const others = ws.comparison.summaries.filter((s) => s.target !== 'edge').map((s) => `${s.target} ${fmt(s.byteHitRatio)}`).join(', ')
    out.push({ id: 'working set: byte hit ratio', target: `≥ ${BYTE_HIT_RATIO_MIN} (1.0)`, measured: `edge ${fmt(bhr, 4)}${others === '' ? '' : `; ${others}`}`, met: edge.length === 0 ? undefined : bhr >= BYTE_HIT_RATIO_MIN })
  }
  const herd = r.herd
  if (herd !== undefined) {
    out.push({ id: 'cold herd: origin requests', target: `${herd.targets.originRequests.expected} per herd`, measured: `max ${herd.originRequestsMax} per round`, met: herd.targets.originRequests.met })
    out.push({ id: 'cold herd: TTFB p99', target: `< ${herd.targets.ttfbP99.maxMs} ms`, measured: `${fmt(herd.edge.ttfbP99Ms)} ms (median of ${herd.config.rounds} rounds)`, met: herd.targets.ttfbP99.met })
  }
  const cr = r.coldRange?.summaries.find((s) => s.target === 'edge')
  if (cr !== undefined) {
    out.push({ id: 'cold range: first byte', target: '< 50 ms', measured: `${fmt(cr.ttfbMs)} ms`, met: cr.allCorrect && cr.ttfbMs < 50 })
    out.push({ id: 'cold range: origin bytes', target: '≤ 2 MiB', measured: `${fmt(cr.originBytes / 2 ** 20)} MiB in ${fmt(cr.originRequests)} request(s)`, met: cr.originBytes <= 2 * 2 ** 20 })
  }
  for (const m of r.memory ?? []) {
    out.push({ id: `memory (${m.scenario})`, target: `RSS < budget + 150 MB (${fmt(m.limitBytes / 1e6)} MB)`, measured: `${fmt(m.rssBytes / 1e6)} MB`, met: m.met })
  }
  return out
}
