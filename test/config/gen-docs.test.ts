import t from 'tap'
import { readFile } from 'node:fs/promises'
import { CONFIG_DOC_PATH, renderConfigDoc } from '../../config/gen-docs.ts'
import { PARAMS, envName } from '../../config/params.ts'

t.test('docs/config.md is generated from the table and up to date', async (t) => {
  const onDisk = await readFile(CONFIG_DOC_PATH, 'utf8').catch(() => '')
  t.equal(onDisk, renderConfigDoc(), 'docs/config.md is out of date: run `npx tsx config/gen-docs.ts`')
})

t.test('the doc has a row with name, env var and flag for every setting', async (t) => {
  const doc = renderConfigDoc()
  for (const row of PARAMS) {
    t.match(doc, `| \`${row.name}\` |`, `${row.name} has a row`)
    t.match(doc, `\`${envName(row.name)}\``, `${row.name} shows its env var`)
    t.match(doc, `\`--${row.name}\``, `${row.name} shows its flag`)
  }
  t.match(doc, '`--origin` = `edge.origin`')
})
