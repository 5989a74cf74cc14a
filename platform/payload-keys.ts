// The keys that encrypt workflow payloads (platform/payload-codec.ts), read from one setting:
// PAYLOAD_ENCRYPTION_KEYS = `id:base64key,id:base64key,...`, newest first. The first encrypts; every
// one decrypts, so a new key is rolled out by putting it in front and an old one is dropped once no
// history encrypted with it is kept any more. Kept apart from the codec so the config loader (which
// every process, simulators included, runs) needs nothing but node:crypto.
import { randomBytes } from 'node:crypto';

export interface PayloadKey {
  /** Written into every payload it encrypts (`encryption-key-id`), so a reader knows which key to use. */
  id: string;
  /** 32 bytes: AES-256. */
  key: Buffer;
}

export const PAYLOAD_KEYS_SETTING = 'PAYLOAD_ENCRYPTION_KEYS';
const KEY_ID = /^[A-Za-z0-9._-]{1,64}$/;
const KEY_BYTES = 32;

/**
 * Parses `id:base64key,...` (newest first). Throws one line naming the entry at fault and never
 * echoing key material, since the message ends up in logs and terminals.
 */
export function parsePayloadKeys(raw: string, setting = PAYLOAD_KEYS_SETTING): PayloadKey[] {
  const entries = raw.split(',').map((e) => e.trim());
  const keys: PayloadKey[] = [];
  const fail = (why: string): never => {
    throw new Error(`${setting} ${why}; expected comma-separated id:base64key entries, newest first (a key: \`openssl rand -base64 32\`)`);
  };
  entries.forEach((entry, i) => {
    const where = `entry ${i + 1}`;
    if (entry === '') fail(`has an empty ${where}`);
    const colon = entry.indexOf(':');
    if (colon < 0) fail(`${where} has no ":" between the key id and the key`);
    const id = entry.slice(0, colon);
    const encoded = entry.slice(colon + 1);
    if (!KEY_ID.test(id)) fail(`${where} has the key id "${id.slice(0, 64)}", which is not 1 to 64 letters, digits, ".", "_" or "-"`);
    if (keys.some((k) => k.id === id)) fail(`names the key id "${id}" twice; each key needs an id of its own`);
    const key = Buffer.from(encoded, 'base64');
    // Buffer.from skips what is not base64: re-encoding tells a typo from a key.
    if (encoded === '' || key.toString('base64') !== encoded) fail(`has a key for "${id}" that is not standard base64 (with = padding)`);
    if (key.length !== KEY_BYTES) fail(`has a key for "${id}" of ${key.length} bytes; AES-256 needs ${KEY_BYTES}`);
    keys.push({ id, key });
  });
  return keys;
}

/** The setting's value for `keys` (as the launcher hands them to its children). */
export function formatPayloadKeys(keys: readonly PayloadKey[]): string {
  return keys.map((k) => `${k.id}:${k.key.toString('base64')}`).join(',');
}

/**
 * A fresh key with an id that will not collide with an earlier one of the same DATA_DIR: `dev-`, the
 * date and random hex (ids only need to be unique among the keys configured together).
 */
export function newPayloadKey(prefix = 'dev', now = new Date()): PayloadKey {
  const day = now.toISOString().slice(0, 10).replaceAll('-', '');
  return { id: `${prefix}-${day}-${randomBytes(4).toString('hex')}`, key: randomBytes(KEY_BYTES) };
}
