// An in-process card network for workflow tests: same contract as the HTTP client, with knobs to
// lose a response after acting or reject a call, and a record of every operation.
import { randomUUID } from 'node:crypto';
import {
  CardNetworkRejectedError,
  CardNetworkUnavailableError,
  type CardNetworkClient,
  type CardOperation,
} from '../../platform/card-network-client.js';

type Step = 'authorize' | 'capture' | 'void';

export class FakeCardNetwork implements CardNetworkClient {
  readonly operations: CardOperation[] = [];
  /** Steps whose first response is lost after the network acted. */
  loseFirstResponseOf = new Set<Step>();
  /** Steps the network rejects outright. */
  reject = new Set<Step>();
  calls: Record<Step, number> = { authorize: 0, capture: 0, void: 0 };

  private byKey(key: string) {
    return this.operations.find((op) => op.idempotencyKey === key);
  }

  private act(step: Step, key: string, make: () => CardOperation): CardOperation {
    this.calls[step]++;
    if (this.reject.has(step)) throw new CardNetworkRejectedError(`${step} rejected`, { code: `${step}_rejected`, status: 409 });
    const existing = this.byKey(key);
    if (existing) return existing;
    const op = make();
    this.operations.push(op);
    if (this.loseFirstResponseOf.delete(step)) throw new CardNetworkUnavailableError('response lost');
    return op;
  }

  private op(fields: Omit<CardOperation, 'id' | 'createdAt' | 'authorizationId'> & { authorizationId?: string }): CardOperation {
    const id = randomUUID();
    return { id, createdAt: new Date().toISOString(), ...fields, authorizationId: fields.authorizationId ?? id };
  }

  async authorize(req: { idempotencyKey: string; amount: bigint; currency: string; token: string; reference: string }) {
    return this.act('authorize', req.idempotencyKey, () => {
      const declineCode = { tok_chargeDeclined: 'card_declined', tok_insufficientFunds: 'insufficient_funds' }[req.token];
      return this.op({
        idempotencyKey: req.idempotencyKey,
        type: 'authorization',
        status: declineCode ? 'declined' : 'succeeded',
        amount: req.amount.toString(),
        currency: req.currency,
        reference: req.reference,
        ...(declineCode ? { declineCode } : {}),
      });
    });
  }

  private authorization(id: string): CardOperation {
    const auth = this.operations.find((op) => op.type === 'authorization' && op.id === id);
    if (!auth) throw new CardNetworkRejectedError('no such authorization', { code: 'authorization_not_found', status: 404 });
    return auth;
  }

  async capture(req: { idempotencyKey: string; authorizationId: string; amount?: bigint }) {
    return this.act('capture', req.idempotencyKey, () => {
      const auth = this.authorization(req.authorizationId);
      return this.op({ ...auth, type: 'capture', status: 'succeeded', idempotencyKey: req.idempotencyKey, authorizationId: auth.id, amount: (req.amount ?? BigInt(auth.amount)).toString() });
    });
  }

  async void(req: { idempotencyKey: string; authorizationId: string }) {
    return this.act('void', req.idempotencyKey, () => {
      const auth = this.authorization(req.authorizationId);
      return this.op({ ...auth, type: 'void', status: 'succeeded', idempotencyKey: req.idempotencyKey, authorizationId: auth.id });
    });
  }

  async refund(): Promise<CardOperation> {
    throw new Error('not used by these tests');
  }

  async lookup(idempotencyKey: string) {
    return this.byKey(idempotencyKey) ?? null;
  }

  async listOperations(reference: string) {
    return this.operations.filter((op) => op.reference === reference);
  }

  count(reference: string, type: CardOperation['type']) {
    return this.operations.filter((op) => op.reference === reference && op.type === type).length;
  }
}
