// Calls to the card network, each under the idempotency key the workflow derived for its step
// (activities/keyed-call.ts): an activity retry can never authorize or capture twice.
import { ApplicationFailure } from '@temporalio/activity';
import {
  CardNetworkRejectedError,
  CardNetworkUnavailableError,
  type CardNetworkClient,
  type CardOperation,
} from '../platform/card-network-client.js';
import { FailureType } from '../domain/index.js';
import { callUnderKey, keyedSystem, lookUpKey } from './keyed-call.js';

export interface CardOutcome {
  status: CardOperation['status'];
  /** The network's id of the operation (for an authorization: the authorization id). */
  networkId: string;
  authorizationId: string;
  amount: string;
  currency: string;
  declineCode?: string;
}

function outcomeOf(op: CardOperation): CardOutcome {
  return {
    status: op.status,
    networkId: op.id,
    authorizationId: op.authorizationId,
    amount: op.amount,
    currency: op.currency,
    ...(op.declineCode ? { declineCode: op.declineCode } : {}),
  };
}

/**
 * Where a request under a key stands at the network: what it did, or nothing yet. `inProgress`: a
 * request under the key is being processed right now, so look again shortly. Otherwise nothing
 * found is final once `maxProcessingMs` have passed since the last request under the key ended
 * (the workflow keeps that time, on its own clock).
 */
export interface CardLookup {
  operation: CardOutcome | null;
  inProgress: boolean;
  maxProcessingMs: number;
}

export function createCardNetworkActivities(client: CardNetworkClient) {
  const network = keyedSystem<CardOperation>({
    name: 'card network',
    call: 'card network call',
    client,
    Unavailable: CardNetworkUnavailableError,
    Rejected: CardNetworkRejectedError,
    rejectedType: FailureType.CardNetworkRejected,
  });
  const settle = async (idempotencyKey: string, call: (signal: AbortSignal) => Promise<CardOperation>): Promise<CardOutcome> =>
    outcomeOf(await callUnderKey(network, idempotencyKey, call));

  return {
    async authorizePayment(req: {
      idempotencyKey: string;
      amount: string;
      currency: string;
      token: string;
      reference: string;
    }): Promise<CardOutcome> {
      return settle(req.idempotencyKey, (signal) => client.authorize({ ...req, amount: BigInt(req.amount), signal }));
    },

    /** Completes a 3-D Secure authorization with the customer's outcome. */
    async authenticatePayment(req: { idempotencyKey: string; authorizationId: string; result: 'succeeded' | 'failed' }): Promise<CardOutcome> {
      return settle(req.idempotencyKey, (signal) => client.authenticate({ ...req, signal }));
    },

    async capturePayment(req: { idempotencyKey: string; authorizationId: string; amount: string }): Promise<CardOutcome> {
      return settle(req.idempotencyKey, (signal) =>
        client.capture({ idempotencyKey: req.idempotencyKey, authorizationId: req.authorizationId, amount: BigInt(req.amount), signal }),
      );
    },

    async refundPayment(req: { idempotencyKey: string; authorizationId: string; amount: string }): Promise<CardOutcome> {
      return settle(req.idempotencyKey, (signal) =>
        client.refund({ idempotencyKey: req.idempotencyKey, authorizationId: req.authorizationId, amount: BigInt(req.amount), signal }),
      );
    },

    /**
     * What the network did under a key, for an undo that must know before it acts (an authorization
     * or capture whose call was canceled or never answered). A network that cannot be asked right
     * now fails the activity (retried); a request still being processed is `inProgress`.
     */
    async lookUpCardOperation({ idempotencyKey }: { idempotencyKey: string }): Promise<CardLookup> {
      const { found, inProgress, maxProcessingMs } = await lookUpKey(network, idempotencyKey);
      return { operation: found ? outcomeOf(found) : null, inProgress, maxProcessingMs };
    },

    /**
     * Releases the funds an authorization holds (the undo of authorizing). An authorization that
     * holds nothing any more counts as released: declined (also by a failed 3-D Secure), or
     * captured, whose own undo (a refund) gives the money back.
     */
    async voidAuthorizationById(req: { idempotencyKey: string; authorizationId: string }): Promise<'voided' | 'nothing_held'> {
      try {
        await settle(req.idempotencyKey, (signal) => client.void({ ...req, signal }));
        return 'voided';
      } catch (err) {
        const code = rejectionCode(err);
        if (code === 'authorization_declined' || code === 'already_captured') return 'nothing_held';
        throw err;
      }
    },

    // The two undos below serve the checkout and top-up workflows of before domain/ids.ts
    // (workflows/legacy/): their runs call them until they drain. New flows resolve the key first
    // (lookUpCardOperation, in workflows/card-undo.ts) and then act by id.

    /**
     * Compensation for authorizePayment. It is registered before the authorization is attempted,
     * so it finds the authorization by the authorize step's key: a lost response still gets voided,
     * and when the network never authorized anything there is nothing to do.
     */
    async voidAuthorization(req: { idempotencyKey: string; authorizeKey: string }): Promise<CardOutcome | null> {
      const auth = await client.lookup(req.authorizeKey);
      if (!auth || auth.status === 'declined') return null;
      try {
        return await settle(req.idempotencyKey, () => client.void({ idempotencyKey: req.idempotencyKey, authorizationId: auth.id }));
      } catch (err) {
        // Declined during 3-D Secure: nothing is held. Already captured: the capture's own undo
        // (refundCapture, registered before every capture) gives the money back. Any other
        // rejection is a real problem and stays a failure, visibly.
        const code = rejectionCode(err);
        if (code === 'authorization_declined' || code === 'already_captured') return null;
        throw err;
      }
    },

    /**
     * Compensation for capturePayment, registered before the capture is attempted: finds the
     * capture by its key and refunds it; when the network never captured, there is nothing to do.
     */
    async refundCapture(req: { idempotencyKey: string; captureKey: string }): Promise<CardOutcome | null> {
      const capture = await client.lookup(req.captureKey);
      if (!capture || capture.status !== 'succeeded') return null;
      return settle(req.idempotencyKey, () =>
        client.refund({ idempotencyKey: req.idempotencyKey, authorizationId: capture.authorizationId, amount: BigInt(capture.amount) }),
      );
    },
  };
}

function rejectionCode(err: unknown): string | undefined {
  if (!(err instanceof ApplicationFailure) || err.type !== FailureType.CardNetworkRejected) return undefined;
  return (err.details?.[0] as { code?: string } | undefined)?.code;
}

export type CardNetworkActivities = ReturnType<typeof createCardNetworkActivities>;
