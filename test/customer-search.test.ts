// The CustomerId search attribute (platform/customer-search.ts): filterable, since one customer of
// one merchant always gets the same value under a key, and never the customer id itself, nor
// anything computable from a guessed id without the key.
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../platform/config.js';
import { createCustomerSearch } from '../platform/customer-search.js';
import { formatPayloadKeys, newPayloadKey } from '../platform/payload-keys.js';

const config = loadConfig();

describe('customer search attribute', () => {
  it('is the same for every payment of a customer, different across merchants, customers and keys, and never the id', () => {
    const [k1, k2] = [newPayloadKey(), newPayloadKey()];
    const search = createCustomerSearch([k1]);
    const value = search.value('demo', 'alice@example.com');
    expect(value).toMatch(/^cref_[0-9a-f]{32}$/);
    expect(search.value('demo', 'alice@example.com')).toBe(value);
    expect(search.value('other', 'alice@example.com')).not.toBe(value);
    expect(search.value('demo', 'bob@example.com')).not.toBe(value);
    expect(createCustomerSearch([k2]).value('demo', 'alice@example.com')).not.toBe(value);
    // Merchant and customer are not simply joined: moving a character across the boundary changes it.
    expect(search.value('dem', 'oalice@example.com')).not.toBe(value);
  });

  it('is written under the newest key, and the filter finds payments written under every configured key', () => {
    const [old, fresh] = [newPayloadKey(), newPayloadKey()];
    const before = createCustomerSearch([old]).value('demo', 'cus_1');
    const rotated = createCustomerSearch([fresh, old]);
    const after = rotated.value('demo', 'cus_1');
    expect(after).toBe(createCustomerSearch([fresh]).value('demo', 'cus_1'));
    expect(rotated.filter('demo', 'cus_1')).toBe(`MerchantId = "demo" AND CustomerId IN ("${after}", "${before}")`);
  });

  it('npm run customer-filter prints the filter from the keys npm start keeps under DATA_DIR', async () => {
    const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'customer-filter-'));
    try {
      const keys = [newPayloadKey(), newPayloadKey()];
      await fs.mkdir(path.join(dataDir, 'secrets'));
      await fs.writeFile(path.join(dataDir, 'secrets', 'payload-encryption-keys'), `${formatPayloadKeys(keys)}\n`);
      const env = { ...process.env, DATA_DIR: dataDir, PAYLOAD_ENCRYPTION_KEYS: '' };
      const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', 'scripts/customer-filter.ts', 'demo', 'cus 1'], { cwd: config.rootDir, env });
      expect(stdout).toBe(`${createCustomerSearch(keys).filter('demo', 'cus 1')}\n`);
      expect(stdout).not.toContain('cus 1');
    } finally {
      await fs.rm(dataDir, { recursive: true, force: true });
    }
  });
});
