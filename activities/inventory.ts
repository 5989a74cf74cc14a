// Stock holds. Each operation is one short transaction of conditional updates: no row lock is held
// while anything else (the card network above all) is called, which is what capped the field
// report's shop at ~400 orders a minute. The stock_reservations row per (checkout, sku) makes every
// operation idempotent, so a retried activity never moves stock twice.
import type { PrismaClient } from '../platform/db.js';
import type { LineItem } from '../domain/index.js';

export interface ReserveStockInput {
  checkoutId: string;
  merchantId: string;
  items: LineItem[];
}

export type ReserveStockResult = { outcome: 'reserved' } | { outcome: 'sold_out'; sku: string };

class SoldOut extends Error {
  constructor(readonly sku: string) {
    super(`sold out: ${sku}`);
  }
}

export function createInventoryActivities(prisma: PrismaClient) {
  return {
    /**
     * Holds every line's quantity, all or nothing, and moves the checkout to `processing` in the
     * same transaction; when any line cannot be held the checkout becomes `sold_out` and nothing
     * is held.
     */
    async reserveStock({ checkoutId, merchantId, items }: ReserveStockInput): Promise<ReserveStockResult> {
      const existing = await prisma.stockReservation.findMany({ where: { checkoutId } });
      if (existing.length > 0) return { outcome: 'reserved' };
      try {
        await prisma.$transaction(async (tx) => {
          // Sorted so two checkouts of the same SKUs always take row locks in the same order.
          for (const item of [...items].sort((a, b) => a.sku.localeCompare(b.sku))) {
            const { count } = await tx.product.updateMany({
              where: { merchantId, sku: item.sku, available: { gte: item.quantity } },
              data: { available: { decrement: item.quantity }, reserved: { increment: item.quantity } },
            });
            if (count === 0) throw new SoldOut(item.sku);
            await tx.stockReservation.create({
              data: { checkoutId, merchantId, sku: item.sku, quantity: item.quantity, status: 'held' },
            });
          }
          await tx.checkout.update({ where: { id: checkoutId }, data: { status: 'processing' } });
        });
        return { outcome: 'reserved' };
      } catch (err) {
        if (!(err instanceof SoldOut)) throw err;
        await prisma.checkout.update({ where: { id: checkoutId }, data: { status: 'sold_out' } });
        return { outcome: 'sold_out', sku: err.sku };
      }
    },

    /** Held stock becomes sold: the order is confirmed. */
    async commitStock({ checkoutId }: { checkoutId: string }): Promise<void> {
      await prisma.$transaction(async (tx) => {
        const held = await tx.stockReservation.findMany({ where: { checkoutId, status: 'held' }, orderBy: { sku: 'asc' } });
        for (const r of held) {
          const { count } = await tx.stockReservation.updateMany({
            where: { checkoutId, sku: r.sku, status: 'held' },
            data: { status: 'committed' },
          });
          if (count === 0) continue;
          await tx.product.update({
            where: { merchantId_sku: { merchantId: r.merchantId, sku: r.sku } },
            data: { reserved: { decrement: r.quantity }, sold: { increment: r.quantity } },
          });
        }
      });
    },

    /**
     * Compensation for reserveStock: returns the checkout's stock to `available`, whether it was
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
          released += r.quantity;
        }
        return { released };
      });
    },
  };
}

export type InventoryActivities = ReturnType<typeof createInventoryActivities>;
