// `npm run customer-filter -- <merchant id> <customer id>`: prints the Web UI / `temporal workflow
// list --query` filter that finds one customer's payments. The CustomerId search attribute holds a
// keyed pseudonym, never the id (platform/customer-search.ts); this computes it under every payload
// key, from PAYLOAD_ENCRYPTION_KEYS or the key `npm start` keeps under DATA_DIR/secrets.
import fs from 'node:fs/promises';
import path from 'node:path';
import { loadConfig } from '../platform/config.js';
import { createCustomerSearch } from '../platform/customer-search.js';
import { parsePayloadKeys } from '../platform/payload-keys.js';

function fail(message: string): never {
  process.stderr.write(`customer-filter: ${message}\n`);
  process.exit(2);
}

const [merchantId, customerId, ...extra] = process.argv.slice(2);
if (!merchantId || !customerId || extra.length > 0) fail('usage: npm run customer-filter -- <merchant id> <customer id>');
const config = (() => {
  try {
    return loadConfig();
  } catch (err) {
    return fail((err as Error).message);
  }
})();
let keys = config.payloadEncryption.keys;
if (keys.length === 0) {
  const file = path.join(config.dataDir, 'secrets', 'payload-encryption-keys');
  const line = await fs.readFile(file, 'utf8').catch(() => fail(`PAYLOAD_ENCRYPTION_KEYS is not set and ${file} cannot be read (has \`npm start\` run here?)`));
  keys = (() => {
    try {
      return parsePayloadKeys(line.trim(), file);
    } catch (err) {
      return fail((err as Error).message);
    }
  })();
}
process.stdout.write(`${createCustomerSearch(keys).filter(merchantId, customerId)}\n`);
