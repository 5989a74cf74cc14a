// Ledger account ids and transfer vocabulary, shared by workflows, activities and the API.
// Account ids are readable and derived, so any flow can name the accounts it moves money between
// without a lookup; the ledger creates an account the first time a transfer names it.

export type LedgerAccountKind = 'wallet' | 'merchant_pending' | 'merchant_available' | 'card_clearing' | 'bank_clearing';

export const ledgerAccount = {
  /** A customer's stored value at one merchant. Never overdraws. */
  wallet: (merchantId: string, customerId: string, currency: string) => `wallet:${merchantId}:${customerId}:${currency}`,
  /** What a merchant has earned but not yet settled. Hot in a flash sale: sharded. */
  merchantPending: (merchantId: string, currency: string) => `merchant:${merchantId}:pending:${currency}`,
  /** What a merchant has earned and settled. */
  merchantAvailable: (merchantId: string, currency: string) => `merchant:${merchantId}:available:${currency}`,
  /** Money owed to or by the card network: the other side of every card movement. */
  cardClearing: (currency: string) => `platform:card_clearing:${currency}`,
  /** Money sent to or received from banks: the other side of every payout. */
  bankClearing: (currency: string) => `platform:bank_clearing:${currency}`,
};

/** Why money moved; kept on every transfer for history and reconciliation. */
export type TransferCode =
  | 'topup'
  | 'payout'
  | 'checkout_wallet_payment'
  | 'checkout_card_capture'
  | 'settlement'
  | 'checkout_refund';

export type TransferKind = 'posted' | 'pending' | 'post_pending' | 'void_pending';

export interface TransferRequest {
  /** Chosen by the caller (derived from the workflow and step): repeating it never moves money twice. */
  id: string;
  debitAccountId: string;
  creditAccountId: string;
  /** Integer minor units, as a decimal string. */
  amount: string;
  currency: string;
  /** `posted` moves money now; `pending` holds it on both accounts until posted or voided. */
  kind: 'posted' | 'pending';
  code: TransferCode;
  reference?: string;
}

export interface TransferRecord {
  id: string;
  debitAccountId: string;
  creditAccountId: string;
  amount: string;
  currency: string;
  kind: TransferKind;
  pendingId: string | null;
  code: string;
  reference: string | null;
  createdAt: string;
}

/** `exists` is a normal outcome (TigerBeetle's lesson): the retry found its own earlier transfer. */
export interface TransferResult {
  outcome: 'created' | 'exists';
  transfer: TransferRecord;
}
