// Process entry of the codec server: `npx tsx codec-server/main.ts` (`npm start` runs it). Needs
// PAYLOAD_ENCRYPTION_KEYS (the workers' keys) and OPERATOR_API_KEY; listens on CODEC_HOST:CODEC_PORT.
import { createServer } from 'node:http';
import { loadConfig } from '../platform/config.js';
import { createLogger } from '../platform/logger.js';
import { configuredPayloadKeys, EncryptionCodec } from '../platform/payload-codec.js';
import { createCodecApp } from './app.js';

function fail(message: string): never {
  // One line, as the launcher reports a child's last words.
  process.stderr.write(`codec server: ${message}\n`);
  process.exit(1);
}

const config = (() => {
  try {
    return loadConfig();
  } catch (err) {
    return fail((err as Error).message);
  }
})();
const logger = createLogger('codec', config.logLevel);
const operatorKey = config.operator.apiKey ?? fail('OPERATOR_API_KEY is not set: the codec server answers the operator only');
const codec = (() => {
  try {
    return new EncryptionCodec(configuredPayloadKeys(config));
  } catch (err) {
    return fail((err as Error).message);
  }
})();

const { host, port, uiToken, uiOrigins } = config.codec;
const server = createServer(createCodecApp({ codec, operatorKey, uiToken, uiOrigins, logger }));
server.once('error', (err) => fail(`cannot listen on ${host}:${port}: ${err.message}`));
server.listen(port, host, () => {
  // Neither the token nor any key is logged: the key id says which key encrypts.
  logger.info('codec server listening', { url: `http://${host}:${port}`, encryptsWith: codec.keyId, webUi: uiToken ? uiOrigins : 'off' });
});

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.once(signal, () => {
    server.close(() => process.exit(0));
    server.closeIdleConnections();
    setTimeout(() => server.closeAllConnections(), 2_000).unref();
  });
}
