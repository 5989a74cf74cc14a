// The load's HTTP client: what a careful merchant server does. Every POST that moves money carries
// an Idempotency-Key, and an answer that leaves the outcome unknown (a network error, a timeout, a
// 5xx, a 429, or 409 idempotency_request_in_progress) is retried with the SAME key and body until
// it gets a definite answer. While PostgreSQL or Temporal is down that is exactly what happens, and
// the retries must never charge twice: the invariants check it.
import { setTimeout as sleep } from 'node:timers/promises';

export type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

export interface ApiAnswer {
  /** The definite HTTP status; 0 when the request was given up (still unknown at its deadline). */
  status: number;
  body: Json;
  /** Tries it took (1 = no retry). */
  tries: number;
}

export interface ApiClientStats {
  requests: number;
  retries: number;
  /** Requests still unknown at their deadline. */
  abandoned: number;
  /** Retries by cause, e.g. `503`, `network`, `timeout`, `409 idempotency_request_in_progress`. */
  retryCauses: Record<string, number>;
}

export interface ApiClientOptions {
  baseUrl: string;
  apiKey: string;
  /** Longest a single try may take: above the API's own workflow-answer timeout. */
  tryTimeoutMs: number;
  /** How long a request keeps retrying before it is given up. */
  giveUpAfterMs: number;
}

export class ApiClient {
  readonly stats: ApiClientStats = { requests: 0, retries: 0, abandoned: 0, retryCauses: {} };

  constructor(private readonly opts: ApiClientOptions) {}

  get(path: string): Promise<ApiAnswer> {
    return this.send('GET', path, undefined, undefined);
  }

  /** A POST with an Idempotency-Key; every retry sends the same key and the same body. */
  post(path: string, body: unknown, idempotencyKey?: string): Promise<ApiAnswer> {
    return this.send('POST', path, body, idempotencyKey);
  }

  patch(path: string, body: unknown): Promise<ApiAnswer> {
    return this.send('PATCH', path, body, undefined);
  }

  private async send(method: string, path: string, body: unknown, idempotencyKey: string | undefined): Promise<ApiAnswer> {
    this.stats.requests++;
    const headers: Record<string, string> = { authorization: `Bearer ${this.opts.apiKey}` };
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (idempotencyKey !== undefined) headers['idempotency-key'] = idempotencyKey;
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const deadline = Date.now() + this.opts.giveUpAfterMs;
    let pauseMs = 200;
    for (let tries = 1; ; tries++) {
      let cause: string;
      try {
        const res = await fetch(`${this.opts.baseUrl}${path}`, { method, headers, body: payload, signal: AbortSignal.timeout(this.opts.tryTimeoutMs) });
        const text = await res.text();
        let parsed: Json = {};
        try {
          parsed = text === '' ? {} : (JSON.parse(text) as Json);
        } catch {
          parsed = { raw: text.slice(0, 200) };
        }
        const code = (parsed.error as { code?: string } | undefined)?.code;
        const unknownOutcome = res.status >= 500 || res.status === 429 || (res.status === 409 && code === 'idempotency_request_in_progress');
        if (!unknownOutcome) return { status: res.status, body: parsed, tries };
        cause = res.status === 409 ? `409 ${code}` : String(res.status);
      } catch (err) {
        cause = err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError') ? 'timeout' : 'network';
      }
      if (Date.now() + pauseMs > deadline) {
        this.stats.abandoned++;
        return { status: 0, body: { lastCause: cause }, tries };
      }
      this.stats.retries++;
      this.stats.retryCauses[cause] = (this.stats.retryCauses[cause] ?? 0) + 1;
      // Jittered backoff, so retries after an outage do not arrive as one wave.
      await sleep(pauseMs / 2 + Math.random() * pauseMs);
      pauseMs = Math.min(pauseMs * 2, 3_000);
    }
  }
}
