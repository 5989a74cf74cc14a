// Which ledger accounts each movement of money goes between, and under which transfer id: the ids
// must come out the same on every retry, and each posting must name the accounts the README's money
// paths describe.
import { describe, expect, it } from 'vitest';
import { checkoutPostings, ledgerAccount, money, walletPostings, type CheckoutParties } from '../../domain/index.js';

describe('ledger accounts', () => {
  it('are derived from the merchant, customer and currency', () => {
    expect(ledgerAccount.wallet('m1', 'cus_1', 'JPY')).toBe('wallet:m1:cus_1:JPY');
    expect(ledgerAccount.merchantPending('m1', 'JPY')).toBe('merchant:m1:pending:JPY');
    expect(ledgerAccount.merchantAvailable('m1', 'USD')).toBe('merchant:m1:available:USD');
    expect(ledgerAccount.cardClearing('JPY')).toBe('platform:card_clearing:JPY');
    expect(ledgerAccount.bankClearing('EUR')).toBe('platform:bank_clearing:EUR');
  });
});

const card: CheckoutParties = { checkoutId: 'co_1', merchantId: 'm1', customerId: 'cus_1', paymentMethod: 'card' };
const wallet: CheckoutParties = { ...card, checkoutId: 'co_2', paymentMethod: 'wallet' };
const yen = money(1500n, 'JPY');

describe('checkout postings', () => {
  it('a wallet payment is held from the wallet to the merchant pending balance, then posted or voided', () => {
    expect(checkoutPostings.walletHold(wallet, yen)).toEqual({
      id: 'co_2:wallet-hold',
      debitAccountId: 'wallet:m1:cus_1:JPY',
      creditAccountId: 'merchant:m1:pending:JPY',
      amount: '1500',
      currency: 'JPY',
      kind: 'pending',
      code: 'checkout_wallet_payment',
      reference: 'co_2',
    });
    expect(checkoutPostings.walletCapture(wallet)).toEqual({ id: 'co_2:wallet-capture', pendingId: 'co_2:wallet-hold' });
    expect(checkoutPostings.walletVoid(wallet)).toEqual({ id: 'co_2:wallet-void', pendingId: 'co_2:wallet-hold' });
  });

  it('a card capture credits the merchant pending balance from card clearing, posted at once', () => {
    expect(checkoutPostings.cardCapture(card, yen)).toEqual({
      id: 'co_1:merchant-credit',
      debitAccountId: 'platform:card_clearing:JPY',
      creditAccountId: 'merchant:m1:pending:JPY',
      amount: '1500',
      currency: 'JPY',
      kind: 'posted',
      code: 'checkout_card_capture',
      reference: 'co_1',
    });
  });

  it('settlement moves what is left from pending to available', () => {
    expect(checkoutPostings.settlement(card, money(900n, 'USD'))).toEqual({
      id: 'co_1:settlement',
      debitAccountId: 'merchant:m1:pending:USD',
      creditAccountId: 'merchant:m1:available:USD',
      amount: '900',
      currency: 'USD',
      kind: 'posted',
      code: 'settlement',
      reference: 'co_1',
    });
  });

  it('a refund goes back where the money came from, out of pending before settlement and available after', () => {
    const base = { amount: '1500', currency: 'JPY', kind: 'posted', code: 'checkout_refund' };
    expect(checkoutPostings.refund(card, 're_1', yen, false)).toEqual({
      ...base,
      id: 'co_1:ledger-refund:re_1',
      debitAccountId: 'merchant:m1:pending:JPY',
      creditAccountId: 'platform:card_clearing:JPY',
      reference: 'co_1',
    });
    expect(checkoutPostings.refund(wallet, 're_2', yen, true)).toEqual({
      ...base,
      id: 'co_2:ledger-refund:re_2',
      debitAccountId: 'merchant:m1:available:JPY',
      creditAccountId: 'wallet:m1:cus_1:JPY',
      reference: 'co_2',
    });
  });

  it('undoing a capture reverses the transfer the capture posted', () => {
    expect(checkoutPostings.cardCaptureReversal(card)).toEqual({ id: 'co_1:merchant-credit-reversal', transferId: 'co_1:merchant-credit', code: 'checkout_refund' });
    expect(checkoutPostings.walletCaptureReversal(wallet)).toEqual({ id: 'co_2:wallet-reversal', transferId: 'co_2:wallet-capture', code: 'checkout_refund' });
  });
});

describe('wallet postings', () => {
  const parties = { id: 'tu_1', merchantId: 'm1', customerId: 'cus_1' };

  it('a top-up credits the wallet from card clearing', () => {
    expect(walletPostings.topupCredit(parties, yen)).toEqual({
      id: 'tu_1:credit',
      debitAccountId: 'platform:card_clearing:JPY',
      creditAccountId: 'wallet:m1:cus_1:JPY',
      amount: '1500',
      currency: 'JPY',
      kind: 'posted',
      code: 'topup',
      reference: 'tu_1',
    });
  });

  it('a payout holds the wallet towards bank clearing, then posts or voids that hold', () => {
    const payout = { ...parties, id: 'po_1' };
    expect(walletPostings.payoutHold(payout, yen)).toEqual({
      id: 'po_1:hold',
      debitAccountId: 'wallet:m1:cus_1:JPY',
      creditAccountId: 'platform:bank_clearing:JPY',
      amount: '1500',
      currency: 'JPY',
      kind: 'pending',
      code: 'payout',
      reference: 'po_1',
    });
    expect(walletPostings.payoutPost(payout)).toEqual({ id: 'po_1:post', pendingId: 'po_1:hold' });
    expect(walletPostings.payoutVoid(payout)).toEqual({ id: 'po_1:void', pendingId: 'po_1:hold' });
  });
});
