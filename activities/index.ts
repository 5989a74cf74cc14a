import type { PrismaClient } from '../platform/db.js';
import type { CardNetworkClient } from '../platform/card-network-client.js';
import { createCardNetworkActivities } from './card-network.js';
import { createInventoryActivities } from './inventory.js';
import { createOrderActivities } from './orders.js';

export interface ActivityDeps {
  prisma: PrismaClient;
  cardNetwork: CardNetworkClient;
}

/** Every activity the payment worker registers, built from its dependencies. */
export function createActivities({ prisma, cardNetwork }: ActivityDeps) {
  return {
    ...createInventoryActivities(prisma),
    ...createOrderActivities(prisma),
    ...createCardNetworkActivities(cardNetwork),
  };
}

export type Activities = ReturnType<typeof createActivities>;
