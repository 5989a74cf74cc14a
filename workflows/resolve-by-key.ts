// Before an undo acts on an external call whose outcome is unknown (canceled in flight, timed out,
// its answer lost), the call is resolved by its idempotency key: looked up until the system
// reports what it did, or until its maximum processing time has passed since the last request
// under the key ended, after which "nothing under this key" is final. A void sent too early would
// find nothing to void, and the authorization that lands a moment later would hold the customer's
// money until someone noticed. Time is the workflow's, so tests skip it like any other timer.
import { proxyActivities, sleep } from '@temporalio/workflow';
import type { Activities } from '../activities/index.js';
import type { BankOutcome } from '../activities/bank.js';
import type { CardOutcome } from '../activities/card-network.js';
import { compensation } from './activity-profiles.js';

const lookups = proxyActivities<Activities>(compensation);

/** A request received by the system just before the call ended may still be on its way in. */
const IN_TRANSIT_MARGIN_MS = 2_000;
/** How soon to look again while a request under the key is being processed. */
const IN_PROGRESS_PAUSE_MS = 1_000;
/** The longest pause between lookups while waiting for the processing time to pass. */
const MAX_PAUSE_MS = 10_000;

interface Lookup<T> {
  found: T | null;
  inProgress: boolean;
  maxProcessingMs: number;
}

async function resolve<T>(look: () => Promise<Lookup<T>>, lastCallEndedAt: number): Promise<T | null> {
  for (;;) {
    const { found, inProgress, maxProcessingMs } = await look();
    if (found) return found;
    const finalAt = lastCallEndedAt + maxProcessingMs + IN_TRANSIT_MARGIN_MS;
    if (!inProgress && Date.now() >= finalAt) return null;
    await sleep(inProgress ? IN_PROGRESS_PAUSE_MS : Math.min(MAX_PAUSE_MS, Math.max(1, finalAt - Date.now())));
  }
}

/** What the card network did under `idempotencyKey`, or null once it is certain it did nothing. */
export function cardOperationUnderKey(idempotencyKey: string, lastCallEndedAt: number): Promise<CardOutcome | null> {
  return resolve(async () => {
    const r = await lookups.lookUpCardOperation({ idempotencyKey });
    return { found: r.operation, inProgress: r.inProgress, maxProcessingMs: r.maxProcessingMs };
  }, lastCallEndedAt);
}

/** What the bank did under `idempotencyKey`, or null once it is certain it made no transfer. */
export function bankTransferUnderKey(idempotencyKey: string, lastCallEndedAt: number): Promise<BankOutcome | null> {
  return resolve(async () => {
    const r = await lookups.lookUpBankTransfer({ idempotencyKey });
    return { found: r.transfer, inProgress: r.inProgress, maxProcessingMs: r.maxProcessingMs };
  }, lastCallEndedAt);
}
