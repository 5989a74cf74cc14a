// An in-process card network for workflow tests: same contract as the HTTP client, with knobs to
// lose a response after acting or reject a call, and a record of every operation. Like the
// simulator, tok_threeDSecureRequired authorizes with status requires_action until authenticate.
import { randomUUID } from 'node:crypto';
import {
  CardNetworkRejectedError,
  CardNetworkUnavailableError,
  type CardNetworkClient,
  type CardOperation,
} from '../../platform/card-network-client.js';

type Step = 'authorize' | 'authenticate' | 'capture' | 'void' | 'refund';

/** Every fake made in this test file (vitest loads modules per file), so its books can be read at the end. */
export const cardNetworksMade: FakeCardNetwork[] = [];

export class FakeCardNetwork implements CardNetworkClient {
  /**
   * As a real network documents it; the workflow waits this long (its own time) before "nothing" is
   * final. Tests in which a call is held in flight (which holds time still on the time-skipping
   * server) may shorten it.
   */
  constructor(readonly maxProcessingMs = 60_000) {
    cardNetworksMade.push(this);
  }

  readonly operations: CardOperation[] = [];
  /** Steps whose first response is lost after the network acted. */
  loseFirstResponseOf = new Set<Step>();
  /** Steps the network rejects outright. */
  reject = new Set<Step>();
  /**
   * Steps whose call never answers: it hangs until the caller aborts it (a canceled activity), and
   * the network acts on the request only later, at the n-th lookup of its key after the abort (a
   * request still on its way in when the caller gave up). Lookups before that find nothing.
   */
  hang = new Map<Step, number>();
  /** Steps whose calls wait, before the network acts, until the test opens the gate (`holdCalls`). */
  private readonly gates = new Map<Step, Promise<void>>();
  /** Every call that reached the network, per step (replays of a key included). */
  calls: Record<Step, number> = { authorize: 0, authenticate: 0, capture: 0, void: 0, refund: 0 };
  /** Every lookup by key, in order: a test of "resolved by lookup" checks them. */
  readonly lookups: string[] = [];
  private readonly landing = new Map<string, { lookupsLeft: number; make: () => CardOperation }>();

  private byKey(key: string) {
    return this.operations.find((op) => op.idempotencyKey === key);
  }

  /**
   * Makes calls of `step` wait (before the network acts) until the returned function is called: a
   * network slow at the moment a test wants something else to happen.
   */
  holdCalls(step: Step): () => void {
    let open!: () => void;
    this.gates.set(step, new Promise<void>((resolve) => (open = resolve)));
    return () => {
      this.gates.delete(step);
      open();
    };
  }

  /** How many calls of `step` are waiting at its gate. */
  waiting: Record<Step, number> = { authorize: 0, authenticate: 0, capture: 0, void: 0, refund: 0 };

  private async act(step: Step, key: string, make: () => CardOperation, signal?: AbortSignal): Promise<CardOperation> {
    // The simulator's (and Stripe's) limit: a longer key is refused before anything happens.
    if (key.length > 255) throw new CardNetworkRejectedError('idempotency key too long', { code: 'invalid_idempotency_key', status: 400 });
    const gate = this.gates.get(step);
    if (gate) {
      this.waiting[step]++;
      await gate;
      this.waiting[step]--;
    }
    this.calls[step]++;
    const lateBy = this.hang.get(step);
    if (lateBy !== undefined && !this.byKey(key)) {
      this.hang.delete(step);
      return new Promise((_, reject) => {
        const abort = () => {
          this.landing.set(key, { lookupsLeft: lateBy, make });
          reject(new CardNetworkUnavailableError('aborted by the caller'));
        };
        if (signal?.aborted) abort();
        else signal?.addEventListener('abort', abort, { once: true });
      });
    }
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

  async authorize(req: { idempotencyKey: string; amount: bigint; currency: string; token: string; reference: string; signal?: AbortSignal }) {
    if (req.reference.length > 255) throw new CardNetworkRejectedError('reference too long', { code: 'invalid_parameter', status: 400 });
    return this.act('authorize', req.idempotencyKey, () => {
      const declineCode = { tok_chargeDeclined: 'card_declined', tok_insufficientFunds: 'insufficient_funds' }[req.token];
      return this.op({
        idempotencyKey: req.idempotencyKey,
        type: 'authorization',
        status: declineCode ? 'declined' : req.token === 'tok_threeDSecureRequired' ? 'requires_action' : 'succeeded',
        amount: req.amount.toString(),
        currency: req.currency,
        reference: req.reference,
        ...(declineCode ? { declineCode } : {}),
      });
    }, req.signal);
  }

  private authorization(id: string): CardOperation {
    const auth = this.operations.find((op) => op.type === 'authorization' && op.id === id);
    if (!auth) throw new CardNetworkRejectedError('no such authorization', { code: 'authorization_not_found', status: 404 });
    return auth;
  }

  /** An authorization still waiting for 3-D Secure: it asked for it and nothing has answered since. */
  private awaitingAuthentication(auth: CardOperation): boolean {
    return (
      auth.status === 'requires_action' &&
      !this.operations.some((op) => op.authorizationId === auth.id && (op.type === 'authentication' || op.type === 'void'))
    );
  }

  /** 3-D Secure failed: the simulator treats the authorization as declined from then on. */
  private declinedByAuthentication(auth: CardOperation): boolean {
    return this.operations.some((op) => op.authorizationId === auth.id && op.type === 'authentication' && op.status === 'declined');
  }

  private refuseIfDeclinedByAuthentication(auth: CardOperation): void {
    if (this.declinedByAuthentication(auth)) {
      throw new CardNetworkRejectedError('authorization declined', { code: 'authorization_declined', status: 409 });
    }
  }

  async authenticate(req: { idempotencyKey: string; authorizationId: string; result: 'succeeded' | 'failed' }) {
    return this.act('authenticate', req.idempotencyKey, () => {
      const auth = this.authorization(req.authorizationId);
      // The simulator's answers, in its order.
      if (this.operations.some((op) => op.authorizationId === auth.id && op.type === 'void')) {
        throw new CardNetworkRejectedError('authorization voided', { code: 'authorization_voided', status: 409 });
      }
      if (auth.status === 'declined') throw new CardNetworkRejectedError('authorization declined', { code: 'authorization_declined', status: 409 });
      this.refuseIfDeclinedByAuthentication(auth);
      if (!this.awaitingAuthentication(auth)) {
        throw new CardNetworkRejectedError('authentication not required', { code: 'authentication_not_required', status: 409 });
      }
      const failed = req.result === 'failed';
      return this.op({
        ...auth,
        type: 'authentication',
        status: failed ? 'declined' : 'succeeded',
        idempotencyKey: req.idempotencyKey,
        authorizationId: auth.id,
        ...(failed ? { declineCode: 'authentication_failed' } : {}),
      });
    });
  }

  async capture(req: { idempotencyKey: string; authorizationId: string; amount?: bigint; signal?: AbortSignal }) {
    return this.act('capture', req.idempotencyKey, () => {
      const auth = this.authorization(req.authorizationId);
      this.refuseIfDeclinedByAuthentication(auth);
      if (this.awaitingAuthentication(auth)) {
        throw new CardNetworkRejectedError('authorization requires action', { code: 'authorization_requires_action', status: 409 });
      }
      return this.op({ ...auth, type: 'capture', status: 'succeeded', idempotencyKey: req.idempotencyKey, authorizationId: auth.id, amount: (req.amount ?? BigInt(auth.amount)).toString() });
    }, req.signal);
  }

  async void(req: { idempotencyKey: string; authorizationId: string }) {
    return this.act('void', req.idempotencyKey, () => {
      const auth = this.authorization(req.authorizationId);
      this.refuseIfDeclinedByAuthentication(auth);
      return this.op({ ...auth, type: 'void', status: 'succeeded', idempotencyKey: req.idempotencyKey, authorizationId: auth.id });
    });
  }

  /** As the simulator: only captured money, in parts, never more than was captured. */
  async refund(req: { idempotencyKey: string; authorizationId: string; amount: bigint }) {
    return this.act('refund', req.idempotencyKey, () => {
      const auth = this.authorization(req.authorizationId);
      const sum = (type: CardOperation['type']) =>
        this.operations.filter((op) => op.authorizationId === auth.id && op.type === type).reduce((total, op) => total + BigInt(op.amount), 0n);
      const captured = sum('capture');
      if (captured === 0n) throw new CardNetworkRejectedError('not captured', { code: 'not_captured', status: 409 });
      if (req.amount > captured - sum('refund')) {
        throw new CardNetworkRejectedError('refund exceeds captured', { code: 'refund_exceeds_captured', status: 409 });
      }
      return this.op({ ...auth, type: 'refund', status: 'succeeded', idempotencyKey: req.idempotencyKey, authorizationId: auth.id, amount: req.amount.toString() });
    });
  }

  async lookup(idempotencyKey: string) {
    this.lookups.push(idempotencyKey);
    const late = this.landing.get(idempotencyKey);
    if (late && late.lookupsLeft-- <= 0) {
      this.landing.delete(idempotencyKey);
      this.operations.push(late.make());
    }
    return this.byKey(idempotencyKey) ?? null;
  }

  async listOperations(reference: string) {
    return this.operations.filter((op) => op.reference === reference);
  }

  // Reconciliation's report of authorizations is tested against the real simulator (test/reconciliation.test.ts).
  async listAuthorizations(): Promise<never> {
    throw new Error('FakeCardNetwork does not list authorizations; use the card-network simulator');
  }

  count(reference: string, type: CardOperation['type']) {
    return this.operations.filter((op) => op.reference === reference && op.type === type).length;
  }
}
