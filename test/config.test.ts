// Settings that reach a workflow or guard the operator's powers are checked when a process loads its
// configuration: a bad one stops it at start with a message naming the variable, instead of
// scheduling reconciliations or webhook deliveries whose every run fails, or accepting an operator
// key anyone could guess. The operator key's value never appears in the message.
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../platform/config.js';
import { newOperatorApiKey } from '../scripts/dev-secrets.js';

describe('configuration', () => {
  it('takes an operator key long enough not to be guessed, and none by default', () => {
    expect(loadConfig({}).operator.apiKey).toBeUndefined();
    const key = newOperatorApiKey();
    expect(loadConfig({ OPERATOR_API_KEY: key }).operator.apiKey).toBe(key);
    for (const bad of ['sk_op_short', `sk_op_${'a'.repeat(20)} ${'b'.repeat(20)}`, 'x'.repeat(257), `sk_op_${'é'.repeat(40)}`]) {
      let message = '';
      try {
        loadConfig({ OPERATOR_API_KEY: bad });
      } catch (err) {
        message = (err as Error).message;
      }
      expect(message).toMatch(/^OPERATOR_API_KEY must be 32 to 256 visible ASCII characters/);
      expect(message).not.toContain(bad);
    }
    const shared = `sk_test_${'d'.repeat(40)}`;
    expect(() => loadConfig({ OPERATOR_API_KEY: shared, DEMO_API_KEY: shared })).toThrow(/OPERATOR_API_KEY must differ from DEMO_API_KEY/);
  });

  it('refuses webhook retry intervals Temporal would refuse, and a reconciliation wait the workflow would', () => {
    expect(loadConfig({}).webhooks).toMatchObject({ retryInitialIntervalMs: 30_000, retryMaximumIntervalMs: 3_600_000 });
    expect(() => loadConfig({ WEBHOOK_RETRY_INITIAL_INTERVAL_MS: '0' })).toThrow(/WEBHOOK_RETRY_INITIAL_INTERVAL_MS/);
    expect(() => loadConfig({ WEBHOOK_RETRY_INITIAL_INTERVAL_MS: '5000', WEBHOOK_RETRY_MAX_INTERVAL_MS: '1000' })).toThrow(/WEBHOOK_RETRY_MAX_INTERVAL_MS/);
    expect(() => loadConfig({ WEBHOOK_RETRY_MAX_INTERVAL_MS: String(4 * 86_400_000) })).toThrow(/WEBHOOK_RETRY_MAX_INTERVAL_MS/);
    expect(loadConfig({ WEBHOOK_RETRY_INITIAL_INTERVAL_MS: '500', WEBHOOK_RETRY_MAX_INTERVAL_MS: '1000' }).webhooks).toMatchObject({ retryInitialIntervalMs: 500, retryMaximumIntervalMs: 1000 });
    expect(loadConfig({ RECONCILIATION_OLDER_THAN_MS: String(366 * 86_400_000) }).reconciliation.olderThanMs).toBe(366 * 86_400_000);
    expect(() => loadConfig({ RECONCILIATION_OLDER_THAN_MS: String(366 * 86_400_000 + 1) })).toThrow(/RECONCILIATION_OLDER_THAN_MS must be at most/);
  });

  it('names the variable and its value in one line, except for secrets, whose value never appears', () => {
    const messageOf = (env: NodeJS.ProcessEnv) => {
      try {
        loadConfig(env);
      } catch (err) {
        return (err as Error).message;
      }
      return 'accepted';
    };
    expect(messageOf({ API_PORT: 'eighty' })).toBe('API_PORT must be a non-negative integer, got "eighty"');
    expect(messageOf({ LOG_LEVEL: 'loud' })).toBe('LOG_LEVEL must be debug, info, warn or error, got "loud"');
    expect(messageOf({ IDEMPOTENCY_KEY_TTL_HOURS: '12' })).toBe('IDEMPOTENCY_KEY_TTL_HOURS must be an integer of at least 24, got "12"');
    const token = 'not/a/token';
    expect(messageOf({ CODEC_UI_TOKEN: token })).toBe('CODEC_UI_TOKEN must be 32 to 128 letters, digits, "_" or "-"');
    const keys = 'k1:c2VjcmV0';
    const keysMessage = messageOf({ PAYLOAD_ENCRYPTION_KEYS: keys });
    expect(keysMessage).toMatch(/^PAYLOAD_ENCRYPTION_KEYS has a key for "k1" of 6 bytes/);
    expect(keysMessage).not.toContain('c2VjcmV0');
    // Unset and empty both mean the default.
    expect(loadConfig({ API_PORT: '' }).api.port).toBe(3000);
  });
});
