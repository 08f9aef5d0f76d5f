/**
 * The edge's token gate: tokens in the path (relative playlist URIs keep them) or in the
 * se_token query parameter, the URL handed on without the token, 403 reasons, IPv4-mapped
 * peers, absolute-form targets, and path escapes.
 */
import t from 'tap'
import { checkRequestToken, splitRequestToken } from '../../../edge/auth/token-check.ts'
import { TokenKey, TokenSigner, TokenVerifier } from '../../../lib/protocol/token.ts'

const NOW_MS = 1_800_000_000_000
const key = new TokenKey('k1', 'edge-check-secret-0123456789')
const signer = new TokenSigner([key])
const verifier = new TokenVerifier([key])
const token = signer.sign({ exp: NOW_MS / 1000 + 3600, path: '/vod/title/', country: 'FR' })

t.test('a path token is checked and removed; relative URIs resolved under it keep it', async (t) => {
  const master = `/t/${token}/vod/title/master.m3u8`
  const result = checkRequestToken(master, '127.0.0.1', verifier, NOW_MS)
  t.match(result, { ok: true, path: '/vod/title/master.m3u8', token, source: 'path', claims: { path: '/vod/title/', country: 'FR' } })
  // What a player does with `360p/index.m3u8` and then `seg-1.ts` (RFC 3986 §5.2)
  const media = new URL('360p/index.m3u8', `http://edge.example${master}`)
  const segment = new URL('seg-1.ts', media)
  t.equal(segment.pathname, `/t/${token}/vod/title/360p/seg-1.ts`)
  t.match(checkRequestToken(segment.pathname, '127.0.0.1', verifier, NOW_MS), { ok: true, path: '/vod/title/360p/seg-1.ts' })
  const up = new URL('../audio/index.m3u8', media) // a sibling rendition, still inside the title
  t.match(checkRequestToken(up.pathname, '127.0.0.1', verifier, NOW_MS), { ok: true, path: '/vod/title/audio/index.m3u8' })
})

t.test('a query token works too, and only se_token is removed from the query', async (t) => {
  const result = checkRequestToken(`/vod/title/seg-1.ts?a=1&se_token=${token}&b=2`, '127.0.0.1', verifier, NOW_MS)
  t.match(result, { ok: true, path: '/vod/title/seg-1.ts?a=1&b=2', source: 'query' })
  t.match(checkRequestToken(`/vod/title/seg-1.ts?se_token=${token}`, '127.0.0.1', verifier, NOW_MS), { ok: true, path: '/vod/title/seg-1.ts' })
  const both = checkRequestToken(`/t/${token}/vod/title/x.ts?se_token=garbage&k=v`, undefined, verifier, NOW_MS)
  t.match(both, { ok: true, path: '/vod/title/x.ts?k=v', source: 'path' }, 'the path token wins and the query one is dropped')
})

t.test('403 with a reason for every bad request', async (t) => {
  const expired = signer.sign({ exp: NOW_MS / 1000 - 1, path: '/vod/title/' })
  const bound = signer.sign({ exp: NOW_MS / 1000 + 60, path: '/vod/title/', ip: '198.51.100.4' })
  const cases: Array<[string, string | undefined, string]> = [
    ['/vod/title/master.m3u8', '127.0.0.1', 'missing'],
    ['/t//vod/title/master.m3u8', '127.0.0.1', 'missing'],
    [`/vod/title/master.m3u8?se_token=`, '127.0.0.1', 'missing'],
    [`/t/${expired}/vod/title/master.m3u8`, '127.0.0.1', 'expired'],
    [`/t/${token}/vod/other/master.m3u8`, '127.0.0.1', 'out-of-scope'],
    [`/t/${token}/vod/title/../other/master.m3u8`, '127.0.0.1', 'unsafe-path'],
    [`/t/${token}/vod/title/%2e%2e/other/master.m3u8`, '127.0.0.1', 'unsafe-path'],
    [`/t/${token}/vod/title%2F..%2Fother/master.m3u8`, '127.0.0.1', 'unsafe-path'],
    [`/t/${token.slice(0, -2)}xx/vod/title/master.m3u8`, '127.0.0.1', 'bad-signature'],
    [`/t/not-a-token/vod/title/master.m3u8`, '127.0.0.1', 'malformed'],
    [`/t/${bound}/vod/title/master.m3u8`, '198.51.100.5', 'ip-mismatch'],
  ]
  for (const [url, ip, reason] of cases) t.same(checkRequestToken(url, ip, verifier, NOW_MS), { ok: false, status: 403, reason }, url.slice(0, 60))
  t.match(checkRequestToken(`/t/${bound}/vod/title/master.m3u8`, '::ffff:198.51.100.4', verifier, NOW_MS), { ok: true }, 'an IPv4-mapped peer matches its IPv4 binding')
})

t.test('splitRequestToken handles the edge cases of request targets', async (t) => {
  t.same(splitRequestToken('/vod/a.ts'), { token: undefined, source: undefined, url: '/vod/a.ts', path: '/vod/a.ts', stripped: false })
  t.same(splitRequestToken('http://edge.example:8080/t/abc/vod/a.ts?x=1'), { token: 'abc', source: 'path', url: '/vod/a.ts?x=1', path: '/vod/a.ts', stripped: true }, 'absolute-form')
  t.same(splitRequestToken('/t/abc'), { token: 'abc', source: 'path', url: '/', path: '/', stripped: true })
  t.same(splitRequestToken('/t/abc?q=1'), { token: 'abc', source: 'path', url: '/?q=1', path: '/', stripped: true })
  t.same(splitRequestToken('/tv/show.ts'), { token: undefined, source: undefined, url: '/tv/show.ts', path: '/tv/show.ts', stripped: false }, '/tv is not /t/')
  t.same(splitRequestToken('/a.ts?se_token=a%2Eb'), { token: 'a.b', source: 'query', url: '/a.ts', path: '/a.ts', stripped: true }, 'query value decoded')
  t.same(splitRequestToken('/a.ts?x=se_token=1'), { token: undefined, source: undefined, url: '/a.ts?x=se_token=1', path: '/a.ts', stripped: false }, 'only a parameter named se_token')
  t.same(splitRequestToken('/a.ts?se_token=&x=1'), { token: undefined, source: undefined, url: '/a.ts?x=1', path: '/a.ts', stripped: true }, 'an empty token is no token, and is taken out')
  t.same(splitRequestToken('/t//a.ts'), { token: undefined, source: undefined, url: '/a.ts', path: '/a.ts', stripped: true }, 'an empty path token too')
})
