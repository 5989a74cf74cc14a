// The HTTP half both of our clients for external systems (card network, bank) share: send JSON
// with a timeout and classify the answer. 5xx, 408, 429, a timeout or a dead connection mean the
// outcome is unknown ("unavailable"); any other answer is returned for the client to read, and a
// client turns what it cannot accept into "rejected". It never retries: Temporal's activity
// retries do. Each client keeps its own endpoints, what each status means, and its own error
// classes (subclasses of the two below, so a caller can tell whose system failed).
import { z } from 'zod';

/** 5xx, connection failure or timeout: the system may or may not have acted. */
export class SystemUnavailableError extends Error {
  /** HTTP status when the system answered; undefined when no answer arrived. */
  readonly status: number | undefined;
  constructor(message: string, opts: { status?: number; cause?: unknown } = {}) {
    super(message, { cause: opts.cause });
    this.status = opts.status;
  }
}

/** A 4xx the caller cannot accept: the system refused the request itself and did not act on it. */
export class SystemRejectedError extends Error {
  /** The system's error code, e.g. `invalid_parameter`, `idempotency_key_reused`. */
  readonly code: string;
  readonly status: number;
  constructor(message: string, opts: { code: string; status: number }) {
    super(message);
    this.code = opts.code;
    this.status = opts.status;
  }
}

/** An answer the system gave: its status, its parsed JSON body (undefined if not JSON), and `METHOD path`. */
export interface JsonAnswer {
  status: number;
  body: unknown;
  what: string;
}

/**
 * How long a card network or bank may take to act on a request it received, unless configured
 * otherwise (CARD_NETWORK_MAX_PROCESSING_MS, BANK_MAX_PROCESSING_MS): the simulators enforce it.
 */
export const DEFAULT_MAX_PROCESSING_MS = 30_000;

export const errorSchema = z.object({ error: z.object({ code: z.string(), message: z.string() }) });

/** The error code of a Stripe-style error body, if the answer carries one. */
export function errorCode(answer: JsonAnswer): string | undefined {
  return errorSchema.safeParse(answer.body).data?.error.code;
}

export interface JsonClientOptions {
  baseUrl: string;
  timeoutMs?: number;
  /** The system's name at the start of every error message, e.g. "bank". */
  system: string;
  /** Builds the client's own "outcome unknown" error. */
  unavailable: (message: string, opts: { status?: number; cause?: unknown }) => Error;
  /** Builds the client's own "the system refused the request" error. */
  rejected: (message: string, opts: { code: string; status: number }) => Error;
}

export interface JsonClient {
  /** `signal` aborts the request (an activity being canceled); the outcome is then unknown. */
  send(method: 'GET' | 'POST', path: string, idempotencyKey?: string, body?: object, signal?: AbortSignal): Promise<JsonAnswer>;
  /** The error for an answer the client cannot accept, with the system's code when it gave one. */
  rejected(answer: JsonAnswer): Error;
  /** Reads a success answer; one that does not fit `schema` leaves the outcome unknown. */
  decode<T>(schema: z.ZodType<T>, answer: JsonAnswer): T;
}

export function createJsonClient(opts: JsonClientOptions): JsonClient {
  const baseUrl = opts.baseUrl.replace(/\/+$/, '');
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const { system } = opts;

  return {
    async send(method, path, idempotencyKey, body, signal) {
      const what = `${method} ${path}`;
      const headers: Record<string, string> = { accept: 'application/json' };
      if (idempotencyKey !== undefined) headers['idempotency-key'] = idempotencyKey;
      if (body !== undefined) headers['content-type'] = 'application/json';
      let status: number;
      let text: string;
      try {
        // The timeout also covers reading the body: a response cut off half-way is no answer.
        const res = await fetch(baseUrl + path, {
          method,
          headers,
          body: body === undefined ? undefined : JSON.stringify(body),
          signal: signal ? AbortSignal.any([AbortSignal.timeout(timeoutMs), signal]) : AbortSignal.timeout(timeoutMs),
        });
        status = res.status;
        text = await res.text();
      } catch (err) {
        const reason = signal?.aborted ? 'aborted by the caller' : err instanceof Error && err.name === 'TimeoutError' ? `no answer within ${timeoutMs} ms` : describe(err);
        throw opts.unavailable(`${system} ${what}: ${reason}`, { cause: err });
      }
      let parsed: unknown;
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = undefined;
      }
      // 408 and 429 say "not now", not "never": treat them like a 5xx.
      if (status >= 500 || status === 408 || status === 429) {
        const detail = errorSchema.safeParse(parsed);
        const reason = detail.success ? `${detail.data.error.code}: ${detail.data.error.message}` : `HTTP ${status}`;
        throw opts.unavailable(`${system} ${what}: ${reason}`, { status });
      }
      return { status, body: parsed, what };
    },

    rejected(answer) {
      const detail = errorSchema.safeParse(answer.body);
      const code = detail.success ? detail.data.error.code : `http_${answer.status}`;
      const message = detail.success ? detail.data.error.message : `HTTP ${answer.status}`;
      return opts.rejected(`${system} ${answer.what}: ${code}: ${message}`, { code, status: answer.status });
    },

    decode(schema, answer) {
      const result = schema.safeParse(answer.body);
      // The system answered success but we cannot read what it did, so the outcome is unknown.
      if (!result.success) throw opts.unavailable(`${system} ${answer.what}: unreadable response`, { status: answer.status });
      return result.data;
    },
  };
}

function describe(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause = err.cause instanceof Error ? `: ${err.cause.message}` : '';
  return `${err.message}${cause}`;
}
