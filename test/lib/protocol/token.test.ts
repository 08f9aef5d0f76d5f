/**
 * Playback tokens: sign and verify, key rotation with overlap, expiry, tampering, forged
 * keys, path scope (prefix semantics and escapes such as `../`, `%2e%2e` and `%2F`), IP
 * binding, and secrets that never show up in messages, JSON or inspection.
 */
import { inspect } from 'node:util'
import t from 'tap'
import {
  isSafePath, parseTokenKeys, pathInScope, TokenKey, TokenSigner, TokenVerifier, type UnsignedClaims
} from '../../../lib/protocol/token.ts'

const SECRET_1 = 'first-secret-0123456789abcdef'
const SECRET_2 = 'second-secret-0123456789abcdef'
const NOW_MS = 1_800_000_000_000
const claims: UnsignedClaims = { exp: NOW_MS / 1000 + 600, path: '/vod/title/', country: 'DE', sid: 'abc' }

function setup (): { k1: TokenKey, k2: TokenKey, signer1: TokenSigner, verifier: TokenVerifier } {
  const k1 = new TokenKey('k1', SECRET_1)
  const k2 = new TokenKey('k2', SECRET_2)
  return { k1, k2, signer1: new TokenSigner([k1, k2], 'k1'), verifier: new TokenVerifier([k1, k2]) }
}

t.test('a signed token verifies and carries its claims', async (t) => {
  const { signer1, verifier } = setup()
  const token = signer1.sign(claims)
  t.match(token, /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{43}$/, 'base64url payload and signature')
  const result = verifier.verify(token, { nowMs: NOW_MS, path: '/vod/title/360p/seg-1.ts' })
  t.same(result, { ok: true, claims: { kid: 'k1', exp: claims.exp, path: '/vod/title/', country: 'DE', sid: 'abc' } })
})

t.test('rotation: tokens of the old and the new key verify while both are held', async (t) => {
  const { k1, k2 } = setup()
  const oldToken = new TokenSigner([k1]).sign(claims)
  const newToken = new TokenSigner([k2, k1], 'k2').sign(claims)
  const during = new TokenVerifier([k2, k1])
  t.ok(during.verify(oldToken, { nowMs: NOW_MS }).ok, 'old key still accepted during the overlap')
  t.ok(during.verify(newToken, { nowMs: NOW_MS }).ok, 'new key accepted')
  const after = new TokenVerifier([k2])
  t.same(after.verify(oldToken, { nowMs: NOW_MS }), { ok: false, reason: 'unknown-key' }, 'old key retired')
  t.ok(after.verify(newToken, { nowMs: NOW_MS }).ok)
  t.equal(new TokenSigner([k2, k1], 'k2').activeKid, 'k2')
  t.throws(() => new TokenSigner([k1], 'k9'), TypeError)
  t.throws(() => new TokenSigner([]), TypeError)
})

t.test('expiry and not-before, with optional leeway', async (t) => {
  const { signer1, verifier, k1 } = setup()
  const token = signer1.sign({ ...claims, nbf: NOW_MS / 1000 - 10 })
  t.ok(verifier.verify(token, { nowMs: claims.exp * 1000 - 1 }).ok, 'valid until the last millisecond')
  t.same(verifier.verify(token, { nowMs: claims.exp * 1000 }), { ok: false, reason: 'expired' })
  t.same(verifier.verify(token, { nowMs: NOW_MS - 11_000 }), { ok: false, reason: 'not-yet-valid' })
  const lenient = new TokenVerifier([k1], { leewaySeconds: 30 })
  t.ok(lenient.verify(token, { nowMs: claims.exp * 1000 + 29_000 }).ok, 'leeway covers clock skew')
  t.throws(() => new TokenVerifier([k1], { leewaySeconds: -1 }), TypeError)
})

t.test('tampering, forging and garbage are refused', async (t) => {
  const { signer1, verifier } = setup()
  const token = signer1.sign(claims)
  const [payload = '', signature = ''] = token.split('.')
  const widened = Buffer.from(Buffer.from(payload, 'base64url').toString().replace('/vod/title/', '/vod/')).toString('base64url')
  t.same(verifier.verify(`${widened}.${signature}`, { nowMs: NOW_MS }), { ok: false, reason: 'bad-signature' }, 'widened ACL')
  const flipped = signature.slice(0, 10) + (signature[10] === 'A' ? 'B' : 'A') + signature.slice(11)
  t.same(verifier.verify(`${payload}.${flipped}`, { nowMs: NOW_MS }), { ok: false, reason: 'bad-signature' }, 'flipped signature')
  // The last base64url character carries 2 unused bits: another spelling of the same bytes must fail too.
  const last = signature.at(-1) ?? 'A'
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'
  const sibling = alphabet[(alphabet.indexOf(last) & ~3) + ((alphabet.indexOf(last) + 1) & 3)] ?? 'A'
  t.same(verifier.verify(`${payload}.${signature.slice(0, -1)}${sibling}`, { nowMs: NOW_MS }), { ok: false, reason: 'bad-signature' }, 'no second spelling')
  const forged = new TokenSigner([new TokenKey('k1', 'attacker-guess-0123456789')]).sign(claims)
  t.same(verifier.verify(forged, { nowMs: NOW_MS }), { ok: false, reason: 'bad-signature' }, 'right kid, wrong secret')
  const unknown = new TokenSigner([new TokenKey('k9', SECRET_1)]).sign(claims)
  t.same(verifier.verify(unknown, { nowMs: NOW_MS }), { ok: false, reason: 'unknown-key' })
  for (const garbage of ['', 'x', 'a.b', `${payload}.`, `.${signature}`, `${payload}.${signature}x`, `${payload}!.${signature}`, `${Buffer.from('{"v":2}').toString('base64url')}.${signature}`]) {
    t.same(verifier.verify(garbage, { nowMs: NOW_MS }), { ok: false, reason: 'malformed' }, JSON.stringify(garbage))
  }
})

t.test('path scope: prefix semantics and escapes never widen the ACL', async (t) => {
  const { signer1, verifier } = setup()
  const token = signer1.sign(claims)
  const inScope = ['/vod/title/', '/vod/title/master.m3u8', '/vod/title/360p/index.m3u8', '/vod/title/360p/seg-1.ts', '/vod/title/a%20b.ts']
  for (const path of inScope) t.ok(verifier.verify(token, { nowMs: NOW_MS, path }).ok, `${path} is covered`)
  const outOfScope = ['/vod/other/master.m3u8', '/vod/title', '/vod/titles/x.ts', '/vod/', '/']
  for (const path of outOfScope) t.same(verifier.verify(token, { nowMs: NOW_MS, path }), { ok: false, reason: 'out-of-scope' }, `${path} is not covered`)
  const escapes = [
    '/vod/title/../other/master.m3u8',
    '/vod/title/./../../secret',
    '/vod/title/..',
    '/vod/title/%2e%2e/other/master.m3u8',
    '/vod/title/%2E%2E/other/master.m3u8',
    '/vod/title/.%2e/other/x.ts',
    '/vod/title/%2fother',
    '/vod/title%2F..%2Fother/x.ts',
    '/vod/title/%5c..%5cother',
    '/vod/title/..\\other',
    '/vod/title/%252e%252e/other',
    '/vod/title/seg.ts%00.m3u8',
    'vod/title/x.ts',
  ]
  for (const path of escapes) t.same(verifier.verify(token, { nowMs: NOW_MS, path }), { ok: false, reason: 'unsafe-path' }, `${path} is refused`)
})

t.test('pathInScope and isSafePath on their own', async (t) => {
  t.ok(pathInScope('/vod/a/x.ts', '/vod/a/'))
  t.ok(pathInScope('/vod/a', '/vod/a'))
  t.ok(pathInScope('/vod/a/x', '/vod/a'), 'a prefix without a slash covers its subtree')
  t.notOk(pathInScope('/vod/ab', '/vod/a'), 'but not its siblings')
  t.notOk(pathInScope('/vod/a', '/vod/a/'))
  t.ok(isSafePath('/vod/a-b_c.d/e%20f.ts'))
  t.notOk(isSafePath('/vod/a\u0001'))
})

t.test('isSafePath agrees with the straightforward definition on every tricky shape', async (t) => {
  // the definition isSafePath's single pass implements
  const reference = (path: string): boolean => {
    if (!path.startsWith('/')) return false
    if (/%(?:2[eEfF5]|5[cC]|00)/.test(path)) return false
    if (/[\x00-\x1f\x7f\\]/.test(path)) return false
    return path.split('/').every((segment) => segment !== '.' && segment !== '..')
  }
  const pieces = ['', '/', '.', '..', '...', 'a', '.a', 'a.', '%', '%2', '%2e', '%2E', '%2f', '%2F', '%25', '%5c', '%5C', '%00', '%0', '%20', '%3e', '%2g', '%5d', '\\', '\u0000', '\u001f', '\u007f', '~', 'é']
  let checked = 0
  for (const a of pieces) {
    for (const b of pieces) {
      for (const c of pieces) {
        for (const path of [`/${a}${b}${c}`, `/${a}/${b}/${c}`, `${a}/${b}${c}`, `/${a}${b}/${c}/`]) {
          if (isSafePath(path) !== reference(path)) t.fail(`${JSON.stringify(path)}: ${isSafePath(path)} but should be ${reference(path)}`)
          checked++
        }
      }
    }
  }
  t.pass(`${checked} paths agree`)
  t.notOk(isSafePath('/vod/..'), 'a dot segment at the end')
  t.notOk(isSafePath('/./x'), 'at the start')
  t.ok(isSafePath('/vod/.../x'), 'three dots are a name')
  t.ok(isSafePath('/vod/x%2'), 'an escape cut short at the end is none of the refused ones')
})

t.test('IP binding compares canonical addresses', async (t) => {
  const { signer1, verifier } = setup()
  const bound = signer1.sign({ ...claims, ip: '203.0.113.7' })
  t.ok(verifier.verify(bound, { nowMs: NOW_MS, clientIp: '203.0.113.7' }).ok)
  t.same(verifier.verify(bound, { nowMs: NOW_MS, clientIp: '203.0.113.8' }), { ok: false, reason: 'ip-mismatch' })
  t.same(verifier.verify(bound, { nowMs: NOW_MS }), { ok: false, reason: 'ip-mismatch' }, 'no client address: refused')
})

t.test('keys: parsing, validation, and secrets never revealed', async (t) => {
  const keys = parseTokenKeys(['a1:' + SECRET_1, 'b2:' + SECRET_2 + ':with:colons'], 'edge.token.keys')
  t.same(keys.map((k) => k.kid), ['a1', 'b2'])
  t.equal(JSON.stringify(keys), '[{"kid":"a1"},{"kid":"b2"}]')
  const shown = inspect(keys, { depth: 5, showHidden: true })
  t.notOk(shown.includes(SECRET_1) || shown.includes(SECRET_2), 'inspection shows no secret')
  const failures: Array<[string[], RegExp]> = [
    [['nokid'], /edge\.token\.keys\[0\] to look like kid:secret/],
    [[':' + SECRET_1], /edge\.token\.keys\[0\]/],
    [['k1:short'], /edge\.token\.keys\[0\]: .*at least 16 bytes, got 5/],
    [['bad kid:' + SECRET_1], /key id/],
    [['k1:' + SECRET_1, 'k1:' + SECRET_2], /unique key ids, got k1 twice/],
  ]
  for (const [entries, message] of failures) {
    const err = (() => { try { parseTokenKeys(entries, 'edge.token.keys') } catch (e) { return e as Error } return undefined })()
    t.ok(err instanceof TypeError, entries.join(','))
    t.match(err?.message, message)
    for (const secret of [SECRET_1, SECRET_2, 'short']) t.notOk(err?.message.includes(secret), 'no secret in the message')
  }
})

t.test('sign refuses claims that could not be verified safely', async (t) => {
  const { signer1 } = setup()
  t.throws(() => signer1.sign({ ...claims, path: '/vod/../x/' }), TypeError)
  t.throws(() => signer1.sign({ ...claims, path: 'relative/' }), TypeError)
  t.throws(() => signer1.sign({ ...claims, exp: 1.5 }), TypeError)
  t.throws(() => signer1.sign({ ...claims, country: 'Germany' }), TypeError)
})
