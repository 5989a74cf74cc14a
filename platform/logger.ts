// Structured JSON logs (pino), one object per line, carrying business ids (merchantId, checkoutId,
// customerId) so one payment can be followed across API, workflow and activities. Secrets, card
// tokens and API keys are never passed in; the redaction below is the second line of defence for
// a field that slips through. debug and info go to stdout, warn and error to stderr.
import { pino, type Logger as PinoLogger } from 'pino';

export type Level = 'debug' | 'info' | 'warn' | 'error';

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  child(fields: Record<string, unknown>): Logger;
}

/** Fields that carry a secret wherever they appear (one level deep too): replaced, never written. */
const REDACTED = ['authorization', 'apiKey', 'token', 'secret', 'cardToken', 'accountNumber'].flatMap((field) => [field, `*.${field}`]);

/** Amounts are bigints in code and decimal strings on the wire and in the logs, as in JSON answers. */
function withBigintsAsStrings(value: unknown): unknown {
  if (typeof value === 'bigint') return value.toString();
  if (Array.isArray(value)) return value.map(withBigintsAsStrings);
  if (value !== null && typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, withBigintsAsStrings(v)]));
  }
  return value;
}

export function createLogger(component: string, level: Level = 'info', base: Record<string, unknown> = {}): Logger {
  const root = pino(
    {
      level,
      base: { component },
      messageKey: 'msg',
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: {
        level: (label) => ({ level: label }),
        log: (fields) => withBigintsAsStrings(fields) as Record<string, unknown>,
      },
      redact: { paths: REDACTED, censor: '[redacted]' },
    },
    pino.multistream(
      [
        { level: 'debug', stream: process.stdout },
        { level: 'warn', stream: process.stderr },
      ],
      { dedupe: true },
    ),
  );
  return wrap(root, Object.keys(base).length > 0 ? base : undefined);
}

/**
 * Our interface over the pino logger. A child only gathers its fields, merged into each line it
 * writes (a line's own field wins over a child's of the same name, so no key is written twice):
 * the loggers every request makes cost nothing while their level is off (debug, in production).
 */
function wrap(root: PinoLogger, fields?: Record<string, unknown>): Logger {
  const at =
    (level: Level) =>
    (msg: string, extra?: Record<string, unknown>): void => {
      if (root.isLevelEnabled(level)) root[level]({ ...fields, ...extra }, msg);
    };
  return {
    debug: at('debug'),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
    child: (more) => wrap(root, { ...fields, ...more }),
  };
}
