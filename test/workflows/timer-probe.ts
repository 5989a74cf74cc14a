// A tiny workflow for test/time-skipping-smoke.test.ts: proves that the time-skipping test server
// skips a long timer and accepts our custom search attributes. Test-only, so it lives outside
// workflows/ (and out of the production bundle). Same rules as workflow code: deterministic, no
// Node built-ins.
import { sleep, upsertSearchAttributes, workflowInfo } from '@temporalio/workflow';
import { PaymentStatus } from '../../domain/search-attributes.js';

export interface TimerProbeResult {
  /** Workflow clock (server time) when the workflow started and when the timer had fired. */
  startedAtMs: number;
  wokeAtMs: number;
}

/** Sleeps `durationMs` of server time, then sets PaymentStatus to `status`. */
export async function timerProbe(durationMs: number, status: string): Promise<TimerProbeResult> {
  const startedAtMs = workflowInfo().startTime.getTime();
  await sleep(durationMs);
  const wokeAtMs = Date.now();
  upsertSearchAttributes([{ key: PaymentStatus, value: status }]);
  return { startedAtMs, wokeAtMs };
}
