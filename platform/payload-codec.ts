// Every payload our clients and workers hand to Temporal (workflow inputs and results, activity
// arguments and results, update and signal arguments, failure messages) is encrypted here first, so
// card tokens, bank account numbers, webhook secrets and customer ids never sit in plain text in
// Temporal's database or its Web UI. AES-256-GCM with a random 96-bit IV per payload; the whole
// payload (its metadata too) is encrypted and wrapped in a new one whose metadata says only
// `binary/encrypted` and which key was used. The newest configured key encrypts, every configured
// key decrypts (platform/payload-keys.ts), and a payload without that encoding (histories written
// before encryption, search attributes never pass through here) is passed through unchanged.
//
// One factory, payloadDataConverter, is what every Client, Worker and test environment is given;
// the codec server (codec-server/) uses the same codec for the Web UI and the CLI.
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { METADATA_ENCODING_KEY, ValueError, type DataConverter, type Payload, type PayloadCodec } from '@temporalio/common';
import protobuf from 'protobufjs/minimal.js';
import type { Config } from './config.js';
import { PAYLOAD_KEYS_SETTING, type PayloadKey } from './payload-keys.js';

export const ENCRYPTED_ENCODING = 'binary/encrypted';
export const KEY_ID_METADATA = 'encryption-key-id';

const IV_BYTES = 12;
const TAG_BYTES = 16;
const text = new TextEncoder();
const untext = new TextDecoder();

/** A payload that cannot be decrypted here: its key is not configured, or it was altered. */
export class PayloadDecryptionError extends ValueError {}

/**
 * The failure converter workers and clients load (by path, as the SDK requires, also into the
 * workflow bundle): failure messages and stack traces go into an encoded attribute that this codec
 * encrypts, since a message can name an account (`wallet:<merchant>:<customer>:...`) or echo input.
 */
export const FAILURE_CONVERTER_PATH = fileURLToPath(new URL('./failure-converter.cjs', import.meta.url));

export class EncryptionCodec implements PayloadCodec {
  private readonly keys: ReadonlyMap<string, Buffer>;
  private readonly current: PayloadKey;

  constructor(keys: readonly PayloadKey[]) {
    const [newest] = keys;
    if (!newest) throw new Error(`${PAYLOAD_KEYS_SETTING} has no key: payloads cannot be encrypted`);
    this.current = newest;
    this.keys = new Map(keys.map((k) => [k.id, k.key]));
  }

  /** The id of the key new payloads are encrypted with. */
  get keyId(): string {
    return this.current.id;
  }

  async encode(payloads: Payload[]): Promise<Payload[]> {
    return payloads.map((payload) => this.encrypt(payload));
  }

  async decode(payloads: Payload[]): Promise<Payload[]> {
    return payloads.map((payload) => this.decrypt(payload));
  }

  private encrypt(payload: Payload): Payload {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.current.key, iv);
    const sealed = Buffer.concat([iv, cipher.update(serializePayload(payload)), cipher.final(), cipher.getAuthTag()]);
    return {
      metadata: { [METADATA_ENCODING_KEY]: text.encode(ENCRYPTED_ENCODING), [KEY_ID_METADATA]: text.encode(this.current.id) },
      data: sealed,
    };
  }

  private decrypt(payload: Payload): Payload {
    const encoding = payload.metadata?.[METADATA_ENCODING_KEY];
    if (!encoding || untext.decode(encoding) !== ENCRYPTED_ENCODING) return payload;
    const idBytes = payload.metadata?.[KEY_ID_METADATA];
    if (!idBytes) throw new PayloadDecryptionError(`an encrypted payload carries no ${KEY_ID_METADATA}: it was not written by this codec`);
    const id = untext.decode(idBytes);
    const key = this.keys.get(id);
    if (!key) {
      throw new PayloadDecryptionError(
        `a payload is encrypted with key "${id.slice(0, 64)}", which ${PAYLOAD_KEYS_SETTING} does not have (it has ${[...this.keys.keys()].join(', ')}): ` +
          'add that key back (after the newest) to read it',
      );
    }
    const data = payload.data ?? new Uint8Array();
    if (data.length < IV_BYTES + TAG_BYTES) throw new PayloadDecryptionError(`a payload encrypted with key "${id}" is too short to be one`);
    const sealed = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    const decipher = createDecipheriv('aes-256-gcm', key, sealed.subarray(0, IV_BYTES));
    decipher.setAuthTag(sealed.subarray(sealed.length - TAG_BYTES));
    let plain: Buffer;
    try {
      plain = Buffer.concat([decipher.update(sealed.subarray(IV_BYTES, sealed.length - TAG_BYTES)), decipher.final()]);
    } catch {
      throw new PayloadDecryptionError(`a payload encrypted with key "${id}" failed authentication: it was altered, or the key under that id is not the one it was written with`);
    }
    return deserializePayload(plain);
  }
}

/** What every Client, Worker and test environment is given: payloads encrypted with `keys`. */
export function payloadDataConverter(keys: readonly PayloadKey[]): DataConverter {
  return { payloadCodecs: [new EncryptionCodec(keys)], failureConverterPath: FAILURE_CONVERTER_PATH };
}

/**
 * The keys of a process's configuration. Without keys nothing may talk to Temporal: whatever it
 * wrote would be readable by anyone who reads Temporal's database or Web UI.
 */
export function configuredPayloadKeys(config: Pick<Config, 'payloadEncryption'>): readonly PayloadKey[] {
  if (config.payloadEncryption.keys.length === 0) {
    throw new Error(
      `${PAYLOAD_KEYS_SETTING} is not set, and workflow payloads would be written in plain text: set it (comma-separated id:base64key, newest first), ` +
        'or use `npm start`, which makes a development key once and keeps it in DATA_DIR/secrets/payload-encryption-keys',
    );
  }
  return config.payloadEncryption.keys;
}

/** The data converter for a process's configuration (see configuredPayloadKeys). */
export function dataConverter(config: Pick<Config, 'payloadEncryption'>): DataConverter {
  return payloadDataConverter(configuredPayloadKeys(config));
}

// The Payload protobuf (temporal.api.common.v1.Payload: map<string, bytes> metadata = 1; bytes
// data = 2), written and read with protobufjs, which the project depends on directly; the
// generated message classes of @temporalio/proto are not importable as ES modules.

function serializePayload(payload: Payload): Uint8Array {
  const writer = protobuf.Writer.create();
  for (const [key, value] of Object.entries(payload.metadata ?? {})) {
    writer.uint32((1 << 3) | 2).fork();
    writer.uint32((1 << 3) | 2).string(key);
    writer.uint32((2 << 3) | 2).bytes(value ?? new Uint8Array());
    writer.ldelim();
  }
  if (payload.data && payload.data.length > 0) writer.uint32((2 << 3) | 2).bytes(payload.data);
  return writer.finish();
}

function deserializePayload(bytes: Uint8Array): Payload {
  const reader = protobuf.Reader.create(bytes);
  const metadata: Record<string, Uint8Array> = {};
  let data: Uint8Array = new Uint8Array();
  while (reader.pos < reader.len) {
    const tag = reader.uint32();
    const field = tag >>> 3;
    if (field === 1 && (tag & 7) === 2) {
      const end = reader.uint32() + reader.pos;
      let key = '';
      let value: Uint8Array = new Uint8Array();
      while (reader.pos < end) {
        const entryTag = reader.uint32();
        if (entryTag >>> 3 === 1) key = reader.string();
        else if (entryTag >>> 3 === 2) value = reader.bytes();
        else reader.skipType(entryTag & 7);
      }
      metadata[key] = value;
    } else if (field === 2 && (tag & 7) === 2) {
      data = reader.bytes();
    } else {
      reader.skipType(tag & 7);
    }
  }
  return { metadata, data };
}
