/**
 * `npm run bench`: issue 7's suite, streamedge against nginx and Varnish on one machine.
 *
 *   npm run bench                          # the whole suite (< 10 min on 2 cores), writes bench/RESULTS.md
 *   npm run bench -- --quick               # short windows, to check the harness
 *   npm run bench -- --only hot-segment,cold-herd   # some scenarios (see SCENARIOS in bench/lib/args.ts)
 *   npm run bench -- --peers nginx         # compare with these peers only (nginx, nginx-slice, varnish, or none)
 *   npm run bench -- --profile always      # auto (default: when a CPU target is missed) | always | never
 *   npm run bench -- --rounds 3            # rounds per scenario (default 2; cold range 3)
 *   npm run bench -- --quiet-wait 60       # before each window wait up to 60 s for the machine to go idle (shared boxes)
 *   npm run bench -- --edge-ref HEAD       # run the edge as committed at a ref (git archive into a temp dir), not the
 *                                          # working tree other people may be editing; compare two refs run by run
 *   npm run bench -- --edge-root /abs/dir  # run the edge of another checkout
 *   npm run bench -- --render bench/results/<date>.json  # rewrite bench/RESULTS.md from a saved run, no benchmark
 *   npm run bench -- --only hot-playlist --log-ab  # also the edge with its access log on (`edge-log`): the log's cost
 *
 * Peers (nginx, nginx with the slice module, Varnish) and wrk run when installed (bench/README.md)
 * and are reported absent otherwise. Writes bench/results/<date>.json (gitignored) every time, and
 * bench/RESULTS.md only for a full run of the whole suite, so a quick or partial run never replaces
 * the reference numbers. All traffic stays on 127.0.0.1. Linux only (CPU comes from /proc).
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { DEFAULT_SCENARIOS, parseBenchArgs, type BenchArgs, type Scenario } from './lib/args.ts'
import { REPO_ROOT } from './lib/child-server.ts'
import { summariseWindows, type CompareResult } from './lib/compare.ts'
import { exportRef } from './lib/edge-snapshot.ts'
import { findExecutable, versionLine } from './lib/executables.ts'
import { waitForQuiet } from './lib/quiet.ts'
import { fileStamp, machineInfo, renderResultsMarkdown, sourceInfo, type BenchResults, type SourceInfo, type ToolInfo } from './lib/results.ts'
import { issue7Verdicts } from './lib/verdicts.ts'
import { detectPeers } from './peers/start-peer.ts'
import { runColdHerd } from './scenarios/cold-herd.ts'
import { runColdRange } from './scenarios/cold-range.ts'
import { HOT_CACHE_SCENARIOS, runHotCache, type HotCacheScenario } from './scenarios/hot-cache.ts'
import { runHotMemory } from './scenarios/hot-memory.ts'
import { renderOffloadMarkdown, run as runOffload } from './scenarios/offload.ts'
import { renderRevalidationMarkdown, run as runRevalidation } from './scenarios/revalidation.ts'
import { renderSteadyMissesMarkdown, runSteadyMisses } from './scenarios/steady-misses.ts'
import { runSteering } from './scenarios/steering.ts'
import { runWorkingSet } from './scenarios/working-set.ts'

async function main (): Promise<void> {
  const args = parseBenchArgs(process.argv.slice(2))
  if (args.render !== undefined) {
    const saved = JSON.parse(await readFile(args.render, 'utf8')) as BenchResults
    // Summaries again from the saved windows, so figures added since the run (e.g. server + client CPU) show too.
    const again = (c: CompareResult): CompareResult => ({ ...c, summaries: summariseWindows(c.windows) })
    const results: BenchResults = {
      ...saved,
      ...(saved.comparisons === undefined ? {} : { comparisons: saved.comparisons.map(again) }),
      ...(saved.workingSet === undefined ? {} : { workingSet: { ...saved.workingSet, comparison: again(saved.workingSet.comparison) } }),
    }
    await writeFile(join(REPO_ROOT, 'bench/RESULTS.md'), renderResultsMarkdown(results))
    process.stderr.write(`bench/RESULTS.md rendered from ${args.render}\n`)
    return
  }
  if (process.platform !== 'linux') throw new Error('bench needs Linux: server CPU time is read from /proc/<pid>/stat')
  const started = new Date()
  const stamp = fileStamp(started)
  const resultsDir = join(REPO_ROOT, 'bench/results')
  await mkdir(resultsDir, { recursive: true })
  const log = (line: string): void => { process.stderr.write(`${line}\n`) }
  const waited = { ms: 0 }
  const beforeWindow = async (): Promise<void> => {
    if (args.quietWaitS === 0) return
    const w = await waitForQuiet({ maxWaitMs: args.quietWaitS * 1000 })
    waited.ms += w.waitedMs
    if (!w.quiet) log(`  machine still busy (${w.busyCores.toFixed(2)} cores) after ${(w.waitedMs / 1000).toFixed(0)} s; measuring anyway`)
  }

  const snapshot = args.edgeRef === undefined ? undefined : await exportRef(REPO_ROOT, args.edgeRef)
  if (snapshot !== undefined) log(`edge under test: ${args.edgeRef} = ${snapshot.commit}, exported to ${snapshot.dir}`)
  const edgeRoot = snapshot?.dir ?? args.edgeRoot
  const source: SourceInfo = snapshot === undefined
    ? sourceInfo(edgeRoot ?? REPO_ROOT)
    : { root: `git archive ${args.edgeRef ?? ''}`, commit: snapshot.commit.slice(0, 12), uncommitted: [] }
  try {
    await runAll(args, { edgeRoot, stamp, resultsDir, beforeWindow, waited, log, started, source })
  } finally {
    await snapshot?.remove()
  }
}

interface RunContext {
  readonly edgeRoot: string | undefined
  readonly stamp: string
  readonly resultsDir: string
  readonly beforeWindow: () => Promise<void>
  /** Time spent so far waiting for a quiet machine (not the suite's own cost). */
  readonly waited: { readonly ms: number }
  readonly log: (line: string) => void
  readonly started: Date
  readonly source: SourceInfo
}

/** The tools found here: peers (all of them, absent ones with the reason), wrk, autocannon. */
function tools (): { info: ToolInfo, wrk: string | undefined } {
  const wrk = findExecutable('wrk')
  const autocannon = (createRequire(import.meta.url)('autocannon/package.json') as { version: string }).version
  return { info: { autocannon, wrk: wrk === undefined ? undefined : versionLine(wrk, ['-v'])?.replace(/ Copyright.*$/, ''), peers: detectPeers() }, wrk }
}

async function runAll (args: BenchArgs, c: RunContext): Promise<void> {
  const { stamp, resultsDir, beforeWindow, log, started } = c
  const scenarios = args.only ?? DEFAULT_SCENARIOS
  const wants = (s: Scenario): boolean => scenarios.includes(s)
  const { info, wrk } = tools()
  for (const p of info.peers) if (!p.available) log(`peer ${p.name} absent: ${p.reason ?? ''}`)
  if (wrk === undefined) log('wrk absent: throughput is measured with autocannon only (apt-get install wrk)')
  const peers = info.peers.filter((p) => p.available && (args.peers === undefined || args.peers.includes(p.name)))
  const quick = args.quick
  const rounds = args.rounds ?? (quick ? 1 : 2)
  const windowS = { warmupS: 1, measureS: quick ? 2 : 4 }
  const results: { -readonly [K in keyof BenchResults]: BenchResults[K] } = {
    date: started.toISOString(),
    quick,
    quietWaitS: args.quietWaitS,
    machine: machineInfo(),
    source: c.source,
    wallSeconds: 0,
    scenarios: [...scenarios],
    tools: info,
    memory: [],
    failures: [],
    extra: {},
  }
  const memory = results.memory as NonNullable<BenchResults['memory']>[number][]
  const failures = results.failures as Array<{ scenario: string, error: string }>
  const extra = results.extra as Record<string, { result: unknown, markdown: string }>
  const attempt = async (name: string, body: () => Promise<void>): Promise<void> => {
    const t0 = performance.now()
    log(`== ${name}`)
    try {
      await body()
    } catch (err) {
      const message = err instanceof Error ? err.stack ?? err.message : String(err)
      failures.push({ scenario: name, error: message })
      log(`${name} failed: ${message}`)
    }
    log(`== ${name}: ${((performance.now() - t0) / 1000).toFixed(0)} s`)
  }

  const hotScenarios = HOT_CACHE_SCENARIOS.filter((s: HotCacheScenario) => wants(s))
  if (hotScenarios.length > 0) {
    await attempt(hotScenarios.join(', '), async () => {
      const hot = await runHotCache({ scenarios: hotScenarios, peers, wrkCommand: wrk, connections: 100, rounds, ...windowS, profile: args.profile, edgeRoot: c.edgeRoot, resultsDir, stamp, beforeWindow, log, floors: args.floors, logAb: args.logAb })
      results.comparisons = hot.comparisons
      results.profiles = hot.profiles
      memory.push(...hot.memory)
    })
  }
  if (wants('working-set')) {
    await attempt('working-set', async () => {
      const ws = await runWorkingSet({ peers, wrkCommand: wrk, connections: 64, rounds, ...windowS, edgeRoot: c.edgeRoot, beforeWindow, log })
      results.workingSet = ws.result
      memory.push(...ws.memory)
    })
  }
  if (wants('cold-herd')) {
    await attempt('cold-herd', async () => {
      const { memory: herdMemory, ...herd } = await runColdHerd({ clients: 200, rounds: args.rounds ?? (quick ? 1 : 2), ...(quick ? { warmupRounds: 1 } : {}), edgeRoot: c.edgeRoot, peers, shield: true, beforeWindow, log })
      results.herd = herd
      memory.push(...herdMemory)
    })
  }
  if (wants('cold-range')) {
    await attempt('cold-range', async () => {
      results.coldRange = await runColdRange({ peers, rounds: args.rounds ?? (quick ? 1 : 3), edgeRoot: c.edgeRoot, beforeWindow, log })
    })
  }
  if (wants('steering')) {
    // The control plane has no --edge-ref variant: it always runs from this checkout.
    await attempt('steering', async () => {
      await beforeWindow()
      results.steering = await runSteering({ durationS: quick ? 2 : 5, warmupS: quick ? 1 : 2, connections: 64, log })
    })
  }
  if (wants('revalidation')) {
    await attempt('revalidation', async () => {
      await beforeWindow()
      const r = await runRevalidation({ durationS: quick ? 2 : 4, rounds: quick ? 1 : 2, log })
      extra.revalidation = { result: r, markdown: renderRevalidationMarkdown(r) }
    })
  }
  if (wants('offload')) {
    await attempt('offload', async () => {
      // Half the scenario's own default replay keeps the suite under 10 minutes; the offload ratios barely move.
      const r = await runOffload({ ...(quick ? { requests: 2000, segments: 300 } : { requests: 5000, segments: 500 }), log })
      extra.offload = { result: r, markdown: renderOffloadMarkdown(r) }
    })
  }
  if (wants('hot-memory')) {
    await attempt('hot-memory', async () => {
      results.hot = await runHotMemory({
        connections: 100,
        warmupS: quick ? 1 : 3,
        measureS: quick ? 3 : 10,
        rounds: args.rounds ?? (quick ? 2 : 3),
        profile: args.profile,
        edgeRoot: c.edgeRoot,
        beforeWindow,
        resultsDir,
        stamp,
        log,
      })
    })
  }
  if (wants('steady-misses')) {
    await attempt('steady-misses', async () => {
      const r = await runSteadyMisses({ quick, rounds: args.rounds, edgeRoot: c.edgeRoot, beforeWindow, log })
      extra['steady-misses'] = { result: r, markdown: renderSteadyMissesMarkdown(r) }
    })
  }
  results.wallSeconds = (Date.now() - started.getTime()) / 1000
  results.quietWaitedSeconds = c.waited.ms / 1000
  results.verdicts = issue7Verdicts(results)
  const jsonPath = join(resultsDir, `${stamp}.json`)
  await writeFile(jsonPath, `${JSON.stringify(results, null, 2)}\n`)
  const markdown = renderResultsMarkdown(results)
  process.stdout.write(markdown)
  log(`results: ${jsonPath}`)
  if (!quick && args.only === undefined) {
    await writeFile(join(REPO_ROOT, 'bench/RESULTS.md'), markdown)
    log(`summary: ${join(REPO_ROOT, 'bench/RESULTS.md')}`)
  }
  if (failures.length > 0) process.exitCode = 1
}

main().then(() => process.exit(process.exitCode ?? 0), (err: unknown) => {
  process.stderr.write(`bench failed: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`)
  process.exit(1)
})
