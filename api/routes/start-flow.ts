// How a creating request starts its flow, for every flow (checkout, top-up, payout).
//
// The Idempotency-Key is the workflow id. A retried or concurrent request with the same key reaches
// the same execution (USE_EXISTING), and once that has closed the key can never start a second one
// (REJECT_DUPLICATE): that would be a second charge or a second payout. Every start carries the
// search attributes ops filter on in the Web UI.
//
// Top-ups and payouts wait for their workflow's first answer (`startFlow`: one update-with-start,
// then the row the workflow wrote before answering). A checkout does not wait for a worker at all:
// it starts with a plain start and places the order itself (api/routes/checkouts.ts).
import { WithStartWorkflowOperation, type Client } from '@temporalio/client';
import type { UpdateDefinition } from '@temporalio/common';
import { CustomerId, MerchantId, PaymentStatus } from '../../domain/index.js';
import type { CustomerSearch } from '../../platform/customer-search.js';
import type { Logger } from '../../platform/logger.js';
import { asError, errorName, startError, type StartErrorContext } from '../temporal-errors.js';

/** Who a flow's start is for: its id (from the key), merchant and customer, and its first status. */
export interface FlowStart<Input> {
  id: string;
  taskQueue: string;
  input: Input;
  merchantId: string;
  customerId: string;
  /** The PaymentStatus search attribute until the workflow moves it. */
  status: string;
  customerSearch: CustomerSearch;
}

/** The start options every flow uses. */
export function flowStartOptions<Input>(f: FlowStart<Input>) {
  return {
    workflowId: f.id,
    taskQueue: f.taskQueue,
    args: [f.input] as [Input],
    workflowIdConflictPolicy: 'USE_EXISTING' as const,
    workflowIdReusePolicy: 'REJECT_DUPLICATE' as const,
    typedSearchAttributes: [
      { key: MerchantId, value: f.merchantId },
      { key: CustomerId, value: f.customerSearch.value(f.merchantId, f.customerId) },
      { key: PaymentStatus, value: f.status },
    ],
  };
}

export interface StartFlow<Input, Row, Snapshot> {
  temporal: Client;
  workflowType: string;
  start: FlowStart<Input>;
  /** The update that answers once the workflow has written its row. */
  accepted: UpdateDefinition<Snapshot, []>;
  /** How long the request waits for the workflow's answer before a 503 (the retry is safe). */
  timeoutMs: number;
  log: Logger;
  resource: StartErrorContext['resource'];
  retrySafety: string;
  /** The flow's row for this key, if it exists. */
  findRow: () => Promise<Row | null>;
  /** Stripe's rule: a key's row made by other parameters is a 422 (api/idempotency.ts keyReused). */
  assertSameRequest: (row: Row) => void;
}

export type StartedFlow<Row, Snapshot> =
  /** The workflow answered this request: created for the client (201). */
  | { row: Row; snapshot: Snapshot; replayed: false }
  /** An earlier request with the key made the row (200, from the row). */
  | { row: Row; snapshot: undefined; replayed: true };

export async function startFlow<Input, Row, Snapshot>(f: StartFlow<Input, Row, Snapshot>): Promise<StartedFlow<Row, Snapshot>> {
  const found = (row: Row): StartedFlow<Row, Snapshot> => {
    f.assertSameRequest(row);
    return { row, snapshot: undefined, replayed: true };
  };
  // Retries are normally replayed by the idempotency layer; the row answers those whose idempotency
  // record expired, without touching Temporal (the execution may be long closed).
  const existing = await f.findRow();
  if (existing) return found(existing);

  const startWorkflowOperation = new WithStartWorkflowOperation<(input: Input) => Promise<unknown>>(f.workflowType, flowStartOptions(f.start));
  const signal = AbortSignal.timeout(f.timeoutMs);
  let snapshot: Snapshot;
  try {
    // A fixed update id: duplicates attaching to the same run get the first answer.
    snapshot = await f.temporal.withAbortSignal(signal, () =>
      f.temporal.workflow.executeUpdateWithStart(f.accepted, { startWorkflowOperation, updateId: `${f.start.id}:accepted` }),
    );
  } catch (err) {
    // Whatever went wrong, a stored row is the truth the client needs (the run had already closed,
    // or the answer was lost after the row was written).
    const row = await f.findRow();
    if (row) {
      f.log.info(`${f.resource} found after failed update-with-start`, { error: errorName(err) });
      return found(row);
    }
    throw startError(err, { signal, log: f.log, resource: f.resource, retrySafety: f.retrySafety }) ?? asError(err);
  }
  // The workflow writes its row before it answers, and the row is what GET shows later.
  const row = await f.findRow();
  if (!row) {
    f.log.error(`${f.resource} answered without its row`);
    throw new Error(`${f.resource} row missing after the accepted update`);
  }
  // A concurrent request with the same key but another body may have started the execution.
  f.assertSameRequest(row);
  return { row, snapshot, replayed: false };
}
