// Rows -> wire shapes. BigInt columns leave as decimal strings (convention 10); nothing here sees a
// float.
import type { Checkout, CheckoutItem, PaymentAttempt, Product } from '../generated/prisma/client.js';
import { money, type CheckoutStatus, type Money } from '../domain/index.js';

export interface ProductResource {
  sku: string;
  name: string;
  price: Money;
  stock: { available: number; reserved: number; sold: number };
  createdAt: string;
}

export function productResource(p: Product): ProductResource {
  return {
    sku: p.sku,
    name: p.name,
    price: money(p.priceAmount, p.currency),
    stock: { available: p.available, reserved: p.reserved, sold: p.sold },
    createdAt: p.createdAt.toISOString(),
  };
}

export interface CheckoutResource {
  id: string;
  status: CheckoutStatus;
  amount: Money;
  items: Array<{ sku: string; quantity: number; unitAmount: Money }>;
  customerId: string;
  createdAt: string;
  failure?: { code: string; message: string };
  paymentAttempts?: Array<{ operation: string; status: string; amount: Money; declineCode: string | null; createdAt: string }>;
}

export type CheckoutRow = Checkout & { items: CheckoutItem[]; paymentAttempts?: PaymentAttempt[] };

export function checkoutResource(c: CheckoutRow): CheckoutResource {
  return {
    id: c.id,
    // The workflow is the only writer of this column and writes only CheckoutStatus values.
    status: c.status as CheckoutStatus,
    amount: money(c.amount, c.currency),
    items: c.items.map((i) => ({ sku: i.sku, quantity: i.quantity, unitAmount: money(i.unitAmount, c.currency) })),
    customerId: c.customerId,
    createdAt: c.createdAt.toISOString(),
    ...(c.failureCode !== null ? { failure: { code: c.failureCode, message: c.failureMessage ?? '' } } : {}),
    ...(c.paymentAttempts
      ? {
          paymentAttempts: c.paymentAttempts.map((a) => ({
            operation: a.operation,
            status: a.status,
            amount: money(a.amount, a.currency),
            declineCode: a.declineCode,
            createdAt: a.createdAt.toISOString(),
          })),
        }
      : {}),
  };
}
