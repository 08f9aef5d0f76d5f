/**
 * Prefill and inventory messages: request validation (each bad field named), window
 * parsing, path safety, and reading statuses and inventories back.
 */
import t from 'tap'
import { isPrefillPath, parseDailyWindow, parseInventoryReport, parsePrefillJobStatus, parsePrefillRequest } from '../../../lib/protocol/prefill.ts'

t.test('a valid request keeps only what was given', async (t) => {
  t.same(parsePrefillRequest({ titles: ['/vod/t1/'] }), { ok: true, value: { titles: ['/vod/t1/'] } })
  t.same(parsePrefillRequest({ titles: ['/vod/t1/master.m3u8'], renditions: 'highest', maxBandwidth: 2_000_000, bytesPerSecond: 1_000_000, concurrency: 8, window: '22:00-06:00' }), {
    ok: true,
    value: { titles: ['/vod/t1/master.m3u8'], renditions: 'highest', maxBandwidth: 2_000_000, bytesPerSecond: 1_000_000, concurrency: 8, window: '22:00-06:00' },
  })
})

t.test('bad requests name the field', async (t) => {
  const bad: Array<[unknown, RegExp]> = [
    [null, /JSON object/],
    [[], /JSON object/],
    [{}, /titles/],
    [{ titles: [] }, /titles/],
    [{ titles: ['vod/t1'] }, /titles must be paths/],
    [{ titles: ['/vod/../etc/'] }, /titles must be paths/],
    [{ titles: ['/vod/%2e%2e/x'] }, /titles must be paths/],
    [{ titles: ['/a%2Fb/'] }, /titles must be paths/],
    [{ titles: ['/a'], renditions: 'best' }, /renditions/],
    [{ titles: ['/a'], bytesPerSecond: -1 }, /bytesPerSecond/],
    [{ titles: ['/a'], maxBandwidth: 1.5 }, /maxBandwidth/],
    [{ titles: ['/a'], concurrency: 0 }, /concurrency/],
    [{ titles: ['/a'], window: '25:00-01:00' }, /window/],
    [{ titles: ['/a'], window: '01:00-01:00' }, /window/],
    [{ titles: ['/a'], extra: 1 }, /unknown field extra/],
  ]
  for (const [body, error] of bad) {
    const parsed = parsePrefillRequest(body)
    t.equal(parsed.ok, false, JSON.stringify(body))
    if (!parsed.ok) t.match(parsed.error, error)
  }
})

t.test('windows and paths', async (t) => {
  t.same(parseDailyWindow('02:30-06:00'), { startMinute: 150, endMinute: 360 })
  t.same(parseDailyWindow(' 23:00-01:00 '), { startMinute: 1380, endMinute: 60 })
  t.equal(parseDailyWindow('2:00-6:00'), undefined)
  t.ok(isPrefillPath('/vod/t1/master.m3u8?v=2'))
  t.notOk(isPrefillPath('//evil/x'))
  t.notOk(isPrefillPath('/a b/'))
})

t.test('statuses and inventories read back', async (t) => {
  const status = { id: 'pf-1', state: 'running', titles: ['/a/'], createdAtMs: 1, updatedAtMs: 2, playlists: 1, segmentsTotal: 4, segmentsDone: 2, segmentsFilled: 1, segmentsCached: 1, segmentsFailed: 0, bytes: 10, bytesPerSecond: 0, errors: [] }
  t.ok(parsePrefillJobStatus(status).ok)
  t.match(parsePrefillJobStatus({ ...status, state: 'sleeping' }), { ok: false, error: /state/ })
  t.match(parsePrefillJobStatus({ ...status, bytes: -1 }), { ok: false, error: /bytes/ })
  t.match(parsePrefillJobStatus({ ...status, errors: [1] }), { ok: false, error: /errors/ })
  const inventory = { v: 1, node: 'edge-1', generatedAtMs: 5, titles: [{ title: '/vod/t1/', segments: 12 }] }
  t.same(parseInventoryReport(inventory), { ok: true, value: inventory })
  t.match(parseInventoryReport({ ...inventory, titles: [{ title: 'x', segments: 1 }] }), { ok: false })
  t.match(parseInventoryReport({ ...inventory, v: 2 }), { ok: false, error: /v must be 1/ })
})
