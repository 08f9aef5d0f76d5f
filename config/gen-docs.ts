/**
 * Writes docs/config.md from the param table: `npx tsx config/gen-docs.ts`.
 * test/config/gen-docs.test.ts fails when the committed file differs from renderConfigDoc().
 */

import { writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { describeCommands } from './cli.ts'
import { CONFIG_FILE_ENV } from './load.ts'
import { describeParams, topSections } from './params.ts'
import type { ParamInfo } from './params.ts'

/** Where the generated reference lives. */
export const CONFIG_DOC_PATH = fileURLToPath(new URL('../docs/config.md', import.meta.url))

const SECTION_INTROS: Readonly<Record<string, string>> = {
  log: 'Logging, for every role.',
  edge: 'The edge cache node (`streamedge edge`).',
  shield: 'The shield cache node (`streamedge shield`): the same cache engine between the edges and the origins, with origin failover and origin protection.',
  start: 'The local demo (`streamedge start`); it also uses the `log` and `edge` settings.',
  controlPlane: 'The control plane (`streamedge control-plane`): GeoIP steering, health, licensing, tokens, purge fan-out.'
}

/** The whole of docs/config.md. */
export function renderConfigDoc (): string {
  const params = describeParams()
  const lines = [
    '# Configuration reference',
    '',
    '<!-- Generated from config/params.ts by `npx tsx config/gen-docs.ts`; do not edit by hand. -->',
    '',
    'Each setting is taken from the first of these that sets it:',
    '',
    '1. its command-line flag, `--edge.listen :8080` (dotted name as written below);',
    '2. its environment variable, `STREAMEDGE_EDGE_LISTEN=:8080` (`STREAMEDGE_` + the name in upper snake case);',
    `3. the config file given by \`--config FILE\` (or \`${CONFIG_FILE_ENV}\`): YAML (\`.yaml\`, \`.yml\`) or JSON (\`.json\`),`,
    '   nested by the dots in the names (`edge: { listen: ":8080" }`);',
    '4. its default.',
    '',
    'Unknown keys are errors: in the file, unknown `STREAMEDGE_*` variables and unknown flags. All problems are',
    'reported together, one per line, naming the setting, the value and where it came from.',
    '`streamedge config check FILE` validates a file on its own. See `config/examples/` for complete files.',
    '',
    ...commandLines(),
    '## Value types',
    '',
    '| Type | Accepts |',
    '| --- | --- |',
    '| `string` | Non-empty text. |',
    '| `path` | A file system path. Relative paths in a file are relative to that file; elsewhere to the working directory. |',
    '| `int` | An integer (a number, or decimal digits in env and flags). |',
    '| `bytes` | An integer, or a number with a unit: `KiB` `MiB` `GiB` `TiB` and the bare `K` `M` `G` `T` are binary (1024), `KB` `MB` `GB` `TB` are decimal (1000). Units ignore case; fractions need a unit and round down (`1.5KiB` = 1536). |',
    '| `bool` | `true` or `false`; env and flags also take `1` and `0`. A bare flag (`--edge.cache.disk.fsync`) means true, `--no-<name>` false. |',
    '| `enum` | One of the listed values. |',
    '| `url` | An `http:` or `https:` URL. |',
    '| `url-list` | Comma-separated URLs, or an array in a file. |',
    '| `hostport` | `HOST:PORT`, `[IPv6]:PORT`, or `:PORT` for all IPv4 interfaces (0.0.0.0); port 0 to 65535. |',
    '| `string-list` | Comma-separated text, or an array in a file. A repeated flag adds to the list. |',
    '| `path-list` | Comma-separated paths, or an array in a file; each is resolved like a `path`. |',
    '',
    'An empty value (`""`, or `null` in a file) unsets a setting that has no default and is the empty list for',
    'list types; for other settings it is an error.',
    '',
    ...topSections().flatMap((section) => sectionLines(section, params.filter((p) => p.name.startsWith(`${section}.`))))
  ]
  return `${lines.join('\n').trimEnd()}\n`
}

function commandLines (): string[] {
  return describeCommands().flatMap((command) => {
    const aliases = Object.entries(command.aliases).map(([alias, name]) => `\`--${alias}\` = \`${name}\``)
    const parts = [
      aliases.length === 0 ? '' : ` Short flags: ${aliases.join(', ')}.`,
      command.required.length === 0 ? '' : ` Requires ${command.required.map((name) => `\`${name}\``).join(', ')}.`
    ].join('')
    return parts === '' ? [] : [`\`streamedge ${command.name}\`:${parts}`, '']
  })
}

function sectionLines (section: string, params: readonly ParamInfo[]): string[] {
  return [
    `## ${section}`,
    '',
    SECTION_INTROS[section] ?? '',
    '',
    '| Setting | Type | Default | Env var | Flag | Description |',
    '| --- | --- | --- | --- | --- | --- |',
    ...params.map((p) => `| \`${p.name}\` | ${cell(p.typeDoc)} | ${defaultCell(p)} | \`${p.env}\` | \`${p.flag}\` | ${cell(describe(p))} |`),
    ''
  ]
}

function defaultCell (p: ParamInfo): string {
  if (p.default === undefined) return 'unset'
  return p.defaultIsLiteral ? `\`${cell(p.default)}\`` : cell(p.default)
}

function describe (p: ParamInfo): string {
  return p.requiredBy.length === 0 ? p.doc : `${p.doc} Required by: ${p.requiredBy.join(', ')}.`
}

function cell (text: string): string {
  return text.replace(/\|/g, '\\|')
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  writeFileSync(CONFIG_DOC_PATH, renderConfigDoc())
  process.stdout.write(`Wrote ${CONFIG_DOC_PATH}\n`)
}
