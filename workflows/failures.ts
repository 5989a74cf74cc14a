// Reading failures in workflow code: by their type (domain/errors.ts), never by message or class.
import { ActivityFailure, ApplicationFailure, CancellationScope, patched } from '@temporalio/workflow';
import { FailureType, WorkflowFailureType, type InputProblem } from '../domain/index.js';

/** The typed failure behind an error: activity failures carry it as their cause. */
export function applicationFailureOf(err: unknown): ApplicationFailure | undefined {
  if (err instanceof ApplicationFailure) return err;
  if (err instanceof ActivityFailure && err.cause instanceof ApplicationFailure) return err.cause;
  return undefined;
}

export function failureType(err: unknown): string | undefined {
  return applicationFailureOf(err)?.type ?? undefined;
}

/** A failure the business expects (a decline, a rejection): the run completes, it does not fail. */
export function isBusinessFailure(err: unknown): boolean {
  const type = failureType(err);
  return type !== undefined && (Object.values(FailureType) as string[]).includes(type);
}

/**
 * Whether a failure is a call that a cancel interrupted: the call in flight when a cancel came may
 * end as its system's error (an ActivityFailure whose cause is, say, the network's 503) rather than
 * as canceled, and the flow must still end canceled, with what the call did undone. Only a call's
 * failure counts: a bug in workflow code still fails the run, for ops to see. `cancelRequested`:
 * the merchant's cancel, for flows that take one; an operator's is the workflow's own cancellation.
 * Runs recorded before this rule keep failing as they did (the patch).
 */
export function interruptedByCancel(err: unknown, cancelRequested = false): boolean {
  if (!(err instanceof ActivityFailure) || isBusinessFailure(err)) return false;
  if (!cancelRequested && !CancellationScope.current().consideredCancelled) return false;
  return patched('cancel-outcome-over-interrupted-call');
}

/** Code and message for the resource's row: a decline code when there is one, else the type. */
export function describeFailure(err: unknown): { code: string; message: string } {
  const failure = applicationFailureOf(err);
  if (failure) {
    const details = failure.details?.[0] as { declineCode?: string; code?: string } | undefined;
    return { code: details?.declineCode ?? failure.type ?? 'failed', message: failure.message };
  }
  return { code: 'failed', message: err instanceof Error ? err.message : String(err) };
}

/**
 * Fails the run at once when its input has a problem (domain's `*InputProblem` checks), with a
 * failure that names the field: non-retryable, so the run shows Failed with the reason instead of a
 * workflow task that throws on every retry.
 */
export function refuseInput(problem: InputProblem | undefined, type: WorkflowFailureType = WorkflowFailureType.InvalidWorkflowInput): void {
  if (!problem) return;
  throw ApplicationFailure.create({ type, message: `invalid input: ${problem.param} ${problem.message}`, nonRetryable: true, details: [problem] });
}
