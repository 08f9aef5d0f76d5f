#!/usr/bin/env node
// Entry point for the `streamedge` command. The sources are TypeScript and run
// through tsx's loader, so there is no build step and no stale output to ship.
import { register } from 'tsx/esm/api'
register()
const { main } = await import('./main.ts')
await main(process.argv.slice(2))
