// How failures of the checkout workflow's updates reach a client. Only typed outcomes are matched:
// error classes the Temporal client documents, gRPC status codes and ApplicationFailure types,
// never messages (convention 8).
import {
  ApplicationFailure,
  WorkflowNotFoundError,
  WorkflowUpdateFailedError,
  WorkflowUpdateRPCTimeoutOrCancelledError,
  isGrpcServiceError,
} from '@temporalio/client';
import { FailureType } from '../domain/index.js';
import type { Logger } from '../platform/logger.js';
import { ApiError, conflict, invalidRequest } from './errors.js';

/** gRPC NOT_FOUND; @grpc/grpc-js is not a direct dependency, so its enum is not imported. */
const GRPC_NOT_FOUND = 5;
/**
 * The server's failure type for an update that was accepted but whose run closed before the
 * handler finished (e.g. the refund window ended under it). Temporal's name, not ours.
 */
const ACCEPTED_UPDATE_COMPLETED_WORKFLOW = 'AcceptedUpdateCompletedWorkflow';

function causes(err: unknown): unknown[] {
  const chain: unknown[] = [];
  for (let e: unknown = err, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) chain.push(e);
  return chain;
}

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

export interface UpdateErrorContext {
  /** Aborts when the request has waited long enough. */
  signal: AbortSignal;
  log: Logger;
  /** What the request was, for the log ("capture", "refund", ...). */
  action: string;
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
    case FailureType.InvalidCheckoutState:
      log.info('checkout update rejected', { action, failure: failure.type });
      // The workflow's validators word these for the client and name the status they saw.
      return conflict('checkout_state_invalid', failure.message || `This checkout (${ctx.status}) does not accept a ${action} now.`);
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
