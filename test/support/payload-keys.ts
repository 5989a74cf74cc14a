// The payload key every test uses: test/global-setup.ts puts it in PAYLOAD_ENCRYPTION_KEYS for the
// whole run (in-process clients and workers, and every stack's processes inherit it).
//
// A TEST-ONLY KEY, COMMITTED ON PURPOSE: the encrypted histories under test/histories were recorded
// with it and can only be replayed with it. It protects nothing and must never encrypt real data;
// no deployment reads it (they read PAYLOAD_ENCRYPTION_KEYS, or `npm start`'s key under DATA_DIR).
import type { DataConverter, Payload } from '@temporalio/common';
import { createCustomerSearch, type CustomerSearch } from '../../platform/customer-search.js';
import { EncryptionCodec, payloadDataConverter } from '../../platform/payload-codec.js';
import { parsePayloadKeys, type PayloadKey } from '../../platform/payload-keys.js';

export const TEST_PAYLOAD_KEYS = 'test-20261201:jE6pXXsY3Iy2zZyTNDnw5hglHh0itbCxpG35TlEEfEc=';

export const testPayloadKeys = (): PayloadKey[] => parsePayloadKeys(TEST_PAYLOAD_KEYS);

/** What the tests' own clients, workers and test environments are given: the codec with the test key. */
export const testDataConverter = (): DataConverter => payloadDataConverter(testPayloadKeys());

/** The CustomerId pseudonyms of the test key (platform/customer-search.ts). */
export const testCustomerSearch: CustomerSearch = createCustomerSearch(testPayloadKeys());

/** Payloads as Temporal stores them (e.g. from `handle.fetchHistory()`), decrypted with the test key. */
export function decodeStored(payloads: Payload[]): Promise<Payload[]> {
  return new EncryptionCodec(testPayloadKeys()).decode(payloads);
}
