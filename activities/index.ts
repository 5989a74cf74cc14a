import type { Client } from '@temporalio/client';
import type { PrismaClient } from '../platform/db.js';
import type { BankClient } from '../platform/bank-client.js';
import type { CardNetworkClient } from '../platform/card-network-client.js';
import { createBankActivities } from './bank.js';
import { createCardNetworkActivities } from './card-network.js';
import { createInventoryActivities } from './inventory.js';
import { createLedgerActivities } from './ledger.js';
import { createLedgerUndoActivities } from './ledger-undo.js';
import { createOrderActivities } from './orders.js';
import { createReconciliationActivities } from './reconciliation.js';
import { createWalletFlowActivities } from './wallet-flows.js';
import { createWebhookActivities, type WebhookActivityOptions } from './webhooks.js';

export interface ActivityDeps {
  prisma: PrismaClient;
  cardNetwork: CardNetworkClient;
  bank: BankClient;
  /**
   * Reconciliation asks it whether a payment's workflow is still running; without it
   * reconciliation fails. (Webhook deliveries start from the event outbox, not from activities:
   * platform/webhook-deliveries.ts.)
   */
  temporal?: Client;
  /** How deliveries reach endpoints: WEBHOOK_ALLOW_PRIVATE_HOSTS (default off), DNS and timeout for tests. */
  webhooks?: WebhookActivityOptions;
}

/** Every activity the payment worker registers, built from its dependencies. */
export function createActivities({ prisma, cardNetwork, bank, temporal, webhooks }: ActivityDeps) {
  const inventory = createInventoryActivities(prisma);
  const walletFlows = createWalletFlowActivities(prisma);
  const orders = createOrderActivities(prisma);
  return {
    ...inventory,
    ...orders,
    ...createLedgerActivities(prisma),
    ...createLedgerUndoActivities(prisma),
    ...walletFlows,
    ...createReconciliationActivities({ prisma, cardNetwork, bank, temporal, releaseStock: inventory.releaseStock, setTopupStatus: walletFlows.setTopupStatus, setPayoutStatus: walletFlows.setPayoutStatus, setCheckoutStatus: orders.setCheckoutStatus }),
    ...createWebhookActivities(prisma, webhooks),
    ...createCardNetworkActivities(cardNetwork),
    ...createBankActivities(bank),
  };
}

export type Activities = ReturnType<typeof createActivities>;
