/**
 * The `streamedge` process: parses the command line (config/cli.ts) and starts the
 * requested role. Roles run until SIGINT/SIGTERM, then shut down gracefully.
 */
import { runCli } from '../config/cli.ts'
import { CdnError } from '../lib/errors.ts'
import type { StreamedgeConfig } from '../config/params.ts'

/** Stops `close` on the first SIGINT/SIGTERM; a second signal exits at once. */
function closeOnSignal (close: () => Promise<void>): void {
  let closing = false
  const onSignal = (signal: NodeJS.Signals): void => {
    if (closing) process.exit(130)
    closing = true
    close().then(() => process.exit(0), (err: unknown) => {
      process.stderr.write(`error during shutdown after ${signal}: ${String(err)}\n`)
      process.exit(1)
    })
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
}

/**
 * `BENCH_PACER_DEFER_MS`, the shared-fill pacer's benchmarking knob (edge/cache/shared-fill.ts
 * setPacerMaxDeferMs), read here at the entry point rather than where the module loads, so no
 * library import depends on the shell it runs in. Not STREAMEDGE_*: the config loader rejects
 * unknown STREAMEDGE_* variables.
 */
async function applyBenchKnobs (): Promise<void> {
  const raw = process.env.BENCH_PACER_DEFER_MS
  if (raw === undefined || raw === '') return
  const { setPacerMaxDeferMs } = await import('../edge/cache/shared-fill.ts')
  const ms = Number(raw)
  if (!Number.isInteger(ms) || ms < 0 || ms > 1000) throw new CdnError('CDN_ERR_CONFIG_INVALID', `Invalid config: BENCH_PACER_DEFER_MS must be an integer number of ms from 0 to 1000, got ${JSON.stringify(raw)}`)
  setPacerMaxDeferMs(ms)
}

export async function main (argv: readonly string[]): Promise<void> {
  await runCli(argv, {
    async edge (config: Readonly<StreamedgeConfig>) {
      await applyBenchKnobs()
      const { startEdge } = await import('../edge/main.ts')
      const edge = await startEdge(config)
      closeOnSignal(() => edge.close())
    },
    async shield (config: Readonly<StreamedgeConfig>) {
      await applyBenchKnobs()
      const { startShield } = await import('../shield/main.ts')
      const shield = await startShield(config)
      closeOnSignal(() => shield.close())
    },
    async controlPlane (config: Readonly<StreamedgeConfig>) {
      const { runControlPlane } = await import('../control-plane/main.ts')
      const controlPlane = await runControlPlane(config)
      closeOnSignal(() => controlPlane.close())
    },
    async prefill (args, io) {
      const { prefillFromCli } = await import('./prefill-command.ts')
      // The first Ctrl-C cancels the job on the node; a second one exits at once.
      const abort = new AbortController()
      const onSignal = (): void => { if (abort.signal.aborted) process.exit(130); abort.abort() }
      process.on('SIGINT', onSignal)
      try {
        return await prefillFromCli(args, { stdout: io.stdout, stderr: io.stderr, isTty: process.stderr.isTTY === true, signal: abort.signal })
      } finally {
        process.off('SIGINT', onSignal)
      }
    },
    async start ({ config }) {
      const { startDemo, printDemo } = await import('../bench/demo.ts')
      const demo = await startDemo(config)
      printDemo(demo)
      closeOnSignal(() => demo.close())
    },
  })
}
