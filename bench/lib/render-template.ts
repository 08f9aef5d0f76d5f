/**
 * Fills `{{name}}` placeholders in the peer config templates (bench/peers/*.conf, *.vcl),
 * so the files an operator reads are the files that ran, with only ports and paths filled in.
 */

const PLACEHOLDER = /\{\{([A-Za-z][A-Za-z0-9]*)\}\}/g

/** Replaces every `{{name}}` with `values[name]`; throws TypeError naming a placeholder without a value. */
export function renderTemplate (template: string, values: Readonly<Record<string, string | number>>): string {
  return template.replace(PLACEHOLDER, (_match, name: string) => {
    const value = values[name]
    if (value === undefined) throw new TypeError(`Expected a value for {{${name}}}, got none`)
    return String(value)
  })
}
