// The payload codec (platform/payload-codec.ts) and its keys (platform/payload-keys.ts): what leaves
// a process is ciphertext under the newest key, anything any configured key wrote reads back, and
// everything else (an unknown key, altered bytes, a bad setting) fails with a message that says what
// to do, never showing key material.
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { ApplicationFailure, defaultPayloadConverter, METADATA_ENCODING_KEY, type FailureConverter, type Payload } from '@temporalio/common';
import { decodeFailure, encodeFailure } from '@temporalio/common/lib/internal-non-workflow/codec-helpers.js';
import { loadConfig } from '../platform/config.js';
import {
  dataConverter,
  ENCRYPTED_ENCODING,
  EncryptionCodec,
  FAILURE_CONVERTER_PATH,
  KEY_ID_METADATA,
  PayloadDecryptionError,
} from '../platform/payload-codec.js';
import { formatPayloadKeys, newPayloadKey, parsePayloadKeys, type PayloadKey } from '../platform/payload-keys.js';

const text = (bytes: Uint8Array | null | undefined) => new TextDecoder().decode(bytes ?? new Uint8Array());
const CARD = { customerId: 'cus_secret_42', payment: { method: 'card', token: 'tok_visa_4242424242424242' } };
const plain = (): Payload => defaultPayloadConverter.toPayload(CARD);
const key = (id: string): PayloadKey => ({ ...newPayloadKey(), id });

describe('EncryptionCodec', () => {
  it('encrypts the whole payload under the newest key and decrypts it back byte for byte', async () => {
    const [k2, k1] = [key('k2'), key('k1')];
    const codec = new EncryptionCodec([k2, k1]);
    const original = plain();
    const [sealed] = await codec.encode([original]);

    expect(Object.keys(sealed!.metadata!).sort()).toEqual([KEY_ID_METADATA, METADATA_ENCODING_KEY].sort());
    expect(text(sealed!.metadata![METADATA_ENCODING_KEY])).toBe(ENCRYPTED_ENCODING);
    expect(text(sealed!.metadata![KEY_ID_METADATA])).toBe('k2');
    // Neither the value nor the original metadata (json/plain) is readable in what Temporal stores.
    for (const needle of ['tok_visa_4242424242424242', 'cus_secret_42', 'json/plain']) {
      expect(Buffer.from(sealed!.data!).includes(needle)).toBe(false);
    }
    // A 96-bit IV, the ciphertext of the whole payload (its data and metadata), a 128-bit tag.
    expect(sealed!.data!.length).toBeGreaterThan(12 + original.data!.length + 'json/plain'.length + 16);

    const [back] = await codec.decode([sealed!]);
    expect(text(back!.metadata![METADATA_ENCODING_KEY])).toBe('json/plain');
    expect(Buffer.from(back!.data!).equals(Buffer.from(original.data!))).toBe(true);
    expect(defaultPayloadConverter.fromPayload(back!)).toEqual(CARD);
  });

  it('draws a fresh IV for every payload: the same value never encrypts to the same bytes', async () => {
    const codec = new EncryptionCodec([key('k1')]);
    const [a, b] = await codec.encode([plain(), plain()]);
    expect(Buffer.from(a!.data!).subarray(0, 12).equals(Buffer.from(b!.data!).subarray(0, 12))).toBe(false);
    expect(Buffer.from(a!.data!).equals(Buffer.from(b!.data!))).toBe(false);
  });

  it('keeps empty data and several metadata entries through a round trip', async () => {
    const codec = new EncryptionCodec([key('k1')]);
    const empty: Payload = { metadata: { [METADATA_ENCODING_KEY]: new TextEncoder().encode('binary/null'), extra: new Uint8Array([0, 1, 2]) }, data: new Uint8Array() };
    const [back] = await codec.decode(await codec.encode([empty]));
    expect(text(back!.metadata![METADATA_ENCODING_KEY])).toBe('binary/null');
    expect([...back!.metadata!.extra!]).toEqual([0, 1, 2]);
    expect(back!.data!.length).toBe(0);
  });

  it('rotates without downtime: payloads of the old key still decrypt once a new key is in front, new ones use the new key', async () => {
    const [old, fresh] = [key('2026-01'), key('2026-06')];
    const before = new EncryptionCodec([old]);
    const after = new EncryptionCodec([fresh, old]);
    const [written] = await before.encode([plain()]);

    expect(defaultPayloadConverter.fromPayload((await after.decode([written!]))[0]!)).toEqual(CARD);
    const [rewritten] = await after.encode([plain()]);
    expect(text(rewritten!.metadata![KEY_ID_METADATA])).toBe('2026-06');
    expect(after.keyId).toBe('2026-06');
    // A process not yet given the new key fails on the new payloads, saying which key it lacks.
    await expect(before.decode([rewritten!])).rejects.toThrow(PayloadDecryptionError);
  });

  it('fails clearly on a payload under a key it does not have, naming the key and the keys it has', async () => {
    const [sealed] = await new EncryptionCodec([key('gone')]).encode([plain()]);
    const err = await new EncryptionCodec([key('k2'), key('k1')]).decode([sealed!]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PayloadDecryptionError);
    expect((err as Error).message).toMatch(/key "gone", which PAYLOAD_ENCRYPTION_KEYS does not have \(it has k2, k1\)/);
  });

  it('refuses altered ciphertext, an altered tag, an altered IV, a truncated payload and a payload relabelled with another key', async () => {
    const [k1, k2] = [key('k1'), key('k2')];
    const codec = new EncryptionCodec([k1, k2]);
    const [sealed] = await codec.encode([plain()]);
    const flipped = (at: number): Payload => {
      const data = Buffer.from(sealed!.data!);
      data[at] = data[at]! ^ 0x01;
      return { metadata: sealed!.metadata!, data };
    };
    const length = sealed!.data!.length;
    for (const altered of [flipped(20), flipped(length - 1), flipped(0)]) {
      await expect(codec.decode([altered])).rejects.toThrow(/k1" failed authentication: it was altered/);
    }
    await expect(codec.decode([{ metadata: sealed!.metadata!, data: sealed!.data!.subarray(0, 20) }])).rejects.toThrow(/too short/);
    const relabelled = { metadata: { ...sealed!.metadata!, [KEY_ID_METADATA]: new TextEncoder().encode('k2') }, data: sealed!.data! };
    await expect(codec.decode([relabelled])).rejects.toThrow(/k2" failed authentication/);
    const unlabelled = { metadata: { [METADATA_ENCODING_KEY]: sealed!.metadata![METADATA_ENCODING_KEY]! }, data: sealed!.data! };
    await expect(codec.decode([unlabelled])).rejects.toThrow(/carries no encryption-key-id/);
  });

  it('passes payloads without the encrypted encoding through unchanged (histories written before encryption)', async () => {
    const codec = new EncryptionCodec([key('k1')]);
    const old = plain();
    const bare: Payload = { data: new TextEncoder().encode('no metadata') };
    const [a, b] = await codec.decode([old, bare]);
    expect(a).toBe(old);
    expect(b).toBe(bare);
  });
});

describe('failure messages', () => {
  it('are moved into an encoded attribute the codec encrypts, and come back on decoding', async () => {
    const require = createRequire(import.meta.url);
    const { failureConverter } = require(FAILURE_CONVERTER_PATH) as { failureConverter: FailureConverter };
    const codec = new EncryptionCodec([key('k1')]);
    const message = 'insufficient funds on wallet:demo:cus_secret_42:JPY';
    const failure = failureConverter.errorToFailure(ApplicationFailure.create({ type: 'InsufficientFunds', message }), defaultPayloadConverter);
    const stored = await encodeFailure([codec], failure);

    expect(stored.message).not.toContain('cus_secret');
    expect(JSON.stringify(stored)).not.toContain('cus_secret');
    expect(text(stored.encodedAttributes!.metadata![METADATA_ENCODING_KEY])).toBe(ENCRYPTED_ENCODING);
    const read = failureConverter.failureToError(await decodeFailure([codec], stored), defaultPayloadConverter);
    expect(read).toBeInstanceOf(ApplicationFailure);
    expect((read as ApplicationFailure).message).toBe(message);
    expect((read as ApplicationFailure).type).toBe('InsufficientFunds');
  });
});

describe('PAYLOAD_ENCRYPTION_KEYS', () => {
  const k = (n: number) => Buffer.alloc(32, n).toString('base64');

  it('reads id:base64key entries, newest first, and formats them back', () => {
    const raw = `2026-06:${k(2)}, 2026-01:${k(1)}`;
    const keys = parsePayloadKeys(raw);
    expect(keys.map((x) => x.id)).toEqual(['2026-06', '2026-01']);
    expect(keys[0]!.key.equals(Buffer.alloc(32, 2))).toBe(true);
    expect(formatPayloadKeys(keys)).toBe(`2026-06:${k(2)},2026-01:${k(1)}`);
    expect(parsePayloadKeys(formatPayloadKeys([newPayloadKey()]))).toHaveLength(1);
  });

  it.each([
    ['an empty entry', `a:${k(1)},`, /has an empty entry 2/],
    ['no colon', k(1), /entry 1 has no ":"/],
    ['a bad id', `bad id:${k(1)}`, /key id "bad id", which is not 1 to 64 letters/],
    ['a duplicate id', `a:${k(1)},a:${k(2)}`, /names the key id "a" twice/],
    ['a short key', `a:${Buffer.alloc(16, 7).toString('base64')}`, /key for "a" of 16 bytes; AES-256 needs 32/],
    ['a key that is not base64', `a:${k(1).slice(0, -2)}!!`, /key for "a" that is not standard base64/],
    ['an empty key', 'a:', /key for "a" that is not standard base64/],
  ])('refuses %s in one line that never shows the key', (_what, raw, message) => {
    const err = (() => {
      try {
        loadConfig({ PAYLOAD_ENCRYPTION_KEYS: raw });
      } catch (e) {
        return e as Error;
      }
      return undefined;
    })();
    expect(err?.message).toMatch(message);
    expect(err?.message).toMatch(/^PAYLOAD_ENCRYPTION_KEYS /);
    expect(err?.message).not.toContain('\n');
    for (const part of raw.split(/[,:]/)) if (part.length >= 16) expect(err?.message).not.toContain(part.slice(0, 16));
  });

  it('is required before anything may talk to Temporal', () => {
    expect(() => dataConverter(loadConfig({}))).toThrow(/PAYLOAD_ENCRYPTION_KEYS is not set, and workflow payloads would be written in plain text/);
    expect(dataConverter(loadConfig({ PAYLOAD_ENCRYPTION_KEYS: `a:${k(1)}` })).payloadCodecs).toHaveLength(1);
  });
});
