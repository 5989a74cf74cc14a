// The chaos suite's load: a steady mix of card and wallet checkouts (some with 3-D Secure, some
// captured by hand, some canceled in each state a cancel can meet: processing, requires_action,
// requires_capture), refunds, top-ups and payouts (some rejected by the bank, some with a lost
// response, some canceled), over HTTP with one merchant's key, at a fixed number of requests in
// flight. It records what it asked for and what it was told; the invariants do not trust it and
// read the books instead (chaos/invariants.ts).
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ApiClient, ApiAnswer, Json } from './api-client.js';
import type { Rng } from './rng.js';

export interface Product {
  sku: string;
  price: number;
  stock: number;
}

export interface LoadCounts {
  /** Requests answered with a definite status, by operation and status, e.g. `checkout.card 201`. */
  answers: Record<string, number>;
  /** Created (201/200) per kind. */
  checkouts: number;
  topups: number;
  payouts: number;
  refunds: number;
  confirms: number;
  captures: number;
  cancels: number;
  /** Cancels answered 200, by the status the checkout had when the cancel was sent. */
  cancelsByState: Record<string, number>;
  /** Definite answers no correct API gives to what we sent (a 400, or 422 on a retry of the same request). */
  unexpected: Array<{ op: string; status: number; body: Json }>;
}

export interface LoadOptions {
  api: ApiClient;
  rng: Rng;
  runId: string;
  /** Tells this load's products and customers apart from another merchant's in the same run. */
  label: string;
  concurrency: number;
  /** Customers whose wallets the load tops up and spends. */
  customers: number;
  log: (line: string) => void;
}

const CURRENCY = 'JPY';
const yen = (amount: number) => ({ amount: String(amount), currency: CURRENCY });
const CAPTURED = ['captured', 'settled', 'partially_refunded', 'refunded'];
const FINAL_BEFORE_CAPTURE = ['sold_out', 'failed', 'canceled', 'expired'];
/** A checkout is refundable from its capture until 3 s (settlement) + 15 s (window) later. */
const REFUNDABLE_AGE_MS = [1_000, 15_000] as const;

const CARD_TOKENS = [
  ['tok_visa', 70],
  ['tok_chargeDeclined', 6],
  ['tok_insufficientFunds', 4],
  ['tok_processingError', 7],
  ['tok_timeout', 7],
  ['tok_threeDSecureRequired', 6],
] as const;
const TOPUP_TOKENS = [
  ['tok_visa', 80],
  ['tok_chargeDeclined', 5],
  ['tok_processingError', 6],
  ['tok_timeout', 6],
  ['tok_threeDSecureRequired', 3],
] as const;
/** simulators/bank: 0000000 is closed (rejected), 9999999 pays but loses its first response. */
const BANK_ACCOUNTS = [
  ['1234567', 80],
  ['0000000', 10],
  ['9999999', 10],
] as const;

type Op = 'cardCheckout' | 'walletCheckout' | 'topup' | 'payout' | 'refund';
const MIX: ReadonlyArray<readonly [Op, number]> = [
  ['cardCheckout', 32],
  ['walletCheckout', 18],
  ['topup', 16],
  ['payout', 12],
  ['refund', 22],
];

export class Load {
  readonly counts: LoadCounts = { answers: {}, checkouts: 0, topups: 0, payouts: 0, refunds: 0, confirms: 0, captures: 0, cancels: 0, cancelsByState: {}, unexpected: [] };
  readonly products: Product[] = [];
  private readonly customers: string[];
  /** Checkouts created with stock held, and when: the refund candidates. */
  private readonly checkouts: Array<{ id: string; at: number }> = [];
  private stopping = false;
  private inFlight = 0;

  constructor(private readonly opts: LoadOptions) {
    this.customers = Array.from({ length: opts.customers }, (_, i) => `cus_chaos_${opts.runId}_${opts.label}_${i}`);
  }

  /**
   * Products with little stock (so sold_out happens, and an oversell would show) and a first top-up
   * for every customer, so wallet checkouts and payouts have money to spend from the start.
   */
  async prepare(): Promise<void> {
    const { api, rng, runId, label } = this.opts;
    for (let i = 0; i < 6; i++) {
      const product = { sku: `chaos-${runId}-${label}-${i}`, price: rng.pick([500, 800, 1200, 2000, 3000]), stock: rng.int(20, 40) };
      const res = await api.post('/v1/products', { sku: product.sku, name: `Chaos product ${i}`, price: yen(product.price), stock: product.stock });
      if (res.status !== 201) throw new Error(`creating product ${product.sku} answered ${res.status}: ${JSON.stringify(res.body)}`);
      this.products.push(product);
    }
    await Promise.all(this.customers.map((customerId) => this.topup(customerId, 20_000, 'tok_visa')));
  }

  /** Runs the mix until `stop()`; resolves when the last request in flight has its answer. */
  async run(): Promise<void> {
    await Promise.all(
      Array.from({ length: this.opts.concurrency }, async () => {
        while (!this.stopping) {
          this.inFlight++;
          try {
            await this.step(this.opts.rng.weighted(MIX));
          } catch (err) {
            this.opts.log(`load step failed: ${err instanceof Error ? err.message : String(err)}`);
          } finally {
            this.inFlight--;
          }
        }
      }),
    );
  }

  stop(): void {
    this.stopping = true;
  }

  get requestsInFlight(): number {
    return this.inFlight;
  }

  private async step(op: Op): Promise<void> {
    const { rng } = this.opts;
    switch (op) {
      case 'cardCheckout':
        return this.cardCheckout(rng.weighted(CARD_TOKENS), rng.next() < 0.15 ? 'manual' : 'automatic');
      case 'walletCheckout':
        return this.walletCheckout(rng.next() < 0.25 ? 'manual' : 'automatic');
      case 'topup':
        return this.topup(rng.pick(this.customers), rng.int(2, 20) * 500, rng.weighted(TOPUP_TOKENS));
      case 'payout':
        return this.payout();
      case 'refund':
        return this.refund();
    }
  }

  private items(): Array<{ sku: string; quantity: number }> {
    const { rng } = this.opts;
    const first = rng.int(0, this.products.length - 1);
    const lines = rng.next() < 0.25 ? [first, (first + 1) % this.products.length] : [first];
    return lines.map((i) => ({ sku: this.products[i]!.sku, quantity: rng.next() < 0.2 ? 2 : 1 }));
  }

  private record(op: string, res: ApiAnswer, expected: number[]): boolean {
    const code = res.status >= 400 ? (res.body.error as { code?: string } | undefined)?.code : undefined;
    const label = `${op} ${res.status === 0 ? 'gave-up' : res.status}${code ? ` ${code}` : ''}`;
    this.counts.answers[label] = (this.counts.answers[label] ?? 0) + 1;
    if (res.status === 0) return false;
    // 400 means we sent something wrong; 422 means a retry of the very same request was refused as
    // a reuse of its key, which the API must never do; 404, that something we created is gone.
    if (!expected.includes(res.status) && (res.status === 400 || res.status === 422 || res.status === 404)) {
      this.counts.unexpected.push({ op, status: res.status, body: res.body });
    }
    return expected.includes(res.status);
  }

  private async cardCheckout(token: string, captureMethod: 'automatic' | 'manual'): Promise<void> {
    const { api, rng } = this.opts;
    const res = await api.post(
      '/v1/checkouts',
      { customerId: rng.pick(this.customers), items: this.items(), payment: { method: 'card', token }, captureMethod },
      `co-${randomUUID()}`,
    );
    if (!this.record('checkout.card', res, [200, 201])) return;
    this.counts.checkouts++;
    const id = res.body.id as string;
    if (res.body.status === 'sold_out') return;
    this.checkouts.push({ id, at: Date.now() });
    // The buyer gives up at once: the cancel meets the checkout while it holds stock or authorizes.
    if (rng.next() < 0.06) return this.cancel(id, res.body.status as string);
    if (token === 'tok_threeDSecureRequired') {
      // The customer answers the challenge, mostly successfully; some never do (actionTimeout
      // expires them), and some walk away from it (a cancel in requires_action).
      if (rng.next() < 0.15) return;
      const at = await this.waitForStatus(id, ['requires_action'], 20_000);
      if (at !== 'requires_action') return;
      if (rng.next() < 0.35) return this.cancel(id, at);
      const confirm = await api.post(`/v1/checkouts/${id}/confirm`, { result: rng.next() < 0.8 ? 'succeeded' : 'failed' }, `confirm-${randomUUID()}`);
      if (this.record('checkout.confirm', confirm, [200, 409])) this.counts.confirms++;
    }
    if (captureMethod === 'manual') await this.captureByHand(id);
  }

  /** A manual-capture checkout: left to expire, canceled, or captured in full or in part. */
  private async captureByHand(id: string): Promise<void> {
    const { api, rng } = this.opts;
    const at = await this.waitForStatus(id, ['requires_capture'], 25_000);
    if (at !== 'requires_capture') return;
    const roll = rng.next();
    if (roll < 0.15) return; // never captured: the authorization TTL expires it
    if (roll < 0.35) return this.cancel(id, at);
    const row = await api.get(`/v1/checkouts/${id}`);
    const total = Number((row.body.amount as { amount?: string } | undefined)?.amount ?? 0);
    const partial = rng.next() < 0.3 && total > 1;
    const body = partial ? { amount: yen(Math.max(1, Math.floor(total / 2))) } : {};
    const capture = await api.post(`/v1/checkouts/${id}/capture`, body, `capture-${randomUUID()}`);
    if (this.record('checkout.capture', capture, [200, 409])) this.counts.captures++;
    // Refundable from its capture on, not from its creation.
    const entry = this.checkouts.find((c) => c.id === id);
    if (entry) entry.at = Date.now();
  }

  private async walletCheckout(captureMethod: 'automatic' | 'manual'): Promise<void> {
    const { api, rng } = this.opts;
    const res = await api.post('/v1/checkouts', { customerId: rng.pick(this.customers), items: this.items(), payment: { method: 'wallet' }, captureMethod }, `co-${randomUUID()}`);
    if (!this.record('checkout.wallet', res, [200, 201])) return;
    this.counts.checkouts++;
    if (res.body.status === 'sold_out') return;
    const id = res.body.id as string;
    this.checkouts.push({ id, at: Date.now() });
    if (captureMethod === 'manual') await this.captureByHand(id);
  }

  /** Cancels a checkout; `state` is its status as last seen, for the counts. 409: it moved on first. */
  private async cancel(id: string, state: string): Promise<void> {
    const cancel = await this.opts.api.post(`/v1/checkouts/${id}/cancel`, {}, `cancel-${randomUUID()}`);
    if (!this.record(`checkout.cancel.${state}`, cancel, [200, 409])) return;
    this.counts.cancels++;
    if (cancel.status === 200) this.counts.cancelsByState[state] = (this.counts.cancelsByState[state] ?? 0) + 1;
  }

  private async topup(customerId: string, amount: number, token: string): Promise<void> {
    const res = await this.opts.api.post('/v1/topups', { customerId, amount: yen(amount), payment: { method: 'card', token } }, `tu-${randomUUID()}`);
    if (this.record('topup', res, [200, 201])) this.counts.topups++;
  }

  private async payout(): Promise<void> {
    const { api, rng } = this.opts;
    const cancelLater = rng.next() < 0.15;
    const body: Json = {
      customerId: rng.pick(this.customers),
      amount: yen(rng.int(1, 8) * 250),
      bankAccount: { bankCode: '0001', accountNumber: rng.weighted(BANK_ACCOUNTS) },
    };
    // One to be canceled is scheduled a little ahead, so the cancel usually comes first.
    if (cancelLater) body.scheduledAt = new Date(Date.now() + 5_000).toISOString();
    const res = await api.post('/v1/payouts', body, `po-${randomUUID()}`);
    // 409 insufficient_funds: the wallet was short; the payout is recorded as failed, nothing held.
    if (!this.record('payout', res, [200, 201, 409])) return;
    this.counts.payouts++;
    if (cancelLater && res.status !== 409) {
      await sleep(rng.int(200, 2_000));
      const cancel = await api.post(`/v1/payouts/${res.body.id as string}/cancel`, {}, `pocancel-${randomUUID()}`);
      if (this.record('payout.cancel', cancel, [200, 409])) this.counts.cancels++;
    }
  }

  /** Refunds (all or part of) a recent checkout, if it is captured with money left. */
  private async refund(): Promise<void> {
    const { api, rng } = this.opts;
    const now = Date.now();
    const candidates = this.checkouts.filter((c) => now - c.at > REFUNDABLE_AGE_MS[0] && now - c.at < REFUNDABLE_AGE_MS[1]);
    if (candidates.length === 0) return void (await sleep(200));
    const id = rng.pick(candidates).id;
    const row = await api.get(`/v1/checkouts/${id}`);
    if (row.status !== 200 || !CAPTURED.includes(row.body.status as string)) return void (await sleep(100));
    const left = Number(row.body.amountCaptured?.amount ?? 0) - Number(row.body.amountRefunded?.amount ?? 0);
    if (left <= 0) return;
    const body = rng.next() < 0.5 || left < 2 ? {} : { amount: yen(rng.int(1, left - 1)) };
    const res = await api.post(`/v1/checkouts/${id}/refunds`, body, `re-${randomUUID()}`);
    // 409: the refund window closed, or another refund took the rest first; 400: amount above what is left now.
    if (this.record('refund', res, [200, 201, 409, 400])) {
      if (res.status === 201 || res.status === 200) this.counts.refunds++;
    }
  }

  /** Polls a checkout until its status is one of `wanted` or it is final; returns the last status seen. */
  private async waitForStatus(id: string, wanted: string[], timeoutMs: number): Promise<string | undefined> {
    const deadline = Date.now() + timeoutMs;
    let status: string | undefined;
    while (Date.now() < deadline) {
      const res = await this.opts.api.get(`/v1/checkouts/${id}`);
      status = res.body.status as string | undefined;
      if (status && (wanted.includes(status) || FINAL_BEFORE_CAPTURE.includes(status) || CAPTURED.includes(status))) return status;
      await sleep(300);
    }
    return status;
  }
}
