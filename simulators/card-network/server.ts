// HTTP face of the card-network simulator: a stand-in for a card network we do not own, close
// enough to Stripe's API that the workflows meet the same failure modes a real network has
// (declines, 3-D Secure, idempotent replays, transient 503s, responses lost after the network
// acted). Under /v1/test/ a test can script those failures for one checkout. The request
// machinery every simulated system shares (idempotency, faults, latency) is in ../shared/http.ts.
import type express from 'express';
import type pg from 'pg';
import { z } from 'zod';
import { isCurrencyCode } from '../../domain/money.js';
import { createSimulatorHttp, faultFields, parse, positiveAmount, reportPaging, requiredReference, sendJson, type SimulatorFaultOptions } from '../shared/http.js';
import { errorBody, requestHash } from '../shared/idempotency.js';
import { AUTHORIZATION_STATES, CardNetworkStore, FAULT_OPERATIONS, isTestToken, TEST_TOKENS, type TestToken } from './store.js';

export interface CardNetworkServerOptions extends SimulatorFaultOptions {
  /** Owned by the caller, who ends it after `close()`. */
  pool: pg.Pool;
}

export interface CardNetworkServer {
  readonly app: express.Express;
  readonly store: CardNetworkStore;
  /** Creates the schema if needed, then listens; resolves with the base URL. */
  listen(port?: number, host?: string): Promise<string>;
  /** Stops accepting requests and waits for in-flight ones. The pool stays open. */
  close(): Promise<void>;
}

const authorizationId = z.string().min(1).max(255);

const authorizationBody = z.strictObject({
  amount: positiveAmount,
  currency: z.string().refine(isCurrencyCode, 'must be an ISO 4217 code such as "JPY"'),
  token: z.string().refine(isTestToken, `must be one of ${Object.keys(TEST_TOKENS).join(', ')}`),
  reference: z.string().min(1).max(255),
});
const captureBody = z.strictObject({ amount: positiveAmount.optional() });
const voidBody = z.strictObject({});
const refundBody = z.strictObject({ authorizationId, amount: positiveAmount });
const authenticationBody = z.strictObject({ result: z.enum(['succeeded', 'failed']) });
const authorizationsQuery = z.object({ state: z.enum(AUTHORIZATION_STATES), ...reportPaging });
const faultBody = z.strictObject({ ...faultFields, operation: z.enum(FAULT_OPERATIONS) });

export function createCardNetworkServer(opts: CardNetworkServerOptions): CardNetworkServer {
  const store = new CardNetworkStore(opts.pool);
  const simulator = createSimulatorHttp(
    {
      ...opts,
      name: 'card network',
      unavailableMessage: 'the network is temporarily unavailable',
      keyRequiredOn: 'every mutating request',
      migrate: () => store.migrate(),
    },
    ({ app, tracked, mutating, inFlight, testFaults }) => {
      app.post(
        '/v1/authorizations',
        mutating((req) => {
          const b = parse(authorizationBody, req.body, { token: 'invalid_token' });
          const hash = requestHash(['authorization', b.amount, b.currency, b.token, b.reference]);
          const token = b.token as TestToken;
          return {
            run: (key) => store.authorize(key, hash, { amount: BigInt(b.amount), currency: b.currency, token, reference: b.reference }),
            loseResponse: TEST_TOKENS[token].loseResponse === true,
          };
        }),
      );

      app.post(
        '/v1/authorizations/:id/authenticate',
        mutating((req) => {
          const authorizationId = req.params.id as string;
          const b = parse(authenticationBody, req.body);
          const hash = requestHash(['authentication', authorizationId, b.result]);
          return { run: (key) => store.authenticate(key, hash, { authorizationId, result: b.result }) };
        }),
      );

      app.post(
        '/v1/authorizations/:id/capture',
        mutating((req) => {
          const authorizationId = req.params.id as string;
          const b = parse(captureBody, req.body);
          const hash = requestHash(['capture', authorizationId, b.amount ?? null]);
          return { run: (key) => store.capture(key, hash, { authorizationId, amount: b.amount === undefined ? undefined : BigInt(b.amount) }) };
        }),
      );

      app.post(
        '/v1/authorizations/:id/void',
        mutating((req) => {
          const authorizationId = req.params.id as string;
          parse(voidBody, req.body);
          const hash = requestHash(['void', authorizationId]);
          return { run: (key) => store.void(key, hash, { authorizationId }) };
        }),
      );

      app.post(
        '/v1/refunds',
        mutating((req) => {
          const b = parse(refundBody, req.body);
          const hash = requestHash(['refund', b.authorizationId, b.amount]);
          return { run: (key) => store.refund(key, hash, { authorizationId: b.authorizationId, amount: BigInt(b.amount) }) };
        }),
      );

      // The network's authorization report: e.g. every authorization still holding funds that was
      // created before a cutoff. Reconciliation compares it with the merchant's own records. Paged
      // like Stripe's lists: `limit` per page, `starting_after` the last id of the previous page,
      // `hasMore` whether another page follows.
      app.get(
        '/v1/authorizations',
        tracked(async (req, res) => {
          const q = parse(authorizationsQuery, req.query);
          const page = await store.authorizationsByState({
            state: q.state,
            createdBefore: q.createdBefore ? new Date(q.createdBefore) : new Date(),
            createdAfter: q.createdAfter ? new Date(q.createdAfter) : undefined,
            startingAfter: q.starting_after,
            limit: q.limit,
          });
          if (!page) return sendJson(res, 400, errorBody('invalid_request_error', 'invalid_parameter', 'starting_after: no such authorization', 'starting_after'));
          sendJson(res, 200, page);
        }),
      );

      app.get(
        '/v1/operations/by-key/:key',
        tracked(async (req, res) => {
          const key = req.params.key as string;
          // In flight is read first: see RouteKit.inFlight.
          const busy = inFlight(key);
          const op = await store.operationByKey(key);
          if (op) return sendJson(res, 200, op);
          if (busy) return sendJson(res, 409, errorBody('invalid_request_error', 'request_in_progress', 'a request under this Idempotency-Key is being processed; look again shortly'));
          sendJson(res, 404, errorBody('invalid_request_error', 'operation_not_found', 'no operation was performed under this Idempotency-Key'));
        }),
      );

      app.get(
        '/v1/operations',
        tracked(async (req, res) => {
          sendJson(res, 200, { data: await store.operationsByReference(requiredReference(req)) });
        }),
      );

      testFaults(faultBody, { add: (spec) => store.addFault(spec), byReference: (reference) => store.faultsByReference(reference) });
    },
  );
  return { app: simulator.app, store, listen: (port, host) => simulator.listen(port, host), close: () => simulator.close() };
}
