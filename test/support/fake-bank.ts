// An in-process bank for workflow tests, with the simulator's test accounts: 0000000 is closed
// (rejected), 9999999 pays but loses its first response. Records every transfer.
import { randomUUID } from 'node:crypto';
import { BankRejectedError, BankUnavailableError, type BankClient, type BankTransfer, type BankTransferRequest } from '../../platform/bank-client.js';

/** Every fake made in this test file, so its books can be read at the end (see FakeCardNetwork). */
export const banksMade: FakeBank[] = [];

export class FakeBank implements BankClient {
  /** As a real bank documents it; the workflow waits this long (its own time) before "nothing" is final (see FakeCardNetwork). */
  constructor(readonly maxProcessingMs = 60_000) {
    banksMade.push(this);
  }

  readonly transfers: BankTransfer[] = [];
  private readonly lostOnce = new Set<string>();
  /**
   * When set, the next transfer call never answers: it hangs until the caller aborts it, and the
   * bank makes the transfer only at the n-th lookup of its key after the abort (null: never).
   */
  hangNext: { paysAtLookup: number | null } | undefined;
  /** Every transfer call that reached the bank, and every lookup by key, in order. */
  calls = 0;
  readonly lookups: string[] = [];
  private readonly landing = new Map<string, { lookupsLeft: number; make: () => BankTransfer }>();

  async transfer(req: BankTransferRequest): Promise<BankTransfer> {
    this.calls++;
    // The simulator's limits: a longer key or reference is refused before anything happens.
    if (req.idempotencyKey.length > 255 || req.reference.length > 255) throw new BankRejectedError('key or reference too long', { code: 'invalid_parameter', status: 400 });
    const existing = this.transfers.find((t) => t.idempotencyKey === req.idempotencyKey);
    if (existing) return existing;
    const hang = this.hangNext;
    if (hang) {
      this.hangNext = undefined;
      return new Promise((_, reject) => {
        const abort = () => {
          if (hang.paysAtLookup !== null) this.landing.set(req.idempotencyKey, { lookupsLeft: hang.paysAtLookup, make: () => this.paidTransfer(req) });
          reject(new BankUnavailableError('aborted by the caller'));
        };
        if (req.signal?.aborted) abort();
        else req.signal?.addEventListener('abort', abort, { once: true });
      });
    }
    const closed = req.accountNumber === '0000000';
    const transfer: BankTransfer = {
      id: `tr_${randomUUID()}`,
      idempotencyKey: req.idempotencyKey,
      status: closed ? 'rejected' : 'paid',
      amount: req.amount.toString(),
      currency: req.currency,
      bankCode: req.bankCode,
      accountNumber: req.accountNumber,
      reference: req.reference,
      ...(closed ? { failureCode: 'account_closed' } : {}),
      createdAt: new Date().toISOString(),
    };
    this.transfers.push(transfer);
    if (req.accountNumber === '9999999' && !this.lostOnce.has(req.idempotencyKey)) {
      this.lostOnce.add(req.idempotencyKey);
      throw new BankUnavailableError('response lost');
    }
    return transfer;
  }

  async lookup(idempotencyKey: string): Promise<BankTransfer | null> {
    this.lookups.push(idempotencyKey);
    const late = this.landing.get(idempotencyKey);
    if (late && late.lookupsLeft-- <= 0) {
      this.landing.delete(idempotencyKey);
      this.transfers.push(late.make());
    }
    return this.transfers.find((t) => t.idempotencyKey === idempotencyKey) ?? null;
  }

  private paidTransfer(req: BankTransferRequest): BankTransfer {
    return {
      id: `tr_${randomUUID()}`,
      idempotencyKey: req.idempotencyKey,
      status: 'paid',
      amount: req.amount.toString(),
      currency: req.currency,
      bankCode: req.bankCode,
      accountNumber: req.accountNumber,
      reference: req.reference,
      createdAt: new Date().toISOString(),
    };
  }

  async listTransfers(reference: string): Promise<BankTransfer[]> {
    return this.transfers.filter((t) => t.reference === reference);
  }

  /** As the bank's statement: oldest first, `limit` (default 1000) after the transfer `startingAfter`. */
  async listTransfersByStatus(q: { status: BankTransfer['status']; createdBefore?: Date; createdAfter?: Date; startingAfter?: string; limit?: number }): Promise<BankTransfer[]> {
    const matching = this.transfers.filter(
      (t) => t.status === q.status && (!q.createdBefore || Date.parse(t.createdAt) < q.createdBefore.getTime()) && (!q.createdAfter || Date.parse(t.createdAt) >= q.createdAfter.getTime()),
    );
    const after = q.startingAfter === undefined ? -1 : matching.findIndex((t) => t.id === q.startingAfter);
    if (q.startingAfter !== undefined && after < 0) throw new BankRejectedError('starting_after: no such transfer', { code: 'invalid_parameter', status: 400 });
    return matching.slice(after + 1, after + 1 + (q.limit ?? 1000));
  }

  paid(reference: string): number {
    return this.transfers.filter((t) => t.reference === reference && t.status === 'paid').length;
  }
}
