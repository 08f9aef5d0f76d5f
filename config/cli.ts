/**
 * The `streamedge` command line: the only yargs import. yargs parses and prints help; loading,
 * validation and dispatch are ours, so every setting behaves the same from a flag, env or file.
 *
 * To add a role (`shield`, `control-plane`, ...): add its handler to CliHandlers and one entry to
 * ROLE_COMMANDS. Flags come from the param table; required settings from its `requiredBy` column.
 */

import yargs from 'yargs'
import type { Argv, Options } from 'yargs'
import { CdnError, isCdnError } from '../lib/errors.ts'
import { CONFIG_FILE_ENV, loadConfig, requireSettings } from './load.ts'
import { describeParams, getParam, paramsRequiredBy, parseBytes, parseHttpUrl, parseInteger } from './params.ts'
import type { ParamInfo, ParamName, StreamedgeConfig } from './params.ts'

/** What the CLI runs once a command's config is loaded and validated. Each resolves once started. */
export interface CliHandlers {
  /** `streamedge edge`: run one edge cache node. */
  edge (config: Readonly<StreamedgeConfig>): Promise<void>
  /** `streamedge start`: the local demo CDN. */
  start (opts: { readonly config: Readonly<StreamedgeConfig> }): Promise<void>
  /** `streamedge shield`: run one shield cache node (optional so older callers need not give it). */
  shield?: (config: Readonly<StreamedgeConfig>) => Promise<void>
  /** `streamedge control-plane`: run one control plane (optional so older callers need not give it). */
  controlPlane?: (config: Readonly<StreamedgeConfig>) => Promise<void>
  /** Extra checks for `streamedge config check FILE` after the file validated; throw to fail it. */
  configCheck?: (file: string, config: Readonly<StreamedgeConfig>) => Promise<void>
  /** `streamedge prefill`: asks a node to pre-position titles; resolves to the exit code. */
  prefill?: (args: PrefillArgs, io: CliIo) => Promise<number>
}

/** The `streamedge prefill` command line, parsed (the request itself is validated by the handler). */
export interface PrefillArgs {
  /** The node's base URL. */
  readonly node: string
  /** Its admin token (`--token` or the STREAMEDGE_ADMIN_TOKEN env var). */
  readonly token: string
  readonly titles: readonly string[]
  readonly renditions: string | undefined
  readonly maxBandwidth: number | undefined
  /** Bytes per second. */
  readonly rate: number | undefined
  readonly concurrency: number | undefined
  readonly window: string | undefined
  readonly detach: boolean
}

/** Env var holding the admin token for `streamedge prefill` (so it stays out of shell history). */
export const ADMIN_TOKEN_ENV = 'STREAMEDGE_ADMIN_TOKEN'

/** The process surface the CLI touches, injectable for tests. */
export interface CliIo {
  readonly stdout: (text: string) => void
  readonly stderr: (text: string) => void
  readonly env: NodeJS.ProcessEnv
  readonly cwd: string
  /** Called with a non-zero exit code; the default sets `process.exitCode` (never `process.exit`). */
  readonly setExitCode: (code: number) => void
}

/** Exit code for a failure while running a command. */
export const EXIT_FAILURE = 1
/** Exit code for bad usage or bad configuration (nothing was started). */
export const EXIT_USAGE = 2

interface RoleCommand {
  readonly name: string
  readonly describe: string
  /** Top-level sections of the table whose settings this command takes as flags. */
  readonly sections: readonly string[]
  /** Short flags for common settings. */
  readonly aliases: Readonly<Record<string, ParamName>>
  readonly run: (handlers: CliHandlers, config: Readonly<StreamedgeConfig>) => Promise<void>
  /** Checks across settings that `requiredBy` cannot express; throw a CdnError to refuse (exit 2). */
  readonly check?: (config: Readonly<StreamedgeConfig>) => void
}

/** Commands that start a role from the config. */
const ROLE_COMMANDS: readonly RoleCommand[] = [
  {
    name: 'edge',
    describe: 'Run an edge cache node',
    sections: ['log', 'edge'],
    aliases: { origin: 'edge.origin', shield: 'edge.shields', listen: 'edge.listen', 'cache-dir': 'edge.cacheDir' },
    run: (handlers, config) => handlers.edge(config)
  },
  {
    name: 'shield',
    describe: 'Run a shield cache node (between the edges and the origins: coalesces misses, protects origins)',
    sections: ['log', 'shield'],
    aliases: { origin: 'shield.origins', listen: 'shield.listen', 'cache-dir': 'shield.cacheDir' },
    check: checkShieldOrigins,
    run: async (handlers, config) => {
      if (handlers.shield === undefined) throw new Error('This build has no shield handler')
      await handlers.shield(config)
    }
  },
  {
    name: 'control-plane',
    describe: 'Run a control plane (GeoIP steering, health, licensing, tokens, purge fan-out)',
    sections: ['log', 'controlPlane'],
    aliases: { listen: 'controlPlane.listen', nodes: 'controlPlane.nodesFile', licensing: 'controlPlane.licensingFile', zones: 'controlPlane.coverageZonesFile' },
    run: async (handlers, config) => {
      if (handlers.controlPlane === undefined) throw new Error('This build has no control-plane handler')
      await handlers.controlPlane(config)
    }
  },
  {
    name: 'start',
    describe: 'Start the local demo CDN (demo origin and edges on one host)',
    sections: ['log', 'edge', 'start'],
    aliases: {},
    run: (handlers, config) => handlers.start({ config })
  }
]

/** One role command as docs show it. */
export interface CommandInfo {
  readonly name: string
  readonly describe: string
  readonly aliases: Readonly<Record<string, ParamName>>
  readonly required: readonly ParamName[]
}

/** The role commands, their short flags and required settings (for docs/config.md). */
export function describeCommands (): readonly CommandInfo[] {
  return ROLE_COMMANDS.map((c) => ({ name: c.name, describe: c.describe, aliases: c.aliases, required: paramsRequiredBy(c.name) }))
}

const SECTION_TITLES: Readonly<Record<string, string>> = { log: 'Logging', edge: 'Edge', shield: 'Shield', start: 'Demo (start)', controlPlane: 'Control plane' }

/** What the parse selected; run after yargs is done so our errors never pass through yargs. */
type Action = (io: CliIo) => Promise<number>

/**
 * Parses `argv` (without the node and script paths), loads the config and runs the handler.
 * Resolves to the exit code: 0, EXIT_USAGE (2) for bad usage or config, EXIT_FAILURE (1) when
 * a handler fails. Errors are one message on stderr, without a stack unless they look like bugs.
 */
export async function runCli (argv: readonly string[], handlers: CliHandlers, io: Partial<CliIo> = {}): Promise<number> {
  const fullIo: CliIo = {
    stdout: io.stdout ?? ((text) => { process.stdout.write(text) }),
    stderr: io.stderr ?? ((text) => { process.stderr.write(text) }),
    env: io.env ?? process.env,
    cwd: io.cwd ?? process.cwd(),
    setExitCode: io.setExitCode ?? ((code) => { process.exitCode = code })
  }
  const code = await parseAndRun(argv, handlers, fullIo)
  if (code !== 0) fullIo.setExitCode(code)
  return code
}

async function parseAndRun (argv: readonly string[], handlers: CliHandlers, io: CliIo): Promise<number> {
  let action: Action | undefined
  const parser = buildParser(handlers, (selected) => { action = selected })
  const parsed = await new Promise<{ error: Error | undefined, output: string, words: readonly unknown[] }>((resolve) => {
    void parser.parse([...argv], {}, (error, args, output) => {
      resolve({ error: error ?? undefined, output, words: args._ })
    })
  })
  if (parsed.error !== undefined) {
    io.stderr(`${parsed.error.message} (see "${helpCommand(parsed.words)}")\n`)
    return EXIT_USAGE
  }
  if (action === undefined) { // --help
    io.stdout(`${parsed.output}\n`)
    return 0
  }
  return action(io)
}

function buildParser (handlers: CliHandlers, select: (action: Action) => void): Argv {
  let parser = yargs()
    .scriptName('streamedge')
    .usage('$0 <command> [options]')
    .parserConfiguration({ 'dot-notation': false, 'camel-case-expansion': false, 'strip-aliased': true, 'parse-numbers': false, 'parse-positional-numbers': false })
    .strict()
    .help()
    .version(false)
    .exitProcess(false)
    .showHelpOnFail(false)
    .wrap(100)
    .demandCommand(1, `Give a command: ${[...ROLE_COMMANDS.map((c) => c.name), 'prefill', 'config'].join(', ')}`)
    .recommendCommands()
  for (const command of ROLE_COMMANDS) {
    parser = parser.command(command.name, command.describe, (y) => roleFlags(y, command), (args) => {
      select((io) => runRole(command, args, handlers, io))
    })
  }
  parser = parser.command('prefill <titles..>', 'Pre-position titles on a node (master playlist → renditions → every segment) and follow the job', (y) => y
    .usage('$0 prefill --node URL [--token T] TITLE...\n\nAsks a node to fill its cache with whole titles (a title is its master playlist path; /vod/t1/ means /vod/t1/master.m3u8) and follows the job with a progress bar. Already cached segments are skipped, so re-running resumes.')
    .positional('titles', { type: 'string', array: true, describe: 'Master playlist paths (or title directories ending in /)' })
    .options({
      node: { type: 'string', requiresArg: true, demandOption: true, describe: 'Base URL of the edge or shield, e.g. http://edge-1:8080' },
      token: { type: 'string', requiresArg: true, describe: `The node's admin token (edge.admin.token); env ${ADMIN_TOKEN_ENV}` },
      renditions: { type: 'string', requiresArg: true, choices: ['all', 'highest', 'lowest'], describe: 'Variant streams to fill [default: all]' },
      'max-bandwidth': { type: 'string', requiresArg: true, describe: 'Skip variants whose BANDWIDTH (bits/s) is above this' },
      rate: { type: 'string', requiresArg: true, describe: 'Upstream bytes per second, e.g. 20MiB [default: the node\'s edge.hls.prefill.bytesPerSecond]' },
      concurrency: { type: 'string', requiresArg: true, describe: 'Segments fetched at once [default: the node\'s edge.hls.prefill.concurrency]' },
      window: { type: 'string', requiresArg: true, describe: 'Daily UTC window HH:MM-HH:MM; the job pauses outside it' },
      detach: { type: 'boolean', describe: 'Print the job and return without following it' },
    }), (args) => {
    select((io) => runPrefill(args, handlers, io))
  })
  return parser.command('config', 'Configuration tools', (y) => y
    .command('check <file>', 'Validate a YAML or JSON config file on its own (env is not applied)', (c) => c
      .positional('file', { type: 'string', describe: 'Config file (.yaml, .yml or .json)' }), (args) => {
      select((io) => runCheck(String(args['file']), handlers, io))
    })
    .demandCommand(1, 'Give a config subcommand: check'))
}

function roleFlags (y: Argv, command: RoleCommand): Argv {
  const aliasOf = new Map(Object.entries(command.aliases).map(([alias, name]) => [name as string, alias]))
  const required = new Set<string>(paramsRequiredBy(command.name))
  const options: Record<string, Options> = {
    config: { type: 'string', requiresArg: true, describe: `Config file (.yaml, .yml or .json); env ${CONFIG_FILE_ENV}` }
  }
  let parser = y.usage(`$0 ${command.name} [options]\n\n${command.describe}. ${PRECEDENCE}`)
  for (const section of command.sections) {
    const infos = describeParams().filter((info) => info.name.startsWith(`${section}.`))
    for (const info of infos) options[info.name] = flagOptions(info, aliasOf.get(info.name), required.has(info.name))
    parser = parser.group(infos.map((info) => info.name), `${SECTION_TITLES[section] ?? section} settings:`)
  }
  return parser.options(options)
}

const PRECEDENCE = 'Each setting comes from its default, then --config FILE, then its STREAMEDGE_* env var, then its flag.'

function flagOptions (info: ParamInfo, alias: string | undefined, required: boolean): Options {
  return {
    describe: `${info.doc}${info.type === 'bool' ? '' : ` [${info.typeDoc}]`}${required ? ' (required)' : ''}`,
    ...(info.type === 'bool' ? { type: 'boolean' } : { requiresArg: true }),
    ...(alias === undefined ? {} : { alias }),
    ...(info.default === undefined ? {} : { defaultDescription: info.default })
  }
}

async function runRole (command: RoleCommand, args: Record<string, unknown>, handlers: CliHandlers, io: CliIo): Promise<number> {
  let config: Readonly<StreamedgeConfig>
  try {
    const file = typeof args['config'] === 'string' ? args['config'] : io.env[CONFIG_FILE_ENV] || undefined
    config = loadConfig({ file, env: io.env, argv: settingsFrom(args), cwd: io.cwd })
    requireSettings(config, paramsRequiredBy(command.name), { aliases: command.aliases })
    command.check?.(config)
  } catch (err) {
    return report(err, io, EXIT_USAGE)
  }
  try {
    await command.run(handlers, config)
    return 0
  } catch (err) {
    return report(err, io, EXIT_FAILURE)
  }
}

async function runCheck (file: string, handlers: CliHandlers, io: CliIo): Promise<number> {
  try {
    const config = loadConfig({ file, env: {}, cwd: io.cwd })
    await handlers.configCheck?.(file, config)
  } catch (err) {
    return report(err, io, EXIT_USAGE)
  }
  io.stdout(`${file}: ok\n`)
  return 0
}

async function runPrefill (args: Record<string, unknown>, handlers: CliHandlers, io: CliIo): Promise<number> {
  if (handlers.prefill === undefined) return report(new Error('This build has no prefill handler'), io, EXIT_FAILURE)
  const usage = (message: string): number => {
    io.stderr(`${message} (see "streamedge prefill --help")\n`)
    return EXIT_USAGE
  }
  const node = parseHttpUrl(args['node'])
  if (node === undefined) return usage(`--node must be an http: or https: URL, got ${JSON.stringify(args['node'])}`)
  const token = typeof args['token'] === 'string' ? args['token'] : io.env[ADMIN_TOKEN_ENV]
  if (token === undefined || token === '') return usage(`Give the node's admin token with --token or ${ADMIN_TOKEN_ENV}`)
  const optional = <T> (name: string, parse: (raw: unknown) => T | undefined, expected: string): { ok: true, value: T | undefined } | { ok: false } => {
    const raw = args[name]
    if (raw === undefined) return { ok: true, value: undefined }
    const value = parse(raw)
    if (value === undefined) {
      usage(`--${name} must be ${expected}, got ${JSON.stringify(raw)}`)
      return { ok: false }
    }
    return { ok: true, value }
  }
  const maxBandwidth = optional('max-bandwidth', (raw) => nonNegative(parseInteger(raw)), 'a non-negative integer (bits/s)')
  const rate = optional('rate', parseBytes, 'a byte size per second like 20MiB')
  const concurrency = optional('concurrency', (raw) => positive(parseInteger(raw)), 'a positive integer')
  if (!maxBandwidth.ok || !rate.ok || !concurrency.ok) return EXIT_USAGE
  const titles = (Array.isArray(args['titles']) ? args['titles'] : []).map(String)
  try {
    return await handlers.prefill({
      node,
      token,
      titles,
      renditions: typeof args['renditions'] === 'string' ? args['renditions'] : undefined,
      maxBandwidth: maxBandwidth.value,
      rate: rate.value,
      concurrency: concurrency.value,
      window: typeof args['window'] === 'string' ? args['window'] : undefined,
      detach: args['detach'] === true,
    }, io)
  } catch (err) {
    return report(err, io, EXIT_FAILURE)
  }
}

function nonNegative (n: number | undefined): number | undefined {
  return n !== undefined && n >= 0 ? n : undefined
}

function positive (n: number | undefined): number | undefined {
  return n !== undefined && n >= 1 ? n : undefined
}

/** A shield needs its origins from exactly one place: the quick-start list or the full table. */
function checkShieldOrigins (config: Readonly<StreamedgeConfig>): void {
  const list = config.shield.origins
  const file = config.shield.originsFile
  if ((list === undefined || list.length === 0) && file === undefined) {
    throw new CdnError('CDN_ERR_CONFIG_INVALID', 'shield.origins is required: give --origin URL[,URL...] (priority order) or set shield.originsFile in the config file')
  }
  if (list !== undefined && list.length > 0 && file !== undefined) {
    throw new CdnError('CDN_ERR_CONFIG_INVALID', 'Set shield.origins or shield.originsFile, not both')
  }
}

/** The flags that are settings, keyed by dotted name; repeated list flags are joined, otherwise the last wins. */
function settingsFrom (args: Record<string, unknown>): Record<string, unknown> {
  const settings: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(args)) {
    const spec = getParam(key)
    if (spec === undefined || value === undefined) continue
    const isList = spec.type === 'string-list' || spec.type === 'url-list' || spec.type === 'path-list'
    settings[key] = Array.isArray(value) ? (isList ? value.join(',') : value[value.length - 1]) : value
  }
  return settings
}

/** Prints one message. A stack only for errors that are neither ours nor the system's: those are bugs. */
function report (err: unknown, io: CliIo, code: number): number {
  const known = isCdnError(err) || (err instanceof Error && typeof (err as { code?: unknown }).code === 'string')
  const text = err instanceof Error ? (known ? err.message : err.stack ?? err.message) : String(err)
  io.stderr(`${text}\n`)
  return code
}

function helpCommand (words: readonly unknown[]): string {
  const known = new Set(['config', 'check', 'prefill', ...ROLE_COMMANDS.map((c) => c.name)])
  const path: string[] = []
  for (const word of words) {
    if (typeof word !== 'string' || !known.has(word)) break
    path.push(word)
  }
  return ['streamedge', ...path, '--help'].join(' ')
}
