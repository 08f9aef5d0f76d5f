/**
 * Token reuse at steering rate: one signed token per (title, country, bound IP, expiry bucket),
 * lifetimes within [ttl, ttl + bucket), a fresh token (and sid) when the bucket moves, a
 * bounded map, and every issued token verifiable by the nodes' verifier.
 */
import t from 'tap'
import { TokenKey, TokenSigner, TokenVerifier } from '../../lib/protocol/token.ts'
import { TokenIssuer } from '../../control-plane/token-issuer.ts'

const KEY = new TokenKey('k1', 'token-issuer-test-secret-0123456789')
const T0 = 1_700_000_000_000

t.test('one token per title, country and bucket; lifetime within [ttl, ttl + bucket)', async (t) => {
  const issuer = new TokenIssuer({ signer: new TokenSigner([KEY]), ttlSeconds: 600, bucketSeconds: 60 })
  const a = issuer.issue('/vod/a/', 'DE', undefined, T0)
  const again = issuer.issue('/vod/a/', 'DE', undefined, T0 + 1500)
  t.equal(again, a, 'the same decision a moment later gets the same token')
  t.not(issuer.issue('/vod/a/', 'FR', undefined, T0).token, a.token, 'another country, another token')
  t.not(issuer.issue('/vod/b/', 'DE', undefined, T0).token, a.token, 'another title, another token')
  t.not(issuer.issue('/vod/a/', undefined, undefined, T0).token, a.token, 'unknown country is its own key')
  t.same(issuer.stats, { signed: 4, reused: 1 })
  for (let ms = T0; ms < T0 + 180_000; ms += 7_777) {
    const { claims } = issuer.issue('/vod/a/', 'DE', undefined, ms)
    const lifetime = claims.exp - ms / 1000
    if (lifetime < 600 || lifetime >= 660) t.fail(`lifetime ${lifetime} s at ${ms}`)
    t.equal(claims.exp % 60, 0, 'expiry on a bucket boundary')
  }
  const later = issuer.issue('/vod/a/', 'DE', undefined, T0 + 120_000)
  t.not(later.token, a.token, 'a later bucket signs anew')
  t.not(later.claims.sid, a.claims.sid, 'with a new token id')
  const verifier = new TokenVerifier([KEY])
  const verified = verifier.verify(later.token, { nowMs: T0 + 120_000, path: '/vod/a/master.m3u8' })
  t.ok(verified.ok, 'nodes accept issued tokens')
  t.match(verified, { claims: { kid: 'k1', path: '/vod/a/', country: 'DE', sid: later.claims.sid } })
})

t.test('IP-bound tokens are per client', async (t) => {
  const issuer = new TokenIssuer({ signer: new TokenSigner([KEY]), ttlSeconds: 600 })
  const one = issuer.issue('/vod/a/', 'DE', '192.0.2.1', T0)
  t.equal(issuer.issue('/vod/a/', 'DE', '192.0.2.1', T0).token, one.token)
  const other = issuer.issue('/vod/a/', 'DE', '192.0.2.2', T0)
  t.not(other.token, one.token)
  t.equal(other.claims.ip, '192.0.2.2')
  const verifier = new TokenVerifier([KEY])
  t.same(verifier.verify(one.token, { nowMs: T0, clientIp: '192.0.2.2' }), { ok: false, reason: 'ip-mismatch' })
})

t.test('the default bucket is a tenth of the TTL within [1, 60] s; the map is bounded', async (t) => {
  const short = new TokenIssuer({ signer: new TokenSigner([KEY]), ttlSeconds: 30 })
  t.equal(short.issue('/vod/a/', 'DE', undefined, T0).claims.exp % 3, 0, '30 s TTL: 3 s buckets')
  const bounded = new TokenIssuer({ signer: new TokenSigner([KEY]), ttlSeconds: 600, maxEntries: 3 })
  for (let i = 0; i < 10; i++) bounded.issue(`/vod/t${i}/`, 'DE', undefined, T0)
  bounded.issue('/vod/t9/', 'DE', undefined, T0)
  t.same(bounded.stats, { signed: 10, reused: 1 }, 'the newest entries are kept')
  bounded.issue('/vod/t0/', 'DE', undefined, T0)
  t.equal(bounded.stats.signed, 11, 'older ones were dropped')
  const generations = new TokenIssuer({ signer: new TokenSigner([KEY]), ttlSeconds: 600, maxEntries: 4 })
  const issue = (title: string): string => generations.issue(title, 'DE', undefined, T0).token
  const a = issue('/vod/a/')
  issue('/vod/b/')
  issue('/vod/c/') // the newer generation (2 tokens) was full: a and b are the older one now
  t.equal(issue('/vod/a/'), a, 'a token still in use survives a generation change')
  issue('/vod/d/') // full again: c and a become the older generation, b is dropped
  t.equal(issue('/vod/a/'), a, 'and the next one')
  t.same(generations.stats, { signed: 4, reused: 2 })
  issue('/vod/b/')
  t.equal(generations.stats.signed, 5, 'a token not used for two generations was dropped')
  const never = new TokenIssuer({ signer: new TokenSigner([KEY]), ttlSeconds: 600, maxEntries: 0 })
  never.issue('/vod/a/', 'DE', undefined, T0)
  never.issue('/vod/a/', 'DE', undefined, T0)
  t.same(never.stats, { signed: 2, reused: 0 }, 'maxEntries 0 turns reuse off')
  t.throws(() => new TokenIssuer({ signer: new TokenSigner([KEY]), ttlSeconds: 0 }), /options\.ttlSeconds/)
  t.throws(() => new TokenIssuer({ signer: new TokenSigner([KEY]), ttlSeconds: 60, bucketSeconds: 0.5 }), /options\.bucketSeconds/)
})

t.test('a licence window caps the expiry; such a token is not kept for reuse', async (t) => {
  const issuer = new TokenIssuer({ signer: new TokenSigner([new TokenKey('k1', 'a-secret-of-16-bytes-or-more')]), ttlSeconds: 3600 })
  const nowMs = Date.parse('2026-06-01T00:00:00Z')
  const untilMs = nowMs + 600_500
  const capped = issuer.issue('/vod/w/', 'DE', undefined, nowMs, untilMs)
  t.equal(capped.claims.exp, Math.floor(untilMs / 1000))
  const later = issuer.issue('/vod/w/', 'DE', undefined, nowMs, untilMs)
  t.not(later.token, capped.token, 'signed anew')
  const far = issuer.issue('/vod/w/', 'DE', undefined, nowMs, nowMs + 86_400_000)
  t.ok(far.claims.exp >= nowMs / 1000 + 3600, 'a window ending after the lifetime changes nothing')
  t.equal(issuer.issue('/vod/w/', 'DE', undefined, nowMs).token, far.token, 'and that token is reused')
})
