// The load driver every design shares: N buyers, at most C requests in flight, each buyer one POST
// with its own Idempotency-Key. A 429, a 503, a 409 "still in progress" or a dead connection is
// retried with the same key (that is what the key is for), and counted; a buyer who waited longer
// than `timeoutMs` in total gives up and is recorded as `timeout`, like a browser tab closing.
//
// node:http with a keep-alive agent of exactly C sockets rather than the global fetch: Node's
// built-in fetch pools through an internal undici whose limits we cannot set without a dependency,
// and what we want measured is the server, not connection setup. `checkDriver` (flash-sale.ts
// --driver-check) shows the driver's own ceiling against a server that does nothing.
import http from 'node:http';
import { performance } from 'node:perf_hooks';

export interface BuyerRequest {
  idempotencyKey: string;
  body: unknown;
}

export interface Sample {
  buyer: number;
  /** Milliseconds since the load started (performance.now() based, monotonic). */
  sentAtMs: number;
  answeredAtMs: number;
  /** First send to final answer, retries and their pauses included: what the buyer waited. */
  latencyMs: number;
  /** HTTP status of the final attempt; 0 when there was none (timeout, network error). */
  httpStatus: number;
  /** The design's answer (`processing`, `sold_out`, `confirmed`, `failed`...), `timeout` or `error`. */
  answer: string;
  retries: number;
}

export interface LoadOptions {
  url: string;
  headers?: Record<string, string>;
  buyers: number;
  concurrency: number;
  request: (buyer: number) => BuyerRequest;
  /** Reads the answer out of a final (non-retried) response; default: `body.status`. */
  answerOf?: (httpStatus: number, body: unknown) => string;
  /** Per buyer, retries included. */
  timeoutMs: number;
  /** No new buyer is sent after this many ms since the start (in-flight ones finish). */
  stopSendingAfterMs?: number;
  /** Called once a buyer has its final answer (e.g. to notice the sale is over). */
  onAnswer?: (sample: Sample) => void;
}

export interface LoadResult {
  samples: Sample[];
  /** performance.now() at the start; sample times are relative to it. */
  startedAt: number;
  /** Wall clock (Date.now()) at the start, for comparing with other processes' clocks. */
  startedAtEpochMs: number;
  durationMs: number;
  /** Buyers never sent because the budget ran out. */
  notSent: number;
  retries: number;
  /** What the retried attempts saw, e.g. { "503": 4, "network": 1 }. */
  retryCauses: Record<string, number>;
}

const RETRY_STATUSES = new Set([429, 503]);
const MAX_RETRY_PAUSE_MS = 1_000;

interface Attempt {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: unknown;
}

function postOnce(agent: http.Agent, url: URL, headers: Record<string, string>, payload: string, signal: AbortSignal): Promise<Attempt> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      url,
      {
        method: 'POST',
        agent,
        headers: { ...headers, 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) },
        signal,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let body: unknown;
          try {
            body = text ? JSON.parse(text) : undefined;
          } catch {
            body = text;
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body });
        });
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

const defaultAnswerOf = (_status: number, body: unknown): string => {
  const status = (body as { status?: unknown } | undefined)?.status;
  return typeof status === 'string' ? status : 'error';
};

function errorCodeOf(body: unknown): string | undefined {
  const code = (body as { error?: { code?: unknown } } | undefined)?.error?.code;
  return typeof code === 'string' ? code : undefined;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export async function runLoad(opts: LoadOptions): Promise<LoadResult> {
  const url = new URL(opts.url);
  const agent = new http.Agent({ keepAlive: true, maxSockets: opts.concurrency });
  const answerOf = opts.answerOf ?? defaultAnswerOf;
  const samples: Sample[] = [];
  const retryCauses: Record<string, number> = {};
  let retries = 0;
  let next = 0;
  const startedAt = performance.now();
  const startedAtEpochMs = Date.now();
  const since = () => performance.now() - startedAt;

  const runBuyer = async (buyer: number): Promise<void> => {
    const { idempotencyKey, body } = opts.request(buyer);
    const payload = JSON.stringify(body);
    const headers = { ...opts.headers, 'idempotency-key': idempotencyKey };
    const sentAtMs = since();
    const deadline = sentAtMs + opts.timeoutMs;
    let attempts = 0;
    let httpStatus = 0;
    let answer: string | undefined;
    while (answer === undefined) {
      const left = deadline - since();
      if (left <= 0) {
        answer = 'timeout';
        break;
      }
      let pauseMs = 0;
      let cause: string | undefined;
      try {
        const res = await postOnce(agent, url, headers, payload, AbortSignal.timeout(Math.ceil(left)));
        httpStatus = res.status;
        const inProgress = res.status === 409 && errorCodeOf(res.body) === 'idempotency_request_in_progress';
        if (RETRY_STATUSES.has(res.status) || inProgress) {
          cause = String(res.status);
          const retryAfterS = Number(res.headers['retry-after']);
          pauseMs = Number.isFinite(retryAfterS) ? Math.min(retryAfterS * 1000, MAX_RETRY_PAUSE_MS) : 100;
        } else {
          answer = res.status >= 200 && res.status < 300 ? answerOf(res.status, res.body) : `http_${res.status}`;
        }
      } catch (err) {
        if (since() >= deadline) {
          answer = 'timeout';
          httpStatus = 0;
          break;
        }
        // A connection the server closed under us: the request may or may not have acted, which
        // is exactly when the same key must be sent again.
        cause = `network:${(err as NodeJS.ErrnoException).code ?? (err as Error).name}`;
        httpStatus = 0;
        pauseMs = 100 * Math.min(2 ** attempts, 10);
      }
      if (cause !== undefined) {
        attempts++;
        retries++;
        retryCauses[cause] = (retryCauses[cause] ?? 0) + 1;
        await sleep(Math.min(pauseMs, Math.max(0, deadline - since())));
      }
    }
    const answeredAtMs = since();
    const sample: Sample = { buyer, sentAtMs, answeredAtMs, latencyMs: answeredAtMs - sentAtMs, httpStatus, answer, retries: attempts };
    samples.push(sample);
    opts.onAnswer?.(sample);
  };

  const lane = async (): Promise<void> => {
    for (;;) {
      if (next >= opts.buyers) return;
      if (opts.stopSendingAfterMs !== undefined && since() >= opts.stopSendingAfterMs) return;
      const buyer = next++;
      await runBuyer(buyer);
    }
  };

  try {
    await Promise.all(Array.from({ length: Math.min(opts.concurrency, opts.buyers) }, lane));
  } finally {
    agent.destroy();
  }
  return {
    samples,
    startedAt,
    startedAtEpochMs,
    durationMs: since(),
    notSent: opts.buyers - next,
    retries,
    retryCauses,
  };
}

/**
 * The driver's own ceiling: `requests` trivial POSTs against a local server that answers at once.
 * If this is not several times what a design achieves, the design's figure measures the driver.
 */
export async function checkDriver(requests: number, concurrency: number): Promise<{ requestsPerSec: number }> {
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"status":"ok"}');
    });
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  try {
    const result = await runLoad({
      url: `http://127.0.0.1:${port}/`,
      buyers: requests,
      concurrency,
      timeoutMs: 30_000,
      request: (i) => ({ idempotencyKey: `check-${i}`, body: { i } }),
    });
    return { requestsPerSec: (result.samples.length / result.durationMs) * 1000 };
  } finally {
    await new Promise((resolve) => server.close(resolve));
  }
}
