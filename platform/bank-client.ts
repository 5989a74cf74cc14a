// Typed HTTP client for the bank. It only translates HTTP into three outcomes: a transfer (paid or
// rejected), "unavailable" (the outcome is unknown: retry with the same key or look it up by key)
// and "rejected request" (the request itself is wrong: retrying cannot help). What to do about
// each is the workflow's business. It never retries: Temporal's activity retries do.
import { z } from 'zod';
import { createJsonClient, DEFAULT_MAX_PROCESSING_MS, errorCode, SystemRejectedError, SystemUnavailableError } from './http-json-client.js';

// The bank's wire type: the schema is the one declaration, the type is inferred from it.
const transferSchema = z.object({
  id: z.string(),
  idempotencyKey: z.string(),
  /** `paid`: the money left for the account; `rejected`: nothing moved, see `failureCode`. */
  status: z.enum(['paid', 'rejected']),
  /** Integer minor units as a decimal string. */
  amount: z.string(),
  currency: z.string(),
  bankCode: z.string(),
  accountNumber: z.string(),
  /** The caller's business reference (our payout id). */
  reference: z.string(),
  /** Only on a rejection, e.g. `account_closed`. */
  failureCode: z.string().optional(),
  createdAt: z.string(),
});
export type BankTransfer = z.infer<typeof transferSchema>;

/** 5xx, connection failure or timeout: the bank may or may not have paid. */
export class BankUnavailableError extends SystemUnavailableError {
  override readonly name = 'BankUnavailableError';
}

/** A 4xx that is not a rejected transfer, e.g. `invalid_parameter`: the bank refused the request itself and did not act on it. */
export class BankRejectedError extends SystemRejectedError {
  override readonly name = 'BankRejectedError';
}

export interface BankTransferRequest {
  idempotencyKey: string;
  amount: bigint;
  currency: string;
  /** 4 digits. */
  bankCode: string;
  /** 7 digits. */
  accountNumber: string;
  reference: string;
  /** Aborts the request (an activity being canceled); its outcome is then unknown. */
  signal?: AbortSignal;
}

export interface BankClient {
  /**
   * The longest the bank takes to act on a request it received. A lookup that finds nothing under
   * a key this long after the last request with it ended is final: no transfer will be made.
   */
  readonly maxProcessingMs: number;
  /**
   * A refused account (closed, ...) resolves with status 'rejected' and a failureCode: an answer,
   * not a failure. Retrying under the same key returns the first answer, paid or rejected.
   */
  transfer(req: BankTransferRequest): Promise<BankTransfer>;
  /**
   * The transfer made under a key, or null when none was (a request that failed or never arrived).
   * While a request under the key is still being processed the outcome is unknown:
   * BankUnavailableError.
   */
  lookup(idempotencyKey: string): Promise<BankTransfer | null>;
  /** Every transfer for a reference (payout id), paid or rejected, oldest first. */
  listTransfers(reference: string): Promise<BankTransfer[]>;
  /**
   * One page of the bank's statement: transfers in one status created in [createdAfter,
   * createdBefore), oldest first, at most `limit` (1 to 1000, default 1000) after the transfer
   * `startingAfter` (the last of the previous page). A page shorter than `limit` is the last; pass
   * the same createdBefore on every page so the statement stays the same while it is read.
   */
  listTransfersByStatus(q: {
    status: BankTransfer['status'];
    createdBefore?: Date;
    createdAfter?: Date;
    startingAfter?: string;
    limit?: number;
  }): Promise<BankTransfer[]>;
}

const rejectedTransferSchema = transferSchema.extend({ status: z.literal('rejected'), failureCode: z.string() });
const listSchema = z.object({ data: z.array(transferSchema) });
const statementSchema = listSchema.extend({ hasMore: z.boolean() });

export function createBankClient(opts: { baseUrl: string; timeoutMs?: number; maxProcessingMs?: number }): BankClient {
  const { send, rejected, decode } = createJsonClient({
    baseUrl: opts.baseUrl,
    timeoutMs: opts.timeoutMs,
    system: 'bank',
    unavailable: (message, o) => new BankUnavailableError(message, o),
    rejected: (message, o) => new BankRejectedError(message, o),
  });

  const seg = encodeURIComponent;
  return {
    maxProcessingMs: opts.maxProcessingMs ?? DEFAULT_MAX_PROCESSING_MS,
    async transfer(r) {
      const body = { amount: r.amount.toString(), currency: r.currency, bankCode: r.bankCode, accountNumber: r.accountNumber, reference: r.reference };
      const answer = await send('POST', '/v1/transfers', r.idempotencyKey, body, r.signal);
      if (answer.status >= 200 && answer.status < 300) return decode(transferSchema, answer);
      // A 422 is either a rejected transfer (an answer, stored under the key) or a misused key
      // (an error body): only the shape of the body tells them apart.
      if (answer.status === 422) {
        const transfer = rejectedTransferSchema.safeParse(answer.body);
        if (transfer.success) return transfer.data;
      }
      throw rejected(answer);
    },
    async lookup(idempotencyKey) {
      const answer = await send('GET', `/v1/transfers/by-key/${seg(idempotencyKey)}`);
      if (answer.status === 200) return decode(transferSchema, answer);
      if (answer.status === 409 && errorCode(answer) === 'request_in_progress') {
        throw new BankUnavailableError(`bank GET /v1/transfers/by-key: a transfer under ${idempotencyKey} is still being processed`, { status: 409 });
      }
      // Only the bank's own "no such transfer" means absent; any other 404 (a wrong base URL)
      // must not be mistaken for "the bank never paid".
      if (answer.status === 404 && errorCode(answer) === 'transfer_not_found') return null;
      throw rejected(answer);
    },
    async listTransfers(reference) {
      const answer = await send('GET', `/v1/transfers?reference=${seg(reference)}`);
      if (answer.status === 200) return decode(listSchema, answer).data;
      throw rejected(answer);
    },
    async listTransfersByStatus(q) {
      const params = new URLSearchParams({ status: q.status });
      if (q.createdBefore) params.set('createdBefore', q.createdBefore.toISOString());
      if (q.createdAfter) params.set('createdAfter', q.createdAfter.toISOString());
      if (q.startingAfter !== undefined) params.set('starting_after', q.startingAfter);
      if (q.limit !== undefined) params.set('limit', String(q.limit));
      const answer = await send('GET', `/v1/transfers?${params.toString()}`);
      if (answer.status === 200) return decode(statementSchema, answer).data;
      throw rejected(answer);
    },
  };
}
