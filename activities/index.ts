import type { Client } from '@temporalio/client';
import type { PrismaClient } from '../platform/db.js';
import type { WebhookRetry } from '../domain/index.js';
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
import { createWebhookActivities } from './webhooks.js';
import type { WebhookDispatch } from './events.js';

export interface ActivityDeps {
  prisma: PrismaClient;
  cardNetwork: CardNetworkClient;
  bank: BankClient;
  /**
   * Starts the webhook deliveries of the events the activities record (on the recording
   * activity's task queue). Without it events are recorded but nobody is told. Reconciliation
   * also asks it whether a payment's workflow is still running; without it reconciliation fails.
   */
  temporal?: Client;
  /** How deliveries are retried; default DEFAULT_WEBHOOK_RETRY (30 s doubling to 1 h). */
  webhookRetry?: WebhookRetry;
}

/** Every activity the payment worker registers, built from its dependencies. */
export function createActivities({ prisma, cardNetwork, bank, temporal, webhookRetry }: ActivityDeps) {
  const dispatch: WebhookDispatch | undefined = temporal ? { temporal, ...(webhookRetry ? { retry: webhookRetry } : {}) } : undefined;
  const inventory = createInventoryActivities(prisma);
  const walletFlows = createWalletFlowActivities(prisma, dispatch);
  return {
    ...inventory,
    ...createOrderActivities(prisma, dispatch),
    ...createLedgerActivities(prisma),
    ...createLedgerUndoActivities(prisma),
    ...walletFlows,
    ...createReconciliationActivities({ prisma, cardNetwork, bank, temporal, releaseStock: inventory.releaseStock, setTopupStatus: walletFlows.setTopupStatus, setPayoutStatus: walletFlows.setPayoutStatus }),
    ...createWebhookActivities(prisma),
    ...createCardNetworkActivities(cardNetwork),
    ...createBankActivities(bank),
  };
}

export type Activities = ReturnType<typeof createActivities>;
