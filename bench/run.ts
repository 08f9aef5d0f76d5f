/**
 * `npm run bench`: issue 2's edge benchmarks.
 *
 *   npm run bench                       # both scenarios, full windows (~2-3 min on 2 cores)
 *   npm run bench -- --quick            # short windows, to check the harness
 *   npm run bench -- --only hot-memory  # or cold-herd
 *   npm run bench -- --profile always   # auto (default: when the CPU/GB target is missed) | always | never
 *   npm run bench -- --rounds 5         # rounds per scenario (default: 3 hot, 5 herd; quick 2 and 2)
 *   npm run bench -- --quiet-wait 60    # before each window wait up to 60 s for the machine to go idle (shared boxes)
 *   npm run bench -- --edge-ref HEAD    # run the edge as committed at a ref (git archive into a temp dir), not the
 *                                       # working tree other people may be editing; compare two refs run by run
 *   npm run bench -- --edge-root /abs/dir  # run the edge of another checkout
 *   npm run bench -- --render bench/results/<date>.json  # rewrite bench/RESULTS.md from a saved run, no benchmark
 *
 * Writes bench/results/<date>.json (gitignored) every time, and bench/RESULTS.md only for a
 * full run of every scenario, so a quick or partial run never replaces the reference numbers.
 * All traffic stays on 127.0.0.1. Linux only (server CPU comes from /proc/<pid>/stat).
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { parseBenchArgs, type BenchArgs, type Scenario } from './lib/args.ts'
import { REPO_ROOT } from './lib/child-server.ts'
import { exportRef } from './lib/edge-snapshot.ts'
import { waitForQuiet } from './lib/quiet.ts'
import { fileStamp, machineInfo, renderResultsMarkdown, sourceInfo, type BenchResults, type HerdResult, type HotResult, type SourceInfo } from './lib/results.ts'
import { runColdHerd } from './scenarios/cold-herd.ts'
import { runHotMemory } from './scenarios/hot-memory.ts'

async function main (): Promise<void> {
  const args = parseBenchArgs(process.argv.slice(2))
  if (args.render !== undefined) {
    const results = JSON.parse(await readFile(args.render, 'utf8')) as BenchResults
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
  const beforeWindow = async (): Promise<void> => {
    if (args.quietWaitS === 0) return
    const w = await waitForQuiet({ maxWaitMs: args.quietWaitS * 1000 })
    if (!w.quiet) log(`  machine still busy (${w.busyCores.toFixed(2)} cores) after ${(w.waitedMs / 1000).toFixed(0)} s; measuring anyway`)
  }

  const snapshot = args.edgeRef === undefined ? undefined : await exportRef(REPO_ROOT, args.edgeRef)
  if (snapshot !== undefined) log(`edge under test: ${args.edgeRef} = ${snapshot.commit}, exported to ${snapshot.dir}`)
  const edgeRoot = snapshot?.dir ?? args.edgeRoot
  const source: SourceInfo = snapshot === undefined
    ? sourceInfo(edgeRoot ?? REPO_ROOT)
    : { root: `git archive ${args.edgeRef ?? ''}`, commit: snapshot.commit.slice(0, 12), uncommitted: [] }
  try {
    await runAll(args, { edgeRoot, stamp, resultsDir, beforeWindow, log, started, source })
  } finally {
    await snapshot?.remove()
  }
}

interface RunContext {
  readonly edgeRoot: string | undefined
  readonly stamp: string
  readonly resultsDir: string
  readonly beforeWindow: () => Promise<void>
  readonly log: (line: string) => void
  readonly started: Date
  readonly source: SourceInfo
}

async function runAll (args: BenchArgs, c: RunContext): Promise<void> {
  const { stamp, resultsDir, beforeWindow, log, started } = c
  const wants = (s: Scenario): boolean => args.only === undefined || args.only === s
  let hot: HotResult | undefined
  let herd: HerdResult | undefined
  if (wants('hot-memory')) {
    hot = await runHotMemory({
      connections: 100,
      warmupS: args.quick ? 1 : 3,
      measureS: args.quick ? 3 : 10,
      rounds: args.rounds ?? (args.quick ? 2 : 3),
      profile: args.profile,
      edgeRoot: c.edgeRoot,
      beforeWindow,
      resultsDir,
      stamp,
      log,
    })
  }
  if (wants('cold-herd')) {
    herd = await runColdHerd({ clients: 200, rounds: args.rounds ?? (args.quick ? 2 : 5), edgeRoot: c.edgeRoot, beforeWindow, log })
  }
  const results: BenchResults = {
    date: started.toISOString(),
    quick: args.quick,
    quietWaitS: args.quietWaitS,
    machine: machineInfo(),
    source: c.source,
    wallSeconds: (Date.now() - started.getTime()) / 1000,
    ...(hot === undefined ? {} : { hot }),
    ...(herd === undefined ? {} : { herd }),
  }
  const jsonPath = join(resultsDir, `${stamp}.json`)
  await writeFile(jsonPath, `${JSON.stringify(results, null, 2)}\n`)
  const markdown = renderResultsMarkdown(results)
  process.stdout.write(markdown)
  log(`results: ${jsonPath}`)
  if (!args.quick && args.only === undefined) {
    await writeFile(join(REPO_ROOT, 'bench/RESULTS.md'), markdown)
    log(`summary: ${join(REPO_ROOT, 'bench/RESULTS.md')}`)
  }
}

main().then(() => process.exit(0), (err: unknown) => {
  process.stderr.write(`bench failed: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`)
  process.exit(1)
})
