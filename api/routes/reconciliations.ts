// POST /v1/reconciliations starts a reconciliation now (the schedule runs one every hour anyway);
// GET /v1/reconciliations/:id shows how it went. A run is platform-wide, but what a merchant sees
// is scoped: its own items only, with counts over those items. The platform operator (the demo
// merchant, whose key runs the stack) sees every item, including platform-level ones such as a
// failed ledger check, which belong to no merchant.
import { randomUUID } from 'node:crypto';
import { Router } from 'express';
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import { z } from 'zod';
import type { PrismaClient } from '../../platform/db.js';
import type { Logger } from '../../platform/logger.js';
import { reconciliationId, type ReconciliationAction, type ReconciliationCounts, type ReconciliationInput, type ReconciliationKind } from '../../domain/index.js';
import type { reconciliationWorkflowV2 } from '../../workflows/reconciliation.js';
import { merchantIdOf } from '../auth.js';
import { notFound } from '../errors.js';
import { bodyOf, requireJson } from '../json.js';
import { parseBody } from '../validation.js';

export interface ReconciliationsDeps {
  prisma: PrismaClient;
  temporal: Client;
  taskQueue: string;
  logger: Logger;
  /** Sees every item of every run. */
  operatorMerchantId: string;
}

const MAX_RECONCILIATION_ID_LENGTH = 200;

const startBody = z.strictObject({
  since: z.iso.datetime({ offset: true }).optional(),
  until: z.iso.datetime({ offset: true }).optional(),
  olderThanMs: z.number().int().min(0).optional(),
});

export function reconciliationsRouter(deps: ReconciliationsDeps): Router {
  const { prisma, temporal } = deps;
  const router = Router();

  router.post('/', ...requireJson, async (req, res) => {
    const merchantId = merchantIdOf(res);
    const body = parseBody(startBody, bodyOf(req));
    const input: ReconciliationInput = {
      ...(body.since !== undefined ? { since: body.since } : {}),
      ...(body.until !== undefined ? { until: body.until } : {}),
      ...(body.olderThanMs !== undefined ? { olderThanMs: body.olderThanMs } : {}),
    };
    const id = reconciliationId(randomUUID());
    await temporal.workflow.start<typeof reconciliationWorkflowV2>('reconciliationWorkflowV2', { workflowId: id, taskQueue: deps.taskQueue, args: [input] });
    deps.logger.info('reconciliation started', { requestId: res.locals.requestId, merchantId, reconciliationId: id });
    res.status(202).json({ id });
  });

  router.get('/:id', async (req, res) => {
    const merchantId = merchantIdOf(res);
    const id = req.params.id;
    const all = merchantId === deps.operatorMerchantId;
    // Ids are `reconciliation-<uuid>` or a schedule's `reconciliation-scheduled-<time>`; Temporal
    // refuses a longer one with an error of its own (a 500), so it is never asked.
    if (id.length > MAX_RECONCILIATION_ID_LENGTH) throw notFound('No such reconciliation.');
    const run = await prisma.reconciliation.findUnique({ where: { id } });
    if (!run) {
      // Started but its first activity has not run yet.
      if (id.startsWith('reconciliation-') && (await workflowExists(temporal, id))) {
        res.json({ id, status: 'running', startedAt: null, finishedAt: null, counts: null, items: [] });
        return;
      }
      throw notFound(`No such reconciliation: '${id}'`);
    }
    const items = await prisma.reconciliationItem.findMany({
      where: { reconciliationId: id, ...(all ? {} : { merchantId }) },
      orderBy: [{ kind: 'asc' }, { resourceId: 'asc' }],
    });
    const counts: ReconciliationCounts = all ? (run.counts as unknown as ReconciliationCounts) : { repaired: 0, reported: 0, byKind: {} };
    if (!all) {
      for (const item of items) {
        counts[item.action as ReconciliationAction] += 1;
        counts.byKind[item.kind as ReconciliationKind] = (counts.byKind[item.kind as ReconciliationKind] ?? 0) + 1;
      }
    }
    res.json({
      id: run.id,
      status: run.status,
      since: run.since?.toISOString() ?? null,
      until: run.until.toISOString(),
      startedAt: run.startedAt.toISOString(),
      finishedAt: run.finishedAt?.toISOString() ?? null,
      counts: run.status === 'running' && all ? null : counts,
      items: items.map((i) => ({ kind: i.kind, resourceId: i.resourceId, merchantId: i.merchantId, action: i.action, details: i.details, createdAt: i.createdAt.toISOString() })),
    });
  });

  return router;
}

async function workflowExists(temporal: Client, id: string): Promise<boolean> {
  try {
    await temporal.workflow.getHandle(id).describe();
    return true;
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) return false;
    throw err;
  }
}
