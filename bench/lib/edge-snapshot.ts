/**
 * `--edge-ref <ref>`: benchmark the edge as committed at a git ref rather than the
 * working tree, which other people may be editing mid-run. The tree is exported with
 * `git archive` into a temp dir (read-only for the repository: no checkout, no worktree)
 * and shares this checkout's node_modules through a symlink. Its native helper (git-ignored
 * build output) is built in the export as `npm ci` builds it, or `edge-sendfile` would
 * quietly copy like `edge`.
 */
import { execFile, spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdtemp, rm, symlink } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'

const run = promisify(execFile)

/** An exported tree. */
export interface EdgeSnapshot {
  readonly dir: string
  /** Full commit id the ref resolved to. */
  readonly commit: string
  remove (): Promise<void>
}

/** Exports `ref` of the repository at `repoRoot` into a fresh temp dir. */
export async function exportRef (repoRoot: string, ref: string): Promise<EdgeSnapshot> {
  if (ref.startsWith('-')) throw new TypeError(`Expected --edge-ref to be a git ref, got ${ref}`)
  const { stdout } = await run('git', ['rev-parse', '--verify', '--quiet', `${ref}^{commit}`], { cwd: repoRoot, timeout: 10_000 })
    .catch(() => { throw new TypeError(`Expected --edge-ref to name a commit, got ${ref}`) })
  const commit = stdout.trim()
  const dir = await mkdtemp(join(tmpdir(), 'streamedge-bench-ref-'))
  const remove = (): Promise<void> => rm(dir, { recursive: true, force: true })
  try {
    await pipeArchive(repoRoot, commit, dir)
    await symlink(join(repoRoot, 'node_modules'), join(dir, 'node_modules'), 'dir')
    const build = join(dir, 'lib/native/build.ts')
    if (existsSync(build)) await run(process.execPath, ['--import', 'tsx', build], { cwd: dir, timeout: 120_000 })
  } catch (err) {
    await remove()
    throw err
  }
  return { dir, commit, remove }
}

function pipeArchive (repoRoot: string, commit: string, dir: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const archive = spawn('git', ['archive', '--format=tar', commit], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'inherit'] })
    const tar = spawn('tar', ['-x', '-C', dir], { stdio: ['pipe', 'inherit', 'inherit'] })
    archive.stdout.pipe(tar.stdin)
    let pending = 2
    const done = (name: string) => (code: number | null): void => {
      if (code !== 0) reject(new Error(`${name} exited with ${code}`))
      else if (--pending === 0) resolve()
    }
    archive.once('error', reject)
    tar.once('error', reject)
    archive.once('exit', done('git archive'))
    tar.once('exit', done('tar'))
  })
}
