// The codec server (codec-server/app.ts): Temporal's remote codec protocol for the operator (Bearer
// operator key) and for the Web UI (its secret path, from its own origin only), and nothing for
// anyone else: no key, a wrong key, another browser origin, a bad or oversized body each get a 4xx
// that carries no payload.
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultPayloadConverter, type Payload } from '@temporalio/common';
import { JSONToPayload, payloadToJSON } from '@temporalio/common/lib/proto-utils.js';
import { createCodecApp, MAX_BODY_BYTES } from '../codec-server/app.js';
import type { Logger } from '../platform/logger.js';
import { EncryptionCodec } from '../platform/payload-codec.js';
import { newPayloadKey } from '../platform/payload-keys.js';

const OPERATOR_KEY = `sk_op_${randomBytes(24).toString('hex')}`;
const UI_TOKEN = randomBytes(32).toString('base64url');
const UI_ORIGIN = 'http://127.0.0.1:8233';
const SECRET = { customerId: 'cus_codec_secret', payment: { method: 'card', token: 'tok_codec_4242' } };
const key = (id: string) => ({ ...newPayloadKey(), id });
const keys = [key('k2'), key('k1')];
const codec = new EncryptionCodec(keys);

const logLines: string[] = [];
const line = (msg: string, fields?: Record<string, unknown>) => void logLines.push(JSON.stringify({ msg, fields }));
const logger: Logger = { debug: line, info: line, warn: line, error: line, child: () => logger };

let server: Server;
let base: string;
let withoutUi: Server;
let withoutUiBase: string;

async function listen(app: Parameters<typeof createServer>[1]): Promise<[Server, string]> {
  const s = createServer(app);
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  return [s, `http://127.0.0.1:${(s.address() as AddressInfo).port}`];
}

beforeAll(async () => {
  [server, base] = await listen(createCodecApp({ codec, operatorKey: OPERATOR_KEY, uiToken: UI_TOKEN, uiOrigins: [UI_ORIGIN, 'http://localhost:8233'], logger }));
  [withoutUi, withoutUiBase] = await listen(createCodecApp({ codec, operatorKey: OPERATOR_KEY, uiToken: undefined, uiOrigins: [UI_ORIGIN], logger }));
});

afterAll(async () => {
  for (const s of [server, withoutUi]) {
    s?.closeAllConnections();
    await new Promise((resolve) => s?.close(resolve));
  }
});

const asJson = (payloads: Payload[]) => ({ payloads: payloads.map(payloadToJSON) });
const operator = { authorization: `Bearer ${OPERATOR_KEY}`, 'content-type': 'application/json' };

async function post(path: string, body: unknown, headers: Record<string, string> = operator, url = base) {
  const res = await fetch(`${url}${path}`, { method: 'POST', headers, body: typeof body === 'string' ? body : JSON.stringify(body) });
  const text = await res.text();
  return { status: res.status, headers: res.headers, text, body: text ? (JSON.parse(text) as { payloads?: unknown[]; error?: string }) : undefined };
}

const decoded = (body: { payloads?: unknown[] } | undefined) => (body?.payloads ?? []).map((p) => defaultPayloadConverter.fromPayload(JSONToPayload(p as object)));

describe('codec server, operator door', () => {
  it('encodes and decodes with the operator key: what /encode returns is ciphertext under the newest key, /decode gives the value back', async () => {
    const encoded = await post('/encode', asJson([defaultPayloadConverter.toPayload(SECRET), defaultPayloadConverter.toPayload('second')]));
    expect(encoded.status).toBe(200);
    expect(encoded.text).not.toContain(Buffer.from('tok_codec_4242').toString('base64').slice(0, 12));
    const stored = (encoded.body!.payloads as object[]).map((p) => JSONToPayload(p));
    expect(stored.map((p) => new TextDecoder().decode(p.metadata!['encryption-key-id']))).toEqual(['k2', 'k2']);
    expect(stored.every((p) => !Buffer.from(p.data!).includes('tok_codec_4242'))).toBe(true);
    // What the workers' codec wrote, the server reads, and the other way round.
    expect(defaultPayloadConverter.fromPayload((await codec.decode([stored[0]!]))[0]!)).toEqual(SECRET);

    const back = await post('/decode', encoded.body);
    expect(back.status).toBe(200);
    expect(decoded(back.body)).toEqual([SECRET, 'second']);
    // The CLI's `{namespace}` templating puts a prefix in front: only the last segment counts.
    expect(decoded((await post('/default/decode', encoded.body)).body)).toEqual([SECRET, 'second']);
  });

  it('passes payloads that are not encrypted through /decode unchanged', async () => {
    const res = await post('/decode', asJson([defaultPayloadConverter.toPayload(SECRET)]));
    expect(res.status).toBe(200);
    expect(decoded(res.body)).toEqual([SECRET]);
  });

  it('answers 401 without a key and 403 with a wrong one, with no payload in the answer', async () => {
    const [sealed] = await codec.encode([defaultPayloadConverter.toPayload(SECRET)]);
    const body = asJson([sealed!]);
    const none = await post('/decode', body, { 'content-type': 'application/json' });
    expect(none.status).toBe(401);
    expect(none.headers.get('www-authenticate')).toMatch(/^Bearer/);
    const wrong = await post('/decode', body, { ...operator, authorization: `Bearer sk_op_${'0'.repeat(48)}` });
    expect(wrong.status).toBe(403);
    const malformed = await post('/decode', body, { ...operator, authorization: OPERATOR_KEY });
    expect(malformed.status).toBe(403);
    const onEncode = await post('/encode', asJson([defaultPayloadConverter.toPayload(SECRET)]), { ...operator, authorization: 'Bearer nope' });
    expect(onEncode.status).toBe(403);
    for (const res of [none, wrong, malformed, onEncode]) {
      expect(res.body?.payloads).toBeUndefined();
      expect(res.text).not.toContain('cus_codec_secret');
    }
  });

  it('refuses bad bodies with 4xx: not JSON, not the protocol, not base64, another content type, over the size limit', async () => {
    expect((await post('/decode', '{"payloads": [')).status).toBe(400);
    expect((await post('/decode', {})).status).toBe(400);
    expect((await post('/decode', { payloads: 'x' })).status).toBe(400);
    expect((await post('/decode', { payloads: [1] })).status).toBe(400);
    expect((await post('/decode', [])).status).toBe(400);
    const notBase64 = await post('/decode', { payloads: [{ metadata: { encoding: 'not base64!' }, data: '***' }] });
    expect(notBase64.status).toBe(400);
    expect(notBase64.body?.error).toMatch(/payloads\[0\] is not a payload/);
    expect((await post('/decode', 'payloads=1', { ...operator, 'content-type': 'application/x-www-form-urlencoded' })).status).toBe(415);
    const huge = await post('/decode', JSON.stringify({ payloads: [{ data: 'A'.repeat(MAX_BODY_BYTES) }] }));
    expect(huge.status).toBe(413);
  });

  it('refuses to decode what no configured key wrote, or what was altered, saying why', async () => {
    const [foreign] = await new EncryptionCodec([key('elsewhere')]).encode([defaultPayloadConverter.toPayload(SECRET)]);
    const unknown = await post('/decode', asJson([foreign!]));
    expect(unknown.status).toBe(400);
    expect(unknown.body?.error).toMatch(/key "elsewhere", which PAYLOAD_ENCRYPTION_KEYS does not have/);
    const [sealed] = await codec.encode([defaultPayloadConverter.toPayload(SECRET)]);
    const data = Buffer.from(sealed!.data!);
    data[data.length - 5]! ^= 0xff;
    const altered = await post('/decode', asJson([{ metadata: sealed!.metadata!, data }]));
    expect(altered.status).toBe(400);
    expect(altered.body?.error).toMatch(/failed authentication/);
  });

  it('answers only POST on the codec endpoints and 404 elsewhere', async () => {
    expect((await fetch(`${base}/decode`, { headers: operator })).status).toBe(405);
    expect((await post('/transcode', { payloads: [] })).status).toBe(404);
    expect((await fetch(`${base}/health`)).status).toBe(200);
  });
});

describe('codec server, Web UI door and CORS', () => {
  const ui = { origin: UI_ORIGIN, 'content-type': 'application/json', 'x-namespace': 'default' };

  it("answers the Web UI's preflight from its origin (either loopback name), and refuses another origin's", async () => {
    for (const origin of [UI_ORIGIN, 'http://localhost:8233']) {
      const res = await fetch(`${base}/ui/${UI_TOKEN}/decode`, {
        method: 'OPTIONS',
        headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type,x-namespace' },
      });
      expect(res.status).toBe(204);
      expect(res.headers.get('access-control-allow-origin')).toBe(origin);
      expect(res.headers.get('access-control-allow-methods')).toBe('POST');
      expect(res.headers.get('access-control-allow-headers')?.toLowerCase()).toContain('x-namespace');
      expect(res.headers.get('vary')).toBe('Origin');
    }
    for (const origin of ['http://evil.example', 'http://127.0.0.1:8234', 'null']) {
      const res = await fetch(`${base}/ui/${UI_TOKEN}/decode`, {
        method: 'OPTIONS',
        headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type,x-namespace' },
      });
      expect(res.status).toBe(403);
      expect(res.headers.get('access-control-allow-origin')).toBeNull();
      expect(res.headers.get('access-control-allow-methods')).toBeNull();
    }
  });

  it('decodes for the Web UI under its secret path, from its origin, without the operator key', async () => {
    const [sealed] = await codec.encode([defaultPayloadConverter.toPayload(SECRET)]);
    const res = await post(`/ui/${UI_TOKEN}/decode`, asJson([sealed!]), ui);
    expect(res.status).toBe(200);
    expect(res.headers.get('access-control-allow-origin')).toBe(UI_ORIGIN);
    expect(decoded(res.body)).toEqual([SECRET]);
    // The UI encodes what an operator types in (a signal, a start): it comes back encrypted.
    const encoded = await post(`/ui/${UI_TOKEN}/encode`, asJson([defaultPayloadConverter.toPayload('typed in the UI')]), ui);
    expect(encoded.status).toBe(200);
    expect(defaultPayloadConverter.fromPayload((await codec.decode([JSONToPayload(encoded.body!.payloads![0] as object)]))[0]!)).toBe('typed in the UI');
  });

  it('refuses the Web UI door with a wrong token, without the Origin of a browser, from another origin, or when it is off', async () => {
    const [sealed] = await codec.encode([defaultPayloadConverter.toPayload(SECRET)]);
    const body = asJson([sealed!]);
    const refused = [
      await post(`/ui/${randomBytes(32).toString('base64url')}/decode`, body, ui),
      await post('/ui/decode', body, ui),
      await post(`/ui/${UI_TOKEN}/decode`, body, { 'content-type': 'application/json' }),
      await post(`/ui/${UI_TOKEN}/decode`, body, { ...ui, origin: 'http://evil.example' }),
      await post(`/ui/${UI_TOKEN}/decode`, body, ui, withoutUiBase),
    ];
    expect(refused.map((r) => r.status)).toEqual([404, 404, 403, 403, 404]);
    for (const res of refused) {
      expect(res.body?.payloads).toBeUndefined();
      expect(res.headers.get('access-control-allow-origin')).not.toBe('http://evil.example');
    }
  });

  it('refuses another origin even with the operator key, so no page in an operator\'s browser can use it', async () => {
    const [sealed] = await codec.encode([defaultPayloadConverter.toPayload(SECRET)]);
    const res = await post('/decode', asJson([sealed!]), { ...operator, origin: 'http://evil.example' });
    expect(res.status).toBe(403);
    expect(res.text).not.toContain('cus_codec_secret');
  });

  it('never logs payloads, keys or the UI token', () => {
    const logged = logLines.join('\n');
    expect(logLines.length).toBeGreaterThan(0);
    for (const secret of [OPERATOR_KEY, UI_TOKEN, 'cus_codec_secret', 'tok_codec_4242']) expect(logged).not.toContain(secret);
  });
});
