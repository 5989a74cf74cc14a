// POST /v1/topups charges the customer's card and credits their wallet at this merchant. The
// request answers once the top-up is recorded (`processing`); the charge and the credit follow in
// the workflow, and GET shows how it ended. The Idempotency-Key becomes the workflow id, so a
// retried request can never charge the card twice.
import { Router } from 'express';
import type { Client } from '@temporalio/client';
import type { PrismaClient } from '../../platform/db.js';
import type { CustomerSearch } from '../../platform/customer-search.js';
import type { Logger } from '../../platform/logger.js';
import type { Topup } from '../../generated/prisma/client.js';
import { topupId as buildTopupId, type TopupInput, type TopupSnapshot } from '../../domain/index.js';
import { topupAcceptedUpdate } from '../../workflows/wallet-messages.js';
import { merchantIdOf } from '../auth.js';
import { notFound } from '../errors.js';
import { keyReused, type Idempotency } from '../idempotency.js';
import { requireJson } from '../json.js';
import { topupResource } from '../serialize.js';
import { createTopupBody, idempotencyKeyOf, parseBody, type CreateTopupBody } from '../validation.js';
import { startFlow } from './start-flow.js';

export interface WalletFlowsDeps {
  prisma: PrismaClient;
  temporal: Client;
  taskQueue: string;
  logger: Logger;
  /** The CustomerId search attribute: a keyed pseudonym (platform/customer-search.ts). */
  customerSearch: CustomerSearch;
  /** How long a creating request waits for its workflow's first answer before a 503 (retry-safe). */
  answerTimeoutMs: number;
  /** How long a cancel waits for the workflow before a 503. */
  updateTimeoutMs: number;
  /** A payout without `scheduledAt` is sent this long after it is requested. */
  payoutDelayMs: number;
  /** The Idempotency-Key layer (api/idempotency.ts) in front of every money-moving POST. */
  idempotency: Idempotency;
}

/** Ids are `<flow>-<merchant>-<key of at most 200>`: anything much longer cannot exist. */
export const MAX_FLOW_ID_LENGTH = 300;

export function topupsRouter(deps: WalletFlowsDeps): Router {
  const { prisma, temporal, taskQueue } = deps;
  const router = Router();

  router.post('/', ...requireJson, deps.idempotency({ required: true, schema: createTopupBody }), async (req, res) => {
    const merchantId = merchantIdOf(res);
    const idempotencyKey = idempotencyKeyOf(req.get('Idempotency-Key'), true);
    const body = parseBody(createTopupBody, req.body);
    const id = buildTopupId(merchantId, idempotencyKey);
    res.locals.topupId = id;
    const log = deps.logger.child({ requestId: res.locals.requestId, merchantId, topupId: id, customerId: body.customerId });
    const input: TopupInput = {
      topupId: id,
      merchantId,
      customerId: body.customerId,
      idempotencyKey,
      amount: body.amount,
      payment: { method: 'card', token: body.payment.token },
    };
    const started = await startFlow<TopupInput, Topup, TopupSnapshot>({
      temporal,
      workflowType: 'topupWorkflowV2',
      start: { id, taskQueue, input, merchantId, customerId: body.customerId, status: 'processing', customerSearch: deps.customerSearch },
      accepted: topupAcceptedUpdate,
      timeoutMs: deps.answerTimeoutMs,
      log,
      resource: 'topup',
      retrySafety: 'the card will not be charged twice',
      findRow: () => prisma.topup.findUnique({ where: { merchantId_idempotencyKey: { merchantId, idempotencyKey } } }),
      assertSameRequest: (row) => assertSameTopup(row, body),
    });
    log.info(started.replayed ? 'topup replayed' : 'topup created', { status: started.row.status, amount: body.amount.amount, currency: body.amount.currency });
    res.status(started.replayed ? 200 : 201).json(topupResource(started.row));
  });

  router.get('/:id', async (req, res) => {
    const merchantId = merchantIdOf(res);
    const id = req.params.id;
    // Another merchant's top-up answers exactly like an unknown one.
    const row = id.length > MAX_FLOW_ID_LENGTH ? null : await prisma.topup.findFirst({ where: { id, merchantId } });
    if (!row) throw notFound('No such topup.');
    res.locals.topupId = row.id;
    res.json(topupResource(row));
  });

  return router;
}

/**
 * Stripe's rule: a key replays its first request and rejects reuse with different parameters. The
 * card token is not stored, so it cannot be compared.
 */
function assertSameTopup(row: Topup, body: CreateTopupBody): void {
  const same = row.customerId === body.customerId && row.amount.toString() === body.amount.amount && row.currency === body.amount.currency;
  if (!same) {
    throw keyReused('a different topup', 'topup');
  }
}
