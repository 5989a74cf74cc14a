// The Temporal Schedule that runs reconciliationWorkflowV2 every `every`. Created once; on later
// starts it is updated in place, so a changed RECONCILIATION_INTERVAL takes effect on restart.
// Overlap SKIP: a run that takes longer than the interval is not joined by a second one.
import { ScheduleAlreadyRunning, ScheduleOverlapPolicy, type Client, type ScheduleOptionsAction, type ScheduleSpec } from '@temporalio/client';
import type { Duration } from '@temporalio/common';
import { DEFAULT_RECONCILIATION_OLDER_THAN_MS, reconciliationId, type ReconciliationInput } from '../domain/index.js';

export const RECONCILIATION_SCHEDULE_ID = 'reconciliation';

export async function ensureReconciliationSchedule(
  client: Client,
  { taskQueue, every, olderThanMs = DEFAULT_RECONCILIATION_OLDER_THAN_MS }: { taskQueue: string; every: Duration; olderThanMs?: number },
): Promise<'created' | 'updated'> {
  const spec: ScheduleSpec = { intervals: [{ every }] };
  const args: [ReconciliationInput] = [{ olderThanMs }];
  // The schedule appends each run's time to the workflow id: reconciliation-scheduled-<time>.
  const action: ScheduleOptionsAction = { type: 'startWorkflow', workflowType: 'reconciliationWorkflowV2', taskQueue, workflowId: reconciliationId('scheduled'), args };
  try {
    await client.schedule.create({ scheduleId: RECONCILIATION_SCHEDULE_ID, spec, action, policies: { overlap: ScheduleOverlapPolicy.SKIP } });
    return 'created';
  } catch (err) {
    if (!(err instanceof ScheduleAlreadyRunning)) throw err;
  }
  await client.schedule.getHandle(RECONCILIATION_SCHEDULE_ID).update((previous) => ({ ...previous, spec, action, policies: { ...previous.policies, overlap: ScheduleOverlapPolicy.SKIP } }));
  return 'updated';
}
