// The CustomerId search attribute. Search attributes must stay plain to be filterable: Temporal
// indexes them and its Web UI lists them, and they never pass through the payload codec. A customer
// id is the merchant's own and may be an email address or a name, so what is stored is a keyed
// pseudonym of it, `cref_` and 32 hex characters of HMAC-SHA256 over the merchant and the customer
// id, under a key derived from the payload key: equal for every payment of one customer of one
// merchant (so ops can filter on it), and not computable from a guessed id without the key.
//
// A rotated payload key gives new payments a new pseudonym; `npm run customer-filter` prints a
// filter over every configured key, so a customer's payments written under any of them are found.
import { createHmac, hkdfSync } from 'node:crypto';
import type { PayloadKey } from './payload-keys.js';

/** Distinct from every other use of the payload key (HKDF's `info`): a pseudonym never is key material for encryption. */
const DERIVATION = 'payment-orchestrator/customer-search-attribute/v1';

export interface CustomerSearch {
  /** The CustomerId search attribute of a new payment: the pseudonym under the newest key. */
  value(merchantId: string, customerId: string): string;
  /** A Web UI / `temporal workflow list` filter that finds the customer's payments under any configured key. */
  filter(merchantId: string, customerId: string): string;
}

export function createCustomerSearch(keys: readonly PayloadKey[]): CustomerSearch {
  if (keys.length === 0) throw new Error('customer search needs the payload keys');
  const derived = keys.map((k) => Buffer.from(hkdfSync('sha256', k.key, new Uint8Array(), DERIVATION, 32)));
  // Merchant ids contain no newline, so the pair is read back one way only.
  const pseudonym = (key: Buffer, merchantId: string, customerId: string) =>
    `cref_${createHmac('sha256', key).update(`${merchantId}\n${customerId}`).digest('hex').slice(0, 32)}`;
  return {
    value: (merchantId, customerId) => pseudonym(derived[0]!, merchantId, customerId),
    filter: (merchantId, customerId) => {
      const values = [...new Set(derived.map((key) => pseudonym(key, merchantId, customerId)))];
      return `MerchantId = "${merchantId}" AND CustomerId IN (${values.map((v) => `"${v}"`).join(', ')})`;
    },
  };
}
