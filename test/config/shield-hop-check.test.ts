/**
 * One config that sets up both hops (an edge with edge.shields, and the shield's settings) is
 * refused when the edge would give up on a shield before the shield gives up on its origin:
 * edge.shield.firstByteTimeoutMs must be larger than shield.origin.firstByteTimeoutMs.
 */
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { runCli } from '../../config/cli.ts'
import { loadConfig, type LoadConfigOptions } from '../../config/load.ts'
import { getParam } from '../../config/params.ts'
import { isCdnError } from '../../lib/errors.ts'
import { tempDir } from '../helpers/cache-node.ts'

const EDGE = 'edge:\n  origin: http://origin:8000\n  shields: [http://shield-1:8081]\n'

function refusal (options: LoadConfigOptions): { code: string, message: string } {
  try {
    loadConfig({ env: {}, ...options })
  } catch (err) {
    if (!isCdnError(err)) throw err
    return { code: err.code, message: err.message }
  }
  throw new Error('expected loadConfig to throw')
}

t.test('the default shield hop outwaits the shield\'s default worst case', async (t) => {
  const config = loadConfig({ env: {}, argv: { 'edge.shields': 'http://shield-1:8081', 'shield.origins': 'http://origin:8000' } })
  const { retries, connectTimeoutMs, firstByteTimeoutMs } = config.shield.origin
  t.equal(config.edge.shield.firstByteTimeoutMs, 45000)
  t.ok(config.edge.shield.firstByteTimeoutMs > (retries + 1) * (connectTimeoutMs + firstByteTimeoutMs), 'above 3 × (3 s + 10 s)')
  t.equal(config.edge.upstream.firstByteTimeoutMs, 10000, "the edge's wait for an origin is unchanged")
  t.match(getParam('edge.shield.firstByteTimeoutMs')?.doc, /worst case/)
})

t.test('a file that sets up both roles with the inversion is refused, in one message naming both fields and values', async (t) => {
  const dir = await tempDir(t)
  const file = join(dir, 'both.yaml')
  await writeFile(file, `${EDGE}  shield:\n    firstByteTimeoutMs: 8000\nshield:\n  origins: [http://origin:8000]\n`)
  const err = refusal({ file })
  t.equal(err.code, 'CDN_ERR_CONFIG_INVALID')
  t.equal(err.message, `Invalid config: edge.shield.firstByteTimeoutMs 8000 (from file ${file}) must be larger than ` +
    'shield.origin.firstByteTimeoutMs 10000 (default): the edge would give up on its shield while the shield still waits for its origin, ' +
    "and go around it; set it above the shield's worst case, (shield.origin.retries + 1) × (shield.origin.connectTimeoutMs + shield.origin.firstByteTimeoutMs) = 3 × (3000 + 10000) = 39000 ms")

  const equal = join(dir, 'equal.yaml')
  await writeFile(equal, `${EDGE}shield:\n  origin:\n    firstByteTimeoutMs: 45000\n    retries: 0\n`)
  t.match(refusal({ file: equal }).message, /^Invalid config: edge\.shield\.firstByteTimeoutMs 45000 \(default\) must be larger than shield\.origin\.firstByteTimeoutMs 45000 \(from file .*equal\.yaml\): .* = 1 × \(3000 \+ 45000\) = 48000 ms$/, 'equal is not larger')

  const env = refusal({ file, env: { STREAMEDGE_SHIELD_ORIGIN_FIRST_BYTE_TIMEOUT_MS: '2000' }, argv: { 'edge.shield.firstByteTimeoutMs': '2000' } })
  t.match(env.message, /edge\.shield\.firstByteTimeoutMs 2000 \(from --edge\.shield\.firstByteTimeoutMs\) must be larger than shield\.origin\.firstByteTimeoutMs 2000 \(from env STREAMEDGE_SHIELD_ORIGIN_FIRST_BYTE_TIMEOUT_MS\)/, 'the merged config counts, with each value\'s source')
})

t.test('accepted: larger, or only one hop in the config', async (t) => {
  const dir = await tempDir(t)
  const larger = join(dir, 'larger.yaml')
  await writeFile(larger, `${EDGE}  shield:\n    firstByteTimeoutMs: 8001\nshield:\n  origin:\n    firstByteTimeoutMs: 8000\n`)
  t.equal(loadConfig({ env: {}, file: larger }).edge.shield.firstByteTimeoutMs, 8001)

  // The shields this edge uses are configured elsewhere: nothing to compare with.
  const edgeOnly = join(dir, 'edge-only.yaml')
  await writeFile(edgeOnly, `${EDGE}  shield:\n    firstByteTimeoutMs: 500\n`)
  t.equal(loadConfig({ env: {}, file: edgeOnly }).edge.shield.firstByteTimeoutMs, 500)

  // No shields: the edge never uses the shield hop.
  const unshielded = join(dir, 'unshielded.yaml')
  await writeFile(unshielded, 'edge:\n  origin: http://origin:8000\n  shield:\n    firstByteTimeoutMs: 500\nshield:\n  origins: [http://origin:8000]\n')
  t.equal(loadConfig({ env: {}, file: unshielded }).edge.shield.firstByteTimeoutMs, 500)
})

t.test('`streamedge config check` and role commands refuse it with exit code 2', async (t) => {
  const dir = await tempDir(t)
  const file = join(dir, 'both.yaml')
  await writeFile(file, `${EDGE}  shield:\n    firstByteTimeoutMs: 8000\nshield:\n  origins: [http://origin:8000]\n`)
  let stderr = ''
  const io = { stdout: () => {}, stderr: (s: string) => { stderr += s }, env: {}, cwd: dir, setExitCode: () => {} }
  const started: string[] = []
  const handlers = { edge: async () => { started.push('edge') }, start: async () => {}, shield: async () => { started.push('shield') } }
  t.equal(await runCli(['config', 'check', file], handlers, io), 2)
  t.match(stderr, /^Invalid config: edge\.shield\.firstByteTimeoutMs 8000 .* must be larger than shield\.origin\.firstByteTimeoutMs 10000 \(default\)/)
  t.equal(stderr.trimEnd().split('\n').length, 1, 'one line')
  stderr = ''
  t.equal(await runCli(['shield', '--config', file], handlers, io), 2)
  t.match(stderr, /must be larger than shield\.origin\.firstByteTimeoutMs/)
  t.same(started, [], 'nothing started')
})
