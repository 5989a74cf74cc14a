// Business ids and every key derived from them. The rules, and why:
//
// - A checkout, top-up or payout id is its workflow id, derived from the merchant and the caller's
//   Idempotency-Key, so a retried request can only ever reach the same execution. It is a prefix
//   and 32 hex characters of SHA-256 over `<kind>\n<merchant>\n<key>`: newline can appear in
//   neither a merchant id nor a key, so two different (merchant, key) pairs never hash the same
//   input, and the id has one length whatever the key's, so every key derived from it fits every
//   system's limit (card network and bank keys, 255 characters; Temporal ids; ledger transfer ids).
//   Ids written before this rule (`checkout-<merchant>-<key>`) stay valid: they are looked up by
//   their rows, never rebuilt.
// - Keys at external systems and ledger transfer ids are `<business id>:<step>[:<sub id>]`.
import { sha256Hex } from './sha256.js';

/** Merchant ids: what the ledger's `:`-separated account ids and the logs can carry safely. */
const MERCHANT_ID = /^[A-Za-z0-9_-]{1,64}$/;

export function isMerchantId(value: string): boolean {
  return MERCHANT_ID.test(value);
}

/** Stripe's limit; any visible ASCII character, as clients use UUIDs, ULIDs and their own schemes. */
export const IDEMPOTENCY_KEY_MAX_LENGTH = 255;
const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,255}$/;

export function isIdempotencyKey(value: string): boolean {
  return IDEMPOTENCY_KEY.test(value);
}

function businessId(prefix: string, kind: string, merchantId: string, idempotencyKey: string): string {
  return `${prefix}_${sha256Hex(`${kind}\n${merchantId}\n${idempotencyKey}`).slice(0, 32)}`;
}

/** The checkout's id and workflow id: `co_` and 32 hex characters. */
export const checkoutId = (merchantId: string, idempotencyKey: string) => businessId('co', 'checkout', merchantId, idempotencyKey);
/** The top-up's id and workflow id: `tu_` and 32 hex characters. */
export const topupId = (merchantId: string, idempotencyKey: string) => businessId('tu', 'topup', merchantId, idempotencyKey);
/** The payout's id and workflow id: `po_` and 32 hex characters. */
export const payoutId = (merchantId: string, idempotencyKey: string) => businessId('po', 'payout', merchantId, idempotencyKey);

/**
 * A refund's id: `re_` and 32 hex characters derived from the checkout and the request's key, so a
 * retried refund request names the same refund and can never refund twice. (The formula predates
 * domain/ids.ts and must not change: a retry after a deploy must find the same refund.)
 */
export function refundId(checkoutId: string, idempotencyKey: string): string {
  return `re_${sha256Hex(`${checkoutId}:${idempotencyKey}`).slice(0, 32)}`;
}

/**
 * The refund an operator's cancellation of a captured checkout makes of what is left. The space in
 * its seed cannot occur in an Idempotency-Key, so no merchant's refund request can name it.
 */
export const cancellationRefundId = (checkoutId: string) => refundId(checkoutId, 'operator cancellation');

export type CardStep = 'authorize' | 'authenticate' | 'capture' | 'void' | 'refund';

/**
 * Idempotency key for one step of one payment at an external system. Refunds, of which a checkout
 * may have several, add the refund id.
 */
export function stepKey(businessId: string, step: CardStep | string, id?: string): string {
  return id === undefined ? `${businessId}:${step}` : `${businessId}:${step}:${id}`;
}
