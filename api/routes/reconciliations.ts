// POST /v1/reconciliations starts a reconciliation now (the schedule runs a platform-wide one every
// hour anyway); GET /v1/reconciliations/:id shows how it went.
//
// A merchant's key reconciles that merchant's own records (the run's input names the merchant, and
// every check reads and repairs only its records) and sees, of any run, its own items only, with
// counts over those. The operator's key runs the platform-wide reconciliation (every merchant's
// records and the platform's own, such as the ledger check), or one merchant's, and sees every item
// of every run, including platform-level ones that belong to no merchant. A merchant key asking for
// the platform-wide run, or another merchant's, is refused with 403 operator_key_required.
//
// One run per scope at a time (platform/reconciliation-leases.ts): the scope is claimed before the
// workflow starts, so a second request while one runs answers 409 with the running one's id and
// starts nothing.
import { randomUUID } from 'node:crypto';
import { Router } from 'express';
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import { z } from 'zod';
import type { PrismaClient } from '../../platform/db.js';
import type { Logger } from '../../platform/logger.js';
import { claimReconciliationLease, reconciliationLeaseOf, releaseReconciliationLease } from '../../platform/reconciliation-leases.js';
import {
  merchantOfScope,
  reconciliationId,
  reconciliationInputProblem,
  reconciliationScope,
  type ReconciliationAction,
  type ReconciliationCounts,
  type ReconciliationInput,
  type ReconciliationKind,
} from '../../domain/index.js';
import type { reconciliationWorkflowV2 } from '../../workflows/reconciliation.js';
import { callerOf, operatorKeyRequired, type Caller } from '../auth.js';
import { ApiError, invalidRequest, notFound } from '../errors.js';
import { bodyOf, requireJson } from '../json.js';
import { parseBody } from '../validation.js';

export interface ReconciliationsDeps {
  prisma: PrismaClient;
  temporal: Client;
  taskQueue: string;
  logger: Logger;
}

const MAX_RECONCILIATION_ID_LENGTH = 200;

// Types and unknown fields here; what the values may be is domain's reconciliationInputProblem,
// which the workflow applies again when it starts.
const TIMESTAMP_RULE = 'must be an ISO 8601 date-time with a time zone, such as 2026-11-29T00:00:00Z';
const startBody = z.strictObject({
  since: z.string({ error: TIMESTAMP_RULE }).optional(),
  until: z.string({ error: TIMESTAMP_RULE }).optional(),
  olderThanMs: z.number({ error: 'must be an integer number of milliseconds' }).optional(),
  /** `platform`: every merchant (the operator's key only); `merchant`: one merchant's records. Default: the key's own. */
  scope: z.enum(['platform', 'merchant'], { error: 'must be "platform" or "merchant"' }).optional(),
  /** The merchant of a `merchant` run: the key's own for a merchant key; for the operator's, the one it names. */
  merchantId: z.string({ error: 'must be a merchant id' }).optional(),
});
type StartBody = z.infer<typeof startBody>;

export function reconciliationsRouter(deps: ReconciliationsDeps): Router {
  const { prisma, temporal } = deps;
  const router = Router();

  router.post('/', ...requireJson, async (req, res) => {
    const caller = callerOf(res);
    const body = parseBody(startBody, bodyOf(req));
    const merchantId = await merchantOfRun(prisma, caller, body);
    const input: ReconciliationInput = {
      ...(body.since !== undefined ? { since: body.since } : {}),
      ...(body.until !== undefined ? { until: body.until } : {}),
      ...(body.olderThanMs !== undefined ? { olderThanMs: body.olderThanMs } : {}),
      ...(merchantId !== undefined ? { merchantId } : {}),
    };
    const problem = reconciliationInputProblem(input);
    if (problem) throw invalidRequest('parameter_invalid', `Invalid ${problem.param}: ${problem.message}.`, problem.param);

    const id = reconciliationId(randomUUID());
    const claim = await claimReconciliationLease(prisma, temporal, { reconciliationId: id, merchantId });
    if (!claim.claimed) {
      throw new ApiError(
        409,
        'conflict',
        'reconciliation_already_running',
        `Reconciliation ${claim.runningId} of the same scope is running; one runs at a time. Follow it with GET /v1/reconciliations/${claim.runningId}.`,
        undefined,
        {},
        { reconciliation: { id: claim.runningId } },
      );
    }
    try {
      await temporal.workflow.start<typeof reconciliationWorkflowV2>('reconciliationWorkflowV2', { workflowId: id, taskQueue: deps.taskQueue, args: [input] });
    } catch (err) {
      // The scope is free again. Had the start gone through after all, the run claims it back as
      // its first step, or fails then if another run took it meanwhile.
      await releaseReconciliationLease(prisma, id);
      throw err;
    }
    deps.logger.info('reconciliation started', { requestId: res.locals.requestId, role: caller.role, merchantId, reconciliationId: id });
    res.status(202).json({ id, scope: merchantId === undefined ? 'platform' : 'merchant', merchantId: merchantId ?? null });
  });

  router.get('/:id', async (req, res) => {
    const caller = callerOf(res);
    const id = req.params.id;
    const all = caller.role === 'operator';
    // Ids are `reconciliation-<uuid>` or a schedule's `reconciliation-scheduled-<time>`; Temporal
    // refuses a longer one with an error of its own (a 500), so it is never asked.
    if (id.length > MAX_RECONCILIATION_ID_LENGTH) throw notFound('No such reconciliation.');
    const run = await prisma.reconciliation.findUnique({ where: { id } });
    if (!run) {
      // Started, but its first activity has not written its row yet: the API's own runs are known
      // by their claim; the schedule's (and any other) only by their workflow, to the operator.
      const lease = await reconciliationLeaseOf(prisma, id);
      const leaseMerchant = lease ? (merchantOfScope(lease.scope) ?? null) : undefined;
      const visible = lease !== null && (all || leaseMerchant === null || lease.scope === reconciliationScope(caller.merchantId));
      const workflow = visible || (all && id.startsWith('reconciliation-')) ? await workflowStatus(temporal, id) : undefined;
      if (visible || workflow !== undefined) {
        // A run that closed without its row never got to its checks (its input was refused, or
        // its scope was taken): failed, whatever Temporal calls it.
        const status = workflow === undefined || workflow === 'RUNNING' ? 'running' : 'failed';
        res.json({ id, status, scope: leaseMerchant ? 'merchant' : 'platform', merchantId: leaseMerchant ?? null, startedAt: null, finishedAt: null, counts: null, items: [] });
        return;
      }
      throw notFound(`No such reconciliation: '${id}'`);
    }
    // Another merchant's run is as unknown as any id that does not exist.
    if (caller.role === 'merchant' && run.merchantId !== null && run.merchantId !== caller.merchantId) throw notFound(`No such reconciliation: '${id}'`);
    const items = await prisma.reconciliationItem.findMany({
      where: { reconciliationId: id, ...(caller.role === 'merchant' ? { merchantId: caller.merchantId } : {}) },
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
      scope: run.merchantId === null ? 'platform' : 'merchant',
      merchantId: run.merchantId,
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

/**
 * The merchant whose records the run covers, or undefined for the platform-wide run. A merchant's
 * key covers its own; only the operator's covers every merchant, or names another.
 */
async function merchantOfRun(prisma: PrismaClient, caller: Caller, body: StartBody): Promise<string | undefined> {
  if (caller.role === 'merchant') {
    if (body.scope === 'platform') {
      throw operatorKeyRequired('A reconciliation over every merchant needs the operator key; a merchant key reconciles its own records (leave scope out).', 'scope');
    }
    if (body.merchantId !== undefined && body.merchantId !== caller.merchantId) {
      throw operatorKeyRequired("Reconciling another merchant's records needs the operator key.", 'merchantId');
    }
    return caller.merchantId;
  }
  const scope = body.scope ?? (body.merchantId !== undefined ? 'merchant' : 'platform');
  if (scope === 'platform') {
    if (body.merchantId !== undefined) throw invalidRequest('parameter_invalid', 'Invalid merchantId: a platform-wide run covers every merchant; leave merchantId out, or set scope "merchant".', 'merchantId');
    return undefined;
  }
  // The operator's key belongs to no merchant: a merchant's run names its merchant.
  if (body.merchantId === undefined) throw invalidRequest('parameter_missing', 'Missing required param: merchantId (the merchant whose records to reconcile).', 'merchantId');
  const problem = reconciliationInputProblem({ merchantId: body.merchantId });
  if (problem) throw invalidRequest('parameter_invalid', `Invalid ${problem.param}: ${problem.message}.`, problem.param);
  if (!(await prisma.merchant.findUnique({ where: { id: body.merchantId }, select: { id: true } }))) {
    throw invalidRequest('parameter_invalid', `Invalid merchantId: no merchant '${body.merchantId}'.`, 'merchantId');
  }
  return body.merchantId;
}

/** The status of the run's workflow (its latest run, after continue-as-new), or undefined when there is none. */
async function workflowStatus(temporal: Client, id: string): Promise<string | undefined> {
  try {
    return (await temporal.workflow.getHandle(id).describe()).status.name;
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) return undefined;
    throw err;
  }
}
