/**
 * The name of a steering configuration, for log lines and RESULTS.md alike: "one process" or
 * "N workers", then ", decision log on|off" when `accessLog` is given.
 */
export function steeringLabel (workers: number, accessLog?: boolean): string {
  const processes = workers === 1 ? 'one process' : `${workers} workers`
  return accessLog === undefined ? processes : `${processes}, decision log ${accessLog ? 'on' : 'off'}`
}
