/**
 * Command line of bench/run.ts (node:util parseArgs; the CLI proper uses yargs, but the
 * bench has a handful of flags and no config file).
 */
import { isAbsolute } from 'node:path'
import { parseArgs } from 'node:util'
import { PEER_NAMES, type PeerName } from './bench-target.ts'

/** Scenario names accepted by --only, in the order a run takes them. */
export const SCENARIOS = ['hot-segment', 'hot-playlist', 'ranges', 'working-set', 'cold-herd', 'cold-range', 'steering', 'revalidation', 'offload', 'hot-memory', 'steady-misses'] as const
/** One scenario name. */
export type Scenario = typeof SCENARIOS[number]
/**
 * What a run without --only runs: everything but issue 2's edge-vs-bare hot-memory, which
 * hot-segment supersedes, and steady-misses (a pacer A/B of about two minutes; the suite must stay under 10).
 */
export const DEFAULT_SCENARIOS: readonly Scenario[] = SCENARIOS.filter((s) => s !== 'hot-memory' && s !== 'steady-misses')
const PROFILE_MODES = ['auto', 'always', 'never'] as const
/** The scenarios --log-ab adds a target to (bench/scenarios/hot-cache.ts HOT_CACHE_SCENARIOS). */
const LOG_AB_SCENARIOS: readonly Scenario[] = ['hot-segment', 'hot-playlist', 'ranges']

/** Parsed command line of bench/run.ts. */
export interface BenchArgs {
  readonly quick: boolean
  /** Scenarios to run (--only a,b), in suite order; undefined: the whole suite. */
  readonly only: readonly Scenario[] | undefined
  /** Peers to compare with (--peers nginx,varnish | none); undefined: every installed one. */
  readonly peers: readonly PeerName[] | undefined
  readonly profile: typeof PROFILE_MODES[number]
  readonly rounds: number | undefined
  /** Another checkout whose bin/streamedge.js is the edge under test (absolute path). */
  readonly edgeRoot: string | undefined
  /** A git ref whose committed tree is the edge under test (exported to a temp dir). */
  readonly edgeRef: string | undefined
  /** Before each measured window, wait up to this many seconds for a quiet machine (0: don't). */
  readonly quietWaitS: number
  /** Only re-render bench/RESULTS.md from this results JSON (no benchmark runs). */
  readonly render: string | undefined
  /** Also measure bare node:http and bare fast-path floors in every hot-cache workload, ranges included. */
  readonly floors: boolean
  /**
   * Also run every hot-cache workload against `edge-log`: the edge with its access log on
   * (the bench's `edge` runs with it off), to measure what the log costs.
   */
  readonly logAb: boolean
}

function list<T extends string> (flag: string, raw: string, allowed: readonly T[]): T[] {
  const items = raw.split(',').map((s) => s.trim()).filter((s) => s !== '')
  const bad = items.find((s) => !(allowed as readonly string[]).includes(s))
  if (bad !== undefined || items.length === 0) throw new TypeError(`Expected --${flag} to be a comma-separated list of ${allowed.join(', ')}, got ${raw}`)
  return allowed.filter((a) => items.includes(a))
}

/** Parses argv (without node and the script); throws TypeError naming the bad flag. */
export function parseBenchArgs (argv: readonly string[]): BenchArgs {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      quick: { type: 'boolean', default: false },
      only: { type: 'string' },
      peers: { type: 'string' },
      profile: { type: 'string', default: 'auto' },
      rounds: { type: 'string' },
      'edge-root': { type: 'string' },
      'edge-ref': { type: 'string' },
      'quiet-wait': { type: 'string', default: '0' },
      render: { type: 'string' },
      floors: { type: 'boolean', default: false },
      'log-ab': { type: 'boolean', default: false },
    },
    strict: true,
    allowPositionals: false,
  })
  const only = values.only === undefined ? undefined : list('only', values.only, SCENARIOS)
  const peers = values.peers === undefined ? undefined : values.peers === 'none' ? [] : list('peers', values.peers, PEER_NAMES)
  const profile = values.profile
  if (!(PROFILE_MODES as readonly string[]).includes(profile)) {
    throw new TypeError(`Expected --profile to be one of ${PROFILE_MODES.join(', ')}, got ${profile}`)
  }
  let rounds: number | undefined
  if (values.rounds !== undefined) {
    rounds = Number(values.rounds)
    if (!Number.isInteger(rounds) || rounds < 1 || rounds > 20) throw new TypeError(`Expected --rounds to be an integer between 1 and 20, got ${values.rounds}`)
  }
  const edgeRoot = values['edge-root']
  if (edgeRoot !== undefined && !isAbsolute(edgeRoot)) throw new TypeError(`Expected --edge-root to be an absolute path, got ${edgeRoot}`)
  const edgeRef = values['edge-ref']
  if (edgeRef !== undefined && edgeRoot !== undefined) throw new TypeError('Expected at most one of --edge-root and --edge-ref, got both')
  if (edgeRef !== undefined && (edgeRef === '' || edgeRef.startsWith('-'))) throw new TypeError(`Expected --edge-ref to be a git ref, got ${edgeRef}`)
  const quietWaitS = Number(values['quiet-wait'])
  if (!Number.isInteger(quietWaitS) || quietWaitS < 0 || quietWaitS > 600) {
    throw new TypeError(`Expected --quiet-wait to be an integer number of seconds between 0 and 600, got ${values['quiet-wait']}`)
  }
  if (values['log-ab'] && only !== undefined && !only.some((s) => LOG_AB_SCENARIOS.includes(s))) {
    throw new TypeError(`Expected --log-ab with at least one of ${LOG_AB_SCENARIOS.join(', ')} in --only, got --only ${only.join(',')}`)
  }
  return { quick: values.quick, only, peers, profile: profile as BenchArgs['profile'], rounds, edgeRoot, edgeRef, quietWaitS, render: values.render, floors: values.floors, logAb: values['log-ab'] }
}
