/**
 * The peer caches: their configs render without leftover placeholders, a missing binary
 * is reported absent, and (when installed) nginx and Varnish really start on a free port
 * against an origin, miss then hit, and leave no process or temp dir behind.
 */
import { existsSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import t from 'tap'
import { startOrigin } from '../../../bench/origin/origin-server.ts'
import { detectPeers, renderNginxConfig, renderVarnishVcl, startPeer, varnishSize } from '../../../bench/peers/start-peer.ts'
import { httpGet } from '../../../bench/lib/http-get.ts'

const peersDir = new URL('../../../bench/peers/', import.meta.url)

t.test('nginx configs render completely, the slice one with its slice directives only', async (t) => {
  const values = { dir: '/tmp/x', listen: '127.0.0.1:8080', origin: '127.0.0.1:9000', diskMaxBytes: 1024, workers: 1, user: 'root' }
  const plain = renderNginxConfig(await readFile(new URL('nginx-proxy-cache.conf', peersDir), 'utf8'), values)
  const slice = renderNginxConfig(await readFile(new URL('nginx-slice.conf', peersDir), 'utf8'), { ...values, user: undefined })
  for (const conf of [plain, slice]) {
    t.notMatch(conf, /\{\{/, 'no placeholder left')
    t.match(conf, /listen 127\.0\.0\.1:8080 /)
    t.match(conf, /server 127\.0\.0\.1:9000;/)
    t.match(conf, /max_size=1024 /)
    t.match(conf, /proxy_cache_lock on;/)
    t.match(conf, /X-Bench-Cache \$upstream_cache_status/)
  }
  t.match(plain, /^user root;$/m)
  t.notMatch(slice, /^user /m, 'no user directive when not root')
  t.notMatch(plain, /slice 1m/)
  t.match(slice, /slice 1m;[\s\S]*\$slice_range;[\s\S]*proxy_set_header Range \$slice_range;/)
})

t.test('the VCL renders the origin and marks hits', async (t) => {
  const vcl = renderVarnishVcl(await readFile(new URL('varnish.vcl', peersDir), 'utf8'), { originHost: '127.0.0.1', originPort: 9000 })
  t.notMatch(vcl, /\{\{/)
  t.match(vcl, /\.host = "127\.0\.0\.1";\s+\.port = "9000";/)
  t.match(vcl, /set beresp\.do_stream = true;/)
  t.equal(varnishSize(64 * 2 ** 20), '64M')
  t.equal(varnishSize(1000), '1k')
  t.throws(() => varnishSize(0), TypeError)
})

t.test('detectPeers reports all three, absent ones with a reason', async (t) => {
  const peers = detectPeers()
  t.same(peers.map((p) => p.name), ['nginx', 'nginx-slice', 'varnish'])
  for (const p of peers) t.ok(p.available ? p.command !== undefined && p.reason === undefined : p.reason !== undefined, `${p.name} is consistent`)
  const absent = { ...peers[0]!, available: false, reason: 'nginx not found' }
  await t.rejects(startPeer(absent, { originUrl: 'http://127.0.0.1:1' }), TypeError, 'an absent peer is never started')
})

for (const peer of detectPeers()) {
  t.test(`${peer.name} starts, misses then hits, and stops cleanly`, { skip: peer.available ? false : peer.reason ?? 'absent', timeout: 60_000 }, async (t) => {
    const origin = await startOrigin()
    t.teardown(() => origin.close())
    const target = await startPeer(peer, { originUrl: origin.url, memoryMaxBytes: 16 * 2 ** 20 })
    let stopped = false
    t.teardown(async () => { if (!stopped) await target.stop() })
    t.match(target.url, /^http:\/\/127\.0\.0\.1:\d+$/)
    const path = `/synthetic/peer-test-${peer.name}-18800.ts`
    const first = await httpGet(target.url + path)
    const second = await httpGet(target.url + path)
    t.equal(first.status, 200)
    t.same(second.body, first.body)
    t.notOk(target.isHit(first), 'first response is a miss')
    t.ok(target.isHit(second), 'second response is a hit')
    t.equal(origin.count(path), 1, 'the origin saw one request')
    const cpu = target.cpu()
    t.ok(cpu.userSeconds + cpu.systemSeconds >= 0)
    t.ok(target.rssBytes() > 0, 'RSS of its process tree')
    const pid = target.pids[0]!
    stopped = true
    await target.stop()
    t.notOk(existsSync(`/proc/${pid}`), 'the main process is gone')
  })
}
