// Money in a customer's wallet for a workflow test, put there as a finished top-up leaves it, so
// that the books at the end of the file (test/support/books.ts) find a charge and a top-up for
// every credit.
import { randomUUID } from 'node:crypto';
import { money, topupId, walletPostings } from '../../domain/index.js';
import type { PrismaClient } from '../../platform/db.js';
import { createTransfer } from '../../platform/ledger.js';
import { FakeCardNetwork } from './fake-card-network.js';

export async function fundWallet(prisma: PrismaClient, merchantId: string, customerId: string, amount: bigint, currency = 'JPY'): Promise<void> {
  const key = `seed-${randomUUID()}`;
  const id = topupId(merchantId, key);
  await prisma.topup.create({ data: { id, merchantId, customerId, idempotencyKey: key, amount, currency, status: 'succeeded' } });
  const card = new FakeCardNetwork();
  const auth = await card.authorize({ idempotencyKey: `${id}:authorize`, amount, currency, token: 'tok_visa', reference: id });
  await card.capture({ idempotencyKey: `${id}:capture`, authorizationId: auth.authorizationId });
  await createTransfer(prisma, walletPostings.topupCredit({ id, merchantId, customerId }, money(amount, currency)));
}
