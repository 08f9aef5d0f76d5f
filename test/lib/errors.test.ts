/**
 * The error table and its documentation stay in step (fastify's errors test), and the
 * error type behaves as documented.
 */
import { readFileSync } from 'node:fs'
import t from 'tap'
import { CdnError, CODES, isCdnError, showValue, type ErrorCode } from '../../lib/errors.ts'

const doc = readFileSync(new URL('../../docs/errors.md', import.meta.url), 'utf8')
const rows = new Map<string, string[]>()
for (const line of doc.split('\n')) {
  const m = /^\| `(CDN_ERR_[A-Z_]+)` \| (\d+) \| (\w+) \| (yes|no) \|/.exec(line)
  if (m !== null) rows.set(m[1]!, [m[2]!, m[3]!, m[4]!])
}

t.test('docs/errors.md lists every code with its status, source and retryability', async (t) => {
  for (const [code, spec] of Object.entries(CODES)) {
    t.same(rows.get(code), [String(spec.status), spec.source, spec.retryable ? 'yes' : 'no'], code)
  }
  t.same([...rows.keys()].sort(), Object.keys(CODES).sort(), 'no code documented that does not exist')
})

t.test('CdnError carries code, status, source, retryable and cause', async (t) => {
  const cause = new Error('socket hang up')
  const err = new CdnError('CDN_ERR_UPSTREAM_CONNECT', 'Cannot reach origin', { cause })
  t.equal(err.code, 'CDN_ERR_UPSTREAM_CONNECT')
  t.equal(err.status, 502)
  t.equal(err.source, 'upstream')
  t.equal(err.retryable, true)
  t.equal(err.cause, cause)
  t.equal(err.message, 'Cannot reach origin')
  t.equal(new CdnError('CDN_ERR_INTERNAL').message, 'Internal error', 'default message from the table')
  t.equal(new CdnError('CDN_ERR_UPSTREAM_UNAVAILABLE', undefined, { status: 503 }).status, 503)
  t.ok(isCdnError(err))
  t.ok(isCdnError(err, 'CDN_ERR_UPSTREAM_CONNECT'))
  t.notOk(isCdnError(err, 'CDN_ERR_INTERNAL' as ErrorCode))
  t.notOk(isCdnError(new Error('x')))
})

t.test('showValue: values as a message shows them, non-finite numbers by name, long ones cut', async (t) => {
  t.equal(showValue('edge 1'), '"edge 1"')
  t.equal(showValue(undefined), 'undefined')
  t.equal(showValue(null), 'null')
  t.equal(showValue(Number.POSITIVE_INFINITY), 'Infinity', 'not null, as JSON would write it')
  t.equal(showValue(Number.NaN), 'NaN')
  t.equal(showValue({ a: [1] }), '{"a":[1]}')
  const fn = (): number => 1
  t.equal(showValue(fn), String(fn), 'what JSON cannot write, as String() writes it')
  const long = showValue('x'.repeat(200))
  t.equal(long.length, 80)
  t.ok(long.endsWith('...'))
})
