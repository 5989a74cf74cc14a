// Typed HTTP client for the card network. It only translates HTTP into three outcomes: an
// operation (approved or declined), "unavailable" (the outcome is unknown: retry with the same key
// or look it up by key) and "rejected" (the request itself is wrong: retrying cannot help). What
// to do about each is the workflow's business. It never retries: Temporal's activity retries do.
import { z } from 'zod';
import { createJsonClient, DEFAULT_MAX_PROCESSING_MS, errorCode, SystemRejectedError, SystemUnavailableError } from './http-json-client.js';

// The network's wire types: each schema is the one declaration, its type is inferred from it.
const operationSchema = z.object({
  id: z.string(),
  idempotencyKey: z.string(),
  /** `authentication`: the outcome of 3-D Secure on an authorization that required it. */
  type: z.enum(['authorization', 'authentication', 'capture', 'void', 'refund']),
  /**
   * `requires_action` (authorizations only): the issuer wants 3-D Secure; nothing is held until
   * `authenticate` succeeds. Capture is refused meanwhile; void is allowed (the customer gave up).
   */
  status: z.enum(['succeeded', 'declined', 'requires_action']),
  authorizationId: z.string(),
  /** Integer minor units as a decimal string. */
  amount: z.string(),
  currency: z.string(),
  reference: z.string(),
  declineCode: z.string().optional(),
  createdAt: z.string(),
});
export type CardOperation = z.infer<typeof operationSchema>;

const authorizationSchema = z.object({
  id: z.string(),
  state: z.enum(['requires_action', 'authorized', 'captured', 'voided', 'declined']),
  /** Integer minor units as decimal strings. */
  amount: z.string(),
  capturedAmount: z.string(),
  refundedAmount: z.string(),
  currency: z.string(),
  reference: z.string(),
  createdAt: z.string(),
});
export type CardAuthorization = z.infer<typeof authorizationSchema>;

/** 5xx, connection failure or timeout: the network may or may not have acted. */
export class CardNetworkUnavailableError extends SystemUnavailableError {
  override readonly name = 'CardNetworkUnavailableError';
}

/** A 4xx other than a decline, e.g. `already_captured`, `refund_exceeds_captured`: the network did not act. */
export class CardNetworkRejectedError extends SystemRejectedError {
  override readonly name = 'CardNetworkRejectedError';
}

/** Every request that acts may be aborted by the caller (an activity being canceled): its outcome is then unknown. */
export interface Abortable {
  signal?: AbortSignal;
}

export interface CardNetworkClient {
  /**
   * The longest the network takes to act on a request it received. A lookup that finds nothing
   * under a key this long after the last request with it ended is final: nothing will happen.
   */
  readonly maxProcessingMs: number;
  /**
   * Declines resolve with status 'declined' and a declineCode; they are answers, not failures.
   * A card that needs 3-D Secure resolves with status 'requires_action'.
   */
  authorize(req: { idempotencyKey: string; amount: bigint; currency: string; token: string; reference: string } & Abortable): Promise<CardOperation>;
  /**
   * Reports the customer's 3-D Secure result for a `requires_action` authorization: an
   * `authentication` operation, `succeeded` (the money is now held) or `declined` with
   * declineCode `authentication_failed`. Any other state is rejected (409).
   */
  authenticate(req: { idempotencyKey: string; authorizationId: string; result: 'succeeded' | 'failed' } & Abortable): Promise<CardOperation>;
  /** Captures the full authorized amount when `amount` is omitted. */
  capture(req: { idempotencyKey: string; authorizationId: string; amount?: bigint } & Abortable): Promise<CardOperation>;
  void(req: { idempotencyKey: string; authorizationId: string } & Abortable): Promise<CardOperation>;
  refund(req: { idempotencyKey: string; authorizationId: string; amount: bigint } & Abortable): Promise<CardOperation>;
  /**
   * The operation performed under a key, or null when none was (a request that failed or never
   * arrived). While a request under the key is still being processed the outcome is unknown:
   * CardNetworkUnavailableError, as for any answer that leaves it unknown.
   */
  lookup(idempotencyKey: string): Promise<CardOperation | null>;
  /** Every operation for a reference (checkout id), oldest first. */
  listOperations(reference: string): Promise<CardOperation[]>;
  /**
   * One page of the network's report: authorizations in one state created in [createdAfter,
   * createdBefore), oldest first, at most `limit` (1 to 1000, default 1000) after the authorization
   * `startingAfter` (the last of the previous page). A page shorter than `limit` is the last; pass
   * the same createdBefore on every page so the report stays the same while it is read.
   */
  listAuthorizations(q: {
    state: CardAuthorization['state'];
    createdBefore?: Date;
    createdAfter?: Date;
    startingAfter?: string;
    limit?: number;
  }): Promise<CardAuthorization[]>;
}


const listSchema = z.object({ data: z.array(operationSchema) });
const authorizationListSchema = z.object({ data: z.array(authorizationSchema), hasMore: z.boolean() });

export function createCardNetworkClient(opts: { baseUrl: string; timeoutMs?: number; maxProcessingMs?: number }): CardNetworkClient {
  const { send, rejected, decode } = createJsonClient({
    baseUrl: opts.baseUrl,
    timeoutMs: opts.timeoutMs,
    system: 'card network',
    unavailable: (message, o) => new CardNetworkUnavailableError(message, o),
    rejected: (message, o) => new CardNetworkRejectedError(message, o),
  });

  /** 2xx carries the operation; 402 carries a declined one. */
  async function operation(method: 'POST', path: string, idempotencyKey: string, body: object, signal: AbortSignal | undefined): Promise<CardOperation> {
    const answer = await send(method, path, idempotencyKey, body, signal);
    if ((answer.status >= 200 && answer.status < 300) || answer.status === 402) return decode(operationSchema, answer);
    throw rejected(answer);
  }

  const seg = encodeURIComponent;
  return {
    maxProcessingMs: opts.maxProcessingMs ?? DEFAULT_MAX_PROCESSING_MS,
    authorize: (r) =>
      operation(
        'POST',
        '/v1/authorizations',
        r.idempotencyKey,
        { amount: r.amount.toString(), currency: r.currency, token: r.token, reference: r.reference },
        r.signal,
      ),
    authenticate: (r) => operation('POST', `/v1/authorizations/${seg(r.authorizationId)}/authenticate`, r.idempotencyKey, { result: r.result }, r.signal),
    capture: (r) =>
      operation(
        'POST',
        `/v1/authorizations/${seg(r.authorizationId)}/capture`,
        r.idempotencyKey,
        r.amount === undefined ? {} : { amount: r.amount.toString() },
        r.signal,
      ),
    void: (r) => operation('POST', `/v1/authorizations/${seg(r.authorizationId)}/void`, r.idempotencyKey, {}, r.signal),
    refund: (r) =>
      operation('POST', '/v1/refunds', r.idempotencyKey, { authorizationId: r.authorizationId, amount: r.amount.toString() }, r.signal),
    async lookup(idempotencyKey) {
      const answer = await send('GET', `/v1/operations/by-key/${seg(idempotencyKey)}`);
      if (answer.status === 200) return decode(operationSchema, answer);
      if (answer.status === 409 && errorCode(answer) === 'request_in_progress') {
        throw new CardNetworkUnavailableError(`card network GET /v1/operations/by-key: a request under ${idempotencyKey} is still being processed`, { status: 409 });
      }
      // Only the network's own "no such operation" means absent; any other 404 (a wrong base URL)
      // must not be mistaken for "the network never acted".
      if (answer.status === 404 && errorCode(answer) === 'operation_not_found') return null;
      throw rejected(answer);
    },
    async listOperations(reference) {
      const answer = await send('GET', `/v1/operations?reference=${seg(reference)}`);
      if (answer.status === 200) return decode(listSchema, answer).data;
      throw rejected(answer);
    },
    async listAuthorizations(q) {
      const params = new URLSearchParams({ state: q.state });
      if (q.createdBefore) params.set('createdBefore', q.createdBefore.toISOString());
      if (q.createdAfter) params.set('createdAfter', q.createdAfter.toISOString());
      if (q.startingAfter !== undefined) params.set('starting_after', q.startingAfter);
      if (q.limit !== undefined) params.set('limit', String(q.limit));
      const answer = await send('GET', `/v1/authorizations?${params.toString()}`);
      if (answer.status === 200) return decode(authorizationListSchema, answer).data;
      throw rejected(answer);
    },
  };
}
