// An in-process bank for workflow tests, with the simulator's test accounts: 0000000 is closed
// (rejected), 9999999 pays but loses its first response. Records every transfer.
import { randomUUID } from 'node:crypto';
import { BankUnavailableError, type BankClient, type BankTransfer, type BankTransferRequest } from '../../platform/bank-client.js';

export class FakeBank implements BankClient {
  readonly transfers: BankTransfer[] = [];
  private readonly lostOnce = new Set<string>();

  async transfer(req: BankTransferRequest): Promise<BankTransfer> {
    const existing = this.transfers.find((t) => t.idempotencyKey === req.idempotencyKey);
    if (existing) return existing;
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
    return this.transfers.find((t) => t.idempotencyKey === idempotencyKey) ?? null;
  }

  async listTransfers(reference: string): Promise<BankTransfer[]> {
    return this.transfers.filter((t) => t.reference === reference);
  }

  async listTransfersByStatus(q: { status: BankTransfer['status']; createdBefore?: Date; createdAfter?: Date }): Promise<BankTransfer[]> {
    return this.transfers.filter(
      (t) => t.status === q.status && (!q.createdBefore || Date.parse(t.createdAt) < q.createdBefore.getTime()) && (!q.createdAfter || Date.parse(t.createdAt) >= q.createdAfter.getTime()),
    );
  }

  paid(reference: string): number {
    return this.transfers.filter((t) => t.reference === reference && t.status === 'paid').length;
  }
}
