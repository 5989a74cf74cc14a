// An in-process API for tests that need the real Express app and the real PostgreSQL but not a
// Temporal server: createApp with a fake Temporal client that plays each workflow's part by writing
// the rows the real one writes before it answers (a test can swap in what a workflow or an update
// does), a logger that records its lines, merchants with their own keys, and an HTTP helper that can
// send what fetch refuses to (raw header bytes, raw paths, arbitrary bodies).
//
// The vitest globalSetup provides DATABASE_URL (migrated, seeded with merchant `demo`).
import { createServer, request, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import pg from 'pg';
import { ApplicationFailure, WorkflowNotFoundError, WorkflowUpdateFailedError, type Client, type WithStartWorkflowOperation } from '@temporalio/client';
import type { Workflow } from '@temporalio/common';
import { createApp, type AppDeps } from '../../api/app.js';
import { createPrisma, type PrismaClient } from '../../platform/db.js';
import type { Logger } from '../../platform/logger.js';
import { FailureType, type CheckoutInput, type CheckoutStatus, type PayoutInput, type PayoutSnapshot, type PayoutStatus, type TopupInput, type TopupSnapshot } from '../../domain/index.js';
import { payoutCancelUpdate } from '../../workflows/wallet-messages.js';
import { testCustomerSearch } from './payload-keys.js';

export function openPrisma(): PrismaClient {
  const url = process.env.DATABASE_URL;
  if (!url) throw new Error('DATABASE_URL is not set: run through vitest (test/global-setup.ts)');
  return createPrisma(url, 5);
}

export { createMerchant, type TestMerchant } from './merchants.js';

// ---------------------------------------------------------------------------------------------
// Fake Temporal

export interface StartCall {
  workflowType: string;
  workflowId: string;
  input: unknown;
  /** The start options as the API set them (task queue, ID policies, search attributes, args). */
  options: WithStartWorkflowOperation<Workflow>['options'];
  /** Update-with-start only: the update that started the workflow, and its ID. */
  update?: string;
  updateId?: string;
}

export interface UpdateCall {
  workflowId: string;
  name: string;
  args: unknown[];
  updateId: string | undefined;
}

/**
 * What each workflow does between an update-with-start and its answer. `signal` is the one the API
 * passed to withAbortSignal: a fake that never answers can end when the API gives up.
 */
export interface StartBehaviours {
  checkoutWorkflowV2: (input: CheckoutInput, signal: AbortSignal) => Promise<unknown>;
  topupWorkflowV2: (input: TopupInput, signal: AbortSignal) => Promise<unknown>;
  payoutWorkflowV2: (input: PayoutInput, signal: AbortSignal) => Promise<unknown>;
}

export type UpdateBehaviour = (call: UpdateCall, signal: AbortSignal) => Promise<unknown>;

export interface FakeTemporal {
  /** update-with-start and start calls, in order. */
  starts: StartCall[];
  updates: UpdateCall[];
  /** By default each workflow writes the rows its real one writes before answering (recordingStarts). */
  onStart: StartBehaviours;
  /** What an update of a running workflow does; by default every validator rejects it. */
  update: UpdateBehaviour;
  client: Client;
}

/** A rejection by one of the workflow's update validators, as the client raises it. */
export function rejected(type: string, message: string, details?: { code: string; status?: string }): WorkflowUpdateFailedError {
  return new WorkflowUpdateFailedError('Workflow Update failed', ApplicationFailure.create({ type, message, nonRetryable: true, ...(details ? { details: [details] } : {}) }));
}

/** Rejects what a validator would reject in a status that accepts nothing: nothing is written. */
export const rejectEveryUpdate: UpdateBehaviour = async (call) => {
  if (call.name === payoutCancelUpdate.name) throw rejected(FailureType.InvalidPayoutState, 'it is paid');
  throw rejected(FailureType.InvalidCheckoutState, 'This checkout is settled and accepts no such request.');
};

/** For tests that send no update unless they say what it does: one that arrives anyway is a 500. */
export const noUpdateExpected: UpdateBehaviour = async (call) => {
  throw new Error(`unexpected update ${call.name}`);
};

/** Each workflow writing the rows its real one writes before it answers the update that started it. */
export function recordingStarts(prisma: PrismaClient): StartBehaviours {
  return {
    // The API places a checkout's order itself after the start; its workflow writes nothing first.
    checkoutWorkflowV2: async () => undefined,
    topupWorkflowV2: (input) => recordTopup(prisma, input),
    payoutWorkflowV2: (input) => recordPayout(prisma, input),
  };
}

export function fakeTemporal(prisma: PrismaClient): FakeTemporal {
  // The API wraps each call in withAbortSignal; the fake hands that signal to the behaviours.
  let currentSignal: AbortSignal = new AbortController().signal;
  const fake: FakeTemporal = {
    starts: [],
    updates: [],
    onStart: recordingStarts(prisma),
    update: rejectEveryUpdate,
    client: undefined as unknown as Client,
  };
  const workflow = {
    executeUpdateWithStart: async (
      def: { name: string },
      options: { startWorkflowOperation: WithStartWorkflowOperation<Workflow>; updateId?: string },
    ): Promise<unknown> => {
      const op = options.startWorkflowOperation;
      // The API names workflow types; importing a workflow function would pull workflow code into it.
      if (typeof op.workflowTypeOrFunc !== 'string') throw new Error(`update-with-start by function ${op.workflowTypeOrFunc.name}, not by type name`);
      const workflowType = op.workflowTypeOrFunc;
      const input = op.options.args?.[0];
      fake.starts.push({ workflowType, workflowId: op.options.workflowId, input, options: op.options, update: def.name, updateId: options.updateId });
      if (workflowType === 'checkoutWorkflowV2') return fake.onStart.checkoutWorkflowV2(input as CheckoutInput, currentSignal);
      if (workflowType === 'topupWorkflowV2') return fake.onStart.topupWorkflowV2(input as TopupInput, currentSignal);
      if (workflowType === 'payoutWorkflowV2') return fake.onStart.payoutWorkflowV2(input as PayoutInput, currentSignal);
      throw new Error(`unexpected workflow ${workflowType}`);
    },
    start: async (workflowType: string, options: WithStartWorkflowOperation<Workflow>['options']): Promise<unknown> => {
      const input = options.args?.[0];
      fake.starts.push({ workflowType, workflowId: options.workflowId, input, options });
      // A checkout is started with a plain start (api/routes/checkouts.ts); its behaviour can fail it.
      if (workflowType === 'checkoutWorkflowV2') await fake.onStart.checkoutWorkflowV2(input as CheckoutInput, currentSignal);
      return { workflowId: options.workflowId };
    },
    getHandle: (workflowId: string) => ({
      executeUpdate: async (def: { name: string } | string, options?: { args?: unknown[]; updateId?: string }): Promise<unknown> => {
        const call = { workflowId, name: typeof def === 'string' ? def : def.name, args: options?.args ?? [], updateId: options?.updateId };
        fake.updates.push(call);
        return fake.update(call, currentSignal);
      },
      describe: async (): Promise<never> => {
        // The server refuses ids over its limit (1,000 by default) outright.
        if (workflowId.length > 1000) throw Object.assign(new Error('3 INVALID_ARGUMENT: WorkflowId length exceeds limit.'), { code: 3, details: 'WorkflowId length exceeds limit.', metadata: {} });
        throw new WorkflowNotFoundError('workflow not found', workflowId, undefined);
      },
    }),
  };
  const withAbortSignal = (async (signal, fn) => {
    currentSignal = signal;
    return await fn();
  }) satisfies Client['withAbortSignal'];
  fake.client = { workflow, withAbortSignal } as unknown as Client;
  return fake;
}

/** What checkoutWorkflowV2's placeOrder writes before it answers the reservation (stock not held). */
export async function recordCheckout(prisma: PrismaClient, input: CheckoutInput, status: CheckoutStatus = 'processing'): Promise<unknown> {
  const products = await prisma.product.findMany({ where: { merchantId: input.merchantId, sku: { in: input.items.map((i) => i.sku) } } });
  const price = new Map(products.map((p) => [p.sku, p.priceAmount]));
  const amount = input.items.reduce((sum, i) => sum + price.get(i.sku)! * BigInt(i.quantity), 0n);
  await prisma.checkout.create({
    data: {
      id: input.checkoutId,
      merchantId: input.merchantId,
      customerId: input.customerId,
      idempotencyKey: input.idempotencyKey,
      status,
      amount,
      currency: products[0]!.currency,
      paymentMethod: input.payment.method,
      captureMethod: input.captureMethod,
      items: { create: input.items.map((i) => ({ sku: i.sku, quantity: i.quantity, unitAmount: price.get(i.sku)! })) },
    },
  });
  return { checkoutId: input.checkoutId, status, amount: { amount: amount.toString(), currency: products[0]!.currency } };
}

/** What topupWorkflowV2 writes before it answers topupAccepted. */
export async function recordTopup(prisma: PrismaClient, input: TopupInput): Promise<TopupSnapshot> {
  await prisma.topup.create({
    data: {
      id: input.topupId,
      merchantId: input.merchantId,
      customerId: input.customerId,
      idempotencyKey: input.idempotencyKey,
      amount: BigInt(input.amount.amount),
      currency: input.amount.currency,
      status: 'processing',
    },
  });
  return { topupId: input.topupId, status: 'processing', amount: input.amount };
}

/**
 * The payout row payoutWorkflowV2 writes before it answers payoutAccepted: pending, or failed with
 * `failure` (a hold the wallet could not cover). The hold itself is the ledger's business, covered
 * in api-wallet.test.ts.
 */
export async function recordPayout(prisma: PrismaClient, input: PayoutInput, failure?: { code: string; message: string }): Promise<PayoutSnapshot> {
  const status: PayoutStatus = failure ? 'failed' : 'pending';
  await prisma.payout.create({
    data: {
      id: input.payoutId,
      merchantId: input.merchantId,
      customerId: input.customerId,
      idempotencyKey: input.idempotencyKey,
      amount: BigInt(input.amount.amount),
      currency: input.amount.currency,
      bankCode: input.bankAccount.bankCode,
      accountNumber: input.bankAccount.accountNumber,
      scheduledAt: new Date(input.scheduledAt),
      status,
      failureCode: failure?.code ?? null,
      failureMessage: failure?.message ?? null,
    },
  });
  return { payoutId: input.payoutId, status, amount: input.amount, scheduledAt: input.scheduledAt, ...(failure ? { failure } : {}) };
}

// ---------------------------------------------------------------------------------------------
// Logger and app

/** A logger that keeps every line as the JSON a real one would print. */
export function recordingLogger(lines: string[], base: Record<string, unknown> = {}): Logger {
  const write = (level: string) => (msg: string, fields?: Record<string, unknown>) => {
    lines.push(JSON.stringify({ level, msg, ...base, ...fields }, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v)));
  };
  return { debug: write('debug'), info: write('info'), warn: write('warn'), error: write('error'), child: (f) => recordingLogger(lines, { ...base, ...f }) };
}

export interface TestApi {
  url: string;
  temporal: FakeTemporal;
  logLines: string[];
  close: () => Promise<void>;
}

export async function startApi(prisma: PrismaClient, overrides: Partial<AppDeps> = {}): Promise<TestApi> {
  const temporal = fakeTemporal(prisma);
  const logLines: string[] = [];
  const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL, max: 5 });
  const app = createApp({
    prisma,
    pool,
    temporal: temporal.client,
    taskQueue: 'payments-test',
    logger: recordingLogger(logLines),
    customerSearch: testCustomerSearch,
    ...overrides,
  });
  const server: Server = createServer(app);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const close = async () => {
    await new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
    await pool.end();
  };
  return { url: `http://127.0.0.1:${port}`, temporal, logLines, close };
}

// ---------------------------------------------------------------------------------------------
// HTTP

export interface Res {
  status: number;
  headers: IncomingHttpHeaders;
  body: any; // eslint-disable-line @typescript-eslint/no-explicit-any -- assertions read arbitrary JSON
  text: string;
}

export interface Req {
  method: string;
  /** Sent as is: percent-escapes, `..` and all (characters 0x21-0xff). */
  path: string;
  /** Header values are sent as bytes: a string is taken as UTF-8. */
  headers?: Record<string, string>;
  /** A string or Buffer is sent raw; anything else as JSON. Without Content-Type unless headers say. */
  body?: unknown;
}

/** One response header as fetch's Headers.get reads it: null when absent, repeated values joined. */
export function header(res: Res, name: string): string | null {
  const value = res.headers[name.toLowerCase()];
  if (value === undefined) return null;
  return Array.isArray(value) ? value.join(', ') : value;
}

/** The same bytes a client sending UTF-8 would put on the wire, as the latin1 string node:http writes. */
const wireHeader = (value: string) => Buffer.from(value, 'utf8').toString('latin1');

export function send(base: string, req: Req): Promise<Res> {
  const url = new URL(base);
  const body =
    req.body === undefined ? undefined : typeof req.body === 'string' || Buffer.isBuffer(req.body) ? Buffer.from(req.body) : Buffer.from(JSON.stringify(req.body));
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(req.headers ?? {})) headers[name] = wireHeader(value);
  if (body !== undefined) headers['content-length'] = String(body.length);
  return new Promise((resolve, reject) => {
    const r = request({ host: url.hostname, port: url.port, method: req.method, path: req.path, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let parsed: unknown;
        try {
          parsed = JSON.parse(text);
        } catch {
          parsed = undefined;
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: parsed, text });
      });
    });
    r.on('error', reject);
    r.end(body);
  });
}

/** A JSON request with a Bearer key: the common case. */
export function call(base: string, key: string | null, method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<Res> {
  return send(base, {
    method,
    path,
    headers: {
      ...(key === null ? {} : { authorization: `Bearer ${key}` }),
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      ...headers,
    },
    body,
  });
}
