/**
 * Finding nginx, varnishd and wrk, and reading their versions.
 */
import t from 'tap'
import { commandOutput, findExecutable, versionLine } from '../../../bench/lib/executables.ts'

t.test('findExecutable searches PATH, then the sbin directories', async (t) => {
  t.ok(findExecutable('sh') !== undefined, 'sh is on PATH')
  t.equal(findExecutable('streamedge-no-such-program', '/bin:/usr/bin'), undefined)
})

t.test('commandOutput and versionLine read stdout and stderr, whatever the exit code', async (t) => {
  const sh = findExecutable('sh')!
  t.equal(versionLine(sh, ['-c', 'echo; echo first >&2; echo second; exit 3']), 'second', 'stdout comes first')
  t.match(commandOutput(sh, ['-c', 'echo out; echo err >&2']) ?? '', /out\n[\s\S]*err/)
  t.equal(commandOutput('/nonexistent/program', []), undefined)
})
