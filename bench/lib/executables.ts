/**
 * Finding the third-party programs the suite compares against (nginx, varnishd, wrk) and
 * their versions. They are optional: a missing one is reported as absent, never an error.
 */
import { spawnSync } from 'node:child_process'
import { accessSync, constants } from 'node:fs'
import { delimiter, join } from 'node:path'

// Debian installs nginx and varnishd in /usr/sbin, which a non-root PATH often lacks.
const EXTRA_DIRS = ['/usr/local/sbin', '/usr/sbin', '/sbin']

/** Absolute path of an executable on PATH (or in the sbin directories), else undefined. */
export function findExecutable (name: string, pathEnv = process.env.PATH ?? ''): string | undefined {
  const dirs = [...pathEnv.split(delimiter).filter((d) => d !== ''), ...EXTRA_DIRS]
  for (const dir of dirs) {
    const candidate = join(dir, name)
    try {
      accessSync(candidate, constants.X_OK)
      return candidate
    } catch {
      // not here
    }
  }
  return undefined
}

/** Everything `command args` prints, stdout then stderr (whatever its exit code); undefined when it cannot run. */
export function commandOutput (command: string, args: readonly string[]): string | undefined {
  const out = spawnSync(command, [...args], { encoding: 'utf8', timeout: 10_000 })
  if (out.error !== undefined) return undefined
  return `${out.stdout ?? ''}\n${out.stderr ?? ''}`
}

/** First non-empty line of {@link commandOutput} (nginx -v prints on stderr, wrk -v exits 1). */
export function versionLine (command: string, args: readonly string[]): string | undefined {
  return commandOutput(command, args)?.split('\n').map((l) => l.trim()).find((l) => l !== '')
}
