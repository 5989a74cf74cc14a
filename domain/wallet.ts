import { MAX_WORKFLOW_ID_LENGTH, firstProblem, isRecord, isText, isTimestamp, unless, type InputProblem } from './inputs.js';
import { isAmountString, isCurrencyCode, type Money } from './money.js';

export type TopupStatus = 'processing' | 'succeeded' | 'failed';

export interface TopupInput {
  topupId: string;
  merchantId: string;
  customerId: string;
  idempotencyKey: string;
  amount: Money;
  payment: { method: 'card'; token: string };
}

export interface TopupSnapshot {
  topupId: string;
  status: TopupStatus;
  amount: Money;
  failure?: { code: string; message: string };
}

/** `pending`: held, waiting for scheduledAt; `processing`: at the bank; then paid | failed | canceled. */
export type PayoutStatus = 'pending' | 'processing' | 'paid' | 'failed' | 'canceled';

export interface PayoutInput {
  payoutId: string;
  merchantId: string;
  customerId: string;
  idempotencyKey: string;
  amount: Money;
  bankAccount: { bankCode: string; accountNumber: string };
  /** ISO time; the workflow sleeps until then on a durable timer. */
  scheduledAt: string;
}

export interface PayoutSnapshot {
  payoutId: string;
  status: PayoutStatus;
  amount: Money;
  scheduledAt: string;
  failure?: { code: string; message: string };
}

function moneyProblem(value: unknown, param: string): InputProblem | undefined {
  const ok = isRecord(value) && typeof value.amount === 'string' && isAmountString(value.amount) && typeof value.currency === 'string' && isCurrencyCode(value.currency);
  return unless(ok, param, 'must be { amount, currency }: an integer string of minor units and an ISO 4217 code');
}

function partiesProblem(input: Record<string, unknown>, idField: 'topupId' | 'payoutId'): InputProblem | undefined {
  return firstProblem(
    () => unless(isText(input[idField], MAX_WORKFLOW_ID_LENGTH), idField, `must be a string of 1 to ${MAX_WORKFLOW_ID_LENGTH} characters`),
    () => unless(isText(input.merchantId), 'merchantId', 'must be a string of 1 to 255 characters'),
    () => unless(isText(input.customerId), 'customerId', 'must be a string of 1 to 255 characters'),
    () => unless(isText(input.idempotencyKey), 'idempotencyKey', 'must be a string of 1 to 255 characters'),
  );
}

/** The first problem of a top-up workflow's input (its amount becomes a bigint in workflow code). */
export function topupInputProblem(input: unknown): InputProblem | undefined {
  if (!isRecord(input)) return { param: 'input', message: 'must be an object' };
  const { payment } = input;
  return firstProblem(
    () => partiesProblem(input, 'topupId'),
    () => moneyProblem(input.amount, 'amount'),
    () => unless(isRecord(payment) && payment.method === 'card' && isText(payment.token), 'payment', 'must be { method: "card", token }'),
  );
}

/** The first problem of a payout workflow's input (its amount becomes a bigint, its scheduledAt a timer). */
export function payoutInputProblem(input: unknown): InputProblem | undefined {
  if (!isRecord(input)) return { param: 'input', message: 'must be an object' };
  const { bankAccount } = input;
  return firstProblem(
    () => partiesProblem(input, 'payoutId'),
    () => moneyProblem(input.amount, 'amount'),
    () => unless(isRecord(bankAccount) && isText(bankAccount.bankCode) && isText(bankAccount.accountNumber), 'bankAccount', 'must be { bankCode, accountNumber }'),
    () => unless(isTimestamp(input.scheduledAt), 'scheduledAt', 'must be an ISO 8601 date-time with a time zone'),
  );
}
