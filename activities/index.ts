import type { PrismaClient } from '../platform/db.js';
import type { BankClient } from '../platform/bank-client.js';
import type { CardNetworkClient } from '../platform/card-network-client.js';
import { createBankActivities } from './bank.js';
import { createCardNetworkActivities } from './card-network.js';
import { createInventoryActivities } from './inventory.js';
import { createLedgerActivities } from './ledger.js';
import { createLedgerUndoActivities } from './ledger-undo.js';
import { createOrderActivities } from './orders.js';
import { createWalletFlowActivities } from './wallet-flows.js';

export interface ActivityDeps {
  prisma: PrismaClient;
  cardNetwork: CardNetworkClient;
  bank: BankClient;
}

/** Every activity the payment worker registers, built from its dependencies. */
export function createActivities({ prisma, cardNetwork, bank }: ActivityDeps) {
  return {
    ...createInventoryActivities(prisma),
    ...createOrderActivities(prisma),
    ...createLedgerActivities(prisma),
    ...createLedgerUndoActivities(prisma),
    ...createWalletFlowActivities(prisma),
    ...createCardNetworkActivities(cardNetwork),
    ...createBankActivities(bank),
  };
}

export type Activities = ReturnType<typeof createActivities>;
