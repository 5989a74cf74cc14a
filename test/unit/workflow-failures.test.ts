// How workflow code reads failures (workflows/failures.ts): by type, directly or as an activity
// failure's cause. These helpers need no workflow context, so they run here without a server.
import { ActivityFailure, ApplicationFailure, RetryState } from '@temporalio/common';
import { describe, expect, it } from 'vitest';
import { FailureType, WorkflowFailureType } from '../../domain/index.js';
import { applicationFailureOf, describeFailure, failureType, isBusinessFailure, refuseInput } from '../../workflows/failures.js';

const declined = ApplicationFailure.create({ type: FailureType.CardDeclined, message: 'declined', nonRetryable: true, details: [{ declineCode: 'insufficient_funds' }] });
const fromActivity = (cause: Error | undefined) => new ActivityFailure('activity failed', 'authorize', '1', RetryState.NON_RETRYABLE_FAILURE, undefined, cause);

describe('reading failures', () => {
  it('finds the typed failure directly or as the cause of an activity failure, and nowhere else', () => {
    expect(applicationFailureOf(declined)).toBe(declined);
    expect(applicationFailureOf(fromActivity(declined))).toBe(declined);
    expect(applicationFailureOf(fromActivity(new Error('plain')))).toBeUndefined();
    expect(applicationFailureOf(fromActivity(undefined))).toBeUndefined();
    expect(applicationFailureOf(new Error('plain'))).toBeUndefined();
    expect(applicationFailureOf({ cause: declined })).toBeUndefined();
  });

  it('a failure type is read from the typed failure', () => {
    expect(failureType(fromActivity(declined))).toBe('CardDeclined');
    expect(failureType(ApplicationFailure.create({ message: 'untyped' }))).toBeUndefined();
    expect(failureType(new Error('x'))).toBeUndefined();
  });

  it('business failures are the domain failure types; anything else fails the run', () => {
    expect(isBusinessFailure(fromActivity(declined))).toBe(true);
    expect(isBusinessFailure(ApplicationFailure.create({ type: FailureType.InsufficientFunds, message: 'x' }))).toBe(true);
    expect(isBusinessFailure(ApplicationFailure.create({ type: 'TimeoutLikeThing', message: 'x' }))).toBe(false);
    expect(isBusinessFailure(ApplicationFailure.create({ type: WorkflowFailureType.InvalidWorkflowInput, message: 'x' }))).toBe(false);
    expect(isBusinessFailure(ApplicationFailure.create({ message: 'untyped' }))).toBe(false);
    expect(isBusinessFailure(new Error('CardDeclined'))).toBe(false);
  });

  it('describes a failure for the row: its decline code, else its type, else "failed"', () => {
    expect(describeFailure(fromActivity(declined))).toEqual({ code: 'insufficient_funds', message: 'declined' });
    expect(describeFailure(ApplicationFailure.create({ type: 'BankRejected', message: 'closed', details: [{ code: 'account_closed' }] }))).toEqual({ code: 'BankRejected', message: 'closed' });
    expect(describeFailure(ApplicationFailure.create({ type: 'BankRejected', message: 'closed' }))).toEqual({ code: 'BankRejected', message: 'closed' });
    expect(describeFailure(ApplicationFailure.create({ message: 'untyped' }))).toEqual({ code: 'failed', message: 'untyped' });
    expect(describeFailure(new Error('boom'))).toEqual({ code: 'failed', message: 'boom' });
    expect(describeFailure('a string')).toEqual({ code: 'failed', message: 'a string' });
  });
});

describe('refusing an input', () => {
  it('does nothing without a problem', () => {
    expect(() => refuseInput(undefined)).not.toThrow();
  });

  it('fails non-retryably, naming the field, as InvalidWorkflowInput unless told', () => {
    const problem = { param: 'items.0', message: 'must be { sku, quantity }' };
    const thrown = (type?: WorkflowFailureType) => {
      try {
        refuseInput(problem, type);
      } catch (err) {
        return err;
      }
      throw new Error('refuseInput did not throw');
    };
    for (const [err, type] of [
      [thrown(), 'InvalidWorkflowInput'],
      [thrown(WorkflowFailureType.InvalidReconciliationInput), 'InvalidReconciliationInput'],
    ] as const) {
      expect(err).toBeInstanceOf(ApplicationFailure);
      expect(err).toMatchObject({ type, nonRetryable: true, message: 'invalid input: items.0 must be { sku, quantity }', details: [problem] });
    }
  });
});
