/**
 * Response bodies still streaming from a set of upstreams, and what their end means for each
 * upstream's breaker. Shared by the edge's shield chain and the shield's origin pool: both
 * hand a response back before its body is read, so health accounting (and the shield's
 * concurrency slot) can only settle once the body is done, and close() must be able to cut
 * bodies nobody reads instead of waiting on them.
 */
import type { Readable } from 'node:stream'
import type { CdnError } from '../../lib/errors.ts'
import type { BreakerPermit } from './circuit-breaker.ts'
import { discardBody, observeBody, type BodyOutcome, type BodyOutcomeListener } from './observed-body.ts'
import { toUpstreamError, type UpstreamResponse } from './upstream.ts'

/** Error codes that are the upstream's (or the network's) fault, as opposed to our client leaving. */
const UPSTREAM_FAULTS: ReadonlySet<string> = new Set([
  'CDN_ERR_UPSTREAM_CONNECT', 'CDN_ERR_UPSTREAM_TIMEOUT', 'CDN_ERR_UPSTREAM_BODY_TIMEOUT',
  'CDN_ERR_UPSTREAM_TRUNCATED', 'CDN_ERR_UPSTREAM_PROTOCOL', 'CDN_ERR_UPSTREAM_UNAVAILABLE',
])

/** Bodies from upstreams that are still streaming; {@link TrackedBodies.destroyAll} cuts them at close. */
export class TrackedBodies {
  readonly #open = new Set<Readable>()

  /** Returns `res` named `upstream` with its body wrapped: `onDone` runs once when the body ends, fails or is dropped. */
  track (res: UpstreamResponse, upstream: string, onDone: BodyOutcomeListener): UpstreamResponse {
    const body: Readable = observeBody(res.body, (outcome, err) => {
      this.#open.delete(body)
      onDone(outcome, err)
    })
    this.#open.add(body)
    return { status: res.status, headers: res.headers, body, upstream }
  }

  /** Destroys every body still streaming (their listeners see `cancel`). */
  destroyAll (): void {
    for (const body of this.#open) body.destroy()
  }
}

/**
 * Tells `permit` how the body of `upstream`'s response ended: all of it is a success (a failure
 * when `failedStatus`, a 5xx kept as the answer), an upstream fault mid-body a failure, a body
 * our consumer dropped no verdict.
 */
export function settleBody (permit: BreakerPermit, outcome: BodyOutcome, err: Error | undefined, upstream: string, failedStatus = false): void {
  if (outcome === 'end') {
    if (failedStatus) permit.failure()
    else permit.success()
  } else if (outcome === 'error') {
    settleOnError(permit, toUpstreamError(err, upstream))
  } else {
    permit.release()
  }
}

/** Charges `permit` with a failure when `error` is the upstream's fault; anything else (our client left) is no verdict. */
export function settleOnError (permit: BreakerPermit, error: CdnError): void {
  if (UPSTREAM_FAULTS.has(error.code)) permit.failure()
  else permit.release()
}

/** Drains and drops the body of a response kept as a fallback answer once a better one (or an error) replaces it. */
export function discardKept (kept: UpstreamResponse | undefined): void {
  if (kept !== undefined) discardBody(kept.body)
}
