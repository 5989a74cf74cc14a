// Calls to the card network. Every call carries the idempotency key the workflow derived for the
// step, so an activity retry can never authorize or capture twice. When a call may have acted
// without telling us (a timeout, a lost response), the activity asks the network what happened
// under that key before the next attempt, rather than guessing.
import { ApplicationFailure, Context } from '@temporalio/activity';
import {
  CardNetworkRejectedError,
  CardNetworkUnavailableError,
  type CardNetworkClient,
  type CardOperation,
} from '../platform/card-network-client.js';
import { FailureType } from '../domain/index.js';

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

export function createCardNetworkActivities(client: CardNetworkClient) {
  /**
   * Runs a card-network call; when its outcome is unknown, looks the key up: if the network acted,
   * that is the answer; if not, the activity fails and Temporal retries with the same key.
   */
  async function settle(idempotencyKey: string, call: () => Promise<CardOperation>): Promise<CardOutcome> {
    // Heartbeats while the network thinks (seconds, in a flash sale), so a worker that dies
    // mid-call is noticed within the heartbeat timeout, not the whole start-to-close timeout.
    const beat = setInterval(() => Context.current().heartbeat(), 1_000);
    try {
      return outcomeOf(await call());
    } catch (err) {
      if (err instanceof CardNetworkRejectedError) throw rejected(err);
      if (err instanceof CardNetworkUnavailableError) {
        const known = await client.lookup(idempotencyKey).catch(() => null);
        if (known) return outcomeOf(known);
      }
      throw err;
    } finally {
      clearInterval(beat);
    }
  }

  return {
    async authorizePayment(req: {
      idempotencyKey: string;
      amount: string;
      currency: string;
      token: string;
      reference: string;
    }): Promise<CardOutcome> {
      return settle(req.idempotencyKey, () => client.authorize({ ...req, amount: BigInt(req.amount) }));
    },

    /** Completes a 3-D Secure authorization with the customer's outcome. */
    async authenticatePayment(req: { idempotencyKey: string; authorizationId: string; result: 'succeeded' | 'failed' }): Promise<CardOutcome> {
      return settle(req.idempotencyKey, () => client.authenticate(req));
    },

    async capturePayment(req: { idempotencyKey: string; authorizationId: string; amount: string }): Promise<CardOutcome> {
      return settle(req.idempotencyKey, () =>
        client.capture({ idempotencyKey: req.idempotencyKey, authorizationId: req.authorizationId, amount: BigInt(req.amount) }),
      );
    },

    async refundPayment(req: { idempotencyKey: string; authorizationId: string; amount: string }): Promise<CardOutcome> {
      return settle(req.idempotencyKey, () =>
        client.refund({ idempotencyKey: req.idempotencyKey, authorizationId: req.authorizationId, amount: BigInt(req.amount) }),
      );
    },

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

function rejected(err: CardNetworkRejectedError): ApplicationFailure {
  return ApplicationFailure.create({
    type: FailureType.CardNetworkRejected,
    message: `card network rejected the request: ${err.code}`,
    nonRetryable: true,
    details: [{ code: err.code, status: err.status }],
  });
}

function rejectionCode(err: unknown): string | undefined {
  if (!(err instanceof ApplicationFailure) || err.type !== FailureType.CardNetworkRejected) return undefined;
  return (err.details?.[0] as { code?: string } | undefined)?.code;
}

export type CardNetworkActivities = ReturnType<typeof createCardNetworkActivities>;
