/**
 * The `streamedge` process: parses the command line (config/cli.ts) and starts the
 * requested role. Roles run until SIGINT/SIGTERM, then shut down gracefully.
 */
import { runCli } from '../config/cli.ts'
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

export async function main (argv: readonly string[]): Promise<void> {
  await runCli(argv, {
    async edge (config: Readonly<StreamedgeConfig>) {
      const { startEdge } = await import('../edge/main.ts')
      const edge = await startEdge(config)
      closeOnSignal(() => edge.close())
    },
    async shield (config: Readonly<StreamedgeConfig>) {
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
