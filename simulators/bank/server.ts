// HTTP face of the bank simulator: a stand-in for a bank we do not own that pays out to accounts,
// so the payout workflow meets the failure modes a real bank has (closed accounts, idempotent
// replays, transient 503s, responses lost after the money left). Under /v1/test/ a test can
// script those failures for one payout. The request machinery every simulated system shares
// (idempotency, faults, latency) is in ../shared/http.ts.
import type express from 'express';
import type pg from 'pg';
import { z } from 'zod';
import { isCurrencyCode } from '../../domain/money.js';
import { createSimulatorHttp, faultFields, parse, positiveAmount, reportPaging, requiredReference, sendJson, type SimulatorFaultOptions } from '../shared/http.js';
import { errorBody, requestHash } from '../shared/idempotency.js';
import { accountBehaviour, BankStore } from './store.js';

// The bank has no latency jitter: its transfers are not raced against each other in tests.
export interface BankServerOptions extends Omit<SimulatorFaultOptions, 'latencyJitterMs'> {
  /** Owned by the caller, who ends it after `close()`. */
  pool: pg.Pool;
}

export interface BankServer {
  readonly app: express.Express;
  readonly store: BankStore;
  /** Creates the schema if needed, then listens; resolves with the base URL. */
  listen(port?: number, host?: string): Promise<string>;
  /** Stops accepting requests and waits for in-flight ones. The pool stays open. */
  close(): Promise<void>;
}

const transferBody = z.strictObject({
  amount: positiveAmount,
  currency: z.string().refine(isCurrencyCode, 'must be an ISO 4217 code such as "JPY"'),
  bankCode: z.string({ error: 'must be a string of 4 digits' }).regex(/^[0-9]{4}$/, 'must be exactly 4 digits'),
  accountNumber: z.string({ error: 'must be a string of 7 digits' }).regex(/^[0-9]{7}$/, 'must be exactly 7 digits'),
  reference: z.string().min(1).max(255),
});
const statementQuery = z.object({ status: z.enum(['paid', 'rejected']), ...reportPaging });
const faultBody = z.strictObject(faultFields);

export function createBankServer(opts: BankServerOptions): BankServer {
  const store = new BankStore(opts.pool);
  const simulator = createSimulatorHttp(
    {
      ...opts,
      name: 'bank',
      unavailableMessage: 'the bank is temporarily unavailable',
      keyRequiredOn: 'every transfer',
      migrate: () => store.migrate(),
    },
    ({ app, tracked, mutating, inFlight, testFaults }) => {
      app.post(
        '/v1/transfers',
        mutating((req) => {
          const b = parse(transferBody, req.body);
          const hash = requestHash(['transfer', b.amount, b.currency, b.bankCode, b.accountNumber, b.reference]);
          return {
            run: (key) =>
              store.transfer(key, hash, {
                amount: BigInt(b.amount),
                currency: b.currency,
                bankCode: b.bankCode,
                accountNumber: b.accountNumber,
                reference: b.reference,
              }),
            // The lost-response test account loses only the try that paid: a retry or a lookup finds the transfer.
            loseResponse: accountBehaviour(b.accountNumber).loseResponse === true,
            logFields: { reference: b.reference },
          };
        }),
      );

      app.get(
        '/v1/transfers/by-key/:key',
        tracked(async (req, res) => {
          const key = req.params.key as string;
          // In flight is read first: see RouteKit.inFlight.
          const busy = inFlight(key);
          const transfer = await store.transferByKey(key);
          if (transfer) return sendJson(res, 200, transfer);
          if (busy) return sendJson(res, 409, errorBody('invalid_request_error', 'request_in_progress', 'a transfer under this Idempotency-Key is being processed; look again shortly'));
          sendJson(res, 404, errorBody('invalid_request_error', 'transfer_not_found', 'no transfer was made under this Idempotency-Key'));
        }),
      );

      app.get(
        '/v1/transfers',
        tracked(async (req, res) => {
          // With ?status= (and optional createdBefore/createdAfter) instead of ?reference=: the
          // bank's statement, which reconciliation compares with the ledger. Paged like Stripe's
          // lists: `limit` per page, `starting_after` the last id of the previous page, `hasMore`
          // whether another page follows.
          if (req.query.reference === undefined && req.query.status !== undefined) {
            const q = parse(statementQuery, req.query);
            const page = await store.transfersByStatus({
              status: q.status,
              createdBefore: q.createdBefore ? new Date(q.createdBefore) : new Date(),
              createdAfter: q.createdAfter ? new Date(q.createdAfter) : undefined,
              startingAfter: q.starting_after,
              limit: q.limit,
            });
            if (!page) return sendJson(res, 400, errorBody('invalid_request_error', 'invalid_parameter', 'starting_after: no such transfer', 'starting_after'));
            return sendJson(res, 200, page);
          }
          sendJson(res, 200, { data: await store.transfersByReference(requiredReference(req)) });
        }),
      );

      testFaults(faultBody, { add: (spec) => store.addFault(spec), byReference: (reference) => store.faultsByReference(reference) });
    },
  );
  return { app: simulator.app, store, listen: (port, host) => simulator.listen(port, host), close: () => simulator.close() };
}
