/**
 * `streamedge prefill` end to end: the real CLI parser and handler against an edge in
 * front of the demo origin. The job is followed to its end (progress lines without a
 * terminal, a bar with one), the final status is JSON on stdout, and bad usage exits 2.
 */
import t from 'tap'
import { startOrigin } from '../../bench/origin/origin-server.ts'
import { prefillFromCli, progressLine } from '../../bin/prefill-command.ts'
import { runCli, type CliHandlers } from '../../config/cli.ts'
import type { PrefillJobStatus } from '../../lib/protocol/prefill.ts'
import { startHlsNode } from '../helpers/hls.ts'

const TOKEN = 'cli-test-token'

function capture (isTty: boolean, env: NodeJS.ProcessEnv = {}): { out: string[], err: string[], run: (argv: string[]) => Promise<number> } {
  const out: string[] = []
  const err: string[] = []
  const handlers: CliHandlers = {
    edge: async () => {},
    start: async () => {},
    prefill: (args, io) => prefillFromCli(args, { stdout: io.stdout, stderr: io.stderr, isTty, pollMs: 20 }),
  }
  const run = (argv: string[]): Promise<number> => runCli(argv, handlers, { stdout: (s) => out.push(s), stderr: (s) => err.push(s), env, setExitCode: () => {} })
  return { out, err, run }
}

t.test('prefill a title and follow it to the end', async (t) => {
  const origin = await startOrigin()
  t.teardown(() => origin.close())
  const { node } = await startHlsNode(t, { origin: origin.url, adminToken: TOKEN })
  const cli = capture(true)
  const code = await cli.run(['prefill', '--node', node.url, '--token', TOKEN, '--renditions', 'lowest', '--rate', '8MiB', '/vod/bars/'])
  t.equal(code, 0, cli.err.join(''))
  const status = JSON.parse(cli.out.join('')) as PrefillJobStatus
  t.match(status, { state: 'done', playlists: 1, segmentsTotal: 7, segmentsFilled: 7, bytesPerSecond: 8 * 1024 * 1024 })
  t.match(cli.err.join(''), /\r\[#+\.*\] +\d+% \d+\/7 segments/, 'a progress bar redrawn in place')
  t.match(cli.err.join(''), /job pf-\S+ done: 7 filled, 0 already cached, 0 failed of 7 segments in 1 playlists/)

  const again = capture(false, { STREAMEDGE_ADMIN_TOKEN: TOKEN })
  t.equal(await again.run(['prefill', '--node', node.url, '/vod/bars/master.m3u8', '--renditions', 'lowest']), 0, 'the token from the environment')
  t.match(JSON.parse(again.out.join('')), { segmentsCached: 7, segmentsFilled: 0 })
  t.notMatch(again.err.join(''), /\r/, 'no carriage returns without a terminal')

  const detached = capture(false)
  t.equal(await detached.run(['prefill', '--node', node.url, '--token', TOKEN, '--detach', '/vod/bbb-test/']), 0)
  t.match(JSON.parse(detached.out.join('')), { id: /^pf-/, titles: ['/vod/bbb-test/'] })
})

t.test('failures and bad usage', async (t) => {
  const origin = await startOrigin()
  t.teardown(() => origin.close())
  const { node } = await startHlsNode(t, { origin: origin.url, adminToken: TOKEN })
  const missing = capture(false)
  t.equal(await missing.run(['prefill', '--node', node.url, '--token', TOKEN, '/vod/none/']), 1, 'a title that does not exist fails the command')
  t.match(missing.err.join(''), /\/vod\/none\/master\.m3u8: HTTP 404/)
  const wrong = capture(false)
  t.equal(await wrong.run(['prefill', '--node', node.url, '--token', 'nope', '/vod/bars/']), 1)
  t.match(wrong.err.join(''), /HTTP 401/)
  const cases: Array<[string[], RegExp]> = [
    [['prefill', '--node', node.url, '/vod/bars/'], /--token or STREAMEDGE_ADMIN_TOKEN/],
    [['prefill', '--node', 'ftp://x', '--token', 'x', '/a/'], /--node must be an http/],
    [['prefill', '--node', node.url, '--token', 'x', '--rate', 'fast', '/a/'], /--rate must be/],
    [['prefill', '--node', node.url, '--token', 'x', '--concurrency', '0', '/a/'], /--concurrency must be/],
    [['prefill', '--node', node.url, '--token', 'x', '--window', 'night', '/a/'], /window must be HH:MM-HH:MM/],
    [['prefill', '--node', node.url, '--token', 'x', 'relative/path'], /titles must be paths/],
    [['prefill', '--node', node.url, '--token', 'x'], /Not enough non-option arguments/],
  ]
  for (const [argv, error] of cases) {
    const cli = capture(false)
    t.equal(await cli.run(argv), 2, argv.join(' '))
    t.match(cli.err.join(''), error)
  }
})

t.test('progress lines', async (t) => {
  const base: PrefillJobStatus = { id: 'pf-1', state: 'running', titles: ['/a/'], createdAtMs: 0, updatedAtMs: 0, playlists: 2, segmentsTotal: 10, segmentsDone: 5, segmentsFilled: 4, segmentsCached: 1, segmentsFailed: 0, bytes: 2 * 1024 * 1024, bytesPerSecond: 0, errors: [] }
  t.equal(progressLine(base, 2000), '[###############...............]  50% 5/10 segments, 2.0 MiB at 1.0 MiB/s, 1 already cached')
  t.match(progressLine({ ...base, state: 'waiting' }, 0), /waiting for the fill window/)
})
