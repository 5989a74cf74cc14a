// Calls to systems we do not own (the card network, banks), each under the idempotency key the
// workflow derived for its step, so an activity retry can never act twice. When a call may have
// acted without telling us (a timeout, a lost response), the activity asks the system what happened
// under that key before the next attempt, rather than guessing.
import { ApplicationFailure, CancelledFailure, Context } from '@temporalio/activity';
import type { SystemRejectedError, SystemUnavailableError } from '../platform/http-json-client.js';

/** What the two helpers below need to know of a system and its client. */
export interface KeyedSystem<Outcome> {
  /** What a call is, for messages ("card network call", "bank transfer"). */
  call: string;
  lookup(idempotencyKey: string): Promise<Outcome | null>;
  /** Past this long after the last request under a key ended, "nothing found" is final. */
  maxProcessingMs: number;
  /** The outcome is unknown: the system may have acted (a timeout, a 5xx, a lost response). */
  isUnknown(err: unknown): boolean;
  /** A lookup answered that a request under the key is being processed right now. */
  isInProgress(err: unknown): boolean;
  /** The system refused the request: the non-retryable failure to raise; undefined otherwise. */
  refusal(err: unknown): ApplicationFailure | undefined;
}

/**
 * A system as its client shows it: `Unavailable` and `Rejected` are the client's own error classes
 * (platform/http-json-client.ts), and a refusal becomes a non-retryable failure of type
 * `rejectedType` naming the system's code. `name` starts messages ("card network", "bank").
 */
export function keyedSystem<Outcome>(opts: {
  name: string;
  call: string;
  client: { lookup(idempotencyKey: string): Promise<Outcome | null>; readonly maxProcessingMs: number };
  Unavailable: abstract new (...args: never[]) => SystemUnavailableError;
  Rejected: abstract new (...args: never[]) => SystemRejectedError;
  rejectedType: string;
}): KeyedSystem<Outcome> {
  const { client, Unavailable, Rejected } = opts;
  return {
    call: opts.call,
    lookup: (key) => client.lookup(key),
    maxProcessingMs: client.maxProcessingMs,
    isUnknown: (err) => err instanceof Unavailable,
    isInProgress: (err) => err instanceof Unavailable && err.status === 409,
    refusal: (err) =>
      err instanceof Rejected
        ? ApplicationFailure.create({
            type: opts.rejectedType,
            message: `${opts.name} rejected the request: ${err.code}`,
            nonRetryable: true,
            details: [{ code: err.code, status: err.status }],
          })
        : undefined,
  };
}

/**
 * Runs a call; when its outcome is unknown, looks the key up: if the system acted, that is the
 * answer; if not, the activity fails and Temporal retries with the same key. A call the workflow
 * cancels (a hold ran out, the merchant canceled) is aborted at once and ends as canceled: the
 * workflow then resolves the key itself before it undoes anything.
 */
export async function callUnderKey<Outcome>(
  system: KeyedSystem<Outcome>,
  idempotencyKey: string,
  call: (signal: AbortSignal) => Promise<Outcome>,
): Promise<Outcome> {
  const context = Context.current();
  // Heartbeats while the system thinks (seconds, in a flash sale), so a worker that dies mid-call
  // is noticed within the heartbeat timeout, not the whole start-to-close timeout, and a
  // cancellation reaches the call within a second.
  const beat = setInterval(() => context.heartbeat(), 1_000);
  try {
    return await call(context.cancellationSignal);
  } catch (err) {
    if (context.cancellationSignal.aborted) throw new CancelledFailure(`${system.call} under ${idempotencyKey} canceled`);
    const refusal = system.refusal(err);
    if (refusal) throw refusal;
    if (system.isUnknown(err)) {
      const known = await system.lookup(idempotencyKey).catch(() => null);
      if (known) return known;
    }
    throw err;
  } finally {
    clearInterval(beat);
  }
}

/**
 * Where a request under a key stands: what the system did, or nothing yet. `inProgress`: a request
 * under the key is being processed right now, so look again shortly. Otherwise nothing found is
 * final once `maxProcessingMs` have passed since the last request under the key ended (the
 * workflow keeps that time, on its own clock). A system that cannot be asked right now fails the
 * activity (retried).
 */
export async function lookUpKey<Outcome>(
  system: KeyedSystem<Outcome>,
  idempotencyKey: string,
): Promise<{ found: Outcome | null; inProgress: boolean; maxProcessingMs: number }> {
  try {
    return { found: await system.lookup(idempotencyKey), inProgress: false, maxProcessingMs: system.maxProcessingMs };
  } catch (err) {
    if (system.isInProgress(err)) return { found: null, inProgress: true, maxProcessingMs: system.maxProcessingMs };
    throw system.refusal(err) ?? err;
  }
}
