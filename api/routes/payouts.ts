// POST /v1/payouts holds the amount on the customer's wallet and schedules the bank transfer. It
// answers once the money is held (`pending`), or 409 when the wallet's available balance cannot
// cover it: that payout is recorded as failed, nothing is held, and a retry with the same key gets
// the same 409. Until the bank is called, POST /v1/payouts/:id/cancel voids the hold.
import { Router, type Response } from 'express';
import type { PrismaClient } from '../../platform/db.js';
import type { Payout } from '../../generated/prisma/client.js';
import { payoutId as buildPayoutId, type PayoutInput, type PayoutSnapshot } from '../../domain/index.js';
import { payoutAcceptedUpdate, payoutCancelUpdate } from '../../workflows/wallet-messages.js';
import { merchantIdOf } from '../auth.js';
import { conflict, invalidRequest, notFound } from '../errors.js';
import { keyReused } from '../idempotency.js';
import { bodyOf, requireJson } from '../json.js';
import { payoutResource } from '../serialize.js';
import { payoutUpdateError } from '../temporal-errors.js';
import { cancelBody, createPayoutBody, idempotencyKeyOf, parseBody, type CreatePayoutBody } from '../validation.js';
import { startFlow } from './start-flow.js';
import { MAX_FLOW_ID_LENGTH, type WalletFlowsDeps } from './topups.js';

const DAY_MS = 24 * 60 * 60 * 1000;
/**
 * Furthest ahead a payout may be scheduled, as for checkout timings: far enough for any real
 * schedule, near enough that a typo (a year too far) is caught rather than holding the money.
 */
export const MAX_PAYOUT_SCHEDULE_MS = 400 * DAY_MS;
/**
 * A payout due within this long of its creation was "due at once". A retry that names any earlier
 * time also means "at once", even though the stored time is the first request's `now`.
 */
const DUE_AT_ONCE_SLACK_MS = 60_000;
/** The workflow's failure code for a hold the wallet could not cover (workflows/payout.ts). */
const INSUFFICIENT_FUNDS = 'insufficient_funds';

export function payoutsRouter(deps: WalletFlowsDeps): Router {
  const { prisma, temporal, taskQueue } = deps;
  const router = Router();

  const findPayout = (id: string, merchantId: string): Promise<Payout | null> =>
    id.length > MAX_FLOW_ID_LENGTH ? Promise.resolve(null) : prisma.payout.findFirst({ where: { id, merchantId } });

  router.post('/', ...requireJson, deps.idempotency({ required: true, schema: createPayoutBody }), async (req, res) => {
    const merchantId = merchantIdOf(res);
    const idempotencyKey = idempotencyKeyOf(req.get('Idempotency-Key'), true);
    const body = parseBody(createPayoutBody, req.body);
    const scheduledAt = scheduledAtOf(body, Date.now(), deps.payoutDelayMs);
    const id = buildPayoutId(merchantId, idempotencyKey);
    res.locals.payoutId = id;
    const log = deps.logger.child({ requestId: res.locals.requestId, merchantId, payoutId: id, customerId: body.customerId });
    const input: PayoutInput = {
      payoutId: id,
      merchantId,
      customerId: body.customerId,
      idempotencyKey,
      amount: body.amount,
      bankAccount: body.bankAccount,
      scheduledAt: new Date(scheduledAt).toISOString(),
    };
    const started = await startFlow<PayoutInput, Payout, PayoutSnapshot>({
      temporal,
      workflowType: 'payoutWorkflowV2',
      start: { id, taskQueue, input, merchantId, customerId: body.customerId, status: 'pending', customerSearch: deps.customerSearch },
      accepted: payoutAcceptedUpdate,
      timeoutMs: deps.answerTimeoutMs,
      log,
      resource: 'payout',
      retrySafety: 'it will not be paid out twice',
      findRow: () => prisma.payout.findUnique({ where: { merchantId_idempotencyKey: { merchantId, idempotencyKey } } }),
      assertSameRequest: (row) => assertSamePayout(row, body),
    });
    const noFunds = started.snapshot
      ? started.snapshot.status === 'failed' && started.snapshot.failure?.code === INSUFFICIENT_FUNDS
      : await failedForFunds(prisma, started.row);
    if (noFunds) log.info('payout refused: insufficient funds', { amount: body.amount.amount, currency: body.amount.currency });
    else log.info(started.replayed ? 'payout replayed' : 'payout created', { status: started.row.status, scheduledAt: started.row.scheduledAt.toISOString() });
    answer(res, started.row, started.replayed ? 200 : 201, noFunds);
  });

  router.get('/:id', async (req, res) => {
    const row = await findPayout(req.params.id, merchantIdOf(res));
    if (!row) throw notFound('No such payout.');
    res.locals.payoutId = row.id;
    res.json(payoutResource(row));
  });

  router.post('/:id/cancel', ...requireJson, deps.idempotency({ required: false, schema: cancelBody }), async (req, res) => {
    const merchantId = merchantIdOf(res);
    // A named `:id` is always one string; the union is only for wildcard parameters.
    const id = req.params.id;
    const row = typeof id === 'string' ? await findPayout(id, merchantId) : null;
    if (!row) throw notFound('No such payout.');
    res.locals.payoutId = row.id;
    parseBody(cancelBody, bodyOf(req));
    const log = deps.logger.child({ requestId: res.locals.requestId, merchantId, payoutId: row.id, customerId: row.customerId });

    // A retry of a cancel that worked: the workflow has usually closed by now, but the answer is
    // the same as the first one's.
    if (row.status === 'canceled') {
      log.info('payout cancel replayed');
      res.status(200).json(payoutResource(row));
      return;
    }
    const signal = AbortSignal.timeout(deps.updateTimeoutMs);
    let snapshot: PayoutSnapshot;
    try {
      snapshot = await temporal.withAbortSignal(signal, () =>
        // One update id per payout: a retry joins the first cancel instead of being judged again.
        temporal.workflow.getHandle(row.id).executeUpdate(payoutCancelUpdate, { updateId: `${row.id}:cancel` }),
      );
    } catch (err) {
      const now = signal.aborted ? null : await findPayout(row.id, merchantId);
      if (now?.status === 'canceled') {
        log.info('payout found canceled after a failed cancel update');
        res.status(200).json(payoutResource(now));
        return;
      }
      throw payoutUpdateError(err, { signal, log, status: now?.status ?? row.status });
    }
    // The update answers once the payout has left `pending`: the timer can fire first and send it
    // to the bank, in which case it is no longer the merchant's to cancel.
    if (snapshot.status !== 'canceled') {
      log.info('payout cancel overtaken', { status: snapshot.status });
      throw conflict('payout_state_invalid', `The payout became ${snapshot.status} before it could be canceled.`);
    }
    log.info('payout canceled');
    const after = await findPayout(row.id, merchantId);
    if (!after) throw new Error('payout row disappeared after a cancel');
    res.status(200).json(payoutResource(after));
  });

  return router;
}

/**
 * When the payout goes to the bank, in ms: the requested time, or `now + delay` without one. A time
 * already past means now (a client's clock is allowed to lag); one more than 400 days ahead is a
 * mistake.
 */
function scheduledAtOf(body: CreatePayoutBody, now: number, delayMs: number): number {
  if (body.scheduledAt === undefined) return now + delayMs;
  const at = Date.parse(body.scheduledAt);
  if (at - now > MAX_PAYOUT_SCHEDULE_MS) {
    throw invalidRequest('parameter_invalid', 'Invalid scheduledAt: must be at most 400 days ahead.', 'scheduledAt');
  }
  return Math.max(at, now);
}

function answer(res: Response, row: Payout, status: 200 | 201, insufficientFunds: boolean): void {
  if (insufficientFunds) {
    throw conflict(
      'insufficient_funds',
      `The wallet's available balance is below ${row.amount.toString()} ${row.currency}. Nothing was held and no payout will be made; top up the wallet and use a new Idempotency-Key.`,
      'amount',
    );
  }
  res.status(status).json(payoutResource(row));
}

/**
 * Whether a stored payout is one refused for want of funds (its hold, the first step, was refused).
 * The failure code alone could also come from a bank refusing it later, after the hold: the journal
 * tells them apart, since only a refused hold leaves no transfer for the payout.
 */
async function failedForFunds(prisma: PrismaClient, row: Payout): Promise<boolean> {
  if (row.status !== 'failed' || row.failureCode !== INSUFFICIENT_FUNDS) return false;
  const held = await prisma.ledgerTransfer.findFirst({ where: { reference: row.id }, select: { id: true } });
  return held === null;
}

/**
 * Stripe's rule, as for checkouts. A request without scheduledAt takes whatever the first one was
 * given (its default depended on when it came); one naming a time must name the stored one, or,
 * for a payout that was due at once, any time up to then (a past time means "now", whichever now).
 */
function assertSamePayout(row: Payout, body: CreatePayoutBody): void {
  const stored = row.scheduledAt.getTime();
  const requested = body.scheduledAt === undefined ? undefined : Date.parse(body.scheduledAt);
  const sameSchedule =
    requested === undefined || requested === stored || (requested < stored && stored <= row.createdAt.getTime() + DUE_AT_ONCE_SLACK_MS);
  const same =
    sameSchedule &&
    row.customerId === body.customerId &&
    row.amount.toString() === body.amount.amount &&
    row.currency === body.amount.currency &&
    row.bankCode === body.bankAccount.bankCode &&
    row.accountNumber === body.bankAccount.accountNumber;
  if (!same) {
    throw keyReused('a different payout', 'payout');
  }
}
