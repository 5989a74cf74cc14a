// How failures of update-with-start (checkouts, top-ups, payouts) and of the checkout's and the
// payout's updates reach a client. Only typed outcomes are matched:
// error classes the Temporal client documents, gRPC status codes and ApplicationFailure types,
// never messages, which the SDK and the server may reword in any release.
import {
  ApplicationFailure,
  WorkflowExecutionAlreadyStartedError,
  WorkflowNotFoundError,
  WorkflowUpdateFailedError,
  WorkflowUpdateRPCTimeoutOrCancelledError,
  isGrpcServiceError,
} from '@temporalio/client';
import { FailureType } from '../domain/index.js';
import type { Logger } from '../platform/logger.js';
import { ApiError, causes, checkoutConflict, conflict, invalidRequest, isTemporalUnavailable } from './errors.js';

/** gRPC status codes; @grpc/grpc-js is not a direct dependency, so its enum is not imported. */
const GRPC_NOT_FOUND = 5;
const GRPC_ALREADY_EXISTS = 6;
/**
 * The server's failure type for an update that was accepted but whose run closed before the
 * handler finished (e.g. the refund window ended under it). Temporal's name, not ours.
 */
const ACCEPTED_UPDATE_COMPLETED_WORKFLOW = 'AcceptedUpdateCompletedWorkflow';

/** The first ApplicationFailure with a type in the error's cause chain. */
export function applicationFailureOf(err: unknown): ApplicationFailure | undefined {
  return causes(err).find((e): e is ApplicationFailure => e instanceof ApplicationFailure && Boolean(e.type));
}

export function errorName(err: unknown): string {
  return err instanceof Error ? err.name : typeof err;
}

/**
 * The execution has closed, so no update can reach it: the client raises WorkflowNotFoundError for
 * the server's NOT_FOUND ("workflow execution already completed"), which is also checked raw in
 * case it arrives unwrapped.
 */
function isWorkflowClosed(err: unknown): boolean {
  return causes(err).some((e) => e instanceof WorkflowNotFoundError || (isGrpcServiceError(e) && e.code === GRPC_NOT_FOUND));
}

/** The workflow id is taken by a closed execution, which REJECT_DUPLICATE will not start again. */
function isAlreadyStarted(err: unknown): boolean {
  // A rejected start inside a multi-operation can also surface as the raw gRPC status, or wrapped.
  return causes(err).some((e) => e instanceof WorkflowExecutionAlreadyStartedError || (isGrpcServiceError(e) && e.code === GRPC_ALREADY_EXISTS));
}

export interface StartErrorContext {
  /** Aborts when the request has waited long enough. */
  signal: AbortSignal;
  log: Logger;
  /** What the request creates, for codes and messages: `checkout_pending`, "A topup with ...". */
  resource: 'checkout' | 'topup' | 'payout';
  /** Why retrying with the same key is safe ("it will not be charged twice"). */
  retrySafety: string;
}

/**
 * Maps the failures every update-with-start shares, for a request whose row does not exist: no
 * answer in time, or no Temporal server to answer, is 503 (the retry is safe), a closed execution under the key is 409. Undefined
 * for anything else, which the route maps (business failures) or lets through as a 500.
 */
export function startError(err: unknown, ctx: StartErrorContext): ApiError | undefined {
  const { log, resource } = ctx;
  if (ctx.signal.aborted || isTemporalUnavailable(err)) {
    log.warn(`${resource} not answered in time`, { error: errorName(err) });
    return new ApiError(
      503,
      'api_error',
      `${resource}_pending`,
      `The ${resource} did not answer in time. Retry with the same Idempotency-Key; ${ctx.retrySafety}.`,
      undefined,
      { 'Retry-After': '1' },
    );
  }
  if (isAlreadyStarted(err)) {
    log.warn(`${resource} execution closed without its row`);
    return conflict(
      'idempotency_key_closed',
      `A ${resource} with this Idempotency-Key already ran and could not be created. Use a new key.`,
      'Idempotency-Key',
    );
  }
  return undefined;
}

/** Anything that is not an ApiError reaches the error handler, which logs it and answers 500. */
export function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

export interface UpdateErrorContext {
  /** Aborts when the request has waited long enough. */
  signal: AbortSignal;
  log: Logger;
  /** What the request was, for the log ("capture", "refund", ...). */
  action: string;
  /** The checkout's id. */
  checkoutId: string;
  /** The checkout's status when the request arrived, for the closed-checkout message. */
  status: string;
  /** Tells the client how to retry without applying the request twice. */
  retryAdvice: string;
}

/**
 * Maps a failed update of the checkout workflow: its validators' rejections become 409 and 400, a
 * closed execution 409, no answer in time 503. Anything else is returned as is, for the error
 * handler to log and answer with a generic 500.
 */
export function updateError(err: unknown, ctx: UpdateErrorContext): Error {
  const { log, action } = ctx;
  if (ctx.signal.aborted || err instanceof WorkflowUpdateRPCTimeoutOrCancelledError) {
    log.warn('checkout update not answered in time', { action, error: errorName(err) });
    return new ApiError(503, 'api_error', 'checkout_update_pending', `The checkout did not answer in time. ${ctx.retryAdvice}`, undefined, {
      'Retry-After': '1',
    });
  }
  const failure = err instanceof WorkflowUpdateFailedError && err.cause instanceof ApplicationFailure ? err.cause : undefined;
  switch (failure?.type) {
    case FailureType.InvalidCheckoutState: {
      // The workflow words these for the client: a code that says why (`checkout_expired`), and the
      // status the checkout has or is ending with. Runs of the first checkout type give no details.
      const details = failure.details?.[0] as { code?: string; status?: string } | undefined;
      log.info('checkout update rejected', { action, failure: failure.type, code: details?.code });
      return checkoutConflict(details?.code ?? 'checkout_state_invalid', failure.message || `This checkout (${ctx.status}) does not accept a ${action} now.`, {
        id: ctx.checkoutId,
        status: details?.status ?? ctx.status,
      });
    }
    case FailureType.InvalidAmount:
      log.info('checkout update rejected', { action, failure: failure.type });
      return invalidRequest('amount_invalid', failure.message || 'The amount is out of range for this checkout.', 'amount');
    case ACCEPTED_UPDATE_COMPLETED_WORKFLOW:
      return closed(ctx);
    default:
      break;
  }
  if (isWorkflowClosed(err)) return closed(ctx);
  return err instanceof Error ? err : new Error(String(err));
}

function closed(ctx: UpdateErrorContext): ApiError {
  ctx.log.info('checkout update reached a closed checkout', { action: ctx.action, status: ctx.status });
  return conflict(
    'checkout_closed',
    `This checkout (${ctx.status}) is closed and accepts no more changes; for a captured checkout the refund window has ended.`,
  );
}

export interface PayoutUpdateErrorContext {
  signal: AbortSignal;
  log: Logger;
  /** The payout's status when the request arrived, for the messages. */
  status: string;
}

/**
 * Maps a failed cancel of a payout: the workflow's validator rejects a payout that is no longer
 * pending (409), a closed execution is 409 too, no answer in time 503. The route first checks
 * whether the payout ended up canceled anyway (a retry of a cancel that worked), so these are
 * only the real refusals.
 */
export function payoutUpdateError(err: unknown, ctx: PayoutUpdateErrorContext): Error {
  const { log, status } = ctx;
  if (ctx.signal.aborted || err instanceof WorkflowUpdateRPCTimeoutOrCancelledError) {
    log.warn('payout update not answered in time', { action: 'cancel', error: errorName(err) });
    return new ApiError(503, 'api_error', 'payout_update_pending', 'The payout did not answer in time. Retry the request: it joins the first.', undefined, {
      'Retry-After': '1',
    });
  }
  const failure = err instanceof WorkflowUpdateFailedError && err.cause instanceof ApplicationFailure ? err.cause : undefined;
  if (failure?.type === FailureType.InvalidPayoutState) {
    log.info('payout update rejected', { action: 'cancel', failure: failure.type });
    // The validator names the status it saw, which may be newer than the row the route read.
    return conflict('payout_state_invalid', `This payout cannot be canceled: ${failure.message || `it is ${status}, and only a pending payout can be`}.`);
  }
  if (failure?.type === ACCEPTED_UPDATE_COMPLETED_WORKFLOW || isWorkflowClosed(err)) {
    log.info('payout update reached a closed payout', { action: 'cancel', status });
    return conflict('payout_closed', `This payout is ${status} and closed; it can no longer be canceled.`);
  }
  return asError(err);
}
