// What a merchant can do to an existing checkout: capture, cancel, confirm 3-D Secure, refund. Each
// is an update of the checkout's workflow, which alone decides whether the request fits the
// checkout's status (its validators reject before anything is recorded) and writes the rows; the
// API checks only what it can check without the workflow (the checkout exists for this merchant,
// the body is well formed, the currency is the checkout's) and answers from the rows afterwards.
//
// Update ids make retries join the first request instead of acting twice: capture, cancel and
// confirm put their parameters in the id (a retry of the same request joins it; a different request
// is judged on its own, and rejected once the first has acted), refunds use the refund id, which
// comes from the request's Idempotency-Key when it has one.
import { createHash, randomUUID } from 'node:crypto';
import { Router, type Request, type Response } from 'express';
import { CAPTURED_STATUSES, type CheckoutStatus, type Money } from '../../domain/index.js';
import { cancelUpdate, captureUpdate, confirmUpdate, refundUpdate } from '../../workflows/checkout-messages.js';
import type { Logger } from '../../platform/logger.js';
import { merchantIdOf } from '../auth.js';
import { ApiError, checkoutConflict, invalidRequest, notFound } from '../errors.js';
import { bodyOf, requireJson } from '../json.js';
import { keyReused, type IdempotentRoute } from '../idempotency.js';
import { checkoutResource, refundFromSnapshot, refundResource, type CheckoutRow } from '../serialize.js';
import { updateError } from '../temporal-errors.js';
import { cancelBody, captureBody, confirmBody, idempotencyKeyOf, parseBody, refundBody } from '../validation.js';
import { findCheckout, type CheckoutsDeps } from './checkouts.js';

/**
 * `re_` + 32 hex characters. With an Idempotency-Key it is derived from the checkout and the key,
 * so a retried request names the same refund (and the same update) and can never refund twice.
 */
export function refundIdFor(checkoutId: string, idempotencyKey: string | undefined): string {
  if (idempotencyKey === undefined) return `re_${randomUUID().replaceAll('-', '')}`;
  return `re_${createHash('sha256').update(`${checkoutId}:${idempotencyKey}`).digest('hex').slice(0, 32)}`;
}

interface Target {
  merchantId: string;
  row: CheckoutRow;
  log: Logger;
}

export function checkoutActionsRouter(deps: CheckoutsDeps): Router {
  const { prisma, temporal } = deps;
  const router = Router();
  // Idempotency-Key is optional on actions: without one, the update ids below still make a retry
  // join the first request; with one, a retry also gets the first answer back.
  const idempotent = (schema: IdempotentRoute['schema']) => deps.idempotency({ required: false, schema });

  /** The checkout the path names, if it is this merchant's; 404 before anything else is looked at. */
  const target = async (req: Request, res: Response): Promise<Target> => {
    const merchantId = merchantIdOf(res);
    // A named `:id` is always one string; the union is only for wildcard parameters.
    const id = req.params.id;
    const row = typeof id === 'string' ? await findCheckout(prisma, id, merchantId) : null;
    if (!row) throw notFound('No such checkout.');
    res.locals.checkoutId = row.id;
    const log = deps.logger.child({ requestId: res.locals.requestId, merchantId, checkoutId: row.id, customerId: row.customerId });
    return { merchantId, row, log };
  };

  /** Runs an update with the request's deadline, mapping its failures to API errors. */
  const update = async <T>(t: Target, action: string, retryAdvice: string, run: () => Promise<T>): Promise<T> => {
    const signal = AbortSignal.timeout(deps.updateTimeoutMs);
    try {
      return await temporal.withAbortSignal(signal, run);
    } catch (err) {
      throw updateError(err, { signal, log: t.log, action, checkoutId: t.row.id, status: t.row.status, retryAdvice });
    }
  };

  /** The workflow writes the row before it answers an update, so the row is what GET shows next. */
  const answerWithCheckout = async (t: Target, res: Response): Promise<void> => {
    const row = await findCheckout(prisma, t.row.id, t.merchantId);
    if (!row) throw new Error('checkout row disappeared after an update');
    res.status(200).json(checkoutResource(row));
  };

  router.post('/:id/capture', ...requireJson, idempotent(captureBody), async (req, res) => {
    const t = await target(req, res);
    const body = parseBody(captureBody, bodyOf(req));
    const amount = body.amount ? inCheckoutCurrency(body.amount, t.row).amount : undefined;
    const snapshot = await update(t, 'capture', 'Retry the same request: it joins the first and cannot capture twice.', () =>
      temporal.workflow.getHandle(t.row.id).executeUpdate(captureUpdate, {
        args: [amount === undefined ? {} : { amount }],
        updateId: `${t.row.id}:capture:${amount ?? 'all'}`,
      }),
    );
    // 2xx only for a capture that happened: a checkout that expired or was canceled while the
    // request waited answers 409 (runs of the first checkout type answer with that snapshot).
    if (!CAPTURED_STATUSES.includes(snapshot.status)) throw notTakenEffect(t, 'capture', snapshot.status);
    t.log.info('checkout captured', { status: snapshot.status, amountCaptured: snapshot.amountCaptured });
    await answerWithCheckout(t, res);
  });

  router.post('/:id/cancel', ...requireJson, idempotent(cancelBody), async (req, res) => {
    const t = await target(req, res);
    parseBody(cancelBody, bodyOf(req));
    const snapshot = await update(t, 'cancel', 'Retry the request: it joins the first.', () =>
      temporal.workflow.getHandle(t.row.id).executeUpdate(cancelUpdate, { updateId: `${t.row.id}:cancel` }),
    );
    // The update answers once the checkout has settled down, which need not be `canceled`: a
    // capture can win the race, or the payment can fail or expire first.
    if (snapshot.status !== 'canceled') throw notTakenEffect(t, 'cancel', snapshot.status);
    t.log.info('checkout canceled');
    await answerWithCheckout(t, res);
  });

  router.post('/:id/confirm', ...requireJson, idempotent(confirmBody), async (req, res) => {
    const t = await target(req, res);
    const { result } = parseBody(confirmBody, bodyOf(req));
    const snapshot = await update(t, 'confirm', 'Retry the same request: it joins the first.', () =>
      temporal.workflow.getHandle(t.row.id).executeUpdate(confirmUpdate, {
        args: [{ result }],
        updateId: `${t.row.id}:confirm:${result}`,
      }),
    );
    // A result that arrived while the checkout was expiring or being canceled was never used.
    if (snapshot.status === 'expired' || snapshot.status === 'canceled') throw notTakenEffect(t, 'confirm', snapshot.status);
    t.log.info('3-D Secure result delivered', { result, status: snapshot.status });
    await answerWithCheckout(t, res);
  });

  router.post('/:id/refunds', ...requireJson, idempotent(refundBody), async (req, res) => {
    const t = await target(req, res);
    const idempotencyKey = idempotencyKeyOf(req.get('Idempotency-Key'), false);
    const body = parseBody(refundBody, bodyOf(req));
    const amount = body.amount ? inCheckoutCurrency(body.amount, t.row).amount : undefined;
    const refundId = refundIdFor(t.row.id, idempotencyKey);
    const log = t.log.child({ refundId });
    const findRefund = () => prisma.refund.findFirst({ where: { id: refundId, checkoutId: t.row.id } });

    // A retry whose refund has finished is answered from the table, so it works even after the
    // refund window closed the workflow. A pending one joins the running update below.
    const before = idempotencyKey === undefined ? null : await findRefund();
    if (before) {
      assertSameRefund(before.amount.toString(), amount);
      if (before.status !== 'pending') {
        log.info('refund replayed', { status: before.status });
        res.status(200).json(refundResource(before));
        return;
      }
    }

    const retryAdvice =
      idempotencyKey === undefined
        ? 'The refund may still complete: check the checkout before retrying, and send an Idempotency-Key so that a retry cannot refund twice.'
        : 'Retry with the same Idempotency-Key: it joins the first refund and cannot refund twice.';
    const snapshot = await update({ ...t, log }, 'refund', retryAdvice, () =>
      temporal.workflow.getHandle(t.row.id).executeUpdate(refundUpdate, {
        args: [amount === undefined ? { refundId } : { refundId, amount }],
        updateId: refundId,
      }),
    );
    const stored = await findRefund();
    // A concurrent request with the same key but another amount joined the first one's update.
    assertSameRefund(stored ? stored.amount.toString() : snapshot.amount.amount, amount);
    if (!stored) log.warn('refund answered without a refunds row', { status: snapshot.status });
    const resource = stored ? refundResource(stored) : refundFromSnapshot(t.row.id, snapshot, new Date());
    log.info('refund answered', { status: resource.status, amount: resource.amount.amount, failureCode: resource.failureCode });
    res.status(before ? 200 : 201).json(resource);
  });

  return router;
}

function inCheckoutCurrency(amount: Money, row: CheckoutRow): Money {
  if (amount.currency !== row.currency) {
    throw invalidRequest(
      'currency_mismatch',
      `Invalid amount.currency: this checkout is in ${row.currency}, not ${amount.currency}.`,
      'amount.currency',
    );
  }
  return amount;
}

/** Stripe's rule, as for checkouts: a key replays its first request and rejects different parameters. */
function assertSameRefund(storedAmount: string, requested: string | undefined): void {
  // Without an amount the request meant "whatever is left", which the first request decided.
  if (requested === undefined || requested === storedAmount) return;
  throw keyReused(`a refund of ${storedAmount}`, 'refund');
}

/** 409 for an action the checkout answered without doing it: the code names what happened instead. */
function notTakenEffect(t: Target, action: 'capture' | 'cancel' | 'confirm', status: CheckoutStatus): ApiError {
  t.log.info(`${action} did not take effect`, { status });
  const checkout = { id: t.row.id, status };
  if (CAPTURED_STATUSES.includes(status)) {
    return checkoutConflict('checkout_already_captured', `The checkout was captured before it could ${action} (it is ${status}); refund it instead.`, checkout);
  }
  return checkoutConflict(`checkout_${status}`, `The checkout is ${status}; the ${action} did not take effect and nothing was charged.`, checkout);
}
