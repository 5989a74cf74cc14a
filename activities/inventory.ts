// Stock holds. Each operation is one short transaction of conditional updates: no row lock is held
// while anything else (the card network above all) is called, which is what capped the field
// report's shop at ~400 orders a minute. The stock_reservations row per (checkout, sku) makes every
// operation idempotent, so a retried activity never moves stock twice.
import type { PrismaClient } from '../platform/db.js';
import type { LineItem } from '../domain/index.js';
import { STOCK_RELEASED_CHANNEL, stockReleasedPayload } from '../domain/index.js';

export class SoldOut extends Error {
  constructor(readonly sku: string) {
    super(`sold out: ${sku}`);
  }
}

type Tx = Parameters<Parameters<PrismaClient['$transaction']>[0]>[0];

/**
 * Holds every line's quantity inside the caller's transaction, all or nothing: throws SoldOut
 * (rolling the transaction back) when a line cannot be held. Call it last in the transaction: the
 * conditional update takes the hot product row's lock, held only until the commit that follows.
 */
export async function holdStock(tx: Tx, { checkoutId, merchantId, items }: { checkoutId: string; merchantId: string; items: LineItem[] }): Promise<void> {
  await tx.stockReservation.createMany({
    data: items.map((item) => ({ checkoutId, merchantId, sku: item.sku, quantity: item.quantity, status: 'held' })),
  });
  // Sorted so two checkouts of the same SKUs always take row locks in the same order.
  for (const item of [...items].sort((a, b) => a.sku.localeCompare(b.sku))) {
    const { count } = await tx.product.updateMany({
      where: { merchantId, sku: item.sku, available: { gte: item.quantity } },
      data: { available: { decrement: item.quantity }, reserved: { increment: item.quantity } },
    });
    if (count === 0) throw new SoldOut(item.sku);
  }
}

/** Held stock becomes sold, inside the caller's transaction; idempotent (committed lines are skipped). */
export async function commitStockIn(tx: Tx, checkoutId: string): Promise<void> {
  const held = await tx.stockReservation.findMany({ where: { checkoutId, status: 'held' }, orderBy: { sku: 'asc' } });
  for (const r of held) {
    const { count } = await tx.stockReservation.updateMany({ where: { checkoutId, sku: r.sku, status: 'held' }, data: { status: 'committed' } });
    if (count === 0) continue;
    await tx.product.update({
      where: { merchantId_sku: { merchantId: r.merchantId, sku: r.sku } },
      data: { reserved: { decrement: r.quantity }, sold: { increment: r.quantity } },
    });
  }
}

export function createInventoryActivities(prisma: PrismaClient) {
  return {
    /** Held stock becomes sold: the order is confirmed. */
    async commitStock({ checkoutId }: { checkoutId: string }): Promise<void> {
      await prisma.$transaction((tx) => commitStockIn(tx, checkoutId));
    },

    /**
     * Compensation for placeOrder's hold: returns the checkout's stock to `available`, whether it was
     * still held or already committed. Idempotent, and a no-op when nothing was reserved.
     */
    async releaseStock({ checkoutId }: { checkoutId: string }): Promise<{ released: number }> {
      return prisma.$transaction(async (tx) => {
        const live = await tx.stockReservation.findMany({
          where: { checkoutId, status: { in: ['held', 'committed'] } },
          orderBy: { sku: 'asc' },
        });
        let released = 0;
        for (const r of live) {
          const { count } = await tx.stockReservation.updateMany({
            where: { checkoutId, sku: r.sku, status: r.status },
            data: { status: 'released' },
          });
          if (count === 0) continue;
          const from = r.status === 'held' ? { reserved: { decrement: r.quantity } } : { sold: { decrement: r.quantity } };
          await tx.product.update({
            where: { merchantId_sku: { merchantId: r.merchantId, sku: r.sku } },
            data: { available: { increment: r.quantity }, ...from },
          });
          // Delivered on commit: API processes forget their sold-out mark for the SKU
          // (api/stock-notifications.ts), so the next buyer gets the unit.
          await tx.$executeRaw`SELECT pg_notify(${STOCK_RELEASED_CHANNEL}, ${stockReleasedPayload(r.merchantId, r.sku)})`;
          released += r.quantity;
        }
        return { released };
      });
    },
  };
}

export type InventoryActivities = ReturnType<typeof createInventoryActivities>;
