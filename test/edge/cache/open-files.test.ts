/**
 * The open-file cache: one descriptor per cached file, shared by concurrent readers,
 * bounded in count, and closed only when the last reader is done; invalidation makes
 * new readers reopen the path while old ones keep the file they hold.
 */
import { readSync, readlinkSync } from 'node:fs'
import { mkdtemp, rename, rm, unlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { OpenFiles, type OpenFile } from '../../../edge/cache/open-files.ts'
import type { Tap } from './store.contract.ts'

async function tempDir (t: Tap): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'streamedge-open-files-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  return dir
}

function contents (file: OpenFile, bytes: number): string {
  const buf = Buffer.alloc(bytes)
  const n = readSync(file.fd, buf, 0, bytes, 0)
  return buf.toString('utf8', 0, n)
}

/** What descriptor `fd` of this process points at now (Linux: /proc/self/fd), or undefined when it is closed. */
function fdLink (fd: number): string | undefined {
  try {
    return readlinkSync(`/proc/self/fd/${fd}`)
  } catch {
    return undefined
  }
}

/** An open descriptor and what it pointed at when opened: a number reused by another open is not it. */
interface Fd { readonly fd: number, readonly link: string | undefined }

function fdOf (file: { readonly fd: number }): Fd {
  return { fd: file.fd, link: fdLink(file.fd) }
}

/** Whether the descriptor is still open on the same file. */
function isOpen (d: Fd): boolean {
  return d.link !== undefined && fdLink(d.fd) === d.link
}

/**
 * Closing is asynchronous (the thread pool runs close(2)): waits up to 5 s for the descriptor
 * to go, or for its number to point elsewhere (another open in the process reused it).
 */
async function closedSoon (d: Fd): Promise<boolean> {
  for (let i = 0; i < 1000 && isOpen(d); i++) await new Promise((resolve) => setTimeout(resolve, 5))
  return !isOpen(d)
}

t.test('options are validated once, naming the field and the value', async (t) => {
  t.throws(() => new OpenFiles({ maxOpen: -1 }), { name: 'TypeError', message: /options\.maxOpen .* got -1/ })
})

t.test('repeated and concurrent acquires share one descriptor', { skip: process.platform !== 'linux' && 'reads /proc/self/fd' }, async (t) => {
  const dir = await tempDir(t)
  const path = join(dir, 'a')
  await writeFile(path, 'first')
  const files = new OpenFiles({ maxOpen: 4 })
  t.teardown(() => files.close())
  const [a, b] = await Promise.all([files.acquire('a', path), files.acquire('a', path)])
  t.equal(a, b, 'one open for two concurrent readers')
  const c = files.tryAcquire('a')
  t.equal(c, a, 'cached')
  t.equal(contents(a, 16), 'first')
  for (const f of [a, b, c!]) files.release(f)
  t.ok(isOpen(fdOf(a)), 'kept open while cached, with no reader')
  t.equal(files.tryAcquire('missing'), undefined)
})

t.test('invalidate: holders keep the old file, new readers open the new one, the old one closes on release', { skip: process.platform !== 'linux' && 'reads /proc/self/fd' }, async (t) => {
  const dir = await tempDir(t)
  const path = join(dir, 'a')
  await writeFile(path, 'old')
  const files = new OpenFiles({ maxOpen: 4 })
  t.teardown(() => files.close())
  const old = await files.acquire('a', path)
  await writeFile(join(dir, 'tmp'), 'new')
  await rename(join(dir, 'tmp'), path)
  files.invalidate('a')
  t.equal(files.tryAcquire('a'), undefined, 'no longer cached')
  const fresh = await files.acquire('a', path)
  t.not(fresh.ino, old.ino)
  t.equal(contents(fresh, 16), 'new')
  t.equal(contents(old, 16), 'old', 'the holder still reads what it opened')
  const oldFd = fdOf(old)
  files.release(old)
  t.ok(await closedSoon(oldFd), 'closed with its last release')
  files.release(fresh)
})

t.test('at most maxOpen idle descriptors stay open, least recently used go first', { skip: process.platform !== 'linux' && 'reads /proc/self/fd' }, async (t) => {
  const dir = await tempDir(t)
  const files = new OpenFiles({ maxOpen: 2 })
  t.teardown(() => files.close())
  const fds: Fd[] = []
  for (const name of ['a', 'b', 'c']) {
    await writeFile(join(dir, name), name)
    const f = await files.acquire(name, join(dir, name))
    fds.push(fdOf(f))
    files.release(f)
  }
  t.equal(files.size, 2)
  t.ok(await closedSoon(fds[0]!), 'the oldest was closed')
  t.ok(isOpen(fds[1]!) && isOpen(fds[2]!))
  t.equal(files.tryAcquire('a'), undefined)
})

t.test('a missing path rejects with ENOENT and caches nothing', async (t) => {
  const dir = await tempDir(t)
  const files = new OpenFiles({ maxOpen: 2 })
  t.teardown(() => files.close())
  await t.rejects(Promise.resolve(files.acquire('x', join(dir, 'x'))), { code: 'ENOENT' })
  t.equal(files.size, 0)
  await writeFile(join(dir, 'x'), 'now')
  const f = await files.acquire('x', join(dir, 'x'))
  t.equal(contents(f, 8), 'now', 'a later acquire opens it')
  files.release(f)
  await unlink(join(dir, 'x'))
})

t.test('close closes idle files before it resolves and held ones on release', { skip: process.platform !== 'linux' && 'reads /proc/self/fd' }, async (t) => {
  const dir = await tempDir(t)
  await writeFile(join(dir, 'a'), 'a')
  await writeFile(join(dir, 'b'), 'b')
  const files = new OpenFiles({ maxOpen: 4 })
  const idle = await files.acquire('a', join(dir, 'a'))
  files.release(idle)
  const held = await files.acquire('b', join(dir, 'b'))
  const [idleFd, heldFd] = [fdOf(idle), fdOf(held)]
  await files.close()
  t.notOk(isOpen(idleFd), 'the idle one is closed when close resolves')
  t.ok(await closedSoon(idleFd))
  t.ok(isOpen(heldFd), 'a reader still holds it')
  files.release(held)
  t.ok(await closedSoon(heldFd))
  const after = await files.acquire('a', join(dir, 'a'))
  t.equal(files.size, 0, 'after close, acquires work uncached')
  const afterFd = fdOf(after)
  files.release(after)
  t.ok(await closedSoon(afterFd))
})
