// Which accounts each movement of money goes between, and under which transfer id: business rules,
// shared by the workflows (which post them), reconciliation and the tests (which check them). Ids
// are derived from the business id and the step, so a retried posting finds its first one.
import { ledgerAccount, type TransferRequest } from './ledger.js';
import type { Money } from './money.js';

/** The ledger's view of a checkout: who pays whom, and how. */
export interface CheckoutParties {
  checkoutId: string;
  merchantId: string;
  customerId: string;
  paymentMethod: 'card' | 'wallet';
}

/** The second half of a two-phase transfer: the hold it posts or voids. */
export interface Resolution {
  id: string;
  pendingId: string;
}

const wallet = (c: CheckoutParties, currency: string) => ledgerAccount.wallet(c.merchantId, c.customerId, currency);
const pending = (c: CheckoutParties, currency: string) => ledgerAccount.merchantPending(c.merchantId, currency);
const available = (c: CheckoutParties, currency: string) => ledgerAccount.merchantAvailable(c.merchantId, currency);

function posted(id: string, debitAccountId: string, creditAccountId: string, amount: Money, code: TransferRequest['code'], reference: string): TransferRequest {
  return { id, debitAccountId, creditAccountId, amount: amount.amount, currency: amount.currency, kind: 'posted', code, reference };
}

export const checkoutPostings = {
  /** A wallet payment is held at authorization: wallet -> the merchant's pending balance. */
  walletHold: (c: CheckoutParties, amount: Money): TransferRequest => ({
    ...posted(`${c.checkoutId}:wallet-hold`, wallet(c, amount.currency), pending(c, amount.currency), amount, 'checkout_wallet_payment', c.checkoutId),
    kind: 'pending',
  }),
  /** Capture of a wallet payment posts (part of) the hold; voiding it is the undo of the hold. */
  walletCapture: (c: CheckoutParties): Resolution => ({ id: `${c.checkoutId}:wallet-capture`, pendingId: `${c.checkoutId}:wallet-hold` }),
  walletVoid: (c: CheckoutParties): Resolution => ({ id: `${c.checkoutId}:wallet-void`, pendingId: `${c.checkoutId}:wallet-hold` }),
  /** The card network owes the merchant what it captured: card clearing -> the merchant's pending balance. */
  cardCapture: (c: CheckoutParties, amount: Money): TransferRequest =>
    posted(`${c.checkoutId}:merchant-credit`, ledgerAccount.cardClearing(amount.currency), pending(c, amount.currency), amount, 'checkout_card_capture', c.checkoutId),
  /** What is still the merchant's at the settlement time moves from pending to available. */
  settlement: (c: CheckoutParties, amount: Money): TransferRequest =>
    posted(`${c.checkoutId}:settlement`, pending(c, amount.currency), available(c, amount.currency), amount, 'settlement', c.checkoutId),
  /**
   * A refund goes back where the money came from (the card network or the wallet), out of the
   * merchant's pending balance before settlement and the available one after it.
   */
  refund: (c: CheckoutParties, refundId: string, amount: Money, settled: boolean): TransferRequest =>
    posted(
      `${c.checkoutId}:ledger-refund:${refundId}`,
      settled ? available(c, amount.currency) : pending(c, amount.currency),
      c.paymentMethod === 'card' ? ledgerAccount.cardClearing(amount.currency) : wallet(c, amount.currency),
      amount,
      'checkout_refund',
      c.checkoutId,
    ),
  /** Undo of a card capture's credit (the capture itself is refunded at the network). */
  cardCaptureReversal: (c: CheckoutParties) => ({ id: `${c.checkoutId}:merchant-credit-reversal`, transferId: `${c.checkoutId}:merchant-credit`, code: 'checkout_refund' as const }),
  /** Undo of a wallet capture: the posted amount goes back to the wallet. */
  walletCaptureReversal: (c: CheckoutParties) => ({ id: `${c.checkoutId}:wallet-reversal`, transferId: `${c.checkoutId}:wallet-capture`, code: 'checkout_refund' as const }),
};

/** The ledger's view of a top-up or a payout. */
export interface WalletFlowParties {
  id: string;
  merchantId: string;
  customerId: string;
}

export const walletPostings = {
  /** A top-up's card money reaches the wallet: card clearing -> wallet. */
  topupCredit: (t: WalletFlowParties, amount: Money): TransferRequest =>
    posted(`${t.id}:credit`, ledgerAccount.cardClearing(amount.currency), ledgerAccount.wallet(t.merchantId, t.customerId, amount.currency), amount, 'topup', t.id),
  /** A payout holds its amount on the wallet until the bank has paid (post) or refused (void). */
  payoutHold: (p: WalletFlowParties, amount: Money): TransferRequest => ({
    ...posted(`${p.id}:hold`, ledgerAccount.wallet(p.merchantId, p.customerId, amount.currency), ledgerAccount.bankClearing(amount.currency), amount, 'payout', p.id),
    kind: 'pending',
  }),
  payoutPost: (p: WalletFlowParties): Resolution => ({ id: `${p.id}:post`, pendingId: `${p.id}:hold` }),
  payoutVoid: (p: WalletFlowParties): Resolution => ({ id: `${p.id}:void`, pendingId: `${p.id}:hold` }),
};
